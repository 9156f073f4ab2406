//! Starting and stopping throwaway clusters: initdb into a temporary directory, postgres on a
//! free loopback port tied to this process, as an unprivileged OS user when run as root, and
//! the sweep of directories whose server is gone.

use crate::{Server, DB_COUNTER, DIR_PREFIX};
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Config, NoTls};

/// Start a throwaway cluster with extra `-c name=value` settings, independent of [`server`]
/// (benchmarks use this to set `max_connections`). It stops when the process exits.
pub async fn start_cluster(settings: &[(&str, &str)]) -> Server {
    let bindir = pg_bindir();
    let os_user = server_os_user();
    remove_stale_clusters();
    let dir = new_cluster_dir();
    if let Some((uid, gid)) = os_user {
        chown(&dir, uid, gid);
    }
    let data = dir.join("data");
    initdb(&data);

    start_postgres(&bindir, &dir, &data, settings, os_user, &[]).await
}

/// Starts postgres on the data directory `data` (inside `dir`, which gets the socket and
/// `server.log`) on a free loopback port, with extra `-c` settings and environment, tied to
/// this process; returns once it accepts connections.
///
/// The port is free when chosen but may be taken by someone else before postgres binds it:
/// then postgres exits ("could not bind ... Address already in use") and we retry with
/// another port. A server that answers on the port but is not ours (its data_directory
/// differs) counts as the same failure.
pub(crate) async fn start_postgres(
    bindir: &Path,
    dir: &Path,
    data: &Path,
    settings: &[(&str, &str)],
    os_user: Option<(u32, u32)>,
    env: &[(&str, std::ffi::OsString)],
) -> Server {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port();
        match spawn_postgres(bindir, dir, data, port, settings, os_user, env).await {
            Ok(server) => return server,
            Err(reason) if attempt < 8 => {
                eprintln!("month_lock test cluster: port {port} unusable ({reason}), retrying");
            }
            Err(reason) => panic!("server did not start after {attempt} attempts: {reason}"),
        }
    }
}

/// Starts postgres on `port` and waits until it accepts connections. `Err` when the port
/// could not be bound (the caller retries with another one); panics on any other failure.
async fn spawn_postgres(
    bindir: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    settings: &[(&str, &str)],
    os_user: Option<(u32, u32)>,
    env: &[(&str, std::ffi::OsString)],
) -> Result<Server, String> {
    let log_path = dir.join("server.log");
    let log = fs::File::create(&log_path).expect("create server log");
    if let Some((uid, gid)) = os_user {
        chown(&log_path, uid, gid);
    }
    let mut postgres = Command::new(bindir.join("postgres"));
    postgres
        .arg("-D")
        .arg(data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log);
    for (name, value) in settings {
        postgres.arg("-c").arg(format!("{name}={value}"));
    }
    postgres.envs(env.iter().map(|(name, value)| (name, value)));
    as_user(&mut postgres, os_user);
    stop_with_this_process(&mut postgres);

    // The child is spawned from a thread that lives as long as the process: the kernel's
    // parent-death signal fires when the *thread* that forked the child exits.
    let exited = Arc::new(AtomicBool::new(false));
    let exited_flag = exited.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || {
            let spawned = postgres.spawn();
            let mut child = match spawned {
                Ok(child) => {
                    let _ = tx.send(Ok(child.id()));
                    child
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = child.wait();
            exited_flag.store(true, Ordering::SeqCst);
            // The server is gone; keep the thread (and so the parent-death link) anyway.
            loop {
                std::thread::park();
            }
        })
        .expect("spawn keeper thread");
    rx.recv()
        .expect("keeper thread")
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bindir.join("postgres").display()));

    let mut admin = Config::new();
    admin
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres");
    let server = Server {
        admin,
        dir: Some(dir.to_path_buf()),
    };
    let want_data = fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let bind_failure = |log: &str| {
        log.contains("could not bind")
            || log.contains("Address already in use")
            || log.contains("could not create any TCP/IP sockets")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if exited.load(Ordering::SeqCst) {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            if bind_failure(&log) {
                return Err(format!(
                    "postgres exited: {}",
                    log.lines().last().unwrap_or("")
                ));
            }
            panic!("postgres exited at start:\n{}", server.log_tail());
        }
        match server.admin.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let theirs: String = client
                    .query_one("SELECT current_setting('data_directory')", &[])
                    .await
                    .map(|r| r.get(0))
                    .unwrap_or_default();
                let theirs = fs::canonicalize(&theirs).unwrap_or_else(|_| PathBuf::from(&theirs));
                if theirs == want_data {
                    return Ok(server);
                }
                // Another server holds the port; ours fails to bind and exits.
                while !exited.load(Ordering::SeqCst) {
                    assert!(
                        Instant::now() < deadline,
                        "postgres neither bound {port} nor exited"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Err(format!(
                    "port {port} belongs to the server of {}",
                    theirs.display()
                ));
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!(
                "server did not accept connections: {e}\n{}",
                server.log_tail()
            ),
        }
    }
}

