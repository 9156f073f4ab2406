//! What `month-lock run` signals and what it never does: a process it inherited from the shell
//! that exec'd it is left alone; a fork-and-exit chain CMD left running in a session of its own
//! is gone when `month-lock` exits; a run in a pid namespace of its own works.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use month_lock_tests::server;
use rustix::process::{kill_process, Pid, Signal};
use tokio::process::Command;

use common::cli::{kill_marked, running, scratch_dir, unique, wait_for_file, with_marker, BIN};

/// `month-lock ARGS` exec'd by a shell that first started `sleep 300` in the background (its
/// pid in `dir/sleep`): month-lock inherits it as a child.
fn exec_with_a_sidecar(url: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "sleep 300 & echo $! > {}; exec \"$@\"",
            dir.join("sleep").display()
        ))
        .arg("bash")
        .arg(BIN)
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// A process month-lock inherited (a sidecar the container entrypoint started before it exec'd
/// month-lock) is not CMD's: it runs on after CMD's end. (month-lock's scan of its descendants
/// took it for CMD's and killed it.)
#[tokio::test]
async fn a_process_month_lock_inherited_is_never_killed() {
    let db = server().await.fresh_db("reach_inherited").await;
    for round in 0..10 {
        let dir = scratch_dir(&format!("reach_inherited_{round}"));
        let m = format!("2030-{:02}", round % 12 + 1);
        // No pipe: the sidecar keeps what it inherited open.
        let status = tokio::time::timeout(
            Duration::from_secs(30),
            exec_with_a_sidecar(&db.url(), &dir, &["run", &m, "--", "true"])
                .stderr(Stdio::null())
                .status(),
        )
        .await
        .expect("month-lock ended")
        .unwrap();
        let sleep: i32 = wait_for_file(&dir.join("sleep"))
            .await
            .trim()
            .parse()
            .unwrap();
        let alive = running(sleep);
        let _ = kill_process(Pid::from_raw(sleep).unwrap(), Signal::KILL);
        assert_eq!(status.code(), Some(0), "round {round}");
        assert!(
            alive,
            "round {round}: the inherited sleep {sleep} was killed"
        );
    }
}

/// CMD starts a chain in a session of its own, each generation forking its successor and
/// exiting, and ends: no generation runs once month-lock has exited (the lock is released
/// then). (month-lock's scan lost a generation whose parent ended while it read /proc, and
/// took the chain for gone.)
#[tokio::test]
async fn a_fork_and_exit_chain_cmd_leaves_is_gone_when_month_lock_exits() {
    let db = server().await.fresh_db("reach_chain").await;
    let chain = "import os, sys, time\n\
                 os.setsid()\n\
                 last = 0\n\
                 while True:\n\
                 \x20   if os.fork():\n\
                 \x20       os._exit(0)\n\
                 \x20   t = time.time()\n\
                 \x20   if t - last > 0.05:\n\
                 \x20       open(sys.argv[2], \"a\").write(str(os.getpid()) + \"\\n\")\n\
                 \x20       last = t\n";
    for round in 0..12 {
        let dir = scratch_dir(&format!("reach_chain_{round}"));
        let marker = format!("month_lock_chain_{}_{round}", unique());
        let m = format!("2031-{:02}", round % 12 + 1);
        let script = format!(
            "python3 -c '{chain}' {marker} {} & sleep 1; echo started > {}",
            dir.join("log").display(),
            dir.join("started").display()
        );
        // stderr to a file: a surviving chain would hold a pipe open.
        let err_path = dir.join("stderr");
        let mut run = Command::new(BIN)
            .env_remove("DATABASE_URL")
            .args([
                "--database-url",
                &db.url(),
                "run",
                &m,
                "--",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), run.wait()).await;
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let Ok(status) = status else {
            kill_marked(&marker);
            panic!("round {round}: month-lock still running: {stderr}");
        };
        let out = (status.unwrap().code(), stderr);
        assert!(dir.join("started").exists(), "round {round}: {out:?}");
        // The chain, had it survived, forks on: look for a while.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen: Vec<String> = with_marker(&marker)
            .iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default())
            .collect();
        let survived = kill_marked(&marker);
        assert!(
            !survived,
            "round {round}: the chain ran on after month-lock exited: {seen:?} {}",
            out.1
        );
        assert_eq!(out.0, Some(0), "round {round}: {out:?}");
    }
}

/// Under `unshare --pid --fork`, month-lock's process group lies outside its pid namespace
/// (its group id reads as 0): CMD runs as anywhere else. (month-lock panicked, exit 101.)
#[tokio::test]
async fn a_run_in_a_pid_namespace_of_its_own_runs_cmd() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: unshare --pid needs root; nothing tested");
        return;
    }
    let db = server().await.fresh_db("reach_pidns").await;
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                BIN,
                "--database-url",
                &db.url(),
            ])
            .args(["run", "2030-04", "--", "echo", "hi"])
            .env_remove("DATABASE_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("month-lock ended")
    .expect("unshare (util-linux) runs");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
}
