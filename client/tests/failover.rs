//! Month locks across a failover (docs/semantics.md, "Beyond one server"): the lost-lock signal,
//! month-lock run's exit 70 and fencing tokens when a synchronous standby is promoted.
//!
//! A primary and a synchronous streaming standby on loopback (`month_lock_tests::replica`). On the
//! primary, an old holder takes 2024-03 through the client library, gets its fencing token
//! (`month_lock_token`, autocommit: committed, so flushed on the synchronous standby — also when
//! the sequence's WAL record behind it was written by another transaction that rolled back, with
//! the primary's WAL writer slowed to 10 s) and writes a row with it, while `month-lock run` holds
//! 2024-04 around a shell loop that appends to a marker file. Then the primary stops abruptly
//! (SIGQUIT: immediate shutdown) and the standby is promoted. Asserted:
//!
//! * the guard's `lost()` resolves, and `month-lock run` stops CMD and exits 70, each within
//!   [`LOST_BOUND`] of the SIGQUIT (heartbeat [`HEARTBEAT`]);
//! * before the promotion a multi-host `target_session_attrs=read-write` connection finds no
//!   server to write to; after it, the same string reaches the new primary, where a new
//!   worker takes 2024-03 and gets a token larger than the old holder's, and `month-lock run`
//!   with that string takes 2024-04 and gives its CMD a larger `MONTH_LOCK_TOKEN` than the old
//!   run's CMD got;
//! * the old holder's committed row survived; once the new holder wrote with its token, the
//!   old holder's late write with the old token (on a connection to the new primary) touches
//!   0 rows.
//!
//! Every server and process stops at the end, also on panic (`Pair`'s and `Cleanup`'s
//! `Drop`, `kill_on_drop`, and the parent-death signal of the servers).
//! Timings are printed (`cargo test ... -- --nocapture`).

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{Heartbeat, LostReason, MonthLock, MonthLockExt};
use month_lock_tests::{faults, replica, TestDb, DEFAULT_SETTINGS};
use rustix::process::{kill_process, Pid, Signal};
use tokio_postgres::{Client, Config, NoTls};

mod common;
use common::cli::{cli_url, text};
use common::months::ym;

/// Heartbeat of the guard and of `month-lock run --heartbeat`.
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Longest time from the SIGQUIT to the lost-lock signal and to `month-lock run`'s exit: one
/// heartbeat interval plus slack for a loaded machine (backends exiting, process scheduling).
const LOST_BOUND: Duration = Duration::from_millis(200 + 500);

/// Fenced write: insert, or overwrite only a row whose stored token is not newer.
const FENCED_WRITE: &str = "INSERT INTO facts (month, value, token) VALUES ('2024-03-01', $1, $2) \
     ON CONFLICT (month) DO UPDATE SET value = EXCLUDED.value, token = EXCLUDED.token \
     WHERE facts.token <= EXCLUDED.token";

