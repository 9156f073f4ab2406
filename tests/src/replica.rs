//! A primary and a synchronous streaming standby on loopback, for failover tests.
//!
//! [`start_pair`] starts a primary with [`crate::start_cluster`] (`wal_level=replica`,
//! `max_wal_senders`, `synchronous_standby_names='standby1'`, `synchronous_commit=on`), makes
//! sure its `pg_hba.conf` lets replication connections in from 127.0.0.1, clones it with
//! `pg_basebackup -R` (as the servers' OS user) into `<primary dir>/standby/data`, starts the
//! standby on a port of its own with a `primary_conninfo` of our own (see `start_standby`:
//! `application_name=standby1`, nothing else than host, port and user), tied to this process
//! ([`crate::faults::spawn_tied`], SIGINT when the process exits), and waits until
//! `pg_stat_replication` shows it as the synchronous standby. Both are
//! [`crate::Server`]s with the usual layout (`dir/data`, `dir/server.log`), so
//! [`crate::faults::postmaster_pid`] and [`crate::Server::log_tail`] work on either.
//!
//! Nothing commits on the primary before the standby is in sync (a commit would wait for it):
//! create databases only after [`start_pair`] returns.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::Config;

use crate::faults;
use crate::Server;

/// `application_name` of the standby, named by the primary's `synchronous_standby_names`.
pub const STANDBY_NAME: &str = "standby1";

/// A primary and its synchronous standby. Dropping it asks both postmasters that are still
/// running for a fast shutdown (SIGINT) without waiting; [`Pair::stop`] also waits.
#[derive(Debug)]
pub struct Pair {
    pub primary: Server,
    pub standby: Server,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for server in [&self.primary, &self.standby] {
            if let Some(pid) = faults::postmaster_pid(server) {
                faults::signal(pid, libc::SIGINT);
            }
        }
    }
}

