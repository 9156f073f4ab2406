//! A guard's `release()` future dropped before its answer: the release still happens before the
//! connection is let go (for a pooled connection: before the next borrower's statements), and a
//! set guard's `LockLost` names the month that was lost.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::task::{Context, Waker};

use month_lock_client::{Error, LostReason, MonthLock, MonthLockExt, Pooled};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::ym;

/// Stands in for a pool's object: the pool (here: the test) keeps the connection after the
/// object is dropped.
struct Object(Arc<Client>);

impl Deref for Object {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

#[tokio::test]
async fn a_dropped_release_of_a_pooled_guard_still_releases_before_the_next_borrower() {
    let db = server().await.fresh_db("release_dropped").await;
    let db = db.with_new_role("release_dropped").await;
    let (pooled, observer) = (Arc::new(db.connect().await), db.connect().await);
    let m = ym("2032-05");
    let rounds = 50;
    let mut left = 0;
    for _ in 0..rounds {
        let guard = MonthLock::new(m)
            .acquire(Pooled(Box::new(Object(pooled.clone()))))
            .await
            .unwrap();
        // The borrower leaves a failed transaction block behind.
        let _ = guard.client().batch_execute("BEGIN; SELECT 1/0").await;
        let mut release = Box::pin(guard.release());
        assert!(release
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        drop(release);
        // The next borrower of the same connection.
        let _ = pooled.batch_execute("ROLLBACK").await;
        pooled.batch_execute("SELECT 1").await.unwrap();
        if pooled.held(m).await.unwrap() {
            left += 1;
            pooled
                .batch_execute("SELECT month_lock_release_all()")
                .await
                .unwrap();
        }
        assert!(!pooled.held(m).await.unwrap());
    }
    assert!(!observer.is_locked(m).await.unwrap());
    assert_eq!(
        left, 0,
        "the connection went back holding the month in {left} of {rounds} rounds"
    );
}

#[tokio::test]
async fn a_set_guards_lock_lost_names_the_lost_month() {
    let db = server().await.fresh_db("release_lost_month").await;
    let db = db.with_new_role("release_lost_month").await;
    let client = db.connect().await;
    let guard = MonthLock::range(ym("2033-05"), ym("2033-07"))
        .unwrap()
        .acquire(&client)
        .await
        .unwrap();
    client
        .batch_execute("SELECT month_lock_release(2033, 6)")
        .await
        .unwrap();
    match guard.release().await {
        Err(Error::LockLost { ym: lost, reason }) => {
            assert_eq!(reason, LostReason::NotHeld);
            assert_eq!(
                lost,
                ym("2033-06"),
                "the month released behind the guard's back"
            );
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    for m in ["2033-05", "2033-06", "2033-07"] {
        assert!(!client.held(ym(m)).await.unwrap(), "{m} kept");
    }
}
