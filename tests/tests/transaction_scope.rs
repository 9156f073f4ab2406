//! Transaction holds live as long as pg_advisory_xact_lock's, also when taken by a cursor fetched
//! inside a savepoint that is rolled back; a session release leaves a transaction hold of the same
//! month in place; PREPARE TRANSACTION refuses a month held in both scopes and works with
//! transaction holds only (docs/semantics.md: "Session vs transaction scope").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting, TestDb};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::error::SqlState;

/// Declares a cursor taking two transaction locks, fetches the first inside SAVEPOINT s (no
/// wait) and the second (waits for `holder` to release it), rolls back to s and returns which
/// of the two keys the transaction still holds, read from pg_locks.
async fn cursor_under_savepoint(
    db: &TestDb,
    cursor_sql: &str,
    hold_second: &str,
    release_second: &str,
    key: impl Fn(i32) -> String,
) -> [bool; 2] {
    let (a, holder, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    exec(&holder, hold_second).await;
    exec(
        &a,
        &format!("BEGIN; DECLARE c CURSOR FOR {cursor_sql}; SAVEPOINT s"),
    )
    .await;
    let start = Instant::now();
    exec(&a, "FETCH 1 FROM c").await;
    assert!(start.elapsed() < SLOW);
    let a = Arc::new(a);
    let aa = a.clone();
    let fetch = tokio::spawn(async move { aa.batch_execute("FETCH 1 FROM c").await });
    wait_until_waiting(&observer, pid_a).await;
    exec(&holder, release_second).await;
    fetch
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("second FETCH: {}", describe(&e)));
    exec(&a, "ROLLBACK TO s").await;
    let mut kept = [false; 2];
    for (i, k) in kept.iter_mut().enumerate() {
        *k = q_bool(
            &observer,
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid_a} AND granted AND {})",
                key(i as i32 + 1)
            ),
        )
        .await;
    }
    exec(&a, "COMMIT").await;
    assert_eq!(
        advisory_count(&observer, pid_a).await,
        0,
        "{cursor_sql}: all gone at commit"
    );
    kept
}

#[tokio::test]
async fn cursor_fetched_inside_a_savepoint_keeps_xact_months_like_pg_advisory_xact_lock() {
    let db = db("cursor_savepoint").await;
    let builtin = cursor_under_savepoint(
        &db,
        "SELECT pg_advisory_xact_lock(777, m)::text FROM generate_series(1, 2) m",
        "SELECT pg_advisory_lock(777, 2)",
        "SELECT pg_advisory_unlock(777, 2)",
        |m| format!("classid = 777 AND objid = {m} AND objsubid = 2"),
    )
    .await;
    let month_lock = cursor_under_savepoint(
        &db,
        "SELECT month_lock_try_xact(2040, m, 5000) FROM generate_series(1, 2) m",
        "SELECT month_lock_try(2040, 2)",
        "SELECT month_lock_release(2040, 2)",
        |m| {
            format!(
                "classid::bigint = {DEFAULT_NAMESPACE} AND objid::bigint = {} AND objsubid = 2",
                ym(2040, m)
            )
        },
    )
    .await;
    println!("after ROLLBACK TO s: pg_advisory_xact_lock keeps {builtin:?}, month_lock_try_xact keeps {month_lock:?}");
    assert_eq!(
        month_lock, builtin,
        "[no-wait month, waited month] held after ROLLBACK TO s"
    );
}

#[tokio::test]
async fn release_returns_true_while_a_transaction_hold_of_the_same_month_stays() {
    let db = db("release_with_xact").await;
    let (a, b) = (db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2041, 1)").await);
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 1)").await);
    assert!(
        q_bool(&a, "SELECT month_lock_release(2041, 1)").await,
        "the session hold is dropped"
    );
    assert!(held(&a, 2041, 1).await, "the transaction hold stays");
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2041, 1)").await,
        "others still blocked"
    );
    assert!(
        !q_bool(&a, "SELECT month_lock_release(2041, 1)").await,
        "nothing left to release"
    );
    exec(&a, "COMMIT").await;
    assert!(!held(&a, 2041, 1).await);
    assert!(q_bool(&b, "SELECT month_lock_try(2041, 1)").await);
}

#[tokio::test]
async fn prepare_transaction_refuses_a_month_held_in_both_scopes_and_works_with_xact_only() {
    let db = db("prepare").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let gid = format!("{}_p", db.name);
    assert!(q_bool(&a, "SELECT month_lock_try(2041, 3)").await);
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 3)").await);
    let (code, message) = error_of(&a, &format!("PREPARE TRANSACTION '{gid}'")).await;
    assert_eq!(code, SqlState::FEATURE_NOT_SUPPORTED, "{message}");
    assert!(
        message.contains("cannot PREPARE while holding both session-level and transaction-level locks on the same object"),
        "{message}"
    );
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2041, 3).await, "the session hold survives");
    assert!(q_bool(&a, "SELECT month_lock_release(2041, 3)").await);

    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 4)").await);
    exec(&a, &format!("PREPARE TRANSACTION '{gid}'")).await;
    assert!(
        !held(&a, 2041, 4).await,
        "the prepared transaction holds it, not the session"
    );
    assert!(q_bool(&b, "SELECT month_is_locked(2041, 4)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2041, 4)").await);
    exec(&a, &format!("COMMIT PREPARED '{gid}'")).await;
    assert!(q_bool(&b, "SELECT month_lock_try(2041, 4)").await);
}
