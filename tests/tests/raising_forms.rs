//! The raising forms (month_lock(y, m, t), month_lock_xact, the shared ones) raise 55P03 naming the
//! month at the timeout and not before, and the raising transaction forms hold until the
//! transaction ends (docs/semantics.md: "Timeouts").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn raising_forms_raise_55p03_at_the_timeout_not_before_naming_the_month() {
    let db = db("raising").await;
    let (holder, a, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2026, 3)").await);
    for (sql, timeout_ms) in [
        ("SELECT month_lock(2026, 3, 300)", 300u64),
        ("SELECT month_lock_shared(2026, 3, 200)", 200),
        ("BEGIN; SELECT month_lock_xact(2026, 3, 200)", 200),
        ("BEGIN; SELECT month_lock_xact_shared(2026, 3, 200)", 200),
        ("SELECT month_lock(2026, 3, 0)", 0),
        ("SELECT month_lock_xact(2026, 3, 0)", 0),
        ("SELECT month_lock_shared(2026, 3, 0)", 0),
        ("SELECT month_lock_xact_shared(2026, 3, 0)", 0),
    ] {
        let start = Instant::now();
        let (c, message) = error_of(&a, sql).await;
        let elapsed = start.elapsed();
        exec(&a, "ROLLBACK").await; // ends the BEGIN of the _xact cases (a warning otherwise)
        assert_eq!(c, SqlState::LOCK_NOT_AVAILABLE, "{sql}: {message}");
        assert!(
            message.contains("2026-03"),
            "{sql}: message names the month: {message}"
        );
        let names_timeout = if timeout_ms == 0 {
            message.contains("0 ms") || message.contains("timeout_ms = 0")
        } else {
            message.contains(&format!("{timeout_ms} ms"))
        };
        assert!(names_timeout, "{sql}: names the timeout: {message}");
        assert!(
            elapsed >= Duration::from_millis(timeout_ms),
            "{sql}: raised after {elapsed:?}"
        );
        assert!(elapsed < SLOW, "{sql}: raised after {elapsed:?}");
        if timeout_ms == 0 {
            assert!(
                elapsed < Duration::from_millis(1000),
                "{sql}: one attempt, took {elapsed:?}"
            );
        }
        assert_eq!(
            advisory_count(&observer, pid_a).await,
            0,
            "{sql}: nothing held after"
        );
    }
    println!("55P03 messages name month and timeout; 300 ms form raised at >= 300 ms");
    // A free month: the raising forms return (void) and take it.
    exec(
        &a,
        "SELECT month_lock(2026, 4, 0); SELECT month_lock_shared(2026, 5, 100)",
    )
    .await;
    assert!(held(&a, 2026, 4).await && held(&a, 2026, 5).await);
    // A waiter is granted at the release, before its timeout.
    let a = Arc::new(a);
    let aa = a.clone();
    let w =
        tokio::spawn(async move { aa.batch_execute("SELECT month_lock(2026, 3, 10000)").await });
    wait_until_waiting(&observer, pid_a).await;
    assert!(q_bool(&holder, "SELECT month_lock_release(2026, 3)").await);
    w.await.unwrap().expect("granted when released");
    assert!(held(&a, 2026, 3).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        3
    );
}

#[tokio::test]
async fn raising_xact_forms_hold_until_the_transaction_ends() {
    let db = db("raising_xact").await;
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    // Outside BEGIN the transaction is the statement.
    exec(&a, "SELECT month_lock_xact(2026, 6)").await;
    assert!(!held(&a, 2026, 6).await);
    for end in ["COMMIT", "ROLLBACK"] {
        exec(
            &a,
            "BEGIN; SELECT month_lock_xact(2026, 6); SELECT month_lock_xact_shared(2026, 7, 100)",
        )
        .await;
        assert!(held(&a, 2026, 6).await && held(&a, 2026, 7).await, "{end}");
        assert!(
            !q_bool(&a, "SELECT month_lock_release(2026, 6)").await,
            "not a session lock"
        );
        assert!(!q_bool(&a, "SELECT month_lock_release_shared(2026, 7)").await);
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 6)").await, "{end}");
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 7)").await, "{end}");
        assert!(
            q_bool(&b, "SELECT month_lock_try_shared(2026, 7)").await,
            "shared with shared"
        );
        assert!(q_bool(&b, "SELECT month_lock_release_shared(2026, 7)").await);
        exec(&a, end).await;
        assert!(
            !held(&a, 2026, 6).await && !held(&a, 2026, 7).await,
            "{end}"
        );
    }
    // month_lock_xact(y, m) waits without limit (lock_timeout does not apply) until granted.
    assert!(q_bool(&b, "SELECT month_lock_try(2026, 8)").await);
    exec(&a, "SET lock_timeout = '50ms'; BEGIN").await;
    let a = Arc::new(a);
    let aa = a.clone();
    let w = tokio::spawn(async move { aa.batch_execute("SELECT month_lock_xact(2026, 8)").await });
    wait_until_waiting(&observer, pid_a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !w.is_finished(),
        "still waiting after 200 ms despite lock_timeout = 50ms"
    );
    assert!(q_bool(&b, "SELECT month_lock_release(2026, 8)").await);
    w.await.unwrap().expect("granted");
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2026, 8)").await,
        "held to commit"
    );
    exec(&a, "COMMIT").await;
    assert!(q_bool(&b, "SELECT month_lock_try(2026, 8)").await);
}
