//! How a guard gives its month back (rustdoc of `MonthLockGuard`, "Dropping: how a guard releases,
//! what it costs, why it cannot leak into a pool"): release, drop (also by a cancelled task, also
//! of a pooled connection, before the connection's next use), leak, and a release on a connection
//! in a failed transaction block.

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{Error, MonthLock, MonthLockExt, Pooled};
use month_lock_tests::server;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

mod common;
use common::months::{is_locked_elsewhere, wait_until_free, ym};

#[tokio::test]
async fn dropped_guard_releases_promptly() {
    let db = server().await.fresh_db("drop_prompt").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2024-06");
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let g = MonthLock::new(m).acquire(&a).await.unwrap();
        assert!(is_locked_elsewhere(&observer, m).await);
        drop(g);
        latencies.push(wait_until_free(&observer, m).await);
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = *latencies.last().unwrap();
    println!(
        "dropped-guard release seen by another session: median {median:?}, max {max:?} (20 drops)"
    );
    assert!(
        max < Duration::from_secs(1),
        "slow release after drop: {max:?}"
    );
}

/// A one-connection "pool": the guard owns the pooled handle; when the handle is dropped the
/// connection goes back and the next borrower's first statement must find the month free.
#[tokio::test]
async fn dropped_guard_releases_before_next_use_of_the_connection() {
    let db = server().await.fresh_db("drop_order").await;
    let conn = Arc::new(db.connect().await);
    let m = ym("2024-07");
    for _ in 0..50 {
        // Owned Arc<Client>.
        let g = MonthLock::new(m).acquire(conn.clone()).await.unwrap();
        drop(g);
        assert!(
            !conn.held(m).await.unwrap(),
            "the queued release ran before the next statement"
        );
        // Borrowed &Client.
        let g = MonthLock::new(m).acquire(&*conn).await.unwrap();
        drop(g);
        assert!(!conn.held(m).await.unwrap());
    }

    // A pool object that reaches the Client through two derefs, like deadpool_postgres::Object.
    struct Wrapper(Arc<Client>);
    impl Deref for Wrapper {
        type Target = Client;
        fn deref(&self) -> &Client {
            &self.0
        }
    }
    let object = Box::new(Wrapper(conn.clone()));
    let g = MonthLock::new(m)
        .shared()
        .timeout(Duration::ZERO)
        .acquire(Pooled(object))
        .await
        .unwrap();
    assert!(conn.held(m).await.unwrap());
    drop(g);
    assert!(!conn.held(m).await.unwrap());
}

#[tokio::test]
async fn guard_dropped_by_a_cancelled_task_releases() {
    let db = server().await.fresh_db("drop_cancel").await;
    let (conn, observer) = (Arc::new(db.connect().await), db.connect().await);
    let m = ym("2024-08");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = {
        let conn = conn.clone();
        tokio::spawn(async move {
            let _g = MonthLock::new(m).acquire(&*conn).await.unwrap();
            tx.send(()).unwrap();
            std::future::pending::<()>().await;
        })
    };
    rx.await.unwrap();
    assert!(is_locked_elsewhere(&observer, m).await);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(!conn.held(m).await.unwrap());
    wait_until_free(&observer, m).await;
}

#[tokio::test]
async fn a_failed_acquire_hands_an_owned_connection_back() {
    let db = server().await.fresh_db("hand_back").await;
    let (a, b) = (db.connect().await, Arc::new(db.connect().await));
    let m = ym("2025-04");
    let _held = MonthLock::new(m).acquire(&a).await.unwrap();
    let err = MonthLock::new(m)
        .timeout(Duration::from_millis(20))
        .acquire(b.clone())
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "month 2025-04 is held by another session; not acquired within 20ms"
    );
    let (error, back) = err.into_parts();
    assert!(matches!(error, Error::Timeout { ym, .. } if ym == m));
    assert!(Arc::ptr_eq(&back, &b), "the same handle comes back");
    assert!(!back.held(m).await.unwrap());
}

#[tokio::test]
async fn leak_keeps_the_month_and_gives_the_connection_back() {
    let db = server().await.fresh_db("leak").await;
    let (a, observer) = (Arc::new(db.connect().await), db.connect().await);
    let m = ym("2025-05");
    let guard = MonthLock::new(m).shared().acquire(a.clone()).await.unwrap();
    let back = guard.leak();
    assert!(Arc::ptr_eq(&back, &a));
    assert!(back.held(m).await.unwrap(), "leaking released nothing");
    assert!(is_locked_elsewhere(&observer, m).await);
    assert_eq!(back.release_all().await.unwrap(), 1);
    assert!(!is_locked_elsewhere(&observer, m).await);
}