/// CMD of `month-lock run`: writes the fencing token it was given and its pid, then appends a
/// line to `marker` every 50 ms (bounded: at most ~45 s even if nobody stops it).
const CMD_SCRIPT: &str = r#"echo "${MONTH_LOCK_TOKEN:-none}" > "$1/cmd.token"
echo $$ > "$1/cmd.pid"; i=0
while [ $i -lt 900 ]; do echo $i >> "$1/marker"; i=$((i+1)); sleep 0.05; done"#;

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Kills CMD (by the pid it wrote) if it is still running when the test ends.
struct Cleanup {
    scratch: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = cmd_pid(&self.scratch) {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn cmd_pid(scratch: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(scratch.join("cmd.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A token CMD wrote to `name` in `scratch`.
fn token_file(scratch: &std::path::Path, name: &str) -> i64 {
    let text = std::fs::read_to_string(scratch.join(name)).unwrap_or_default();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name}: no MONTH_LOCK_TOKEN given to CMD ({text:?})"))
}

fn marker_lines(scratch: &std::path::Path) -> usize {
    std::fs::read_to_string(scratch.join("marker"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_loses_the_lock_and_fencing_rejects_the_old_holder() {
    let test_start = Instant::now();
    let march = ym("2024-03");
    let april = ym("2024-04");

    // --- a primary and its synchronous standby ---------------------------------------------
    let pair = replica::start_pair(DEFAULT_SETTINGS).await;
    let (old_port, new_port) = (
        replica::port_of(&pair.primary),
        replica::port_of(&pair.standby),
    );
    let setup = test_start.elapsed();
    // Created after the standby is in sync: these commits are flushed on the standby too.
    let db: TestDb = pair.primary.fresh_db("failover").await;
    let admin = db.connect().await;
    // The primary's WAL writer waits 10 s between rounds (below), so WAL that no commit
    // flushed is neither on disk nor streamed when the primary crashes.
    for sql in [
        "ALTER SYSTEM SET wal_writer_delay = '10s'",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let tokens: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE proname = 'month_lock_token'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tokens, 1,
        "month_lock_token is not installed: this test needs month_lock 0.2.0 (month_lock_token)"
    );
    admin
        .batch_execute(
            "CREATE TABLE facts (month date PRIMARY KEY, value text NOT NULL, token bigint NOT NULL)",
        )
        .await
        .unwrap();

    // --- the old holder, through the client library ----------------------------------------
    let old = Arc::new(db.connect_as("old-holder").await);
    let guard = MonthLock::new(march)
        .timeout(Duration::from_secs(5))
        .acquire(old.clone())
        .await
        .unwrap_or_else(|e| panic!("old holder takes {march}: {e}"))
        .with_heartbeat(Heartbeat {
            interval: HEARTBEAT,
            timeout: Some(Duration::from_secs(2)),
        });
    // The sequence's WAL record that covers the old holder's token is written by a logger
    // that rolls back (the first token after a checkpoint): the old holder's token then comes
    // from the cached range, with no WAL of its own.
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let logger = db.connect_as("rolled-back logger").await;
    logger
        .batch_execute(
            "BEGIN; SELECT month_lock_try_xact(2024, 5); SELECT month_lock_token(2024, 5); ROLLBACK",
        )
        .await
        .unwrap();
    // Autocommit: the transaction that took the token has committed (and, with
    // synchronous_commit=on, is flushed on the standby) before the token is used — its commit
    // covers the logger's record too.
    let old_token: i64 = guard
        .client()
        .query_one("SELECT month_lock_token(2024, 3)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(old_token > 0, "tokens are positive: {old_token}");
    assert_eq!(guard.token().await.unwrap(), old_token, "guard.token()");
    let n = guard
        .client()
        .execute(FENCED_WRITE, &[&"old", &old_token])
        .await
        .unwrap();
    assert_eq!(n, 1, "the old holder's first write lands");
    // The guard is watched from now on, as a worker would (select! against its work).
    let watcher = tokio::spawn(async move {
        let reason = guard.lost().await;
        (Instant::now(), reason, guard)
    });

    // --- month-lock run holds April around CMD ---------------------------------------------
    let scratch = std::env::temp_dir().join(format!("month_lock_failover_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let cleanup = Cleanup {
        scratch: scratch.clone(),
    };
    let heartbeat_arg = format!("{}ms", HEARTBEAT.as_millis());
    let child = cli_url(&db.url())
        .args([
            "run",
            "2024-04",
            "--timeout",
            "5s",
            "--heartbeat",
            &heartbeat_arg,
            "--grace",
            "2s",
            "--",
            "sh",
            "-c",
            CMD_SCRIPT,
            "sh",
        ])
        .arg(&scratch)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cli_task = tokio::spawn(async move {
        let out = child.wait_with_output().await;
        (Instant::now(), out)
    });
    wait_until("CMD writes its marker", Duration::from_secs(20), || {
        marker_lines(&scratch) >= 3 && cmd_pid(&scratch).is_some()
    })
    .await;
    let cmd = cmd_pid(&scratch).unwrap();
    let cli_old_token = token_file(&scratch, "cmd.token");
    let holders = admin.locks().await.unwrap();
    assert!(
        holders.iter().any(|r| r.granted
            && r.year_month() == Some(april)
            && r.application_name.as_deref() == Some("month-lock")),
        "month-lock run holds {april}: {holders:?}"
    );
    assert!(
        holders.iter().any(|r| r.granted
            && r.year_month() == Some(march)
            && r.application_name.as_deref() == Some("old-holder")),
        "the old holder holds {march}: {holders:?}"
    );
    drop(admin);
    // Still synchronous: the token's and the row's commits were flushed on the standby.
    pair.wait_for_sync(Duration::from_secs(1)).await;

    // --- the primary stops abruptly ----------------------------------------------------------
    let crash_at = Instant::now();
    let postmaster = replica::crash(&pair.primary);

    let (lost_at, reason, old_guard) = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("guard.lost() did not fire within 10 s of the crash")
        .unwrap();
    let lost_latency = lost_at - crash_at;
    assert_eq!(reason, LostReason::ConnectionClosed, "lost: {reason}");

    let (cli_exit_at, out) = tokio::time::timeout(Duration::from_secs(10), cli_task)
        .await
        .expect("month-lock run did not exit within 10 s of the crash")
        .unwrap();
    let out: Output = out.unwrap();
    let cli_latency = cli_exit_at - crash_at;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "month-lock run: {stderr}");
    assert!(stderr.contains("lost the lock on 2024-04"), "{stderr}");
    assert!(
        !faults::process_exists(cmd),
        "CMD (pid {cmd}) still runs after month-lock exited"
    );
    let lines = marker_lines(&scratch);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(marker_lines(&scratch), lines, "CMD kept writing");

    replica::wait_gone(&pair.primary, postmaster, Duration::from_secs(10)).await;
    let down = crash_at.elapsed();

    // No server to write to yet: the multi-host string refuses the read-only standby.
    let multi: Config = format!(
        "host=127.0.0.1,127.0.0.1 port={old_port},{new_port} user=postgres dbname={} \
         target_session_attrs=read-write connect_timeout=5 application_name=new-worker",
        db.name
    )
    .parse()
    .unwrap();
    assert!(
        connect(&multi).await.is_err(),
        "a read-write session before the promotion"
    );

    // --- promotion ------------------------------------------------------------------------------
    let promotion = replica::promote(&pair.standby).await;
    let failover = crash_at.elapsed();

    // --- a new worker through the multi-host string ------------------------------------------
    let new = connect(&multi)
        .await
        .unwrap_or_else(|e| panic!("multi-host read-write connect after promotion: {e}"));
    let row = new
        .query_one(
            "SELECT current_setting('port')::int, pg_is_in_recovery()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, bool>(1)),
        (new_port as i32, false),
        "the multi-host string reaches the promoted standby"
    );
    // The old holder's committed write survived the failover.
    let row = new
        .query_one(
            "SELECT value, token FROM facts WHERE month = '2024-03-01'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("old".to_string(), old_token)
    );
    let new_guard = MonthLock::new(march)
        .timeout(Duration::from_secs(5))
        .acquire(&new)
        .await
        .unwrap_or_else(|e| panic!("new worker takes {march} on the new primary: {e}"));
    let new_token = new_guard.token().await.unwrap();
    assert!(
        new_token > old_token,
        "new holder's token {new_token} is not larger than the old holder's {old_token}"
    );
    let n = new_guard
        .client()
        .execute(FENCED_WRITE, &[&"new", &new_token])
        .await
        .unwrap();
    assert_eq!(n, 1, "the new holder's write lands");

    // The old holder comes back late, on a connection to the new primary, with its old token.
    let late = connect(&replica::db_config(&pair.standby, &db.name))
        .await
        .unwrap();
    let n = late
        .execute(FENCED_WRITE, &[&"old-late", &old_token])
        .await
        .unwrap();
    assert_eq!(n, 0, "the old holder's late write is fenced off");
    let row = late
        .query_one(
            "SELECT value, token FROM facts WHERE month = '2024-03-01'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("new".to_string(), new_token)
    );

    // `month-lock run` as a new worker through the same multi-host string takes April, and
    // CMD gets a larger token than the old run's CMD.
    let multi_text = format!(
        "host=127.0.0.1,127.0.0.1 port={old_port},{new_port} user=postgres dbname={} \
         target_session_attrs=read-write connect_timeout=5",
        db.name
    );
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        cli_url(&multi_text)
            .args(["run", "2024-04", "--timeout", "5s", "--", "sh", "-c"])
            .arg(r#"echo "${MONTH_LOCK_TOKEN:-none}" > "$1/new.token""#)
            .arg("sh")
            .arg(&scratch)
            .output(),
    )
    .await
    .expect("month-lock run through the multi-host string finished")
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "month-lock run through the multi-host string: {}",
        text(&out.stderr)
    );
    let cli_new_token = token_file(&scratch, "new.token");
    assert!(
        cli_new_token > cli_old_token,
        "month-lock run's token after the failover {cli_new_token} is not larger than before \
         {cli_old_token}"
    );

    new_guard.release().await.unwrap();
    assert!(!new.is_locked(march).await.unwrap());
    drop(old_guard);

    // --- everything stops -----------------------------------------------------------------------
    pair.stop().await;
    for server in [&pair.primary, &pair.standby] {
        assert!(
            faults::postmaster_pid(server).is_none(),
            "a server still runs"
        );
    }
    drop(cleanup);

    eprintln!(
        "failover: setup {setup:?}; heartbeat {HEARTBEAT:?}, bound {LOST_BOUND:?}; \
         guard.lost() after {lost_latency:?}; month-lock run exited 70 after {cli_latency:?}; \
         primary gone after {down:?}; pg_promote {promotion:?}; crash to promoted {failover:?}; \
         tokens: client old {old_token} new {new_token}, month-lock run old {cli_old_token} \
         new {cli_new_token}; total {:?}",
        test_start.elapsed()
    );
    assert!(
        lost_latency <= LOST_BOUND,
        "guard.lost() fired {lost_latency:?} after the crash (bound {LOST_BOUND:?})"
    );
    assert!(
        cli_latency <= LOST_BOUND,
        "month-lock run exited {cli_latency:?} after the crash (bound {LOST_BOUND:?})"
    );
}
