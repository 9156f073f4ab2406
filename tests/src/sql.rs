//! Helpers shared by the test files, the client's tests and the benchmarks: one-value queries,
//! errors as (SQLSTATE, message), month keys and connection details.

use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

/// The default `month_lock.namespace` (0x6D6C6B00, "mlk"): `pg_locks.classid` of month locks.
pub const DEFAULT_NAMESPACE: i32 = 1835821824;

/// Generous upper bound for things that should take milliseconds (a loaded 2-core CI box).
pub const SLOW: Duration = Duration::from_secs(5);

/// The key number of a month, `year*100 + month` (`pg_locks.objid`), e.g. 202403.
pub fn ym(year: i32, month: i32) -> i64 {
    i64::from(year) * 100 + i64::from(month)
}

/// The host of a connection config: a TCP host name or a Unix socket directory.
pub fn host_of(config: &Config) -> String {
    match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    }
}

/// `PG_CONFIG --bindir` (default: `pg_config` on PATH).
pub fn pg_bindir() -> PathBuf {
    crate::pg_bindir()
}

/// The single value of a one-row, one-column query (panics with the SQL on error).
pub async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(client: &Client, sql: &str) -> T {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)))
        .get(0)
}

pub async fn q_bool(client: &Client, sql: &str) -> bool {
    one(client, sql).await
}

pub async fn q_i64(client: &Client, sql: &str) -> i64 {
    one(client, sql).await
}

pub async fn q_text(client: &Client, sql: &str) -> String {
    one(client, sql).await
}

/// Runs one or more statements (simple protocol); panics with the SQL on error.
pub async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
}

/// Waits until the session has finished its previous request (ReadyForQuery): a client sees an
/// ErrorResponse before the backend's abort processing, which releases what it undoes, ends.
pub async fn settle(c: &Client) {
    q_i64(c, "SELECT 1::bigint").await;
}

/// Runs `sql`, expects a server error, returns its SQLSTATE and message.
pub async fn error_of(client: &Client, sql: &str) -> (SqlState, String) {
    let db = server_error(client, sql).await;
    (db.code().clone(), db.message().to_string())
}

/// Like [`error_of`], with DETAIL and HINT appended to the message ("msg DETAIL: d HINT: h").
pub async fn error_full(client: &Client, sql: &str) -> (SqlState, String) {
    let db = server_error(client, sql).await;
    let mut text = db.message().to_string();
    if let Some(d) = db.detail() {
        text.push_str(&format!(" DETAIL: {d}"));
    }
    if let Some(h) = db.hint() {
        text.push_str(&format!(" HINT: {h}"));
    }
    (db.code().clone(), text)
}

/// The error arrives before the server has aborted the failed transaction (ErrorResponse precedes
/// the abort and its ReadyForQuery), so another session could still see its locks: one more round
/// trip waits for the abort, and a test that looks from an observer next sees what followed it.
async fn server_error(client: &Client, sql: &str) -> tokio_postgres::error::DbError {
    let result = client.batch_execute(sql).await;
    // A session ended by the error (FATAL) has no next round trip; its outcome is not the test's.
    let _ = client.batch_execute("").await;
    match result {
        Ok(()) => panic!("{sql}: expected an error, got success"),
        Err(e) => e
            .as_db_error()
            .cloned()
            .unwrap_or_else(|| panic!("{sql}: not a server error: {e}")),
    }
}

/// An error with its SQLSTATE and server message (tokio-postgres prints "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}