impl Pair {
    /// Waits until the primary reports [`STANDBY_NAME`] with `sync_state = 'sync'`; the panic
    /// after `limit` shows both servers' logs (a walreceiver that cannot connect says why only
    /// in the standby's).
    pub async fn wait_for_sync(&self, limit: Duration) {
        let admin = crate::connect_config(self.primary.admin_config()).await;
        let deadline = Instant::now() + limit;
        loop {
            let state: Option<String> = admin
                .query_opt(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                    &[&STANDBY_NAME],
                )
                .await
                .expect("read pg_stat_replication")
                .map(|r| r.get(0));
            if state.as_deref() == Some("sync") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby is not synchronous after {limit:?} (sync_state {state:?})\n\
                 --- primary log ---\n{}\n--- standby log ---\n{}",
                self.primary.log_tail(),
                self.standby.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown of both servers (those still running), waiting until they are gone.
    pub async fn stop(&self) {
        for server in [&self.primary, &self.standby] {
            if let Some(pid) = faults::postmaster_pid(server) {
                faults::signal(pid, libc::SIGINT);
                wait_gone(server, pid, Duration::from_secs(30)).await;
            }
        }
    }
}

/// The port a server of ours listens on.
pub fn port_of(server: &Server) -> u16 {
    server.admin_config().get_ports()[0]
}

/// Connection settings for database `dbname` on `server` (user `postgres`, 127.0.0.1).
pub fn db_config(server: &Server, dbname: &str) -> Config {
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(port_of(server))
        .user("postgres")
        .dbname(dbname);
    config
}

/// Starts a primary with `settings` plus the replication settings, and a synchronous standby
/// of it (same `settings`, so that hot standby accepts them). Returns once the standby is the
/// primary's synchronous standby (`sync_state = 'sync'`).
pub async fn start_pair(settings: &[(&str, &str)]) -> Pair {
    let mut primary_settings: Vec<(&str, &str)> = settings.to_vec();
    primary_settings.extend([
        ("wal_level", "replica"),
        ("max_wal_senders", "5"),
        ("synchronous_standby_names", STANDBY_NAME),
        ("synchronous_commit", "on"),
    ]);
    let primary = crate::start_cluster(&primary_settings).await;
    allow_replication(&primary).await;
    let standby = start_standby(&primary, settings).await;
    let pair = Pair { primary, standby };
    pair.wait_for_sync(Duration::from_secs(30)).await;
    pair
}

/// Adds `host replication all 127.0.0.1/32 trust` to the primary's pg_hba.conf unless a
/// replication line for 127.0.0.1 is there (initdb writes one), and reloads.
async fn allow_replication(primary: &Server) {
    let hba = primary
        .dir
        .as_ref()
        .unwrap()
        .join("data")
        .join("pg_hba.conf");
    let text = fs::read_to_string(&hba).expect("read pg_hba.conf");
    let present = text.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words.len() >= 5
            && words[0] == "host"
            && words[1] == "replication"
            && words[3] == "127.0.0.1/32"
            && words[4] == "trust"
    });
    if !present {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&hba)
            .expect("open pg_hba.conf");
        use std::io::Write;
        writeln!(f, "host replication all 127.0.0.1/32 trust").expect("write pg_hba.conf");
        let admin = crate::connect_config(primary.admin_config()).await;
        admin
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .expect("reload");
        // The postmaster rereads pg_hba.conf on SIGHUP, asynchronously.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `pg_basebackup -R` of `primary` into `<primary dir>/standby/data`, then starts the standby.
///
/// `-R` writes `standby.signal` and a `primary_conninfo` that spells out every option the
/// libpq of `pg_basebackup` knows, defaults included (16 adds `sslcertmode` and
/// `load_balance_hosts`, 17 `sslnegotiation`, ...). The walreceiver parses that string with
/// the libpq *it* loads, which need not be the same: in a relocated tree (PyPI wheels:
/// `bin/`, `lib/`) `libpqwalreceiver.so` has a RUNPATH of its build prefix
/// (`/opt/postgresql/lib`), so it falls back to the system's libpq (Debian 12: 15), which
/// rejects the newer options ("invalid connection option \"sslnegotiation\"") and retries
/// every 5 s forever: the standby never connects. So the standby gets, on its command line
/// (which wins over `postgresql.auto.conf`), a `primary_conninfo` any libpq parses, and, when
/// the tree ships its own libpq in `<bindir>/../lib`, `LD_LIBRARY_PATH` pointing there so the
/// walreceiver uses the libpq of its own major.
async fn start_standby(primary: &Server, settings: &[(&str, &str)]) -> Server {
    let bindir = crate::pg_bindir();
    let os_user = crate::server_os_user();
    let dir = primary.dir.as_ref().unwrap().join("standby");
    fs::create_dir_all(&dir).expect("create standby directory");
    if let Some((uid, gid)) = os_user {
        crate::chown(&dir, uid, gid);
    }
    let data = dir.join("data");
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres application_name={STANDBY_NAME}",
        port_of(primary)
    );
    let mut backup = Command::new(bindir.join("pg_basebackup"));
    backup
        .args([
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
            "-d",
            &conninfo,
            "-D",
        ])
        .arg(&data)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    crate::as_user(&mut backup, os_user);
    let out = backup.output().expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        primary.log_tail()
    );
    assert!(
        data.join("standby.signal").exists(),
        "pg_basebackup -R wrote no standby.signal"
    );
    let settings: Vec<(&str, &str)> = [
        ("primary_conninfo", conninfo.as_str()),
        ("hot_standby", "on"),
        // Once promoted it must not wait for a standby of its own.
        ("synchronous_standby_names", ""),
    ]
    .into_iter()
    .chain(settings.iter().copied())
    .collect();
    // The walreceiver's libpq: the tree's own, if it has one (see above).
    let libdir = bindir.join("..").join("lib");
    let mut env = Vec::new();
    if libdir.join("libpq.so.5").exists() {
        let mut path = std::ffi::OsString::from(&libdir);
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|old| !old.is_empty()) {
            path.push(":");
            path.push(old);
        }
        env.push(("LD_LIBRARY_PATH", path));
    }
    let standby = crate::start_postgres(&bindir, &dir, &data, &settings, os_user, &env).await;
    let admin = crate::connect_config(standby.admin_config()).await;
    let in_recovery: bool = admin
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("ask the standby")
        .get(0);
    assert!(in_recovery, "the standby is not in recovery");
    standby
}

/// Immediate shutdown of `server` (SIGQUIT to the postmaster: every backend exits at once, no
/// checkpoint, as in a crash). Returns when the signal was sent; see [`wait_gone`].
pub fn crash(server: &Server) -> i32 {
    let pid = faults::postmaster_pid(server).expect("the postmaster is not running");
    assert!(faults::signal(pid, libc::SIGQUIT), "SIGQUIT to {pid}");
    pid
}

/// Waits until postmaster `pid` of `server` has exited.
pub async fn wait_gone(server: &Server, pid: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while faults::process_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "postmaster {pid} still running after {limit:?}\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Promotes the standby (`SELECT pg_promote(true, 60)`: returns once it accepts writes) and
/// returns how long that took.
pub async fn promote(standby: &Server) -> Duration {
    let admin = crate::connect_config(standby.admin_config()).await;
    let start = Instant::now();
    let done: bool = admin
        .query_one("SELECT pg_promote(true, 60)", &[])
        .await
        .unwrap_or_else(|e| panic!("pg_promote: {e}\n{}", standby.log_tail()))
        .get(0);
    assert!(done, "pg_promote returned false\n{}", standby.log_tail());
    start.elapsed()
}

/// The data directory of a server of ours.
pub fn data_dir(server: &Server) -> PathBuf {
    server.dir.as_ref().unwrap().join("data")
}
