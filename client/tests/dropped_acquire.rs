//! Acquisitions dropped while in flight, at every await point, on a connection shared with a guard
//! that holds a month (rustdoc of `MonthLockGuard`, "Cancelling an acquisition"): the clean-up
//! releases only what the dropped request took, and no cancel request ever fails a later statement
//! (none is sent: a dropped wait runs to its end).

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use month_lock_client::kind::Kind;
use month_lock_client::{MonthLock, MonthLockExt, YearMonth};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::ym;

/// Poll `fut` `polls` times (letting the connection task run between polls), then drop it.
/// Returns true if it completed within those polls (then the result is dropped too).
async fn poll_then_drop<F: Future>(fut: F, polls: usize) -> bool {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..polls {
        if fut.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

/// Another session cannot take `m` (so somebody holds it).
async fn taken_elsewhere(other: &Client, m: YearMonth) -> bool {
    match MonthLock::new(m)
        .timeout(Duration::ZERO)
        .acquire(other)
        .await
    {
        Ok(guard) => {
            guard.release().await.unwrap();
            false
        }
        Err(e) if e.is_timeout() => true,
        Err(e) => panic!("{e}"),
    }
}

/// An acquisition (of any kind of request) whose outcome is dropped when it completes.
type Acquisition<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

fn acquisition<K: Kind>(request: MonthLock<K>, client: &Client) -> Acquisition<'_> {
    Box::pin(async move { drop(request.acquire(client).await) })
}

/// The kinds of request dropped, over: `held` (the shared connection's guard holds it), `busy`
/// (another session holds it, so a wait really waits) and `free`; acquired on `client`.
fn requests(
    client: &Client,
    held: YearMonth,
    busy: YearMonth,
    free: YearMonth,
) -> Vec<(&'static str, Acquisition<'_>)> {
    let c = client;
    vec![
        ("held, unbounded", acquisition(MonthLock::new(held), c)),
        (
            "held, 5 s",
            acquisition(MonthLock::new(held).timeout(Duration::from_secs(5)), c),
        ),
        (
            "held, no wait",
            acquisition(MonthLock::new(held).timeout(Duration::ZERO), c),
        ),
        (
            "held, shared",
            acquisition(MonthLock::new(held).shared(), c),
        ),
        (
            "held in a set",
            acquisition(MonthLock::set([free, held]).unwrap(), c),
        ),
        (
            "held in any_of",
            acquisition(MonthLock::any_of([held, free]).unwrap(), c),
        ),
        // A dropped wait runs to its end (no cancel): bounded here, or it would block the
        // shared connection for as long as the other session holds the month.
        (
            "busy, 300 ms",
            acquisition(MonthLock::new(busy).timeout(Duration::from_millis(300)), c),
        ),
        (
            "busy in a set, 300 ms",
            acquisition(
                MonthLock::set([busy, free])
                    .unwrap()
                    .timeout(Duration::from_millis(300)),
                c,
            ),
        ),
        ("free, unbounded", acquisition(MonthLock::new(free), c)),
        (
            "free, 5 s",
            acquisition(MonthLock::new(free).timeout(Duration::from_secs(5)), c),
        ),
        (
            "free set",
            acquisition(MonthLock::set([free, free.succ().unwrap()]).unwrap(), c),
        ),
        (
            "free any_of",
            acquisition(MonthLock::any_of([busy, free]).unwrap(), c),
        ),
    ]
}

#[tokio::test]
async fn dropped_acquisitions_release_only_what_they_took_and_cancel_nothing_else() {
    let db = server().await.fresh_db("dropped_acquire").await;
    let (shared, other, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let (held, busy, free) = (ym("2024-03"), ym("2024-07"), ym("2024-09"));
    let guard = MonthLock::new(held).acquire(&shared).await.unwrap();
    let busy_guard = MonthLock::new(busy).acquire(&other).await.unwrap();

    let rounds = 25; // x 12 kinds x polls 0..=4 below
    let mut dropped = 0;
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        for (name, acquisition) in requests(&shared, held, busy, free) {
            let polls = round % 5;
            let completed = poll_then_drop(acquisition, polls).await;
            if !completed {
                dropped += 1;
            }
            let t = Instant::now();
            // The next statements on the shared connection succeed (no stray cancel) ...
            for _ in 0..3 {
                let still = shared
                    .held(held)
                    .await
                    .unwrap_or_else(|e| panic!("{name}, {polls} polls: next statement: {e}"));
                assert!(
                    still,
                    "{name}, {polls} polls: the guard's month was released"
                );
            }
            // ... and what the dropped request may have taken is released by then.
            for m in [free, free.succ().unwrap(), busy] {
                assert!(
                    !shared.held(m).await.unwrap(),
                    "{name}, {polls} polls: {m} kept"
                );
            }
            slowest = slowest.max(t.elapsed());
            // From another session: the guard's month is still held.
            assert!(
                taken_elsewhere(&observer, held).await,
                "{name}, {polls} polls: another session took the guard's month"
            );
        }
    }
    println!(
        "{} acquisitions, {dropped} dropped in flight, {:?}; slowest clean-up {:?}",
        rounds * 12,
        start.elapsed(),
        slowest
    );
    assert!(
        dropped > rounds * 12 / 2,
        "most acquisitions were dropped in flight"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a clean-up waited {slowest:?}"
    );
    guard.release().await.unwrap();
    busy_guard.release().await.unwrap();
    assert!(!shared.held(held).await.unwrap());
}

#[tokio::test]
async fn a_grant_racing_the_drop_of_a_wait_is_released() {
    let db = server().await.fresh_db("dropped_grant").await;
    let (shared, other, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let (held, m) = (ym("2025-01"), ym("2025-02"));
    let guard = MonthLock::new(held).acquire(&shared).await.unwrap();
    let mut granted_first = 0;
    let mut slowest = Duration::ZERO;
    for round in 0..200u32 {
        let holder = MonthLock::new(m).acquire(&other).await.unwrap();
        let mut wait = Box::pin(MonthLock::new(m).acquire(&shared));
        // Enter the wait, then release it from the other session at varying moments around
        // the drop: the drop races the grant.
        let mut cx = Context::from_waker(Waker::noop());
        let _ = wait.as_mut().poll(&mut cx);
        tokio::task::yield_now().await;
        let release = holder.release();
        if round % 2 == 0 {
            release.await.unwrap();
            tokio::time::sleep(Duration::from_micros(u64::from(round % 7) * 50)).await;
            if let Poll::Ready(Ok(g)) = wait.as_mut().poll(&mut cx) {
                granted_first += 1;
                drop(g);
            }
        } else {
            let _ = wait.as_mut().poll(&mut cx);
            release.await.unwrap();
        }
        drop(wait);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(
                shared.held(held).await.unwrap(),
                "round {round}: guard's month lost"
            );
        }
        assert!(!shared.held(m).await.unwrap(), "round {round}: {m} kept");
        slowest = slowest.max(t.elapsed());
        assert!(
            !observer.is_locked(m).await.unwrap(),
            "round {round}: {m} still locked"
        );
    }
    println!("200 rounds, {granted_first} granted before the drop, slowest clean-up {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "a clean-up took {slowest:?}"
    );
    assert!(taken_elsewhere(&observer, held).await);
    guard.release().await.unwrap();
}

/// The stray-cancel race: a wait is dropped, the month is granted right after, and
/// another task sends a 50 ms statement on the same connection, while the wait is in flight
/// (it then runs between the acquisition and its clean-up) or after the drop. No statement of
/// the other task ever fails, the guard's month stays held, the grant is released.
#[tokio::test]
async fn a_dropped_wait_never_fails_another_tasks_statement() {
    let db = server().await.fresh_db("dropped_no_stray").await;
    let (shared, other, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let (held, m) = (ym("2025-05"), ym("2025-06"));
    let guard = MonthLock::new(held).acquire(&shared).await.unwrap();
    let pid: i32 = shared
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let rounds = 300u32;
    for round in 0..rounds {
        let holder = MonthLock::new(m).acquire(&other).await.unwrap();
        let mut in_flight = None;
        {
            let mut wait = Box::pin(MonthLock::new(m).acquire(&shared));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(wait.as_mut().poll(&mut cx).is_pending());
            // Queued in pg_locks before the drop, as a real waiter.
            let mut queued = false;
            for _ in 0..500 {
                queued = observer
                    .query_one(
                        "SELECT count(*) > 0 FROM pg_catalog.pg_locks WHERE NOT granted AND pid = $1",
                        &[&pid],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if queued {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert!(queued, "round {round}: the wait is queued");
            if round % 2 == 0 {
                let mut f = Box::pin(shared.batch_execute("SELECT pg_catalog.pg_sleep(0.05)"));
                assert!(f.as_mut().poll(&mut cx).is_pending());
                in_flight = Some(f);
            }
        } // the wait is dropped here
        let statement = async {
            if let Some(f) = in_flight {
                return f.await;
            }
            tokio::time::sleep(Duration::from_micros(u64::from(round % 5) * 200)).await;
            shared
                .batch_execute("SELECT pg_catalog.pg_sleep(0.05)")
                .await
        };
        let grant = async {
            tokio::time::sleep(Duration::from_micros(u64::from(round % 3) * 300)).await;
            holder.release().await
        };
        let (statement, grant) = tokio::join!(statement, grant);
        grant.unwrap();
        if let Err(e) = statement {
            panic!(
                "round {round}: the other task's statement failed: {:?}",
                e.as_db_error()
            );
        }
        assert!(
            shared.held(held).await.unwrap(),
            "round {round}: guard's month lost"
        );
        assert!(!shared.held(m).await.unwrap(), "round {round}: {m} kept");
    }
    assert!(taken_elsewhere(&observer, held).await);
    guard.release().await.unwrap();
}
