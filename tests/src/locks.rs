//! What sessions hold, seen from another session: the view and `pg_locks` as strings, a
//! month's holder and its fencing token, and a server error's SQLSTATE.

use crate::sql::{describe, q_bool, q_i64};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};
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

/// `month_lock_token(y, m)` on `c`.
pub async fn token(c: &Client, y: i32, m: i32) -> i64 {
    q_i64(c, &format!("SELECT month_lock_token({y}, {m})")).await
}

/// The first value of the first row of a simple-protocol result.
pub fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string).unwrap_or_default()),
        _ => None,
    })
}

/// Months of 2024 (by number) as a `date[]` literal, in the order given.
pub fn months_2024(list: impl IntoIterator<Item = i32>) -> String {
    let items: Vec<String> = list
        .into_iter()
        .map(|m| format!("'2024-{m:02}-01'"))
        .collect();
    format!("ARRAY[{}]::date[]", items.join(", "))
}

/// Month keys as the strings [`locks_of`] gives for exclusive holds.
pub fn excl(keys: &[i64]) -> Vec<String> {
    keys.iter().map(|k| format!("{k} ExclusiveLock")).collect()
}

/// The month a claim expression `sql` returned (as text, first of the month), or `None`.
pub async fn claim(c: &Client, sql: &str) -> Option<String> {
    crate::sql::one::<Option<String>>(c, &format!("SELECT ({sql})::text")).await
}

/// How many advisory locks (granted or awaited) sessions of the current database have.
pub async fn advisory_total(observer: &Client) -> i64 {
    q_i64(
        observer,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await
}
