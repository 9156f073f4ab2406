//! What `month-lock run` signals and what it never does: a process it inherited from the shell
//! that exec'd it is left alone; a run in a pid namespace of its own works.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use month_lock_tests::server;
use rustix::process::{kill_process, Pid, Signal};
use tokio::process::Command;

use common::cli::{scratch_dir, wait_for_file, BIN};

/// Alive and not a zombie.
fn running(n: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{n}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

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
        let sleep: i32 = wait_for_file(&dir.join("sleep")).await.trim().parse().unwrap();
        let alive = running(sleep);
        let _ = kill_process(Pid::from_raw(sleep).unwrap(), Signal::KILL);
        assert_eq!(status.code(), Some(0), "round {round}");
        assert!(alive, "round {round}: the inherited sleep {sleep} was killed");
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
            .args(["--pid", "--fork", "--mount-proc", BIN, "--database-url", &db.url()])
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
