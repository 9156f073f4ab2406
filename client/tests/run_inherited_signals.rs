//! `month-lock run` started with signals ignored (a `&` job of a non-interactive shell has
//! SIGINT and SIGQUIT ignored, by POSIX) keeps them ignored while it waits for the month and
//! while it holds it, and CMD inherits them ignored, as CMD started the same way would; a
//! signal not ignored ends a waiting month-lock (docs/cli.md, "`month-lock run`").
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use month_lock_client::MonthLockExt;
use month_lock_tests::server;
use rustix::process::{Pid, Signal};
use tokio_postgres::Client;

use common::cli::{cli, scratch_dir, wait_for_file, BIN};
use common::months::ym;

const BOUND: Duration = Duration::from_secs(10);

fn pid(n: i32) -> Pid {
    Pid::from_raw(n).unwrap()
}

fn alive(n: i32) -> bool {
    rustix::process::test_kill_process(pid(n)).is_ok()
}

/// Whether process `n` ignores signal `sig` (the SigIgn mask of /proc/N/status).
fn ignores(n: i32, sig: Signal) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{n}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    let mask = u64::from_str_radix(mask, 16).unwrap();
    mask & (1 << (sig.as_raw() - 1)) != 0
}

/// How many month-lock sessions wait for 2041-`month` (not granted).
async fn waiting(observer: &Client, month: i32) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM month_locks WHERE year = 2041 AND month = $1 AND NOT granted",
            &[&month],
        )
        .await
        .unwrap()
        .get(0)
}

async fn until_waiting(observer: &Client, month: i32, n: i64) {
    let start = Instant::now();
    while waiting(observer, month).await != n {
        assert!(start.elapsed() < BOUND, "never {n} waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills a month-lock (and so its CMD) if the round fails: it is no child of the test.
struct KillOnPanic(i32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = rustix::process::kill_process(pid(self.0), Signal::KILL);
        }
    }
}

async fn pid_in(path: &Path) -> i32 {
    wait_for_file(path).await.trim().parse().unwrap()
}

/// `month-lock run 2041-02 -- CMD` as a `&` job of `sh -c` (SIGINT and SIGQUIT ignored): SIGINT
/// neither ends it while it waits nor reaches CMD while it holds the month; CMD ignores SIGINT
/// too; SIGTERM is still forwarded. (month-lock used to ignore SIGINT while waiting but forward
/// it once holding, to a CMD it had given the default action.)
#[tokio::test]
async fn a_background_job_keeps_sigint_ignored_while_waiting_and_holding() {
    let db = server().await.fresh_db("inherited_sigint").await;
    let holder = db.connect().await;
    let observer = db.connect().await;
    for round in 0..5 {
        let dir = scratch_dir(&format!("inherited_sigint_{round}"));
        let (ints, cmd_file, ml, code) = (
            dir.join("ints"),
            dir.join("cmd"),
            dir.join("month-lock"),
            dir.join("code"),
        );
        holder
            .batch_execute("SELECT month_lock(2041, 2)")
            .await
            .unwrap();
        // CMD counts SIGINTs (a trap is refused if SIGINT came ignored) and ends on SIGTERM.
        let script = format!(
            "trap 'echo int >> {i}' INT; trap 'exit 4' TERM; echo $$ > {c}; \
             while :; do sleep 0.05; done",
            i = ints.display(),
            c = cmd_file.display()
        );
        let job = format!(
            "\"$@\" & echo $! > {ml}; wait $!; echo $? > {code}",
            ml = ml.display(),
            code = code.display()
        );
        let mut shell = tokio::process::Command::new("sh")
            .args(["-c", &job, "sh", BIN, "--database-url", &db.url()])
            .args(["run", "2041-02", "--", "sh", "-c", &script])
            .env_remove("DATABASE_URL")
            .env_remove("PGAPPNAME")
            .env_remove("PGSSLMODE")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let month_lock = pid_in(&ml).await;
        let _guard = KillOnPanic(month_lock);
        // The shell's child sets SIGINT ignored after `$!` is known, before it execs.
        let start = Instant::now();
        while !ignores(month_lock, Signal::INT) {
            assert!(start.elapsed() < BOUND, "sh -c '... &' ignores SIGINT");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        until_waiting(&observer, 2, 1).await;
        // Waiting: SIGINT is ignored.
        rustix::process::kill_process(pid(month_lock), Signal::INT).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            alive(month_lock),
            "round {round}: SIGINT ended a waiting month-lock"
        );
        assert_eq!(waiting(&observer, 2).await, 1);
        // Holding: SIGINT is ignored, and CMD has it ignored too.
        holder
            .batch_execute("SELECT month_lock_release(2041, 2)")
            .await
            .unwrap();
        let cmd = pid_in(&cmd_file).await;
        assert!(
            ignores(cmd, Signal::INT),
            "round {round}: CMD has SIGINT ignored"
        );
        rustix::process::kill_process(pid(month_lock), Signal::INT).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!ints.exists(), "round {round}: SIGINT reached CMD");
        assert!(alive(month_lock));
        // SIGTERM was not ignored: forwarded.
        rustix::process::kill_process(pid(month_lock), Signal::TERM).unwrap();
        assert_eq!(wait_for_file(&code).await, "4\n", "round {round}");
        tokio::time::timeout(BOUND, shell.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!observer.is_locked(ym("2041-02")).await.unwrap());
    }
}

