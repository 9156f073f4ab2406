//! A real PostgreSQL with month_lock installed, for tests, the demo and the benchmarks.
//!
//! [`server`] starts one throwaway cluster per process (initdb into a temporary directory,
//! postgres on a free loopback port) the first time it is called. When the process runs as
//! root, initdb and postgres run as the unprivileged OS user `postgres` (override with
//! `MONTH_LOCK_TEST_OS_USER`), because PostgreSQL refuses to run as root. The server is told
//! to stop (SIGINT, fast shutdown) when the process that started it exits, however it exits,
//! and directories of clusters that are no longer running are removed by the next start.
//!
//! Set `MONTH_LOCK_TEST_URL` (e.g. `postgres://me@127.0.0.1:5432/postgres`) to use an existing
//! server instead: the extension must be installed there and the role must be allowed to
//! create databases. Binaries come from `PG_CONFIG --bindir` (default: `pg_config` on PATH).
//!
//! Every test gets its own database ([`Server::fresh_db`]) with `CREATE EXTENSION month_lock`
//! done: advisory locks are per database, so tests running in parallel never see each other's
//! months. There is no skip path: if no server can be had, the call panics with the reason.
//!
//! The same starter runs commands against a throwaway cluster (`src/bin/with_cluster.rs`, for
//! `tools/with-cluster.sh`). The modules hold what the test files share: [`sql`] one-value
//! queries and errors, [`locks`] what sessions hold as seen from another, [`pooled`] a database
//! behind PgBouncer, [`wire`] requests at the protocol level, [`faults`] crashes and restarts,
//! [`replica`] a primary with a standby.
//!
//! `MONTH_LOCK_TEST_EDITION=portable` with `MONTH_LOCK_PORTABLE_SQL=dist/month_lock-portable.sql`
//! installs the SQL-only edition (docs/editions.md) in each database instead of the extension,
//! so the suites that apply to it run against it (`make portable-itest`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls};

pub mod faults;
pub mod locks;
pub mod pgbouncer;
pub mod pooled;
pub mod replica;
pub mod sql;
pub mod wire;

/// Name prefix of the cluster directories this harness creates under the temp dir.
const DIR_PREFIX: &str = "month_lock_cluster.";

/// A server to run against: a throwaway cluster of ours or one named by `MONTH_LOCK_TEST_URL`.
#[derive(Debug)]
pub struct Server {
    admin: Config,
    /// Cluster directory when the server is ours.
    pub dir: Option<PathBuf>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// Settings of the per-process cluster [`server`] starts: prepared transactions for the
/// PREPARE TRANSACTION tests, and a shared lock table large enough for tests that hold tens
/// of thousands of advisory locks at once (512 * (200 + 10) slots).
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("max_prepared_transactions", "10"),
    ("max_locks_per_transaction", "512"),
];
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The server for this process, started on first use.
pub async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            match std::env::var("MONTH_LOCK_TEST_URL") {
                Ok(url) if !url.is_empty() => {
                    let admin: Config = url.parse().unwrap_or_else(|e| {
                        panic!("MONTH_LOCK_TEST_URL is not a valid connection string: {e}")
                    });
                    Server { admin, dir: None }
                }
                _ => start_cluster(DEFAULT_SETTINGS).await,
            }
        })
        .await
}

/// A new database of this process's [`server`] with the extension created in it: every test
/// gets one of its own, named after `hint`.
pub async fn db(hint: &str) -> TestDb {
    server().await.fresh_db(hint).await
}

/// Start a throwaway cluster with extra `-c name=value` settings, independent of [`server`]
/// (benchmarks use this to set `max_connections`). It stops when the process exits.
pub async fn start_cluster(settings: &[(&str, &str)]) -> Server {
    let bindir = pg_bindir();
    let os_user = server_os_user();
    remove_stale_clusters();

    let dir = std::env::temp_dir().join(format!(
        "{DIR_PREFIX}{}.{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).expect("create cluster directory");
    if let Some((uid, gid)) = os_user {
        chown(&dir, uid, gid);
    }
    let data = dir.join("data");
    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
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
        .arg(&data)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_user(&mut initdb, os_user);
    let out = initdb
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bindir.join("initdb").display()));
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

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
    /// Connection settings of the admin database (`postgres`, or the one in the URL).
    pub fn admin_config(&self) -> &Config {
        &self.admin
    }

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

    /// The last lines of the server log (for failure messages).
    pub fn log_tail(&self) -> String {
        let Some(dir) = &self.dir else {
            return String::new();
        };
        let text = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A new, empty database with the extension created in it.
    pub async fn fresh_db(&self, hint: &str) -> TestDb {
        let db = self.bare_db(hint).await;
        let client = db.connect().await;
        let (install, what) = match std::env::var("MONTH_LOCK_TEST_EDITION").as_deref() {
            Err(_) | Ok("native") => (
                "CREATE EXTENSION month_lock".to_string(),
                "CREATE EXTENSION month_lock",
            ),
            Ok("portable") => {
                let path = std::env::var("MONTH_LOCK_PORTABLE_SQL").unwrap_or_else(|_| {
                    panic!("MONTH_LOCK_TEST_EDITION=portable needs MONTH_LOCK_PORTABLE_SQL (make portable)")
                });
                let script = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("MONTH_LOCK_PORTABLE_SQL={path}: {e}"));
                (script, "the SQL-only edition's script")
            }
            Ok(other) => panic!("MONTH_LOCK_TEST_EDITION={other}: expected native or portable"),
        };
        client.batch_execute(&install).await.unwrap_or_else(|e| {
            panic!(
                "{what} failed ({}); run `make install` (native) or `make portable` first\n{}",
                sql::describe(&e),
                self.log_tail()
            )
        });
        db
    }

    /// A new, empty database without the extension.
    pub async fn bare_db(&self, hint: &str) -> TestDb {
        let name = format!(
            "mlt_{}_{}_{}",
            sanitize(hint),
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = connect_config(&self.admin).await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let mut config = self.admin.clone();
        config.dbname(&name);
        TestDb { name, config }
    }
}

/// One test database.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub name: String,
    pub config: Config,
}

