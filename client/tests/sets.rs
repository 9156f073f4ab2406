//! Fencing tokens, sets of months (all or nothing) and `any_of` (first free month) against a
//! real PostgreSQL with month_lock 0.2.0's set functions installed (client/README.md, "Taking a
//! month").

use std::sync::Arc;
use std::time::Duration;

use month_lock_client::{Error, Heartbeat, LostReason, MonthLock, MonthLockExt, YearMonth};
use month_lock_tests::{backend_pid, server, wait_until_waiting};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

mod common;
use common::months::ym;

fn months(first: &str, last: &str) -> Vec<YearMonth> {
    ym(first).through(ym(last)).collect()
}

async fn held_by(client: &Client, months: &[YearMonth]) -> Vec<bool> {
    let mut held = Vec::new();
    for m in months {
        held.push(client.held(*m).await.unwrap());
    }
    held
}

#[tokio::test]
async fn token_is_the_same_for_a_hold_and_larger_for_the_next_holder() {
    let db = server().await.fresh_db("tokens").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let m = ym("2024-03");

    let guard = MonthLock::new(m).acquire(&a).await.unwrap();
    let first = guard.token().await.unwrap();
    assert!(first > 0, "tokens are positive: {first}");
    assert_eq!(guard.token().await.unwrap(), first, "cached");
    let server_side: i64 = a
        .query_one("SELECT month_lock_token(2024, 3)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(server_side, first, "the same hold has the same token");
    assert_eq!(guard.tokens().await.unwrap(), vec![(m, first)]);
    guard.release().await.unwrap();

    let next = MonthLock::new(m).acquire(&b).await.unwrap();
    let second = next.token().await.unwrap();
    assert!(second > first, "next holder: {second} > {first}");
    next.release().await.unwrap();

    // Again by the first session: a new hold, a larger token still.
    let again = MonthLock::new(m).acquire(&a).await.unwrap();
    assert!(again.token().await.unwrap() > second);
    drop(again);

    // Shared holds have no token; nothing is sent.
    let shared = MonthLock::new(m).shared().acquire(&b).await.unwrap();
    assert!(matches!(
        shared.token().await,
        Err(Error::InvalidRequest(_))
    ));

    // A hold released behind the guard's back: the token call reports the loss.
    let c = db.connect().await;
    let lost = MonthLock::new(ym("2024-04")).acquire(&c).await.unwrap();
    c.release_all().await.unwrap();
    match lost.token().await {
        Err(Error::LockLost {
            reason: LostReason::NotHeld,
            ..
        }) => {}
        other => panic!("expected LockLost NotHeld, got {other:?}"),
    }
}

#[tokio::test]
async fn a_set_has_a_token_per_month_and_token_is_the_largest() {
    let db = server().await.fresh_db("set_tokens").await;
    let a = db.connect().await;
    let q = months("2024-01", "2024-03");
    let guard = MonthLock::set(q.clone())
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    let tokens = guard.tokens().await.unwrap();
    assert_eq!(
        tokens.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        q,
        "ascending by month"
    );
    let max = tokens.iter().map(|(_, t)| *t).max().unwrap();
    assert_eq!(guard.token().await.unwrap(), max);
    assert_eq!(guard.tokens().await.unwrap(), tokens, "cached");
    guard.release().await.unwrap();
}

#[tokio::test]
async fn any_of_skips_busy_months_and_reports_none_free() {
    let db = server().await.fresh_db("claim").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let busy = MonthLock::range(ym("2024-01"), ym("2024-02"))
        .unwrap()
        .acquire(&b)
        .await
        .unwrap();

    let got = MonthLock::any_of(months("2024-01", "2024-03"))
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    assert_eq!(got.year_month(), ym("2024-03"));
    assert_eq!(got.months(), [ym("2024-03")]);
    assert!(got.token().await.unwrap() > 0);
    got.release().await.unwrap();

    // The order given is the order tried.
    let got = MonthLock::any_of([ym("2024-06"), ym("2024-05")])
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    assert_eq!(got.year_month(), ym("2024-06"));
    drop(got);

    // All busy: nothing taken, a "busy" error.
    let err = MonthLock::any_of(months("2024-01", "2024-02"))
        .unwrap()
        .acquire(&a)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(err.error(), Error::NoneFree { .. }), "{err:?}");
    assert!(err.to_string().contains("2024-01..2024-02"), "{err}");
    assert_eq!(held_by(&a, &months("2024-01", "2024-03")).await, [false; 3]);

    drop(busy);

    // Refusals before anything is sent: an empty list when it is made (a timeout or shared
    // mode does not compile for any_of: see the compile_fail examples of `MonthLock`).
    let err: Error = MonthLock::any_of([]).unwrap_err().into();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn any_of_does_not_jump_the_queue() {
    let db = server().await.fresh_db("claim_queue").await;
    let (a, b, c) = (
        db.connect().await,
        db.connect().await,
        Arc::new(db.connect().await),
    );
    let observer = db.connect().await;
    let holder = MonthLock::new(ym("2024-01")).acquire(&b).await.unwrap();
    let c_pid = backend_pid(&c).await;
    // The waiter keeps its guard (and so the month) until the claim below has run.
    let waiter = tokio::spawn(async move {
        MonthLock::new(ym("2024-01"))
            .timeout(Duration::from_secs(10))
            .acquire(c)
            .await
            .map_err(|e| e.into_error())
    });
    wait_until_waiting(&observer, c_pid).await;
    drop(holder);
    // The queued session gets the month; a claim racing with the hand-over never does.
    let claimed = MonthLock::any_of([ym("2024-01"), ym("2024-02")])
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    assert_eq!(claimed.year_month(), ym("2024-02"));
    let got = waiter
        .await
        .unwrap()
        .expect("the queued waiter got 2024-01");
    assert_eq!(got.year_month(), ym("2024-01"));
}

#[tokio::test]
async fn a_set_is_all_or_nothing() {
    let db = server().await.fresh_db("all").await;
    let (a, b) = (db.connect().await, Arc::new(db.connect().await));
    let q = months("2024-01", "2024-03");
    let middle = MonthLock::new(ym("2024-02"))
        .acquire(b.clone())
        .await
        .unwrap();

    let err = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::from_millis(100))
        .acquire(&a)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    match err.error() {
        Error::NotAllFree { months, timeout } => {
            assert_eq!(months, &q);
            assert_eq!(*timeout, Duration::from_millis(100));
        }
        other => panic!("expected NotAllFree, got {other:?}"),
    }
    assert_eq!(held_by(&a, &q).await, [false; 3], "false leaves nothing");
    assert!(!b.is_locked(ym("2024-01")).await.unwrap());
    let err = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::ZERO)
        .acquire(&a)
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(held_by(&a, &q).await, [false; 3]);

    // A waiting set gets every month once the busy one is released.
    let handover = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        middle.release().await.unwrap();
    });
    let guard = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::from_secs(10))
        .acquire(&a)
        .await
        .unwrap();
    handover.await.unwrap();
    assert_eq!(guard.months(), q);
    assert_eq!(held_by(&a, &q).await, [true; 3], "true holds all");
    for m in &q {
        assert!(b.is_locked(*m).await.unwrap());
    }
    // A set naming a month this session holds is refused (no stacking).
    let err = MonthLock::range(ym("2024-03"), ym("2024-04"))
        .unwrap()
        .acquire(&a)
        .await
        .unwrap_err();
    assert!(
        matches!(err.error(), Error::AlreadyHeld { ym: m } if *m == ym("2024-03")),
        "{err:?}"
    );
    assert!(!a.held(ym("2024-04")).await.unwrap());
    guard.release().await.unwrap();
    assert_eq!(held_by(&a, &q).await, [false; 3]);

    // Dropping a set guard releases every month.
    let guard = MonthLock::set(q.clone())
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    drop(guard);
    assert_eq!(held_by(&a, &q).await, [false; 3]);

    // Empty sets are refused when they are made (shared sets do not compile: see the
    // compile_fail examples of `MonthLock`).
    for bad in [
        MonthLock::set([]),
        MonthLock::range(ym("2024-02"), ym("2024-01")),
    ] {
        let err: Error = bad.unwrap_err().into();
        assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    }
}

