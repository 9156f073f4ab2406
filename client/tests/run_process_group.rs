//! `month-lock run` keeps CMD's whole process tree under the lock: CMD runs in a process group of
//! its own, a lost lock and forwarded signals reach the whole group, and if month-lock itself dies
//! the group is killed (docs/cli.md, "`month-lock run`").

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use month_lock_client::{MonthLockExt, YearMonth};
use month_lock_tests::server;
use rustix::process::{Pid, Signal};
use tokio_postgres::Client;

use common::cli::{cli, group_of, running, scratch_dir, wait_for_file};
use common::months::ym;

/// How soon the processes must be gone.
const BOUND: Duration = Duration::from_secs(5);

fn pid(n: i32) -> Pid {
    Pid::from_raw(n).unwrap()
}

/// Waits until `n` is gone; returns how long that took (panics after `BOUND`).
async fn gone_within_bound(n: i32, what: &str) -> Duration {
    let start = Instant::now();
    while running(n) {
        assert!(
            start.elapsed() < BOUND,
            "{what} (pid {n}) still running after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

async fn holder_pid(observer: &Client, m: YearMonth) -> i32 {
    let start = Instant::now();
    loop {
        let rows = observer.locks().await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.granted && r.year_month() == Some(m)) {
            return r.pid.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nobody holds {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// CMD: a shell that starts a child of its own, notes both pids, and waits.
fn tree_script(dir: &Path) -> String {
    format!(
        "sleep 1000 & echo $! > {c}; echo $$ > {s}; wait",
        c = dir.join("child").display(),
        s = dir.join("shell").display()
    )
}

/// CMD as in [`tree_script`], but the child ignores SIGTERM (only SIGKILL stops it).
fn stubborn_tree_script(dir: &Path) -> String {
    format!(
        "(trap '' TERM; exec sleep 1000) & echo $! > {c}; echo $$ > {s}; wait",
        c = dir.join("child").display(),
        s = dir.join("shell").display()
    )
}

async fn tree_pids(dir: &Path) -> (i32, i32) {
    let child = wait_for_file(&dir.join("child"))
        .await
        .trim()
        .parse()
        .unwrap();
    let shell = wait_for_file(&dir.join("shell"))
        .await
        .trim()
        .parse()
        .unwrap();
    (shell, child)
}

#[tokio::test]
async fn a_lost_lock_stops_cmd_and_the_children_it_started() {
    let db = server().await.fresh_db("pg_lost").await;
    let observer = db.connect().await;
    let dir = scratch_dir("lost");
    let m = ym("2023-04");
    let run = cli(&db)
        .args([
            "run",
            "2023-04",
            "--heartbeat",
            "200ms",
            "--grace",
            "2s",
            "--",
        ])
        .args(["sh", "-c", &tree_script(&dir)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (shell, child) = tree_pids(&dir).await;
    assert_eq!(
        group_of(child),
        group_of(shell),
        "CMD's child is in CMD's group"
    );
    assert_ne!(
        group_of(shell),
        group_of(run.id().unwrap() as i32),
        "CMD has a group of its own"
    );
    let backend = holder_pid(&observer, m).await;
    let start = Instant::now();
    observer
        .execute("SELECT pg_terminate_backend($1)", &[&backend])
        .await
        .unwrap();
    let t_child = gone_within_bound(child, "CMD's child").await;
    gone_within_bound(shell, "CMD").await;
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    println!(
        "lost lock: CMD's child stopped {t_child:?} after the terminate ({:?} in all)",
        start.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(70),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn cmd_and_its_children_die_with_a_killed_month_lock() {
    let db = server().await.fresh_db("pg_sigkill").await;
    let observer = db.connect().await;
    let dir = scratch_dir("sigkill");
    let m = ym("2023-05");
    let mut run = cli(&db)
        .args(["run", "2023-05", "--"])
        .args(["sh", "-c", &tree_script(&dir)])
        .spawn()
        .unwrap();
    let (shell, child) = tree_pids(&dir).await;
    holder_pid(&observer, m).await;
    let start = Instant::now();
    rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::KILL).unwrap();
    let _ = run.wait().await;
    let t_child = gone_within_bound(child, "CMD's child").await;
    let t_shell = gone_within_bound(shell, "CMD").await;
    println!("month-lock SIGKILLed: CMD gone after {t_shell:?}, its child after {t_child:?}");
    // The month is free (the session ended with the process).
    let start_free = Instant::now();
    while observer.is_locked(m).await.unwrap() {
        assert!(start_free.elapsed() < BOUND, "month still locked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(start.elapsed() < BOUND * 2);
}

/// The watchdog leads CMD's group: its pid is the group id.
fn watchdog_of(shell: i32) -> i32 {
    rustix::process::getpgid(Some(pid(shell)))
        .unwrap()
        .as_raw_nonzero()
        .get()
}

#[tokio::test]
async fn cmd_and_its_children_die_with_a_killed_watchdog() {
    let db = server().await.fresh_db("pg_kill_watchdog").await;
    let observer = db.connect().await;
    for round in 0..3 {
        let dir = scratch_dir(&format!("kill_watchdog{round}"));
        let m = ym("2023-06");
        let run = cli(&db)
            .args(["run", "2023-06", "--grace", "1s", "--"])
            .args(["sh", "-c", &stubborn_tree_script(&dir)])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (shell, child) = tree_pids(&dir).await;
        holder_pid(&observer, m).await;
        let watchdog = watchdog_of(shell);
        assert!(running(watchdog));
        rustix::process::kill_process(pid(watchdog), Signal::KILL).unwrap();
        let t_child = gone_within_bound(child, "CMD's child (ignores SIGTERM)").await;
        let t_shell = gone_within_bound(shell, "CMD").await;
        let out = run.wait_with_output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(70),
            "reported as a lost lock: {err}"
        );
        assert!(err.contains("2023-06 is released"), "{err}");
        println!("watchdog SIGKILLed: CMD gone after {t_shell:?}, its child after {t_child:?}");
        // month-lock awaits the release before it exits: the month is free when it has ended.
        assert!(!observer.is_locked(m).await.unwrap(), "round {round}");
    }
}

#[tokio::test]
async fn cmd_dies_when_month_lock_and_its_watchdog_are_killed_at_once() {
    let db = server().await.fresh_db("pg_kill_both").await;
    let observer = db.connect().await;
    for round in 0..3 {
        let dir = scratch_dir(&format!("kill_both{round}"));
        let m = ym("2023-07");
        let mut run = cli(&db)
            .args(["run", "2023-07", "--"])
            .args(["sh", "-c", &tree_script(&dir)])
            .spawn()
            .unwrap();
        let (shell, child) = tree_pids(&dir).await;
        holder_pid(&observer, m).await;
        let watchdog = watchdog_of(shell);
        rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::KILL).unwrap();
        rustix::process::kill_process(pid(watchdog), Signal::KILL).unwrap();
        let _ = run.wait().await;
        // CMD dies with month-lock (PR_SET_PDEATHSIG). A process CMD started has no guardian
        // left (docs/cli.md, "`month-lock run`", says so); the test cleans it up.
        let t_shell = gone_within_bound(shell, "CMD").await;
        println!("month-lock and watchdog SIGKILLed at once: CMD gone after {t_shell:?}");
        let _ = rustix::process::kill_process(pid(child), Signal::KILL);
    }
}

#[tokio::test]
async fn one_ctrl_c_gives_cmd_one_sigint() {
    let db = server().await.fresh_db("pg_ctrlc").await;
    let observer = db.connect().await;
    let dir = scratch_dir("ctrlc");
    let ints = dir.join("ints");
    let ready = dir.join("ready");
    // Counts SIGINTs; ends on SIGTERM.
    let script = format!(
        "trap 'echo int >> {i}' INT; trap 'exit 7' TERM; echo yes > {r}; while :; do sleep 0.05; done",
        i = ints.display(),
        r = ready.display()
    );
    // month-lock leads a process group as a shell's foreground job would; the terminal sends
    // SIGINT to that whole group.
    let run = cli(&db)
        .args(["run", "2023-06", "--", "sh", "-c", &script])
        .process_group(0)
        .spawn()
        .unwrap();
    let group = pid(run.id().unwrap() as i32);
    wait_for_file(&ready).await;
    holder_pid(&observer, ym("2023-06")).await;
    rustix::process::kill_process_group(group, Signal::INT).unwrap();
    wait_for_file(&ints).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        std::fs::read_to_string(&ints).unwrap(),
        "int\n",
        "exactly one SIGINT"
    );
    rustix::process::kill_process(group, Signal::TERM).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
}

#[tokio::test]
async fn a_release_against_a_stopped_server_process_gives_way_to_a_signal() {
    let db = server().await.fresh_db("pg_release_hang").await;
    let observer = db.connect().await;
    let dir = scratch_dir("release_hang");
    let go = dir.join("go");
    let ready = dir.join("ready");
    // CMD waits until told to end.
    let script = format!(
        "echo yes > {r}; while [ ! -e {g} ]; do sleep 0.02; done",
        r = ready.display(),
        g = go.display()
    );
    let run = cli(&db)
        .args([
            "run",
            "2023-07",
            "--heartbeat",
            "10s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&ready).await;
    let backend = holder_pid(&observer, ym("2023-07")).await;
    // The session's server process stops answering; CMD ends; the release hangs.
    rustix::process::kill_process(pid(backend), Signal::STOP).unwrap();
    std::fs::write(&go, "").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::TERM).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    rustix::process::kill_process(pid(backend), Signal::CONT).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("month-lock exited {took:?} after SIGTERM during a hanging release");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(out.status.code(), Some(128 + 15), "{err}");
    assert!(err.contains("interrupted while releasing 2023-07"), "{err}");
}

#[tokio::test]
async fn a_release_that_gets_no_answer_ends_after_its_timeout() {
    let db = server().await.fresh_db("pg_release_timeout").await;
    let observer = db.connect().await;
    let dir = scratch_dir("release_timeout");
    let ready = dir.join("ready");
    let go = dir.join("go");
    let script = format!(
        "echo yes > {r}; while [ ! -e {g} ]; do sleep 0.02; done",
        r = ready.display(),
        g = go.display()
    );
    let run = cli(&db)
        .args([
            "run",
            "2023-08",
            "--heartbeat",
            "10s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&ready).await;
    let backend = holder_pid(&observer, ym("2023-08")).await;
    rustix::process::kill_process(pid(backend), Signal::STOP).unwrap();
    let start = Instant::now();
    std::fs::write(&go, "").unwrap();
    let out = tokio::time::timeout(Duration::from_secs(40), run.wait_with_output()).await;
    rustix::process::kill_process(pid(backend), Signal::CONT).unwrap();
    let out = out.expect("month-lock ended by itself").unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("unanswered release: month-lock exited {took:?} after CMD ended");
    assert_eq!(out.status.code(), Some(70), "{err}");
    assert!(err.contains("2023-08"), "{err}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

/// Under a terminal (script(1) gives one), CMD's group is the terminal's foreground group: a
/// CMD that reads from the terminal is not stopped by SIGTTIN, and the terminal goes back to
/// month-lock's group when CMD is done.
#[tokio::test]
async fn cmd_reads_the_terminal_month_lock_runs_in() {
    use tokio::io::AsyncWriteExt;
    let db = server().await.fresh_db("pg_tty").await;
    let dir = scratch_dir("tty");
    let got = dir.join("got");
    let after = dir.join("after");
    // month-lock, then a check that the shell (month-lock's group) has the terminal again:
    // reading from it in the background would stop the shell.
    let inner = format!(
        "{bin} --database-url '{url}' run 2023-09 -- sh -c 'read x; echo \"got $x\" > {got}'; \
         echo \"exit $?\" > {after}; read y; echo \"then $y\" >> {after}",
        bin = common::cli::BIN,
        url = db.url(),
        got = got.display(),
        after = after.display()
    );
    let mut script = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &inner, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("script(1) (util-linux) is installed");
    let mut stdin = script.stdin.take().unwrap();
    // Typed once month-lock's CMD waits for it, then once more for the shell.
    let observer = db.connect().await;
    holder_pid(&observer, ym("2023-09")).await;
    stdin.write_all(b"hello\n").await.unwrap();
    assert_eq!(wait_for_file(&got).await, "got hello\n");
    assert_eq!(wait_for_file(&after).await, "exit 0\n");
    stdin.write_all(b"again\n").await.unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&after).unwrap() != "exit 0\nthen again\n" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the shell never read the terminal again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), script.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
