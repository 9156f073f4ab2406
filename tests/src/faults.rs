//! Processes tied to the test process, and faults to inject into a throwaway cluster.
//!
//! [`spawn_tied`] starts a child from one long-lived thread with a parent-death signal, so the
//! child is told to stop however the test process ends (the kernel sends the signal when the
//! *thread* that forked the child exits, hence one thread that never exits). [`restart`] stops
//! a cluster started by [`crate::start_cluster`] with a fast shutdown (SIGINT) and starts it
//! again on the same data directory and port with the same command line, also tied to this
//! process.

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

/// Spawns `cmd` so that it receives `signal` when this process exits. The caller owns the
/// returned [`Child`] (wait for it, or hand it to [`reap_in_background`]).
pub fn spawn_tied(mut cmd: Command, signal: libc::c_int) -> std::io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (prctl, getppid, kill, getpid). std runs it after any
    // uid/gid change, so the setting survives the credential change.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            if libc::getppid() == 1 {
                libc::kill(libc::getpid(), signal);
            }
            Ok(())
        });
    }
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("tied-spawner".into())
            .spawn(move || {
                // Lives as long as the process: the parent-death link is to this thread.
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply_tx))
        .expect("spawner thread is gone");
    reply_rx.recv().expect("spawner thread did not answer")
}

/// Waits for `child` on a background thread so it never lingers as a zombie.
pub fn reap_in_background(mut child: Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// True while a process with this pid exists (a zombie counts).
pub fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: i32, signal: libc::c_int) -> bool {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, signal) == 0 }
}

/// The postmaster pid of a cluster of ours (first line of `postmaster.pid`), if running.
pub fn postmaster_pid(server: &crate::Server) -> Option<i32> {
    let dir = server.dir.as_ref()?;
    let text = fs::read_to_string(dir.join("data").join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    process_exists(pid).then_some(pid)
}

/// Fast-shutdown restart of a cluster started by [`crate::start_cluster`]: SIGINT to the
/// postmaster, wait until it is gone, start the same command line again (same data directory,
/// port and settings, same OS user, log appended to `server.log`), tied to this process, and
/// wait until it accepts connections. Returns how long the server was unavailable.
pub async fn restart(server: &crate::Server) -> Duration {
    stop_and_start(server, libc::SIGINT).await
}

/// Like [`restart`], with an immediate shutdown (SIGQUIT): the next start runs crash recovery.
pub async fn crash_restart(server: &crate::Server) -> Duration {
    stop_and_start(server, libc::SIGQUIT).await
}

async fn stop_and_start(server: &crate::Server, stop_signal: libc::c_int) -> Duration {
    let dir = server
        .dir
        .as_ref()
        .expect("restart needs a cluster of our own, not MONTH_LOCK_TEST_URL");
    let pid = postmaster_pid(server).expect("the postmaster is not running");
    let argv: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
        .expect("read the postmaster's command line")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).expect("read the postmaster's status");
    let id_of = |field: &str| -> u32 {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
    };
    let (uid, gid) = (id_of("Uid:"), id_of("Gid:"));
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| dir.clone());

    let down_at = Instant::now();
    assert!(
        signal(pid, stop_signal),
        "signal {stop_signal} to postmaster {pid}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // The postmaster is reaped by the thread that started it; it is gone once kill(pid, 0)
    // fails and postmaster.pid has been removed.
    while process_exists(pid) || dir.join("data").join("postmaster.pid").exists() {
        assert!(
            Instant::now() < deadline,
            "postmaster {pid} did not stop after signal {stop_signal}\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let log = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("server.log"))
        .expect("open server.log");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(uid)
            .gid(gid)
            .env("HOME", "/tmp")
            .env("USER", "postgres");
    }
    let child =
        spawn_tied(cmd, libc::SIGINT).unwrap_or_else(|e| panic!("restart {}: {e}", argv[0]));
    reap_in_background(child);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match server.admin_config().connect(tokio_postgres::NoTls).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!(
                "restarted server does not accept connections: {e}\n{}",
                server.log_tail()
            ),
        }
    }
    down_at.elapsed()
}
