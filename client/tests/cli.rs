//! The `month-lock` binary against a real PostgreSQL: `run` with one month (exit codes, signals,
//! a lost lock), `status`, `check`, connection settings, usage errors (docs/cli.md; several
//! months: `cli_months.rs`).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use month_lock_client::{MonthLock, MonthLockExt};
use month_lock_tests::server;
use rustix::process::{Pid, Signal};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use common::cli::{cli, cli_holder_pid, output, scratch_dir, text, wait_for_file, BIN};
use common::months::ym;

fn alive(pid: i32) -> bool {
    rustix::process::test_kill_process(Pid::from_raw(pid).unwrap()).is_ok()
}

#[tokio::test]
async fn run_forwards_the_exit_code_and_releases() {
    let db = server().await.fresh_db("cli_exit").await;
    let observer = db.connect().await;
    for code in [0, 3, 42] {
        let out =
            output(cli(&db).args(["run", "2024-03", "--", "sh", "-c", &format!("exit {code}")]))
                .await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "stderr: {}",
            text(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "quiet on success: {}",
            text(&out.stderr)
        );
    }
    let out = output(cli(&db).args(["run", "2024-03", "--", "sh", "-c", "kill -KILL $$"])).await;
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "killed by a signal: 128+N"
    );
    let out = output(cli(&db).args(["run", "2024-03", "--", "/nonexistent/command"])).await;
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stderr).contains("/nonexistent/command"));
    assert!(!observer.is_locked(ym("2024-03")).await.unwrap());
}

