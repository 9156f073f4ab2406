//! Modes, waits and scopes of one-month requests: shared and exclusive holders exclude each other
//! as client/README.md's "Taking a month" says, a timeout ends a wait, a waiter queued in
//! `pg_locks` gets the month on release, a month this session holds is refused, and transaction
//! scope lasts until commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{Error, LockMode, MonthLock, MonthLockExt};
use month_lock_tests::{backend_pid, server, wait_until_waiting};

mod common;
use common::months::{is_locked_elsewhere, wait_until_free, ym};

#[tokio::test]
async fn exclusive_and_shared_modes_exclude_each_other() {
    let db = server().await.fresh_db("modes").await;
    let (a, b, c) = (db.connect().await, db.connect().await, db.connect().await);
    let m = ym("2024-03");

    let ga = MonthLock::new(m)
        .timeout(Duration::ZERO)
        .acquire(&a)
        .await
        .expect("free month");
    assert_eq!(ga.mode(), LockMode::Exclusive);
    assert_eq!(ga.year_month(), m);
    assert!(MonthLock::new(m)
        .timeout(Duration::ZERO)
        .acquire(&b)
        .await
        .unwrap_err()
        .is_timeout());
    assert!(MonthLock::new(m)
        .shared()
        .timeout(Duration::ZERO)
        .acquire(&b)
        .await
        .unwrap_err()
        .is_timeout());
    assert!(
        MonthLock::new(ym("2024-04"))
            .timeout(Duration::ZERO)
            .acquire(&b)
            .await
            .is_ok(),
        "other months are independent"
    );
    ga.release().await.unwrap();

    let sb = MonthLock::new(m)
        .shared()
        .timeout(Duration::ZERO)
        .acquire(&b)
        .await
        .expect("shared");
    let sc = MonthLock::new(m).shared().acquire(&c).await.unwrap();
    assert_eq!(sc.mode(), LockMode::Shared);
    assert!(
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .unwrap_err()
            .is_timeout(),
        "shared holders exclude exclusive"
    );
    sb.release().await.unwrap();
    sc.release().await.unwrap();
    assert!(MonthLock::new(m)
        .timeout(Duration::ZERO)
        .acquire(&a)
        .await
        .is_ok());
}

#[tokio::test]
async fn timeout_waits_then_gives_none_and_a_waiter_gets_the_month_on_release() {
    let db = server().await.fresh_db("timeout_wait").await;
    let (a, b, observer) = (
        db.connect().await,
        Arc::new(db.connect().await),
        db.connect().await,
    );
    let m = ym("2024-05");
    let ga = MonthLock::new(m).acquire(&a).await.unwrap();

    let start = Instant::now();
    assert!(MonthLock::new(m)
        .timeout(Duration::from_millis(300))
        .acquire(&*b)
        .await
        .unwrap_err()
        .is_timeout());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(290),
        "gave up early: {waited:?}"
    );
    assert!(!b.held(m).await.unwrap());

    let b_pid = backend_pid(&b).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            let g = MonthLock::new(m).acquire(b.clone()).await.unwrap();
            let held = b.held(m).await.unwrap();
            g.release().await.unwrap();
            held
        })
    };
    wait_until_waiting(&observer, b_pid).await;
    let rows = observer.locks().await.unwrap();
    let waiting = rows
        .iter()
        .find(|r| r.pid == Some(b_pid))
        .expect("waiter row");
    assert!(!waiting.granted);
    assert!(waiting.waiting_since.is_some());
    ga.release().await.unwrap();
    assert!(
        waiter.await.unwrap(),
        "the waiter holds the month after the release"
    );
}

