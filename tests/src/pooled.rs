//! A test database behind a real PgBouncer in transaction-pooling mode, the roles that log in
//! through it, and simple-protocol query helpers (PgBouncer 1.18 does not carry prepared
//! statements across server connections in transaction mode).

use crate::pgbouncer::PgBouncer;
use crate::sql::{describe, exec, q_i64, SLOW};
use crate::{server, TestDb};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Pooled role (session locks off) and two roles without the setting.
pub const POOLED: &str = "pooled_app";
pub const POOLED_LEGACY: &str = "pooled_legacy";
pub const DIRECT: &str = "direct_app";

/// A fresh database, the roles, and a PgBouncer in front of the server.
pub async fn setup(hint: &str) -> (TestDb, Client, PgBouncer) {
    let db = server().await.fresh_db(hint).await;
    let admin = db.connect().await;
    for role in [POOLED, POOLED_LEGACY, DIRECT] {
        // Roles are cluster-wide and tests run in parallel: create idempotently.
        exec(
            &admin,
            &format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ),
        )
        .await;
    }
    // Per database: the roles are cluster-wide and tests run in parallel, and concurrent
    // ALTER ROLE ... SET of one role can collide (23505 in pg_db_role_setting).
    exec(
        &admin,
        &format!(
            "ALTER ROLE {POOLED} IN DATABASE \"{}\" SET month_lock.session_locks = off",
            db.name
        ),
    )
    .await;
    let bouncer = PgBouncer::start(
        &db.config,
        &[POOLED, POOLED_LEGACY],
        &[("default_pool_size", "3")],
    );
    (db, admin, bouncer)
}

/// All values of all rows of a (possibly multi-statement) simple query, in order.
pub async fn sq(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(c.simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The first value of the first row; panics on an error.
pub async fn sq1(c: &Client, sql: &str) -> String {
    let rows = sq(c, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

/// SQLSTATE and message of a failed simple query.
pub async fn sq_err(c: &Client, sql: &str) -> (SqlState, String) {
    match sq(c, sql).await {
        Ok(rows) => panic!("{sql}: expected an error, got {rows:?}"),
        Err(e) => {
            let d = e
                .as_db_error()
                .unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
            (d.code().clone(), d.message().to_string())
        }
    }
}

/// Waits (up to `SLOW`) until `sql` (a count) returns `want` on `observer`.
pub async fn wait_count(observer: &Client, sql: &str, want: i64, what: &str) {
    let deadline = Instant::now() + SLOW;
    loop {
        let n = q_i64(observer, sql).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {sql} = {n}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
