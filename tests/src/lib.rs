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
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls};

mod cluster;
pub mod faults;
pub mod locks;
pub mod pgbouncer;
pub mod pooled;
pub mod replica;
pub mod sql;
pub mod wire;

pub(crate) use cluster::{
    as_user, chown, free_port, pg_bindir, server_os_user, start_postgres, unprivileged_os_user,
};
pub use cluster::{initdb, server_command, start_cluster};

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

impl Server {
    /// Connection settings of the admin database (`postgres`, or the one in the URL).
    pub fn admin_config(&self) -> &Config {
        &self.admin
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
                // The installer refuses a schema others may create in (docs/editions.md): on
                // PostgreSQL 14 `public` is one until this documented step; on 15+ a no-op.
                (
                    format!("REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n{script}"),
                    "the SQL-only edition's script",
                )
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

/// Whether `pid` is queued for a lock right now (a row of `pg_locks` with `granted = false`).
pub async fn is_waiting(observer: &Client, pid: i32) -> bool {
    observer
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE pid = $1 AND NOT granted)",
            &[&pid],
        )
        .await
        .expect("query pg_locks")
        .get(0)
}

/// Waits until `pid` is queued for a lock (a row of `pg_locks` with `granted = false`: the
/// backend sleeps in PostgreSQL's lock queue), up to 10 s. Reads `pg_locks` directly, so it
/// works for any key space (legacy keys, raw advisory locks) and for any role.
pub async fn wait_until_waiting(observer: &Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if is_waiting(observer, pid).await {
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
