//! A real PgBouncer in front of a test server.
//!
//! [`PgBouncer::start`] writes an ini and a user list into a temporary directory and starts
//! the `pgbouncer` binary (from `$PGBOUNCER`, else `PATH`, else `/usr/sbin/pgbouncer`) in the
//! foreground on a free loopback port. PgBouncer refuses to run as root, so a root process
//! runs it as the OS user `postgres` (or `MONTH_LOCK_TEST_OS_USER`). It stops (SIGTERM,
//! immediate shutdown) when the [`PgBouncer`] is dropped, also during a panic, and when the
//! test process exits by any other way (parent-death signal). A missing binary is a test
//! failure with the reason, never a skip.
//!
//! Clients must use the simple query protocol (`simple_query` / `batch_execute`) outside a
//! transaction: PgBouncer 1.18 in transaction mode does not carry protocol-level prepared
//! statements from one server connection to the next.

use crate::free_port;
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config, SimpleQueryMessage};

/// The admin-console user of every PgBouncer started here.
pub const ADMIN_USER: &str = "pgb_admin";

/// A running PgBouncer.
#[derive(Debug)]
pub struct PgBouncer {
    /// Loopback port PgBouncer listens on.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The pgbouncer binary, or a panic that says how to get one.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("PGBOUNCER") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "PGBOUNCER={} is not a file", p.display());
        return p;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"])
    {
        let candidate = Path::new(dir).join("pgbouncer");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "pgbouncer binary not found (PATH, /usr/sbin): these tests need a real PgBouncer; \
         install it (`apt-get install -y pgbouncer` on Debian) or set PGBOUNCER=/path/to/pgbouncer"
    );
}

impl PgBouncer {
    /// Starts PgBouncer in front of `server` (its host must be loopback TCP). `users` are the
    /// roles clients may log in as (auth_type = trust; PgBouncer logs in to the server as the
    /// same role). `settings` are extra `[pgbouncer]` lines such as `("pool_mode",
    /// "transaction")`, `("default_pool_size", "3")`; they override the defaults here
    /// (transaction mode, pool size 3).
    pub fn start(server: &Config, users: &[&str], settings: &[(&str, &str)]) -> PgBouncer {
        let bin = binary();
        let host = match &server.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            other => panic!("PgBouncer needs a TCP server address, got {other:?}"),
        };
        let server_port = server.get_ports().first().copied().unwrap_or(5432);
        let dir = std::env::temp_dir().join(format!(
            "month_lock_pgbouncer.{}.{}",
            std::process::id(),
            free_port() // just a unique suffix
        ));
        fs::create_dir_all(&dir).expect("create pgbouncer directory");
        let port = free_port();

        let mut userlist = String::new();
        for u in users.iter().chain([&ADMIN_USER]) {
            userlist.push_str(&format!("\"{u}\" \"\"\n"));
        }
        fs::write(dir.join("userlist.txt"), userlist).expect("write userlist.txt");

        let mut values: Vec<(String, String)> = [
            ("listen_addr", "127.0.0.1".to_string()),
            ("listen_port", port.to_string()),
            ("unix_socket_dir", String::new()),
            ("auth_type", "trust".into()),
            ("auth_file", dir.join("userlist.txt").display().to_string()),
            ("admin_users", ADMIN_USER.into()),
            ("pool_mode", "transaction".into()),
            ("default_pool_size", "3".into()),
            ("min_pool_size", "0".into()),
            ("reserve_pool_size", "0".into()),
            ("max_client_conn", "200".into()),
            (
                "ignore_startup_parameters",
                "extra_float_digits,options".into(),
            ),
            ("syslog", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in settings {
            match values.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => values.push((k.to_string(), v.to_string())),
            }
        }
        let mut ini = format!("[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\n");
        for (k, v) in &values {
            ini.push_str(&format!("{k} = {v}\n"));
        }
        fs::write(dir.join("pgbouncer.ini"), ini).expect("write pgbouncer.ini");

        let log = fs::File::create(dir.join("pgbouncer.log")).expect("create pgbouncer.log");
        let os_user = crate::unprivileged_os_user("pgbouncer refuses to run as root");
        if let Some((uid, gid, _)) = &os_user {
            for f in ["", "userlist.txt", "pgbouncer.ini", "pgbouncer.log"] {
                std::os::unix::fs::chown(dir.join(f), Some(*uid), Some(*gid))
                    .expect("chown pgbouncer files");
            }
        }
        let mut cmd = Command::new(&bin);
        cmd.arg(dir.join("pgbouncer.ini"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if let Some((uid, gid, name)) = &os_user {
            use std::os::unix::process::CommandExt;
            cmd.uid(*uid)
                .gid(*gid)
                .env("HOME", "/tmp")
                .env("USER", name);
        }
        let child = crate::faults::spawn_tied(cmd, libc::SIGTERM)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut bouncer = PgBouncer {
            port,
            dir,
            child: Some(child),
        };

        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = bouncer
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("try_wait pgbouncer")
            {
                panic!("pgbouncer exited at start ({status}):\n{}", bouncer.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen on {port}:\n{}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        bouncer
    }

    /// Connection settings for `dbname` as `user` through PgBouncer.
    pub fn config(&self, dbname: &str, user: &str) -> Config {
        let mut c = Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(dbname);
        c
    }

    /// A client through PgBouncer (simple query protocol only, outside transactions).
    pub async fn connect(&self, dbname: &str, user: &str) -> Client {
        crate::connect_config(&self.config(dbname, user)).await
    }

    /// The admin console (`SHOW POOLS`, ...).
    pub async fn admin(&self) -> Client {
        crate::connect_config(&self.config("pgbouncer", ADMIN_USER)).await
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// `SHOW POOLS` row of (database, user) as (column, value) pairs.
    pub async fn pool(&self, admin: &Client, dbname: &str, user: &str) -> Vec<(String, String)> {
        let messages = admin.simple_query("SHOW POOLS").await.expect("SHOW POOLS");
        for m in messages {
            if let SimpleQueryMessage::Row(row) = m {
                let get = |name: &str| row.try_get(name).ok().flatten().unwrap_or("").to_string();
                if get("database") == dbname && get("user") == user {
                    return row
                        .columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                        .collect();
                }
            }
        }
        Vec::new()
    }

    /// Stops PgBouncer now (immediate shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::faults::signal(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A value of a `SHOW POOLS` row (0 when absent or not a number).
pub fn pool_value(row: &[(String, String)], column: &str) -> i64 {
    row.iter()
        .find(|(c, _)| c == column)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}
