//! Measured calls go through the simple query protocol: one round trip each, as an
//! application sends them (the test kit's helpers prepare first, which adds a round trip).

use month_lock_tests::sql::ym;
use std::time::Instant;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The first column of the first row (`None` without a row or for NULL).
pub async fn value(client: &Client, sql: &str) -> Option<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

/// A one-row boolean query.
pub async fn query_bool(client: &Client, sql: &str) -> bool {
    match value(client, sql).await.as_deref() {
        Some("t") => true,
        Some("f") => false,
        other => panic!("{sql}: unexpected value {other:?}"),
    }
}

/// A one-row integer query.
pub async fn query_u64(client: &Client, sql: &str) -> u64 {
    let v = value(client, sql).await;
    v.as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: unexpected value {v:?}"))
}

/// Runs `sql` once and returns the time it took, µs, and its value.
pub async fn timed(client: &Client, sql: &str) -> (f64, Option<String>) {
    let start = Instant::now();
    let v = value(client, sql).await;
    (start.elapsed().as_secs_f64() * 1e6, v)
}

/// Backends queued (not granted) on the month's advisory lock in this database.
pub async fn queued_on(observer: &Client, year: i32, month: i32) -> u64 {
    let sql = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = {} AND objid = {} AND objsubid = 2",
        crate::methods::NS,
        ym(year, month)
    );
    query_u64(observer, &sql).await
}