/// A signal not ignored ends a waiting month-lock (128+N for its shell), which leaves the
/// queue; CMD never runs.
#[tokio::test]
async fn sigint_or_sigterm_ends_a_waiting_month_lock() {
    let db = server().await.fresh_db("waiting_signal").await;
    let holder = db.connect().await;
    let observer = db.connect().await;
    holder
        .batch_execute("SELECT month_lock(2041, 3)")
        .await
        .unwrap();
    for sig in [Signal::INT, Signal::TERM, Signal::HUP] {
        let dir = scratch_dir(&format!("waiting_signal_{}", sig.as_raw()));
        let ran = dir.join("ran");
        let mut run = cli(&db)
            .args(["run", "2041-03", "--", "sh", "-c"])
            .arg(format!("echo yes > {}", ran.display()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        until_waiting(&observer, 3, 1).await;
        rustix::process::kill_process(pid(run.id().unwrap() as i32), sig).unwrap();
        let status = tokio::time::timeout(BOUND, run.wait())
            .await
            .unwrap()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(sig.as_raw()), "{sig:?}");
        until_waiting(&observer, 3, 0).await;
        assert!(!ran.exists());
    }
}

/// SIGHUP ignored as under `nohup`: month-lock does not forward it and CMD inherits it ignored,
/// so a hangup ends neither. (month-lock used to forward it to a CMD it had given the default
/// action, which ended CMD despite `nohup`.)
#[tokio::test]
async fn sighup_ignored_as_under_nohup_stays_ignored_in_cmd() {
    let db = server().await.fresh_db("inherited_sighup").await;
    for round in 0..5 {
        let dir = scratch_dir(&format!("inherited_sighup_{round}"));
        let cmd_file = dir.join("cmd");
        let script = format!(
            "trap 'exit 4' TERM; echo $$ > {c}; while :; do sleep 0.05; done",
            c = cmd_file.display()
        );
        // As `nohup` does: SIGHUP ignored, then month-lock in the same process.
        let run = tokio::process::Command::new("sh")
            .args([
                "-c",
                "trap '' HUP; exec \"$@\"",
                "sh",
                BIN,
                "--database-url",
                &db.url(),
            ])
            .args([
                "run",
                &format!("2041-{:02}", round + 4),
                "--",
                "sh",
                "-c",
                &script,
            ])
            .env_remove("DATABASE_URL")
            .env_remove("PGAPPNAME")
            .env_remove("PGSSLMODE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let month_lock = run.id().unwrap() as i32;
        let cmd = pid_in(&cmd_file).await;
        assert!(
            ignores(month_lock, Signal::HUP),
            "round {round}: month-lock keeps SIGHUP ignored"
        );
        assert!(
            ignores(cmd, Signal::HUP),
            "round {round}: CMD has SIGHUP ignored"
        );
        rustix::process::kill_process(pid(month_lock), Signal::HUP).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            alive(cmd) && alive(month_lock),
            "round {round}: SIGHUP ended the run"
        );
        rustix::process::kill_process(pid(month_lock), Signal::TERM).unwrap();
        let out = tokio::time::timeout(BOUND, run.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "round {round}");
    }
}
