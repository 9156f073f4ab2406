//! `month-lock run` with a CMD that leaves CMD's process group (`setsid`, GNU `timeout`), kills
//! or signals its own group, or is stopped; and a `month-lock` killed while it waits. Each case
//! ends within a bound, with the documented exit status, and leaves no lock held or queued.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use month_lock_client::{MonthLockExt, YearMonth};
use month_lock_tests::server;
use rustix::process::{Pid, Signal};
use tokio_postgres::Client;

use common::cli::{cli, scratch_dir, wait_for_file};
use common::months::ym;

/// How soon things must be over.
const BOUND: Duration = Duration::from_secs(10);

fn pid(n: i32) -> Pid {
    Pid::from_raw(n).unwrap()
}

/// Alive and not a zombie.
fn running(n: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{n}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The backend holding `m` (waits until somebody does).
async fn holder_pid(observer: &Client, m: YearMonth) -> i32 {
    let start = Instant::now();
    loop {
        let rows = observer.locks().await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.granted && r.year_month() == Some(m)) {
            return r.pid.unwrap();
        }
        assert!(start.elapsed() < BOUND, "nobody holds {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `run` ends within `BOUND`; its exit status and stderr (written to `stderr`: a process CMD
/// moved out of reach may keep a pipe open).
async fn ends(mut run: tokio::process::Child, stderr: &Path, what: &str) -> (Option<i32>, String) {
    let status = tokio::time::timeout(BOUND, run.wait())
        .await
        .unwrap_or_else(|_| panic!("{what}: month-lock still running after {BOUND:?}"))
        .unwrap();
    (
        status.code(),
        std::fs::read_to_string(stderr).unwrap_or_default(),
    )
}

/// A file for a run's stderr.
fn stderr_file(dir: &Path) -> (std::fs::File, PathBuf) {
    let path = dir.join("stderr");
    (std::fs::File::create(&path).unwrap(), path)
}

/// A lost lock stops a CMD that made a process group of its own, and month-lock exits 70
/// within the bound (it used to signal only CMD's former group and wait for CMD forever).
#[tokio::test]
async fn a_lost_lock_stops_a_cmd_that_left_the_group() {
    let db = server().await.fresh_db("escape_lost").await;
    let observer = db.connect().await;
    for (i, wrapper) in [&["setsid", "-w"][..], &["timeout", "1000"][..]]
        .into_iter()
        .enumerate()
    {
        let dir = scratch_dir(&format!("escape_lost_{i}"));
        let m = ym(&format!("2036-0{}", i + 1));
        let script = format!(
            "echo $$ > {s}; sleep 1000 & echo $! > {c}; wait",
            s = dir.join("shell").display(),
            c = dir.join("child").display()
        );
        let (err, err_path) = stderr_file(&dir);
        let run = cli(&db)
            .args([
                "run",
                &m.to_string(),
                "--heartbeat",
                "200ms",
                "--grace",
                "1s",
                "--",
            ])
            .args(wrapper)
            .args(["sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let shell: i32 = wait_for_file(&dir.join("shell"))
            .await
            .trim()
            .parse()
            .unwrap();
        let backend = holder_pid(&observer, m).await;
        observer
            .execute("SELECT pg_terminate_backend($1)", &[&backend])
            .await
            .unwrap();
        let (code, stderr) = ends(run, &err_path, wrapper[0]).await;
        assert_eq!(code, Some(70), "{}: {stderr}", wrapper[0]);
        if wrapper[0] == "timeout" {
            // timeout passes the signal on to its own group: CMD's shell is stopped too.
            let start = Instant::now();
            while running(shell) && start.elapsed() < BOUND {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(!running(shell), "timeout's command still running");
        }
        // What CMD started in a group of its own is out of reach (documented): clean up.
        let child: i32 = wait_for_file(&dir.join("child"))
            .await
            .trim()
            .parse()
            .unwrap();
        let _ = rustix::process::kill_process(pid(child), Signal::KILL);
    }
}

/// A signal month-lock forwards reaches a CMD that left the group.
#[tokio::test]
async fn sigterm_to_month_lock_reaches_a_cmd_that_left_the_group() {
    let db = server().await.fresh_db("escape_term").await;
    let dir = scratch_dir("escape_term");
    let script = format!(
        "trap 'echo got > {g}; exit 3' TERM; echo $$ > {s}; while :; do sleep 0.05; done",
        g = dir.join("got").display(),
        s = dir.join("shell").display()
    );
    let (err, err_path) = stderr_file(&dir);
    let run = cli(&db)
        .args(["run", "2036-05", "--"])
        .args(["setsid", "-w", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let shell: i32 = wait_for_file(&dir.join("shell"))
        .await
        .trim()
        .parse()
        .unwrap();
    rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::TERM).unwrap();
    let (code, stderr) = ends(run, &err_path, "setsid").await;
    assert_eq!(wait_for_file(&dir.join("got")).await, "got\n");
    assert_eq!(code, Some(3), "{stderr}");
    assert!(!running(shell));
}

/// A CMD that kills its own group (the watchdog with it) ends with its own status (137), never
/// 70: month-lock waits for CMD's status when the watchdog dies.
#[tokio::test]
async fn a_cmd_that_kills_its_own_group_gives_its_own_status() {
    let db = server().await.fresh_db("escape_kill0").await;
    let observer = db.connect().await;
    let rounds = 20;
    let mut seventy = 0;
    for _ in 0..rounds {
        let out = tokio::time::timeout(
            BOUND,
            cli(&db)
                .args([
                    "run",
                    "2040-11",
                    "--",
                    "sh",
                    "-c",
                    "sleep 0.05; kill -KILL 0",
                ])
                .output(),
        )
        .await
        .expect("month-lock ended")
        .unwrap();
        match out.status.code() {
            Some(137) => {}
            Some(70) => seventy += 1,
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    assert!(!observer.is_locked(ym("2040-11")).await.unwrap());
    assert_eq!(seventy, 0, "exit 70 in {seventy} of {rounds} rounds");
}

/// A CMD that ignores SIGALRM and sends it to its group leaves the watchdog alive: CMD runs to
/// its end and its status is month-lock's.
#[tokio::test]
async fn a_signal_a_cmd_sends_its_group_leaves_the_watchdog_alive() {
    let db = server().await.fresh_db("escape_alrm").await;
    for sig in ["ALRM", "PROF", "VTALRM", "USR1", "PIPE", "SEGV"] {
        let script = format!("trap '' {sig}; kill -{sig} 0; sleep 0.3; exit 5");
        let out = tokio::time::timeout(
            BOUND,
            cli(&db)
                .args(["run", "2040-10", "--", "sh", "-c", &script])
                .output(),
        )
        .await
        .expect("month-lock ended")
        .unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "SIG{sig}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// CMD's group stopped (Ctrl-Z, `kill -STOP -PGID`), then CMD killed: month-lock still ends
/// within the bound and releases the month.
#[tokio::test]
async fn cmd_killed_in_a_stopped_group_still_ends_the_run() {
    let db = server().await.fresh_db("escape_stopped").await;
    let observer = db.connect().await;
    let dir = scratch_dir("escape_stopped");
    let m = ym("2040-12");
    let script = format!(
        "echo $$ > {s}; exec sleep 1000",
        s = dir.join("cmd").display()
    );
    let (err, err_path) = stderr_file(&dir);
    let run = cli(&db)
        .args(["run", "2040-12", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let cmd: i32 = wait_for_file(&dir.join("cmd"))
        .await
        .trim()
        .parse()
        .unwrap();
    holder_pid(&observer, m).await;
    let group = rustix::process::getpgid(Some(pid(cmd))).unwrap();
    rustix::process::kill_process_group(group, Signal::STOP).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rustix::process::kill_process(pid(cmd), Signal::KILL).unwrap();
    let (code, stderr) = ends(run, &err_path, "stopped group").await;
    // Whatever is left of the group (nothing, if the run cleaned up) goes on.
    let _ = rustix::process::kill_process_group(group, Signal::CONT);
    assert_eq!(code, Some(137), "{stderr}");
    assert!(!observer.is_locked(m).await.unwrap());
}

/// A month-lock killed while it waits in the lock queue leaves the queue promptly: it sets
/// `client_connection_check_interval`, so the server notices the closed connection.
#[tokio::test]
async fn a_killed_waiting_month_lock_leaves_the_queue() {
    let db = server().await.fresh_db("escape_waiting").await;
    let holder = db.connect().await;
    let observer = db.connect().await;
    let m = ym("2041-01");
    holder
        .batch_execute("SELECT month_lock(2041, 1)")
        .await
        .unwrap();
    let mut run = cli(&db)
        .args(["run", "2041-01", "--", "true"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waiting =
        "SELECT count(*) FROM month_locks WHERE year = 2041 AND month = 1 AND NOT granted";
    let start = Instant::now();
    while observer
        .query_one(waiting, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(start.elapsed() < BOUND, "month-lock never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.start_kill().unwrap();
    run.wait().await.unwrap();
    let start = Instant::now();
    while observer
        .query_one(waiting, &[])
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a killed month-lock's wait still queued after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the killed month-lock's wait left the queue after {:?}",
        start.elapsed()
    );
    assert!(observer.is_locked(m).await.unwrap());
}
