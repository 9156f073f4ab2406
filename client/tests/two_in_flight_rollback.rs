//! Two acquisitions of one month in flight at once on one connection, the first dropped after
//! taking the month inside a transaction block that another task rolls back (which undoes the
//! first one's marker, not its lock): the first one's clean-up leaves the month to the second
//! (it claims it), and when the second ends without it ("already held"), the month is released
//! (rustdoc of `MonthLockGuard`, "Cancelling an acquisition").

use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

use month_lock_client::{Error, MonthLock, MonthLockExt};
use month_lock_tests::server;

mod common;
use common::months::ym;

#[tokio::test]
async fn a_month_left_to_a_second_acquisition_is_released_when_it_ends_without_it() {
    let db = server().await.fresh_db("two_in_flight").await;
    let db = db.with_new_role("two_in_flight").await;
    let (client, observer) = (db.connect().await, db.connect().await);
    let m = ym("2035-01");
    // The session's first statement looks the extension's schema up; from then on an
    // acquisition is on the wire after its first poll.
    assert!(!client.held(m).await.unwrap());
    let rounds = 100;
    let mut left = 0;
    for round in 0..rounds {
        let mut cx = Context::from_waker(Waker::noop());
        client.batch_execute("BEGIN").await.unwrap();
        let mut first = Box::pin(
            MonthLock::new(m)
                .timeout(Duration::from_secs(1))
                .acquire(&client),
        );
        assert!(first.as_mut().poll(&mut cx).is_pending());
        // Another task's rollback: undoes the first one's marker, not its lock.
        let mut rollback = Box::pin(client.batch_execute("ROLLBACK"));
        assert!(rollback.as_mut().poll(&mut cx).is_pending());
        let mut second = Box::pin(
            MonthLock::new(m)
                .timeout(Duration::from_secs(1))
                .acquire(&client),
        );
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(first);
        rollback.await.unwrap();
        match second.await {
            Err(e) => assert!(
                matches!(e.error(), Error::AlreadyHeld { .. }),
                "round {round}: {:?}",
                e.error()
            ),
            Ok(_) => panic!("round {round}: the second acquisition got a month the session held"),
        }
        // Runs after everything queued so far on the connection.
        client.batch_execute("SELECT 1").await.unwrap();
        if observer.is_locked(m).await.unwrap() {
            left += 1;
            client.release_all().await.unwrap();
        }
    }
    assert_eq!(
        left, 0,
        "the dropped request's month was left held in {left} of {rounds} rounds"
    );
}
