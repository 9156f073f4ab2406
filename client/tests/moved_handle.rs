//! A guard whose handle stores the `Client` inline (a pool's object, a user's own wrapper)
//! moves the `Client` when it moves: from the acquisition's future into the guard, and on with
//! the guard. An acquisition dropped on `guard.client()` must still leave the guard's month
//! alone (the connection is known by its session, not by where the `Client` sits).

use std::future::Future;
use std::ops::Deref;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::Duration;

use month_lock_client::{MonthLock, MonthLockExt, MonthLockGuard, YearMonth};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::ym;

/// A user's connection type that owns its `Client` inline.
struct Inline(Client);

impl Deref for Inline {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

/// Poll `fut` once (the request is queued on the connection then) and drop it.
fn poll_once_and_drop<F: Future>(fut: F) {
    let mut fut = pin!(fut);
    let _ = fut.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

/// Drops an acquisition of `shape` naming `m` on the guard's connection, once polled.
async fn drop_acquisition_on(
    guard: &MonthLockGuard<Inline>,
    shape: &str,
    m: YearMonth,
    n: YearMonth,
) {
    let c = guard.client();
    match shape {
        "one" => poll_once_and_drop(MonthLock::new(m).timeout(Duration::from_secs(1)).acquire(c)),
        "any_of" => poll_once_and_drop(MonthLock::any_of([n, m]).unwrap().acquire(c)),
        "set" => poll_once_and_drop(
            MonthLock::set([m, n])
                .unwrap()
                .timeout(Duration::ZERO)
                .acquire(c),
        ),
        _ => unreachable!(),
    }
    // The clean-up (queued behind the dropped request) has run by the time this answers.
    c.batch_execute("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_dropped_acquisition_leaves_a_moved_guards_month_alone() {
    let db = server().await.fresh_db("moved_handle").await;
    let db = db.with_new_role("moved_handle").await;
    let observer = db.connect().await;
    let (m, n) = (ym("2032-03"), ym("2032-04"));
    let rounds = 60;
    for shape in ["one", "any_of", "set"] {
        let mut freed = 0;
        for _ in 0..rounds {
            let guard = MonthLock::new(m)
                .acquire(Inline(db.connect().await))
                .await
                .unwrap();
            // Moved, as programs do (into a collection, another task, a struct).
            let mut moved = vec![guard];
            let guard = moved.pop().unwrap();
            drop_acquisition_on(&guard, shape, m, n).await;
            if !observer.is_locked(m).await.unwrap() {
                freed += 1;
            }
            guard.release().await.ok();
            assert!(
                !observer.is_locked(n).await.unwrap(),
                "{shape}: {n} left held"
            );
        }
        assert_eq!(
            freed, 0,
            "{shape}: the guard's month was freed behind it in {freed} of {rounds} rounds"
        );
    }
}
