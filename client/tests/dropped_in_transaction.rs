//! A dropped acquisition whose marker a rollback undid (rustdoc of `MonthLockGuard`, "Cancelling an
//! acquisition"): another task's `ROLLBACK`, `ROLLBACK TO SAVEPOINT` or the rollback of a failed
//! block runs between the acquisition and its clean-up on a shared connection. The month the
//! request took is released all the same, and a month a live guard of the connection holds stays
//! held.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use month_lock_client::{MonthLock, MonthLockExt, YearMonth};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::ym;

/// The ways another task ends (part of) the transaction block the acquisition ran in: the
/// statements before the acquisition, and the ones queued while it is in flight.
const SHAPES: [(&str, &str, &[&str]); 4] = [
    ("rollback", "BEGIN", &["ROLLBACK"]),
    (
        "rollback to savepoint",
        "BEGIN; SAVEPOINT s",
        &["ROLLBACK TO SAVEPOINT s; COMMIT"],
    ),
    ("failed block", "BEGIN", &["SELECT 1/0", "ROLLBACK"]),
    (
        "failed subtransaction",
        "BEGIN; SAVEPOINT s",
        &["SELECT 1/0", "ROLLBACK TO SAVEPOINT s", "COMMIT"],
    ),
];

/// Polls the acquisition once (it is sent), queues `then` behind it, drops the acquisition.
async fn acquire_then_drop(client: &Client, request: impl Future, then: &[&str]) {
    let mut fut = Box::pin(request);
    let mut cx = Context::from_waker(Waker::noop());
    let _: Poll<_> = fut.as_mut().poll(&mut cx);
    // The other task's statements go out behind the acquisition, before the clean-up.
    let mut others: Vec<_> = then
        .iter()
        .map(|sql| Box::pin(client.batch_execute(sql)))
        .collect();
    for other in &mut others {
        let _: Poll<_> = other.as_mut().poll(&mut cx);
    }
    drop(fut);
    for other in others {
        let _ = other.await;
    }
}

/// Runs `then` as the other task would, each statement on its own.
async fn run_all(client: &Client, then: &[&str]) {
    for sql in then {
        let _ = client.batch_execute(sql).await;
    }
}

async fn held_here(client: &Client, m: YearMonth) -> bool {
    client.held(m).await.unwrap()
}

#[tokio::test]
async fn a_rolled_back_marker_does_not_leave_the_month_held() {
    let db = server().await.fresh_db("drop_in_xact").await;
    let client = db.connect().await;
    let observer = db.connect().await;
    let (m, a, b) = (ym("2022-03"), ym("2022-04"), ym("2022-05"));
    for round in 0..100 {
        for (shape, before, then) in SHAPES {
            client.batch_execute(before).await.unwrap();
            acquire_then_drop(&client, MonthLock::new(m).acquire(&client), then).await;
            assert!(
                !held_here(&client, m).await,
                "{shape}, round {round}: one month"
            );
            client.batch_execute(before).await.unwrap();
            let set = MonthLock::set([a, b]).unwrap();
            acquire_then_drop(&client, set.acquire(&client), then).await;
            assert!(
                !held_here(&client, a).await && !held_here(&client, b).await,
                "{shape}, round {round}: a set"
            );
            client.batch_execute(before).await.unwrap();
            let any = MonthLock::any_of([a, b]).unwrap();
            acquire_then_drop(&client, any.acquire(&client), then).await;
            assert!(
                !held_here(&client, a).await && !held_here(&client, b).await,
                "{shape}, round {round}: any_of"
            );
        }
    }
    assert!(!observer.is_locked(m).await.unwrap());
}

#[tokio::test]
async fn a_live_guards_month_stays_held_through_a_dropped_acquisition_and_a_rollback() {
    let db = server().await.fresh_db("drop_in_xact_guard").await;
    let client = db.connect().await;
    let (m, other) = (ym("2022-06"), ym("2022-07"));
    for round in 0..100 {
        for (shape, before, then) in SHAPES {
            // The guard's own marker is undone too: it took the month inside the block.
            client.batch_execute(before).await.unwrap();
            let guard = MonthLock::new(m).acquire(&client).await.unwrap();
            run_all(&client, then).await;
            client.batch_execute(before).await.unwrap();
            acquire_then_drop(&client, MonthLock::new(m).acquire(&client), then).await;
            client.batch_execute(before).await.unwrap();
            let set = MonthLock::set([m, other]).unwrap();
            acquire_then_drop(&client, set.acquire(&client), then).await;
            assert!(
                held_here(&client, m).await,
                "{shape}, round {round}: the guard's month"
            );
            assert!(
                !held_here(&client, other).await,
                "{shape}, round {round}: the set's other month"
            );
            tokio::time::timeout(Duration::from_secs(10), guard.release())
                .await
                .unwrap()
                .unwrap();
        }
    }
}