#[tokio::test]
async fn taking_a_month_this_session_holds_is_refused() {
    let db = server().await.fresh_db("already").await;
    let a = db.connect().await;
    let m = ym("2024-09");
    let g = MonthLock::new(m).acquire(&a).await.unwrap();
    for attempt in [
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .map(|_| ())
            .map_err(Error::from),
        MonthLock::new(m)
            .shared()
            .acquire(&a)
            .await
            .map(|_| ())
            .map_err(Error::from),
    ] {
        match attempt {
            Err(Error::AlreadyHeld { ym }) => assert_eq!(ym, m),
            other => panic!("expected AlreadyHeld, got {other:?}"),
        }
    }
    assert!(
        a.held(m).await.unwrap(),
        "the refused attempt did not release the first guard's lock"
    );
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_dropped_unbounded_wait_runs_until_granted_and_leaves_nothing_held() {
    let db = server().await.fresh_db("cancel_wait").await;
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let m = ym("2024-10");
    let ga = MonthLock::new(m).acquire(&a).await.unwrap();
    let b_pid = backend_pid(&b).await;

    let attempt =
        tokio::time::timeout(Duration::from_millis(300), MonthLock::new(m).acquire(&b)).await;
    assert!(attempt.is_err(), "still waiting when dropped");
    // No cancel request: the wait goes on in the server's queue, and b runs nothing else.
    assert!(
        observer
            .locks()
            .await
            .unwrap()
            .iter()
            .any(|r| r.pid == Some(b_pid)),
        "the dropped wait is still queued"
    );
    let next = tokio::time::timeout(Duration::from_millis(500), b.held(m)).await;
    assert!(next.is_err(), "b is busy with the wait");
    // Granted, then released by the queued clean-up before b's next statement.
    ga.release().await.unwrap();
    assert!(!b.held(m).await.unwrap());
    wait_until_free(&observer, m).await;

    // A bounded wait dropped mid-way: the queued releases run after it ends either way.
    let ga = MonthLock::new(m).acquire(&a).await.unwrap();
    let attempt = tokio::time::timeout(
        Duration::from_millis(100),
        MonthLock::new(m)
            .timeout(Duration::from_millis(700))
            .acquire(&b),
    )
    .await;
    assert!(attempt.is_err());
    ga.release().await.unwrap(); // b's wait now succeeds server-side, then its queued release runs
    assert!(!b.held(m).await.unwrap());
    wait_until_free(&observer, m).await;
}

#[tokio::test]
async fn transaction_scoped_locks_last_until_commit() {
    let db = server().await.fresh_db("xact").await;
    let (mut a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2025-02");
    let tx = a.transaction().await.unwrap();
    MonthLock::new(m)
        .timeout(Duration::ZERO)
        .acquire_xact(&tx)
        .await
        .unwrap();
    assert!(tx.client().held(m).await.unwrap());
    assert!(is_locked_elsewhere(&observer, m).await);
    assert!(matches!(
        MonthLock::new(m)
            .shared()
            .timeout(Duration::from_millis(50))
            .acquire_xact(&observer)
            .await,
        Err(Error::Timeout { .. })
    ));
    tx.commit().await.unwrap();
    assert!(!is_locked_elsewhere(&observer, m).await);

    let tx = a.transaction().await.unwrap();
    MonthLock::new(m)
        .shared()
        .timeout(Duration::ZERO)
        .acquire_xact(&tx)
        .await
        .unwrap();
    MonthLock::new(m)
        .shared()
        .timeout(Duration::ZERO)
        .acquire_xact(&observer)
        .await
        .expect("shared with shared");
    tx.rollback().await.unwrap();
    assert!(!is_locked_elsewhere(&observer, m).await);
}

#[tokio::test]
async fn locks_view_shows_holders_with_all_columns() {
    let db = server().await.fresh_db("view").await;
    let (a, observer) = (db.connect_as("view-test-holder").await, db.connect().await);
    let m = ym("2025-03");
    assert!(observer.locks().await.unwrap().is_empty());
    let g = MonthLock::new(m).shared().acquire(&a).await.unwrap();
    let pid = backend_pid(&a).await;
    let rows = observer.locks().await.unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.year_month(), Some(m));
    assert_eq!((r.year, r.month), (2025, 3));
    assert_eq!(r.month_start, m.first_day());
    assert_eq!(r.mode, LockMode::Shared);
    assert!(r.granted);
    assert_eq!(r.pid, Some(pid));
    assert_eq!(r.waiting_since, None);
    assert_eq!(r.application_name.as_deref(), Some("view-test-holder"));
    assert_eq!(r.usename.as_deref(), Some("postgres"));
    assert_eq!(r.client_addr, Some("127.0.0.1".parse().unwrap()));
    assert!(r.backend_start.is_some());
    let json = serde_json::to_value(r).unwrap();
    for column in [
        "year",
        "month",
        "month_start",
        "mode",
        "granted",
        "pid",
        "waiting_since",
        "application_name",
        "usename",
        "client_addr",
        "backend_start",
    ] {
        assert!(json.get(column).is_some(), "{column} missing from {json}");
    }
    assert_eq!(json["mode"], "shared");
    assert!(a.held(m).await.unwrap());
    assert!(!observer.held(m).await.unwrap());
    drop(g);
}
