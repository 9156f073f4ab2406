//! Helpers of the test files that run the `month-lock` binary.

use month_lock_client::{MonthLockExt, YearMonth};
use month_lock_tests::TestDb;
use rustix::process::{kill_process, Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_postgres::Client;

pub const BIN: &str = env!("CARGO_BIN_EXE_month-lock");

/// `month-lock ARGS` against `db`, with a clean environment for the connection settings.
pub fn cli(db: &TestDb) -> Command {
    cli_url(&db.url())
}

/// `month-lock --database-url URL ARGS`, with the connection settings the environment may carry
/// (libpq's variables the command reads) removed.
pub fn cli_url(url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGAPPNAME",
        "PGSSLMODE",
        "PGCONNECT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--database-url").arg(url).kill_on_drop(true);
    // A suite started in the background of a script (`make test &`, `nohup`) hands its
    // processes SIGINT and SIGQUIT (or SIGHUP) ignored, and month-lock keeps a signal that came
    // ignored ignored, as documented: the tests that send signals need the defaults.
    // SAFETY: the closure runs between fork and exec and only calls signal(2), which is
    // async-signal-safe, on constant arguments.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGTERM] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// A new, empty directory for one test of this process (named also by the time: a run in a
/// container of its own may have the same process id as one outside).
pub fn scratch_dir(name: &str) -> PathBuf {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(remove_old_scratch_dirs);
    let dir = std::env::temp_dir().join(format!(
        "month_lock_cli_{name}_{}_{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the scratch directories of earlier runs (a day old: nothing runs that long).
fn remove_old_scratch_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old
            && e.file_name()
                .to_string_lossy()
                .starts_with("month_lock_cli_")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Nanoseconds since the epoch: a suffix no other process picks.
pub fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The contents of `path` once a complete line is in it (up to 20 s).
pub async fn wait_for_file(path: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `cmd` to its end (at most 60 s) and returns its output.
pub async fn output(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("month-lock finished")
        .unwrap()
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Backend pid of the month-lock session holding `m`.
pub async fn cli_holder_pid(observer: &Client, m: YearMonth) -> i32 {
    let start = Instant::now();
    loop {
        let rows = observer.locks().await.unwrap();
        if let Some(r) = rows.iter().find(|r| r.granted && r.year_month() == Some(m)) {
            assert_eq!(r.application_name.as_deref(), Some("month-lock"));
            return r.pid.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "month-lock never held {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Process `n` is alive and not a zombie (/proc/N/stat's state).
pub fn running(n: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{n}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Field `k` (1-based, `k` ≥ 3) of /proc/N/stat as a number.
fn stat_field(n: i32, k: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{n}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(k - 3)?.parse().ok()
}

/// The process group of process `n`: `None` for a group outside this pid namespace (the kernel
/// answers 0, where rustix's `getpgid` asserts: CI runs in a container whose process group or
/// session was made outside it) or a process that is gone.
pub fn group_of(n: i32) -> Option<i32> {
    stat_field(n, 5).filter(|&g| g > 0)
}

/// The session of process `n`, `None` as for [`group_of`].
pub fn session_of(n: i32) -> Option<i32> {
    stat_field(n, 6).filter(|&s| s > 0)
}

/// The processes whose command line holds `marker`.
pub fn with_marker(marker: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (String::from_utf8_lossy(&cmdline).contains(marker) && running(pid)).then_some(pid)
    })
    .collect()
}

/// The children of process `p` (its threads' /proc children files).
fn children_of(p: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Stops every process with `marker` and, through the children files, what they forked (a
/// chain forks on faster than a scan of /proc sees it), until two rounds in a row stop none
/// new; then kills them all. Returns whether any was found.
pub fn kill_marked(marker: &str) -> bool {
    let mut stopped: Vec<i32> = Vec::new();
    let mut quiet = 0;
    let start = Instant::now();
    while quiet < 2 && start.elapsed() < Duration::from_secs(10) {
        let mut todo: Vec<i32> = with_marker(marker);
        todo.extend(&stopped);
        let mut new = false;
        let mut walked: Vec<i32> = Vec::new();
        while let Some(p) = todo.pop() {
            if walked.contains(&p) {
                continue;
            }
            walked.push(p);
            if !stopped.contains(&p) {
                let _ = kill_process(Pid::from_raw(p).unwrap(), Signal::STOP);
                stopped.push(p);
                new = true;
            }
            todo.extend(children_of(p));
        }
        quiet = if new { 0 } else { quiet + 1 };
    }
    for &p in &stopped {
        let _ = kill_process(Pid::from_raw(p).unwrap(), Signal::KILL);
    }
    !stopped.is_empty()
}