impl TestDb {
    /// A new connection (a new backend); its driver task runs on the current tokio runtime.
    pub async fn connect(&self) -> Client {
        connect_config(&self.config).await
    }

    /// A new connection with `application_name` set.
    pub async fn connect_as(&self, application_name: &str) -> Client {
        let mut config = self.config.clone();
        config.application_name(application_name);
        connect_config(&config).await
    }

    /// A new connection logging in as `role` (an existing role; trust authentication).
    pub async fn connect_as_role(&self, role: &str) -> Client {
        let mut config = self.config.clone();
        config.user(role);
        connect_config(&config).await
    }

    /// Creates a new LOGIN role (ordinary: no superuser, no CREATEDB, no CREATEROLE) named
    /// `<prefix>_<pid>_<n>` (roles are cluster-wide and tests run in parallel; call it on a
    /// database whose user may create roles, e.g. the superuser's [`Server::fresh_db`]) and returns this
    /// database with that role as the connecting user. Trust authentication: no password.
    pub async fn with_new_role(&self, prefix: &str) -> TestDb {
        let role = format!(
            "{}_{}_{}",
            sanitize(prefix),
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = self.connect().await;
        admin
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .await
            .unwrap_or_else(|e| panic!("CREATE ROLE {role}: {}", sql::describe(&e)));
        let mut config = self.config.clone();
        config.user(&role);
        TestDb {
            name: self.name.clone(),
            config,
        }
    }

    /// The user this database's connections log in as.
    pub fn user(&self) -> String {
        self.config.get_user().unwrap_or("postgres").to_string()
    }

    /// A libpq-style URL of this database (for the CLI and other programs).
    pub fn url(&self) -> String {
        let host = sql::host_of(&self.config);
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self.config.get_user().unwrap_or("postgres");
        match self.config.get_password() {
            Some(pw) => format!(
                "postgres://{user}:{}@{host}:{port}/{}",
                String::from_utf8_lossy(pw),
                self.name
            ),
            None => format!("postgres://{user}@{host}:{port}/{}", self.name),
        }
    }
}

/// Connect and drive the connection on the current runtime.
pub async fn connect_config(config: &Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to test server: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The backend pid of a connection.
pub async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pg_backend_pid")
        .get(0)
}

/// Waits until `pid` is queued for a lock (a row of `pg_locks` with `granted = false`: the
/// backend sleeps in PostgreSQL's lock queue), up to 10 s. Reads `pg_locks` directly, so it
/// works for any key space (legacy keys, raw advisory locks) and for any role.
pub async fn wait_until_waiting(observer: &Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: bool = observer
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE pid = $1 AND NOT granted)",
                &[&pid],
            )
            .await
            .expect("query pg_locks")
            .get(0);
        if waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "backend {pid} never started waiting"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn sanitize(hint: &str) -> String {
    hint.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect::<String>()
        .to_lowercase()
}

pub(crate) fn pg_bindir() -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
    let out = Command::new(&pg_config).arg("--bindir").output().unwrap_or_else(|e| {
        panic!("cannot run {pg_config} ({e}): install PostgreSQL or set PG_CONFIG or MONTH_LOCK_TEST_URL")
    });
    assert!(out.status.success(), "{pg_config} --bindir failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// (uid, gid) to run the server as, when this process is root.
fn server_os_user() -> Option<(u32, u32)> {
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

fn as_user(cmd: &mut Command, os_user: Option<(u32, u32)>) {
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

fn chown(path: &Path, uid: u32, gid: u32) {
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

/// Removes cluster directories left by earlier processes whose postmaster is gone.
fn remove_stale_clusters() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        let pid_file = entry.path().join("data").join("postmaster.pid");
        let alive = fs::File::open(&pid_file)
            .ok()
            .and_then(|f| BufReader::new(f).lines().next()?.ok())
            .and_then(|line| line.trim().parse::<i32>().ok())
            // SAFETY: kill with signal 0 only checks for existence.
            .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        let owner_pid: Option<i32> = name[DIR_PREFIX.len()..]
            .split('.')
            .next()
            .and_then(|p| p.parse().ok());
        // SAFETY: as above.
        let owner_alive = owner_pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive && !owner_alive {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
