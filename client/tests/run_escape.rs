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

use common::cli::{cli, group_of, running, scratch_dir, session_of, wait_for_file};
use common::months::ym;

/// How soon things must be over.
const BOUND: Duration = Duration::from_secs(10);

fn pid(n: i32) -> Pid {
    Pid::from_raw(n).unwrap()
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

/// Kills the listed processes when dropped during a panic: what a failed round leaves
/// running. (A round that passed saw them gone: their pids may belong to others by then.)
struct Leftovers(Vec<i32>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for &p in &self.0 {
                let _ = rustix::process::kill_process(pid(p), Signal::KILL);
            }
        }
    }
}

/// Waits until process `n` is gone (panics after `BOUND`).
async fn gone(n: i32, what: &str) {
    let start = Instant::now();
    while running(n) {
        assert!(
            start.elapsed() < BOUND,
            "{what} (pid {n}) still running after {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pid_in(path: &Path) -> i32 {
    wait_for_file(path).await.trim().parse().unwrap()
}

/// How a CMD gets processes out of its process group: a wrapper in front of `sh -c SCRIPT`
/// (GNU `timeout` makes a group of its own, `setsid -w` a session), or a script whose child
/// (which ignores SIGTERM) makes a session of its own (`setsid`, a grandchild of month-lock).
#[derive(Clone, Copy, Debug)]
enum Escape {
    Timeout,
    Setsid,
    SetsidGrandchild,
}

const ESCAPES: [Escape; 3] = [Escape::Timeout, Escape::Setsid, Escape::SetsidGrandchild];

impl Escape {
    /// CMD: a shell writing its pid to `shell` and starting a child that ignores SIGTERM
    /// (its pid in `child`), then waiting.
    fn cmd(self, dir: &Path) -> Vec<String> {
        let child = match self {
            Escape::SetsidGrandchild => "(trap '' TERM; exec setsid sleep 1000) &",
            _ => "(trap '' TERM; exec sleep 1000) &",
        };
        let script = format!(
            "{child} echo $! > {c}; echo $$ > {s}; wait",
            c = dir.join("child").display(),
            s = dir.join("shell").display()
        );
        let wrapper: &[&str] = match self {
            Escape::Timeout => &["timeout", "1000"],
            Escape::Setsid => &["setsid", "-w"],
            Escape::SetsidGrandchild => &[],
        };
        wrapper
            .iter()
            .map(|s| s.to_string())
            .chain(["sh".into(), "-c".into(), script])
            .collect()
    }
}

/// Starts `month-lock run M [ARGS] -- CMD` for `escape`; returns it, its stderr's file and the
/// pids of CMD's shell and its child once both run (and are in other groups than month-lock's
/// watchdog's, as `escape` says).
async fn start_escaping(
    db: &month_lock_tests::TestDb,
    m: YearMonth,
    args: &[&str],
    escape: Escape,
    dir: &Path,
) -> (tokio::process::Child, PathBuf, i32, i32) {
    let (err, err_path) = stderr_file(dir);
    let run = cli(db)
        .args(["run", &m.to_string()])
        .args(args)
        .arg("--")
        .args(escape.cmd(dir))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let shell = pid_in(&dir.join("shell")).await;
    let child = pid_in(&dir.join("child")).await;
    // The group CMD runs in unless it leaves: the watchdog's (the parent's other child).
    let start = Instant::now();
    loop {
        let escaped = match escape {
            // CMD leads a group (timeout) or a session (setsid) with its shell and child.
            Escape::Timeout | Escape::Setsid => {
                group_of(shell) != group_of(run.id().unwrap() as i32)
                    && group_of(child) == group_of(shell)
            }
            // The child made a session of its own (after `$!` was written).
            Escape::SetsidGrandchild => session_of(child) == Some(child),
        };
        if escaped {
            break;
        }
        assert!(
            start.elapsed() < BOUND,
            "{escape:?}: nothing left the group"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (run, err_path, shell, child)
}

/// A lost lock stops a CMD that made a process group or session of its own and everything it
/// started (a child ignoring SIGTERM is killed after --grace), also a grandchild in a session
/// of its own; month-lock exits 70 within the bound. (It used to signal CMD by its pid only:
/// CMD's shell ended, its child ran on.)
#[tokio::test]
async fn a_lost_lock_stops_everything_a_cmd_that_left_the_group_started() {
    let db = server().await.fresh_db("escape_lost").await;
    let observer = db.connect().await;
    for round in 0..21 {
        let escape = ESCAPES[round % 3];
        let dir = scratch_dir(&format!("escape_lost_{round}"));
        let m = ym(&format!("2036-{:02}", round % 12 + 1));
        let (run, err_path, shell, child) = start_escaping(
            &db,
            m,
            &["--heartbeat", "200ms", "--grace", "1s"],
            escape,
            &dir,
        )
        .await;
        let _leftovers = Leftovers(vec![shell, child]);
        let backend = holder_pid(&observer, m).await;
        observer
            .execute("SELECT pg_terminate_backend($1)", &[&backend])
            .await
            .unwrap();
        let (code, stderr) = ends(run, &err_path, &format!("{escape:?}")).await;
        assert_eq!(code, Some(70), "round {round}, {escape:?}: {stderr}");
        gone(shell, &format!("{escape:?}: CMD's shell")).await;
        gone(child, &format!("{escape:?}: the child ignoring SIGTERM")).await;
    }
}

/// SIGTERM to month-lock reaches a CMD that left the group (by its pid: `timeout` passes it on
/// to its own group), and what that CMD started and left running is killed when CMD ends,
/// before the release. (It used to run on: only the watchdog's group was killed.)
#[tokio::test]
async fn sigterm_to_month_lock_stops_everything_a_cmd_that_left_the_group_started() {
    let db = server().await.fresh_db("escape_sigterm_tree").await;
    let observer = db.connect().await;
    for round in 0..21 {
        let escape = ESCAPES[round % 3];
        let dir = scratch_dir(&format!("escape_sigterm_tree_{round}"));
        let m = ym(&format!("2037-{:02}", round % 12 + 1));
        let (run, err_path, shell, child) = start_escaping(&db, m, &[], escape, &dir).await;
        let _leftovers = Leftovers(vec![shell, child]);
        holder_pid(&observer, m).await;
        rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::TERM).unwrap();
        let (code, stderr) = ends(run, &err_path, &format!("{escape:?}")).await;
        // CMD (timeout re-raises what ended its command) died of SIGTERM.
        assert_eq!(code, Some(128 + 15), "round {round}, {escape:?}: {stderr}");
        gone(shell, &format!("{escape:?}: CMD's shell")).await;
        gone(child, &format!("{escape:?}: the child ignoring SIGTERM")).await;
        assert!(!observer.is_locked(m).await.unwrap());
    }
}

/// `kill -9` of month-lock: the watchdog kills CMD's group and the group or session CMD made
/// (`timeout`, `setsid`). (It used to kill its own group only: CMD died with month-lock,
/// everything in CMD's own group ran on.)
#[tokio::test]
async fn a_killed_month_lock_takes_the_group_cmd_made_with_it() {
    let db = server().await.fresh_db("escape_sigkill").await;
    let observer = db.connect().await;
    for round in 0..20 {
        let escape = [Escape::Timeout, Escape::Setsid][round % 2];
        let dir = scratch_dir(&format!("escape_sigkill_{round}"));
        let m = ym(&format!("2038-{:02}", round % 12 + 1));
        let (mut run, _, shell, child) = start_escaping(&db, m, &[], escape, &dir).await;
        let _leftovers = Leftovers(vec![shell, child]);
        holder_pid(&observer, m).await;
        // The watchdog looks at CMD's group every 50 ms (watchdog::GROUP_POLL).
        tokio::time::sleep(Duration::from_millis(200)).await;
        rustix::process::kill_process(pid(run.id().unwrap() as i32), Signal::KILL).unwrap();
        let _ = run.wait().await;
        gone(shell, &format!("round {round}, {escape:?}: CMD's shell")).await;
        gone(
            child,
            &format!("round {round}, {escape:?}: CMD's shell's child"),
        )
        .await;
    }
}

/// What a CMD leaves running when it ends is killed before month-lock releases the month and
/// exits with CMD's code: also in a group CMD made (`timeout`) and a session a grandchild made
/// (`setsid`, re-parented to month-lock when CMD ended). (Both used to run on.)
#[tokio::test]
async fn what_cmd_leaves_running_in_other_groups_is_killed_when_it_ends() {
    let db = server().await.fresh_db("escape_leftover").await;
    let observer = db.connect().await;
    for round in 0..20 {
        let dir = scratch_dir(&format!("escape_leftover_{round}"));
        let m = ym(&format!("2039-{:02}", round % 12 + 1));
        let c = dir.join("child");
        let cmd: Vec<String> = if round % 2 == 0 {
            ["timeout", "1000", "sh", "-c"]
                .iter()
                .map(|s| s.to_string())
                .chain([format!("sleep 1000 & echo $! > {}; exit 4", c.display())])
                .collect()
        } else {
            // CMD ends once the child has its own session.
            vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "setsid sh -c 'echo $$ > {c}; exec sleep 1000' & \
                     while [ ! -s {c} ]; do sleep 0.01; done; exit 4",
                    c = c.display()
                ),
            ]
        };
        let (err, err_path) = stderr_file(&dir);
        let run = cli(&db)
            .args(["run", &m.to_string(), "--"])
            .args(&cmd)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let (code, stderr) = ends(run, &err_path, &cmd[0]).await;
        let child = pid_in(&c).await;
        let _leftovers = Leftovers(vec![child]);
        assert_eq!(code, Some(4), "round {round}: {stderr}");
        gone(child, &format!("round {round}, {}: the leftover", cmd[0])).await;
        assert!(!observer.is_locked(m).await.unwrap());
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

/// The state of process `n` (R, S, T, Z, ...).
fn state(n: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{n}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.chars().next().unwrap()
}

/// A stopped process group, killed if the round fails (a stopped watchdog would stay).
struct Stopped(Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = rustix::process::kill_process_group(self.0, Signal::KILL);
        }
    }
}

/// Stops the process group of `member` and waits until `member` is stopped. (CMD is bash
/// there: dash starts commands with vfork, and a dash whose vfork child was stopped before
/// its exec waits for it in state D, never T.)
async fn stop_group_of(member: i32) -> Stopped {
    let group = rustix::process::getpgid(Some(pid(member))).unwrap();
    rustix::process::kill_process_group(group, Signal::STOP).unwrap();
    let stopped = Stopped(group);
    let start = Instant::now();
    while state(member) != 'T' {
        assert!(start.elapsed() < BOUND, "pid {member} never stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stopped
}

/// SIGTERM, SIGINT or SIGHUP to month-lock while CMD's group is stopped (Ctrl-Z, `kill -STOP`)
/// is acted on at once: SIGCONT follows it. (It used to stay pending until someone sent
/// SIGCONT: month-lock and CMD hung.)
#[tokio::test]
async fn a_stopped_cmd_acts_on_a_forwarded_signal() {
    let db = server().await.fresh_db("escape_stopped_signal").await;
    let observer = db.connect().await;
    let signals = [Signal::TERM, Signal::INT, Signal::HUP];
    for round in 0..21 {
        let sig = signals[round % 3];
        let dir = scratch_dir(&format!("escape_stopped_signal_{round}"));
        let m = ym(&format!("2042-{:02}", round % 12 + 1));
        let script = format!(
            "trap 'exit 3' INT TERM HUP; echo $$ > {c}; while :; do sleep 0.05; done",
            c = dir.join("cmd").display()
        );
        let (err, err_path) = stderr_file(&dir);
        let run = cli(&db)
            .args(["run", &m.to_string(), "--", "bash", "-c", &script])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let cmd = pid_in(&dir.join("cmd")).await;
        holder_pid(&observer, m).await;
        let _stopped = stop_group_of(cmd).await;
        rustix::process::kill_process(pid(run.id().unwrap() as i32), sig).unwrap();
        let (code, stderr) = ends(run, &err_path, &format!("{sig:?} to a stopped CMD")).await;
        assert_eq!(code, Some(3), "round {round}, {sig:?}: {stderr}");
        assert!(!observer.is_locked(m).await.unwrap());
    }
}

/// A lost lock while CMD's group is stopped: SIGTERM is acted on at once (SIGCONT follows it),
/// not only by SIGKILL after --grace.
#[tokio::test]
async fn a_lost_lock_stops_a_stopped_cmd_gracefully() {
    let db = server().await.fresh_db("escape_stopped_lost").await;
    let observer = db.connect().await;
    for round in 0..5 {
        let dir = scratch_dir(&format!("escape_stopped_lost_{round}"));
        let m = ym(&format!("2043-{:02}", round + 1));
        let got = dir.join("got");
        let script = format!(
            "trap 'echo term > {g}; exit 3' TERM; echo $$ > {c}; while :; do sleep 0.05; done",
            g = got.display(),
            c = dir.join("cmd").display()
        );
        let (err, err_path) = stderr_file(&dir);
        let run = cli(&db)
            .args([
                "run",
                &m.to_string(),
                "--heartbeat",
                "200ms",
                "--grace",
                "60s",
            ])
            .args(["--", "bash", "-c", &script])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let cmd = pid_in(&dir.join("cmd")).await;
        let backend = holder_pid(&observer, m).await;
        let _stopped = stop_group_of(cmd).await;
        observer
            .execute("SELECT pg_terminate_backend($1)", &[&backend])
            .await
            .unwrap();
        let (code, stderr) = ends(run, &err_path, "lost lock, CMD stopped").await;
        assert_eq!(code, Some(70), "round {round}: {stderr}");
        assert_eq!(std::fs::read_to_string(&got).unwrap_or_default(), "term\n");
    }
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
