//! What CMD leaves running is gone when `month-lock run` exits, in the shapes a walk of /proc
//! finds hardest: compiled fork-and-exit chains, whose generations live for microseconds, and a
//! process whose first thread ended while another runs on (/proc calls it a zombie). And a
//! /proc of another pid namespace, where nothing CMD starts could be found, is refused.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use month_lock_client::MonthLockExt;
use month_lock_tests::server;
use rustix::process::{kill_process, Pid, Signal};
use tokio::process::Command;

use common::cli::{
    cli, cli_holder_pid, kill_marked, scratch_dir, text, unique, wait_for_file, BIN,
};
use common::months::ym;

/// Compiles `source` (C) in `dir` into `name`; a missing compiler fails the test (the suite
/// builds a PostgreSQL extension: `cc` is there).
fn compile(dir: &Path, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    std::fs::write(&src, source).unwrap();
    let out = std::process::Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .args(flags)
        .output()
        .expect("cc runs");
    assert!(out.status.success(), "cc: {}", text(&out.stderr));
    bin
}

/// A fork-and-exit chain in a session of its own: each generation forks the next and exits at
/// once, and every 10 ms one writes the time to the file named by its second argument (a chain
/// whose generations live for microseconds outruns a scan of /proc: what it writes shows it
/// alive). It ends by itself 20 s after it started (every generation inherits the deadline), so
/// a chain that escaped a failed round cannot run on.
const CHAIN: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}
int main(int argc, char **argv) {
    long long end = now_ms() + 20000, beat = 0;
    (void)argc;
    setsid();
    for (;;) {
        long long now = now_ms();
        if (now > end) return 0;
        if (now - beat >= 10) {
            char buf[32];
            int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int n = snprintf(buf, sizeof buf, "%lld", now);
            if (fd >= 0) { (void)!write(fd, buf, n); close(fd); }
            beat = now;
        }
        pid_t p = fork();
        if (p > 0) _exit(0);
        if (p < 0) usleep(1000);
    }
}
"#;

/// Whether the chain writing to `beat` still runs: what it wrote changes within 300 ms.
async fn beating(beat: &Path) -> bool {
    let before = std::fs::read_to_string(beat).unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::read_to_string(beat).unwrap_or_default() != before
}

/// Two compiled chains CMD leaves running are gone when month-lock exits. (A kill that ended
/// after two walks found no *living* process missed such a chain in most runs: a listed
/// generation had ended by the time its state was read, its successor moved up after the list
/// was read.)
#[tokio::test]
async fn compiled_fork_and_exit_chains_are_gone_when_month_lock_exits() {
    let db = server().await.fresh_db("leftover_chain").await;
    let dir = scratch_dir("leftover_chain");
    let chain = compile(&dir, "chain", CHAIN, &[]);
    for round in 0..20 {
        // The marker is the chain's argv[1]: every generation keeps it (fork without exec).
        let marker = format!("month_lock_leftover_{}_{round}", unique());
        let beat = dir.join(format!("beat{round}"));
        let script = format!(
            "{c} {marker} {b} & {c} {marker} {b} & sleep 0.2",
            c = chain.display(),
            b = beat.display()
        );
        let start = Instant::now();
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            cli(&db)
                .args(["run", &format!("2032-{:02}", round % 12 + 1), "--"])
                .args(["sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output(),
        )
        .await
        .expect("month-lock ended")
        .unwrap();
        // CMD ran for 0.2 s; killing what it left takes well under a second.
        let took = start.elapsed();
        assert!(beat.exists(), "round {round}: the chain never ran");
        let survived = beating(&beat).await;
        if survived {
            kill_marked(&marker);
        }
        assert!(
            !survived,
            "round {round}: the chain ran on after month-lock exited ({})",
            text(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "round {round}: {out:?}");
        assert!(
            took < Duration::from_secs(5),
            "round {round}: month-lock took {took:?}"
        );
    }
}

/// A process whose first thread called `pthread_exit` while another thread runs: its pid in
/// the file it is given, once the first thread has ended.
const FIRST_THREAD_ENDS: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static const char *path;
static void *run(void *arg) {
    (void)arg;
    usleep(100000);
    FILE *f = fopen(path, "w");
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    for (;;) pause();
}
int main(int argc, char **argv) {
    pthread_t t;
    path = argv[1];
    setsid();
    pthread_create(&t, 0, run, 0);
    pthread_exit(0);
}
"#;

/// Whether any thread of process `n` runs (/proc/N/stat shows the first thread only).
fn any_thread_runs(n: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{n}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
    })
}

/// A process in a session of its own whose first thread ended is killed when CMD ends and when
/// the lock is lost. (It was taken for ended, a zombie, and ran on with the month free.)
#[tokio::test]
async fn a_process_whose_first_thread_ended_is_killed() {
    let db = server().await.fresh_db("leftover_thread").await;
    let observer = db.connect().await;
    let dir = scratch_dir("leftover_thread");
    let bin = compile(&dir, "first_thread_ends", FIRST_THREAD_ENDS, &["-pthread"]);
    for (round, lose) in [false, true, false, true].into_iter().enumerate() {
        let pid_file = dir.join(format!("pid{round}"));
        let m = ym(&format!("2033-{:02}", round + 1));
        let script = format!(
            "{b} {p} & sleep {s}",
            b = bin.display(),
            p = pid_file.display(),
            s = if lose { 30 } else { 1 }
        );
        let run = cli(&db)
            .args([
                "run",
                &m.to_string(),
                "--heartbeat",
                "200ms",
                "--grace",
                "1s",
            ])
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let n: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
        if lose {
            let backend = cli_holder_pid(&observer, m).await;
            observer
                .execute("SELECT pg_terminate_backend($1)", &[&backend])
                .await
                .unwrap();
        }
        let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
            .await
            .expect("month-lock ended")
            .unwrap();
        let alive = any_thread_runs(n);
        if alive {
            let _ = kill_process(Pid::from_raw(n).unwrap(), Signal::KILL);
        }
        assert!(
            !alive,
            "round {round}: pid {n} runs on ({})",
            text(&out.stderr)
        );
        assert_eq!(
            out.status.code(),
            Some(if lose { 70 } else { 0 }),
            "{out:?}"
        );
        assert!(!observer.is_locked(m).await.unwrap());
    }
}

/// In a pid namespace whose /proc is the parent namespace's (`unshare --pid --fork` without
/// `--mount-proc`), month-lock refuses to run CMD: exit 69, CMD never ran, the month is free.
/// (There /proc's numbers name other processes: a process CMD left in a session of its own
/// ran on after the release.) Needs root.
#[tokio::test]
async fn a_proc_of_another_pid_namespace_is_refused() {
    assert!(
        rustix::process::geteuid().is_root(),
        "unshare --pid needs root: run this suite as root"
    );
    let db = server().await.fresh_db("leftover_proc").await;
    let observer = db.connect().await;
    let dir = scratch_dir("leftover_proc");
    let ran = dir.join("ran");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("unshare")
            .args(["--pid", "--fork", BIN, "--database-url", &db.url()])
            .args(["run", "2034-01", "--", "touch"])
            .arg(&ran)
            .env_remove("DATABASE_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("month-lock ended")
    .expect("unshare (util-linux) runs");
    assert_eq!(out.status.code(), Some(69), "{out:?}");
    assert!(
        text(&out.stderr).contains("/proc is missing or another pid namespace's"),
        "{out:?}"
    );
    assert!(!ran.exists(), "CMD ran");
    assert!(!observer.is_locked(ym("2034-01")).await.unwrap());
}