impl Server {
    /// Stops a cluster of ours at once (immediate shutdown) and deletes its directory; a server
    /// named by `MONTH_LOCK_TEST_URL` is left alone. Clusters that are never stopped this way
    /// stop when the process exits and are deleted by a later start.
    pub fn stop_and_remove(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        let pid = fs::read_to_string(dir.join("data").join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            // SAFETY: kill has no memory preconditions; the pid is our own postmaster's, which
            // the keeper thread reaps as soon as it exits (so signal 0 then fails).
            unsafe { libc::kill(pid, libc::SIGQUIT) };
            let deadline = Instant::now() + Duration::from_secs(60);
            // SAFETY: as above; signal 0 only checks for existence.
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = fs::remove_dir_all(dir);
    }

    /// Lines of the server log that report a backend killed by a signal (a crash), each with
    /// two lines of context before and after.
    pub fn crash_reports(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let text = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.contains("terminated by signal"))
            .map(|(i, _)| lines[i.saturating_sub(2)..(i + 3).min(lines.len())].join("\n"))
            .collect()
    }
}

pub(crate) fn pg_bindir() -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
    let out = Command::new(&pg_config).arg("--bindir").output().unwrap_or_else(|e| {
        panic!("cannot run {pg_config} ({e}): install PostgreSQL or set PG_CONFIG or MONTH_LOCK_TEST_URL")
    });
    assert!(out.status.success(), "{pg_config} --bindir failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `program` as a command that runs as the servers' OS user when this process is root
/// (PostgreSQL refuses to run as root): the test clusters' and the benchmark's backends.
pub fn server_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    as_user(&mut cmd, server_os_user());
    cmd
}

/// A new data directory `data` (trust authentication, superuser `postgres`, UTF8, C locale, no
/// sync), made by initdb as the servers' OS user, who must be able to create it.
pub fn initdb(data: &Path) {
    let initdb = pg_bindir().join("initdb");
    let out = server_command(&initdb)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", initdb.display()));
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (uid, gid) to run the server as, when this process is root.
pub(crate) fn server_os_user() -> Option<(u32, u32)> {
    unprivileged_os_user("PostgreSQL refuses to run as root").map(|(uid, gid, _)| (uid, gid))
}

/// (uid, gid, name) of the unprivileged OS user that servers run as when this process is root
/// (`MONTH_LOCK_TEST_OS_USER`, default `postgres`); `None` when not root. `why` explains, in
/// the panic message, why a missing user is fatal.
pub(crate) fn unprivileged_os_user(why: &str) -> Option<(u32, u32, String)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::env::var("MONTH_LOCK_TEST_OS_USER").unwrap_or_else(|_| "postgres".into());
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, &name])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "running as root, but OS user {name:?} does not exist ({why})"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    Some((id("-u"), id("-g"), name))
}

pub(crate) fn as_user(cmd: &mut Command, os_user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = os_user {
        cmd.uid(uid)
            .gid(gid)
            .env("HOME", "/tmp")
            .env("USER", "postgres");
    }
}

fn stop_with_this_process(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls async-signal-safe
    // functions (prctl, getppid, kill). std runs it after the uid/gid change, so the setting
    // survives (a credential change would clear it).
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT);
            if libc::getppid() == 1 {
                libc::kill(libc::getpid(), libc::SIGINT);
            }
            Ok(())
        });
    }
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A loopback TCP port that is free now (someone may take it before it is bound).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

/// The file in each cluster directory whose lock says its process is alive. A lock goes with
/// its process whatever pid namespace that runs in; a process id does not (the sweep used
/// to test the id in the directory's name, and took the live cluster of a run in a container,
/// whose ids are another namespace's, for a stale one).
const OWNER_LOCK: &str = "owner.lock";

/// `flock(2)` on `file` (`File::lock` needs a newer Rust than the workspace's oldest).
fn flock(file: &fs::File, operation: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock takes a descriptor `file` keeps open for the call and a flag word.
    unsafe { libc::flock(file.as_raw_fd(), operation) == 0 }
}

/// A new cluster directory under the temp dir, locked by this process until it exits.
fn new_cluster_dir() -> PathBuf {
    loop {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}.{}.{stamp}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // Another namespace's process with this pid and counter, in the same nanosecond.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create cluster directory {}: {e}", dir.display()),
        }
        let lock = fs::File::create(dir.join(OWNER_LOCK)).expect("create the owner lock");
        assert!(flock(&lock, libc::LOCK_EX), "lock the owner lock");
        // Held until this process exits (the file is close-on-exec: postgres does not hold it).
        std::mem::forget(lock);
        return dir;
    }
}

/// Removes cluster directories whose process is gone: their owner lock is free (and older than
/// the moment between its creation and its locking), or they have none and are an hour old
/// (left by an older harness, or by a process killed before it locked).
fn remove_stale_clusters() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let older_than = |path: &Path, age: Duration| {
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|a| a > age)
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let lock_path = entry.path().join(OWNER_LOCK);
        let stale = match fs::File::open(&lock_path) {
            Ok(lock) => {
                flock(&lock, libc::LOCK_EX | libc::LOCK_NB)
                    && older_than(&lock_path, Duration::from_secs(5))
            }
            Err(_) => older_than(&entry.path(), Duration::from_secs(3600)),
        };
        if stale {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
