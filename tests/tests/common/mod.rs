//! Small helpers shared by the multi-connection test files: the query helpers come from the
//! test kit (`month_lock_tests::sql`), plus the view as strings.
#![allow(dead_code)]

pub mod cases;

pub use month_lock_tests::sql::*;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Rows of the month_locks view as "year-month mode granted pid" strings, in view order.
pub async fn view_rows(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT year, month, mode, granted, pid FROM month_locks",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("month_locks: {}", describe(&e)))
        .iter()
        .map(|r| {
            format!(
                "{}-{:02} {} {} {}",
                r.get::<_, i32>(0),
                r.get::<_, i32>(1),
                r.get::<_, String>(2),
                if r.get::<_, bool>(3) {
                    "granted"
                } else {
                    "waiting"
                },
                r.get::<_, i32>(4)
            )
        })
        .collect()
}

/// Advisory locks of one backend as "classid/objid/objsubid mode granted" strings, sorted.
pub async fn advisory_locks_of(observer: &Client, pid: i32) -> Vec<String> {
    observer
        .query(
            "SELECT classid::text || '/' || objid::text || '/' || objsubid::text || ' ' || mode || ' ' || \
                    CASE WHEN granted THEN 'granted' ELSE 'waiting' END \
               FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = $1 ORDER BY 1",
            &[&pid],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_locks: {}", describe(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The SQLSTATE of a server error, `None` for any other error.
pub fn code(e: &tokio_postgres::Error) -> Option<SqlState> {
    e.as_db_error().map(|d| d.code().clone())
}

/// A `date[]` literal of the given `YYYY-MM-DD` strings.
pub fn arr(months: &[&str]) -> String {
    let items: Vec<String> = months.iter().map(|m| format!("'{m}'")).collect();
    format!("ARRAY[{}]::date[]", items.join(", "))
}

/// `month_lock_held(y, m)` on `c`.
pub async fn held(c: &Client, y: i32, m: i32) -> bool {
    q_bool(c, &format!("SELECT month_lock_held({y}, {m})")).await
}

/// How many advisory locks (granted or awaited) backend `pid` has in `pg_locks`.
pub async fn advisory_count(observer: &Client, pid: i32) -> i64 {
    q_i64(
        observer,
        &format!("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid}"),
    )
    .await
}

/// Granted advisory locks of `pid` as "objid mode" strings, sorted (month keys are
/// year*100+month).
pub async fn locks_of(observer: &Client, pid: i32) -> Vec<String> {
    observer
        .query(
            "SELECT objid::text || ' ' || mode FROM pg_locks \
              WHERE locktype = 'advisory' AND pid = $1 AND granted ORDER BY 1",
            &[&pid],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_locks: {}", describe(&e)))
        .iter()
        .map(|r| r.get(0))
        .collect()
}
