//! Small helpers shared by the multi-connection test files.
#![allow(dead_code)]

use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The single value of a one-row, one-column query.
pub async fn one<T: for<'a> tokio_postgres::types::FromSql<'a>>(client: &Client, sql: &str) -> T {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
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

pub async fn exec(client: &Client, sql: &str) {
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sql`, expects an error, returns its SQLSTATE and message.
pub async fn error_of(client: &Client, sql: &str) -> (SqlState, String) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql}: expected an error, got success"),
        Err(e) => {
            let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
            (db.code().clone(), db.message().to_string())
        }
    }
}

/// Rows of the month_locks view as "year-month mode granted pid" strings, in view order.
pub async fn view_rows(client: &Client) -> Vec<String> {
    client
        .query("SELECT year, month, mode, granted, pid FROM month_locks", &[])
        .await
        .expect("month_locks")
        .iter()
        .map(|r| {
            format!(
                "{}-{:02} {} {} {}",
                r.get::<_, i32>(0),
                r.get::<_, i32>(1),
                r.get::<_, String>(2),
                if r.get::<_, bool>(3) { "granted" } else { "waiting" },
                r.get::<_, i32>(4)
            )
        })
        .collect()
}

/// Generous upper bound for things that should take milliseconds (a loaded 2-core CI box).
pub const SLOW: Duration = Duration::from_secs(5);
