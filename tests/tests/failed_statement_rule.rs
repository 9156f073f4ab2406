//! A session grant is undone when the request that took it fails (an error later in the same
//! statement, in a later statement of the same query string, inside BEGIN or a savepoint) and kept
//! when the request completed, through a caught PL/pgSQL exception and a later ROLLBACK
//! (docs/semantics.md: "A session lock never outlives a failed request that took it").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Waits until `observer` can take the month (then releases it): a failed request's grant is
/// undone when PostgreSQL rolls the request back, microseconds after the client has received
/// the error, so another session may see it held for that long. Returns how long it took.
async fn becomes_free(observer: &Client, y: i32, m: i32) -> Duration {
    let start = Instant::now();
    loop {
        if q_bool(observer, &format!("SELECT month_lock_try({y}, {m})")).await {
            assert!(q_bool(observer, &format!("SELECT month_lock_release({y}, {m})")).await);
            return start.elapsed();
        }
        assert!(
            start.elapsed() < SLOW,
            "{y}-{m:02} still held {:?} after the error",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn failed_statement_rule_a_later_error_in_the_same_request_releases_the_grant() {
    let db = db("later_error").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;

    // The literal form (1/0 may be folded before anything runs: it must hold nothing).
    let (c, _) = error_of(&a, "SELECT month_lock_try(2024, 3), 1/0").await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    assert!(!held(&a, 2024, 3).await);
    // The same with the error provably raised after the month was granted in that statement.
    let after_grant = "SELECT month_lock_try(2024, 3), 1/(NOT month_lock_held(2024, 3))::int";
    let (c, _) = error_of(&a, after_grant).await;
    assert_eq!(
        c,
        SqlState::DIVISION_BY_ZERO,
        "the month was taken before the error"
    );
    assert!(!held(&a, 2024, 3).await, "{after_grant}");
    assert!(q_bool(&b, "SELECT month_lock_try(2024, 3)").await);
    assert!(q_bool(&b, "SELECT month_lock_release(2024, 3)").await);
    // Extended protocol, shared form.
    let err = a
        .query_one(
            "SELECT month_lock_try_shared(2024, 3), 1/(NOT month_lock_held(2024, 3))::int",
            &[],
        )
        .await
        .expect_err("division by zero");
    assert_eq!(code(&err), Some(SqlState::DIVISION_BY_ZERO));
    assert!(!held(&a, 2024, 3).await, "shared, extended protocol");

    // An error in a later statement of the same simple-query string.
    for sql in [
        "SELECT month_lock_try(2024, 3); SELECT 1/0",
        "SELECT month_lock_try(2024, 3); SELECT 1/(NOT month_lock_held(2024, 3))::int",
        "SELECT month_lock(2024, 3); SELECT month_lock_shared(2024, 4); SELECT 1/0",
    ] {
        let (c, _) = error_of(&a, sql).await;
        assert_eq!(c, SqlState::DIVISION_BY_ZERO, "{sql}");
        assert!(
            !held(&a, 2024, 3).await && !held(&a, 2024, 4).await,
            "{sql}"
        );
        assert_eq!(advisory_count(&b, pid_a).await, 0, "{sql}");
    }

    // Inside BEGIN: the failing statement's grant goes as the error is raised; the lock of an
    // earlier, completed statement survives the error and the ROLLBACK.
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try(2024, 5)").await);
    let (c, _) = error_of(
        &a,
        "SELECT month_lock_try(2024, 6), 1/(NOT month_lock_held(2024, 6))::int",
    )
    .await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    let took = becomes_free(&b, 2024, 6).await;
    assert!(
        took < Duration::from_millis(500),
        "released before ROLLBACK: {took:?}"
    );
    assert!(q_bool(&b, "SELECT month_lock_try(2024, 6)").await);
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2024, 5)").await,
        "the earlier lock is held"
    );
    assert!(q_bool(&b, "SELECT month_lock_release(2024, 6)").await);
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2024, 5).await && !held(&a, 2024, 6).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        1
    );

    // Under a SAVEPOINT: the same, and ROLLBACK TO keeps locks of completed statements.
    exec(&a, "BEGIN; SAVEPOINT s").await;
    assert!(q_bool(&a, "SELECT month_lock_try(2024, 7)").await);
    let (c, _) = error_of(
        &a,
        "SELECT month_lock_try(2024, 8), 1/(NOT month_lock_held(2024, 8))::int",
    )
    .await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    let took = becomes_free(&b, 2024, 8).await;
    assert!(
        took < Duration::from_millis(500),
        "released with the failed request: {took:?}"
    );
    exec(&a, "ROLLBACK TO s").await;
    assert!(held(&a, 2024, 7).await && !held(&a, 2024, 8).await);
    exec(&a, "COMMIT").await;
    assert!(held(&a, 2024, 7).await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2024, 7)").await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        1
    );
}

#[tokio::test]
async fn failed_statement_rule_plpgsql_exception_block_keeps_the_month() {
    let db = db("plpgsql_exception").await;
    let (a, b) = (db.connect().await, db.connect().await);
    // Taken before the block whose error is caught.
    exec(
        &a,
        "DO $$ BEGIN
            PERFORM month_lock_try(2025, 1);
            BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN NULL; END;
         END $$",
    )
    .await;
    // Taken inside the block (its subtransaction is rolled back by the caught error).
    exec(
        &a,
        "DO $$ BEGIN
            BEGIN
              PERFORM month_lock_shared(2025, 2);
              PERFORM 1/(NOT month_lock_held(2025, 2))::int;
            EXCEPTION WHEN division_by_zero THEN NULL; END;
         END $$",
    )
    .await;
    // A function, with a waited grant: b holds the month and releases it once a is queued.
    exec(
        &a,
        "CREATE FUNCTION take_and_catch() RETURNS boolean LANGUAGE plpgsql AS $$
         DECLARE got boolean;
         BEGIN
            got := month_lock_try(2025, 3, 10000);
            BEGIN PERFORM 1/0; EXCEPTION WHEN OTHERS THEN NULL; END;
            RETURN got;
         END $$",
    )
    .await;
    assert!(q_bool(&b, "SELECT month_lock_try(2025, 3)").await);
    let pid_a = backend_pid(&a).await;
    let a = Arc::new(a);
    let aa = a.clone();
    let call = tokio::spawn(async move { q_bool(&aa, "SELECT take_and_catch()").await });
    wait_until_waiting(&b, pid_a).await;
    assert!(q_bool(&b, "SELECT month_lock_release(2025, 3)").await);
    assert!(call.await.unwrap());
    for m in 1..=3 {
        assert!(
            held(&a, 2025, m).await,
            "2025-{m:02} is held after the request"
        );
        assert!(
            !q_bool(&b, &format!("SELECT month_lock_try(2025, {m})")).await,
            "2025-{m:02}"
        );
    }
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        3
    );
}

#[tokio::test]
async fn failed_statement_rule_completed_request_keeps_its_lock_after_rollback() {
    let db = db("completed_request").await;
    let (a, b) = (db.connect().await, db.connect().await);
    exec(&a, "BEGIN; SELECT month_lock_try(2025, 4)").await;
    exec(&a, "ROLLBACK").await;
    assert!(
        held(&a, 2025, 4).await,
        "0.1.0 semantics: a session lock survives ROLLBACK"
    );
    assert!(!q_bool(&b, "SELECT month_lock_try(2025, 4)").await);
    // The same after a later failed statement in that transaction.
    exec(&a, "BEGIN; SELECT month_lock_try_shared(2025, 5)").await;
    let _ = error_of(&a, "SELECT 1/0").await;
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2025, 5).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        2
    );
}