#[tokio::test]
async fn a_set_guard_notices_losing_any_of_its_months() {
    let db = server().await.fresh_db("all_lost").await;
    let a = db.connect().await;
    let q = months("2024-01", "2024-03");
    let guard = MonthLock::set(q.clone())
        .unwrap()
        .acquire(&a)
        .await
        .unwrap()
        .with_heartbeat(Heartbeat {
            interval: Duration::from_millis(50),
            timeout: None,
        });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), guard.lost())
            .await
            .is_err(),
        "all held: no loss"
    );
    a.batch_execute("SELECT month_lock_release(2024, 2)")
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("lost fired");
    assert_eq!(reason, LostReason::NotHeld);
    assert!(matches!(
        guard.release().await,
        Err(Error::LockLost {
            reason: LostReason::NotHeld,
            ..
        })
    ));
    assert_eq!(
        held_by(&a, &q).await,
        [false; 3],
        "the rest released anyway"
    );
}

#[tokio::test]
async fn a_failed_set_acquire_leaves_nothing_held() {
    let db = server().await.fresh_db("all_failed").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let q = months("2024-01", "2024-03");
    let last = MonthLock::new(ym("2024-03")).acquire(&b).await.unwrap();
    a.batch_execute("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    let err = MonthLock::set(q.clone())
        .unwrap()
        .acquire(&a)
        .await
        .unwrap_err();
    assert_eq!(
        err.error().sqlstate(),
        Some(&SqlState::QUERY_CANCELED),
        "{err:?}"
    );
    a.batch_execute("RESET statement_timeout").await.unwrap();
    assert_eq!(held_by(&a, &q).await, [false; 3]);
    drop(last);
}

#[tokio::test]
async fn sets_and_claims_in_transaction_scope() {
    let db = server().await.fresh_db("xact_sets").await;
    let (mut a, b) = (db.connect().await, db.connect().await);
    let q = months("2024-01", "2024-02");

    let tx = a.transaction().await.unwrap();
    let first = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::ZERO)
        .acquire_xact(&tx)
        .await
        .unwrap();
    assert_eq!(first, ym("2024-01"));
    for m in &q {
        assert!(b.is_locked(*m).await.unwrap());
    }
    let err = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::ZERO)
        .acquire_xact(&b)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAllFree { .. }), "{err:?}");
    let claimed = MonthLock::any_of(months("2024-01", "2024-03"))
        .unwrap()
        .acquire_xact(&b)
        .await
        .unwrap();
    assert_eq!(
        claimed,
        ym("2024-03"),
        "outside BEGIN: held for the statement only"
    );
    tx.commit().await.unwrap();
    for m in &q {
        assert!(!b.is_locked(*m).await.unwrap());
    }
    let tx = a.transaction().await.unwrap();
    let claimed = MonthLock::any_of(q.clone())
        .unwrap()
        .acquire_xact(&tx)
        .await
        .unwrap();
    assert_eq!(claimed, ym("2024-01"));
    let err = MonthLock::any_of([ym("2024-01")])
        .unwrap()
        .acquire_xact(&b)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoneFree { .. }), "{err:?}");
    tx.rollback().await.unwrap();
    assert!(!b.is_locked(ym("2024-01")).await.unwrap());
}

#[tokio::test]
async fn a_dropped_waiting_set_acquire_leaves_nothing_held() {
    let db = server().await.fresh_db("all_dropped").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let observer = db.connect().await;
    let q = months("2024-01", "2024-03");
    let busy = MonthLock::new(ym("2024-03")).acquire(&b).await.unwrap();
    let a_pid = backend_pid(&a).await;
    let waiting = MonthLock::set(q.clone())
        .unwrap()
        .timeout(Duration::from_secs(30))
        .acquire(&a);
    let outcome = tokio::time::timeout(Duration::from_millis(300), async {
        tokio::join!(waiting, wait_until_waiting(&observer, a_pid)).0
    })
    .await;
    assert!(outcome.is_err(), "still waiting when dropped");
    busy.release().await.unwrap();
    assert_eq!(held_by(&a, &q).await, [false; 3], "nothing held afterwards");
    for m in &q {
        assert!(!observer.is_locked(*m).await.unwrap(), "{m}");
    }
}