#[tokio::test]
async fn run_holds_the_month_and_passes_stdio_through() {
    let db = server().await.fresh_db("cli_stdio").await;
    let mut child = cli(&db)
        .args(["run", "2024-04", "--timeout", "5s", "--", "sh", "-c"])
        .arg("cat; echo to-stderr >&2; exit 0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let observer = db.connect().await;
    cli_holder_pid(&observer, ym("2024-04")).await;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"line one\nline two\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "line one\nline two\n");
    assert_eq!(text(&out.stderr), "to-stderr\n");
}

#[tokio::test]
async fn concurrent_runs_on_one_month_never_overlap() {
    let db = server().await.fresh_db("cli_overlap").await;
    let dir = scratch_dir("overlap");
    let log = dir.join("log");
    // Each run appends "start" and "end" around a pause; overlapping runs would interleave.
    let script = format!(
        "echo start >> {log}; if [ -e {marker} ]; then echo OVERLAP >> {log}; fi; touch {marker}; \
         sleep 0.4; rm {marker}; echo end >> {log}",
        log = log.display(),
        marker = dir.join("marker").display()
    );
    let runs: Vec<_> = (0..3)
        .map(|_| {
            cli(&db)
                .args(["run", "2024-05", "--", "sh", "-c", &script])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log,
        "start\nend\n".repeat(3),
        "runs overlapped or did not all run: {log:?}"
    );

    // With a short --timeout the second run gives up with 75 and one line on stderr.
    let observer = db.connect().await;
    let first = cli(&db)
        .args(["run", "2024-05", "--", "sleep", "3"])
        .spawn()
        .unwrap();
    let holder = cli_holder_pid(&observer, ym("2024-05")).await;
    let start = Instant::now();
    let out = output(
        cli(&db)
            .args(["run", "2024-05", "--timeout", "300ms", "--", "touch"])
            .arg(dir.join("ran")),
    )
    .await;
    assert_eq!(out.status.code(), Some(75));
    assert!(start.elapsed() >= Duration::from_millis(290));
    assert!(!dir.join("ran").exists(), "CMD did not run");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.contains("2024-05") && err.contains("300ms") && err.contains(&format!("pid {holder}")),
        "{err}"
    );
    drop(first); // kill_on_drop
}

#[tokio::test]
async fn status_shows_a_held_month_as_json_lines_and_as_a_table() {
    let db = server().await.fresh_db("cli_status").await;
    let holder = db.connect_as("status-holder").await;
    let pid = month_lock_tests::backend_pid(&holder).await;
    let _g = MonthLock::new(ym("2024-06"))
        .acquire(&holder)
        .await
        .unwrap();
    let _s = MonthLock::new(ym("2024-07"))
        .shared()
        .acquire(&holder)
        .await
        .unwrap();

    let out = output(cli(&db).args(["status", "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["year"], 2024);
    assert_eq!(rows[0]["month"], 6);
    assert_eq!(rows[0]["month_start"], "2024-06-01");
    assert_eq!(rows[0]["mode"], "exclusive");
    assert_eq!(rows[0]["granted"], true);
    assert_eq!(rows[0]["pid"], pid);
    assert_eq!(rows[0]["application_name"], "status-holder");
    assert_eq!(rows[1]["mode"], "shared");

    let out = output(cli(&db).arg("status")).await;
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("MONTH"));
    assert!(lines[1].starts_with("2024-06  exclusive  held"), "{table}");
    assert!(lines[1].contains(&pid.to_string()) && lines[1].contains("status-holder"));
    let col = lines[0].find("PID").unwrap();
    assert_eq!(
        lines[1].find(&pid.to_string()),
        Some(col),
        "aligned columns:\n{table}"
    );
}

#[tokio::test]
async fn check_exit_codes() {
    let db = server().await.fresh_db("cli_check").await;
    let out = output(cli(&db).args(["check", "2024-08"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "2024-08 is free\n");

    let holder = db.connect_as("nightly-backfill").await;
    let pid = month_lock_tests::backend_pid(&holder).await;
    let _g = MonthLock::new(ym("2024-08"))
        .acquire(&holder)
        .await
        .unwrap();
    let out = output(cli(&db).args(["check", "2024-08"])).await;
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("pid {pid}")) && said.contains("nightly-backfill"),
        "{said}"
    );

    let out = output(cli(&db).args(["check", "2024-13"])).await;
    assert_eq!(out.status.code(), Some(2), "usage error");
    assert!(text(&out.stderr).contains("2024-13"));

    let mut bad = Command::new(BIN);
    bad.args([
        "--database-url",
        "postgres://postgres@127.0.0.1:1/nowhere",
        "check",
        "2024-08",
    ]);
    let out = output(&mut bad).await;
    assert_eq!(out.status.code(), Some(2), "connection error");
    let err = text(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        err.contains("Connection refused"),
        "the OS's own reason: {err}"
    );
}

#[tokio::test]
async fn missing_extension_gives_the_documented_message() {
    let db = server().await.bare_db("cli_noext").await;
    for (args, code) in [
        (vec!["run", "2024-03", "--", "true"], 69),
        (vec!["check", "2024-03"], 2),
        (vec!["status"], 2),
    ] {
        let out = output(cli(&db).args(&args)).await;
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("CREATE EXTENSION month_lock"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_lost_lock_terminates_the_child_and_exits_70() {
    let db = server().await.fresh_db("cli_lost").await;
    let observer = db.connect().await;
    let dir = scratch_dir("lost");
    let pidfile = dir.join("pid");
    let termfile = dir.join("term");
    // The child notes its pid, and notes SIGTERM when it gets it.
    let script = format!(
        "trap 'echo term > {t}; exit 0' TERM; echo $$ > {p}; while :; do sleep 0.05; done",
        t = termfile.display(),
        p = pidfile.display()
    );
    let run = cli(&db)
        .args([
            "run",
            "2024-09",
            "--heartbeat",
            "200ms",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid: i32 = wait_for_file(&pidfile).await.trim().parse().unwrap();
    let backend = cli_holder_pid(&observer, ym("2024-09")).await;
    let killed_at = Instant::now();
    let ok: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&backend])
        .await
        .unwrap()
        .get(0);
    assert!(ok);
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = killed_at.elapsed();
    println!("month-lock run exited {took:?} after pg_terminate_backend of its session");
    assert_eq!(out.status.code(), Some(70));
    let err = text(&out.stderr);
    assert!(err.contains("lost the lock on 2024-09"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&termfile).unwrap(),
        "term\n",
        "CMD got SIGTERM"
    );
    assert!(!alive(child_pid));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let db = server().await.fresh_db("cli_grace").await;
    let observer = db.connect().await;
    let dir = scratch_dir("grace");
    let pidfile = dir.join("pid");
    // SIG_IGN survives exec: sleep ignores SIGTERM.
    let script = format!(
        "trap '' TERM; echo $$ > {}; exec sleep 60",
        pidfile.display()
    );
    let run = cli(&db)
        .args([
            "run", "2024-10", "--grace", "500ms", "--", "sh", "-c", &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid: i32 = wait_for_file(&pidfile).await.trim().parse().unwrap();
    let backend = cli_holder_pid(&observer, ym("2024-10")).await;
    let start = Instant::now();
    let _: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&backend])
        .await
        .unwrap()
        .get(0);
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(70), "{}", text(&out.stderr));
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "waited the grace period"
    );
    assert!(!alive(child_pid), "SIGKILLed");
}

#[tokio::test]
async fn sigterm_and_sigint_to_month_lock_are_forwarded_to_the_child() {
    let db = server().await.fresh_db("cli_signals").await;
    let observer = db.connect().await;
    for (sig, name, month) in [
        (Signal::TERM, "TERM", "2024-11"),
        (Signal::INT, "INT", "2024-12"),
    ] {
        let dir = scratch_dir(&format!("sig{name}"));
        let ready = dir.join("ready");
        let script = format!(
            "trap 'echo got {name}; exit 42' {name}; echo yes > {r}; while :; do sleep 0.05; done",
            r = ready.display()
        );
        let run = cli(&db)
            .args(["run", month, "--", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_file(&ready).await;
        cli_holder_pid(&observer, ym(month)).await;
        rustix::process::kill_process(Pid::from_raw(run.id().unwrap() as i32).unwrap(), sig)
            .unwrap();
        let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(42), "{name}");
        assert_eq!(text(&out.stdout), format!("got {name}\n"));
        assert!(!observer.is_locked(ym(month)).await.unwrap());
    }
}

#[tokio::test]
async fn connection_from_pg_environment_variables() {
    let db = server().await.fresh_db("cli_pgenv").await;
    let host = match &db.config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL")
        .env("PGHOST", host)
        .env("PGPORT", db.config.get_ports()[0].to_string())
        .env("PGUSER", db.config.get_user().unwrap())
        .env("PGDATABASE", &db.name)
        .args(["run", "2025-01", "--", "sh", "-c", "exit 5"]);
    let out = output(&mut cmd).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));

    // DATABASE_URL is used when --database-url is absent.
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", db.url()).args(["check", "2025-01"]);
    let out = output(&mut cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn help_documents_exit_codes() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "75",
        "70",
        "EX_TEMPFAIL",
        "DATABASE_URL",
        "PGHOST",
        "check   0 the month is free, 1 it is locked",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = std::process::Command::new(BIN)
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("--timeout <DURATION>"));
}

#[tokio::test]
async fn usage_errors_exit_2_before_connecting() {
    // Nothing listens there: a connection attempt would fail with 69.
    let nowhere = "postgres://nobody@127.0.0.1:1/none";
    for (args, says) in [
        (
            vec!["run", "--shared", "2024-01..2024-02", "--", "true"],
            "--shared takes one month",
        ),
        (
            vec!["run", "--heartbeat", "0", "2024-01", "--", "true"],
            "between 100ms and 1h",
        ),
        (
            vec!["run", "--heartbeat", "5ms", "2024-01", "--", "true"],
            "between 100ms and 1h",
        ),
    ] {
        let out = output(
            Command::new(BIN)
                .env_remove("DATABASE_URL")
                .arg("--database-url")
                .arg(nowhere)
                .args(&args),
        )
        .await;
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("cannot connect"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn status_writes_year_5_as_0005() {
    let db = server().await.fresh_db("cli_year5").await;
    let holder = db.connect().await;
    let g = MonthLock::new(ym("0005-03"))
        .acquire(&holder)
        .await
        .unwrap();
    let out = output(cli(&db).arg("status")).await;
    let table = text(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("0005-03 ")), "{table}");
    g.release().await.unwrap();
}
