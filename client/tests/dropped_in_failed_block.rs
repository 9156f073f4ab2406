//! An acquisition dropped inside a transaction block that another task's statement then fails
//! (BEGIN; the acquisition; a failing statement; the drop; ROLLBACK): the server refuses the
//! clean-up (SQLSTATE 25P02) and a session unlock is not undone by the later ROLLBACK, so the
//! clean-up is queued again ahead of the next acquisition on that connection.

use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

use month_lock_client::{MonthLock, MonthLockExt};
use month_lock_tests::server;

mod common;
use common::months::ym;

#[tokio::test]
async fn a_clean_up_refused_in_a_failed_block_runs_before_the_next_acquisition() {
    let db = server().await.fresh_db("dropped_in_failed_block").await;
    let db = db.with_new_role("dropped_in_failed_block").await;
    let (client, observer) = (db.connect().await, db.connect().await);
    let (m, other) = (ym("2031-05"), ym("2031-06"));
    let rounds = 60;
    let mut left = 0;
    for _ in 0..rounds {
        client.batch_execute("BEGIN").await.unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut acquisition = Box::pin(
            MonthLock::new(m)
                .timeout(Duration::from_secs(5))
                .acquire(&client),
        );
        assert!(acquisition.as_mut().poll(&mut cx).is_pending());
        // Another task's statement fails the block.
        let mut failing = Box::pin(client.batch_execute("SELECT 1/0"));
        let _ = failing.as_mut().poll(&mut cx);
        drop(acquisition);
        assert!(failing.await.is_err());
        client.batch_execute("ROLLBACK").await.unwrap();
        // Let the refusal be seen (it arrives with the clean-up's answer).
        client.batch_execute("SELECT 1").await.unwrap();
        tokio::task::yield_now().await;
        // The next acquisition on the connection (any month).
        let guard = MonthLock::new(other).acquire(&client).await.unwrap();
        if observer.is_locked(m).await.unwrap() {
            left += 1;
            client
                .batch_execute("SELECT month_lock_release(2031, 5)")
                .await
                .unwrap();
        }
        guard.release().await.unwrap();
    }
    assert_eq!(
        left, 0,
        "the dropped request's month was still held after the next acquisition in {left} of {rounds} rounds"
    );
}

// Several worker threads: the task that reads the clean-up's answer may run after the next
// acquisition is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_up_whose_refusal_is_not_seen_yet_runs_before_the_next_acquisition() {
    // As above, but the next acquisition (of the same month, one attempt) follows the ROLLBACK
    // at once: the refusal of the clean-up may not have been read yet.
    let db = server().await.fresh_db("dropped_in_failed_block_now").await;
    let db = db.with_new_role("dropped_in_failed_block_now").await;
    let (client, observer) = (db.connect().await, db.connect().await);
    let m = ym("2031-07");
    let rounds = 400;
    let (mut failed, mut answered) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        client.batch_execute("BEGIN").await.unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut acquisition = Box::pin(
            MonthLock::new(m)
                .timeout(Duration::from_secs(5))
                .acquire(&client),
        );
        if let std::task::Poll::Ready(r) = acquisition.as_mut().poll(&mut cx) {
            // Answered at once (another thread drove the connection): nothing to drop.
            answered.push(r.map(|_| ()).map_err(|e| e.into_error().to_string()));
            client.batch_execute("ROLLBACK").await.unwrap();
            client.release_all().await.unwrap();
            continue;
        }
        let mut failing = Box::pin(client.batch_execute("SELECT 1/0"));
        let failed_now = match failing.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => Some(r),
            std::task::Poll::Pending => None,
        };
        drop(acquisition);
        match failed_now {
            Some(r) => assert!(r.is_err()),
            None => assert!(failing.await.is_err()),
        }
        client.batch_execute("ROLLBACK").await.unwrap();
        match MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&client)
            .await
        {
            Ok(guard) => {
                assert!(observer.is_locked(m).await.unwrap(), "round {round}");
                guard.release().await.unwrap();
            }
            Err(e) => {
                failed.push((round, e.into_error().to_string()));
                client.release_all().await.unwrap();
            }
        }
        assert!(!observer.is_locked(m).await.unwrap(), "round {round}");
    }
    assert!(answered.len() < rounds / 2, "{answered:?}");
    assert!(
        failed.is_empty(),
        "{} of {rounds} rounds: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
}