#[tokio::test]
async fn a_release_in_a_failed_transaction_block_still_releases() {
    let db = server().await.fresh_db("release_25p02").await;
    let observer = db.connect().await;
    let m = ym("2025-11");
    // Through a pooled handle the guard owns: it rolls the block back, the connection goes
    // back without the month.
    let owned = Arc::new(db.connect().await);
    let g = MonthLock::new(m)
        .acquire(Pooled(Box::new(owned.clone())))
        .await
        .unwrap();
    owned.batch_execute("BEGIN; SELECT 1/0").await.unwrap_err();
    g.release().await.unwrap();
    assert!(!owned.held(m).await.unwrap());
    assert!(!is_locked_elsewhere(&observer, m).await);
}

/// On a shared connection the failed block is another task's: the release does not roll it
/// back (its `ROLLBACK TO SAVEPOINT` then `COMMIT` keeps its rows), reports 25P02, and the
/// month stays held until released by hand.
#[tokio::test]
async fn a_release_in_another_tasks_failed_block_leaves_that_block_alone() {
    let db = server().await.fresh_db("release_25p02_shared").await;
    let a = Arc::new(db.connect().await);
    let m = ym("2025-12");
    a.batch_execute("CREATE TABLE work (n int)").await.unwrap();
    for round in 0..50 {
        let g = MonthLock::new(m).acquire(a.clone()).await.unwrap();
        a.batch_execute("BEGIN; INSERT INTO work VALUES (1); SAVEPOINT s")
            .await
            .unwrap();
        a.batch_execute("SELECT 1/0").await.unwrap_err();
        match g.release().await {
            Err(Error::Database(e)) => {
                assert_eq!(e.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION))
            }
            other => panic!("round {round}: {other:?}"),
        }
        a.batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT")
            .await
            .unwrap();
        let rows: i64 = a
            .query_one("SELECT count(*) FROM work", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, round + 1, "round {round}: the other task's work kept");
        assert!(a.held(m).await.unwrap(), "round {round}");
        a.batch_execute("SELECT month_lock_release(2025, 12)")
            .await
            .unwrap();
    }
}

/// A pool object that reaches the Client through two derefs, like deadpool_postgres::Object.
struct PoolObject(Arc<Client>);
impl Deref for PoolObject {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

#[tokio::test]
async fn a_pooled_guard_dropped_in_a_failed_transaction_block_goes_back_without_the_month() {
    let db = server().await.fresh_db("drop_25p02").await;
    let observer = db.connect().await;
    let conn = Arc::new(db.connect().await);
    let m = ym("2025-10");
    for round in 0..20 {
        let g = MonthLock::new(m)
            .acquire(Pooled(Box::new(PoolObject(conn.clone()))))
            .await
            .unwrap();
        g.client().batch_execute("BEGIN").await.unwrap();
        let e = g.client().batch_execute("SELECT 1/0").await.unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO));
        drop(g); // the object goes back to the "pool"
                 // The next borrower's first statement: no failed block, no month.
        assert!(!conn.held(m).await.unwrap(), "round {round}: month kept");
        assert!(!is_locked_elsewhere(&observer, m).await, "round {round}");
    }
}

#[tokio::test]
async fn a_pooled_release_that_keeps_failing_ends_the_session() {
    let db = server().await.fresh_db("release_fails").await;
    let observer = db.connect().await;
    let user = db.with_new_role("release_fails").await;
    let conn = Arc::new(user.connect().await);
    let m = ym("2025-09");
    // Every release fails while the role may not run it (a renamed schema no longer does: the
    // guard looks the schema up again and retries).
    const MOVE: &str =
        "REVOKE EXECUTE ON FUNCTION month_lock_release(integer, integer) FROM PUBLIC";
    const BACK: &str = "GRANT EXECUTE ON FUNCTION month_lock_release(integer, integer) TO PUBLIC";
    let g = MonthLock::new(m)
        .acquire(Pooled(Box::new(PoolObject(conn.clone()))))
        .await
        .unwrap();
    observer.batch_execute(MOVE).await.unwrap();
    let e = g.release().await.expect_err("the release cannot succeed");
    println!("release failed: {e}");
    observer.batch_execute(BACK).await.unwrap();
    // The connection is not handed back holding the month: the session is gone.
    wait_until_free(&observer, m).await;
    let start = Instant::now();
    while !conn.is_closed() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "connection still open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // With a shared handle the session is left alone (the release is queued instead).
    let shared = Arc::new(user.connect().await);
    let g = MonthLock::new(m).acquire(shared.clone()).await.unwrap();
    observer.batch_execute(MOVE).await.unwrap();
    g.release().await.expect_err("the release cannot succeed");
    observer.batch_execute(BACK).await.unwrap();
    assert!(!shared.is_closed());
    shared
        .batch_execute("SELECT month_lock_release_all()")
        .await
        .unwrap();
}
