//! The library against a real PostgreSQL with month_lock installed (see month_lock_tests).

use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{
    Error, Heartbeat, LockMode, LostReason, MonthLock, MonthLockExt, Pooled, YearMonth,
};
use month_lock_tests::{backend_pid, server, wait_until_waiting};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

fn ym(s: &str) -> YearMonth {
    s.parse().unwrap()
}

async fn is_locked_elsewhere(observer: &Client, m: YearMonth) -> bool {
    observer.is_locked(m).await.unwrap()
}

/// Polls until `m` is free as `observer` sees it; returns how long that took (panics after 5 s).
async fn wait_until_free(observer: &Client, m: YearMonth) -> Duration {
    let start = Instant::now();
    while is_locked_elsewhere(observer, m).await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{m} still locked after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

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
async fn lost_fires_when_the_backend_is_terminated() {
    let db = server().await.fresh_db("lost_term").await;
    let observer = db.connect().await;
    let mut times = Vec::new();
    for i in 1..=5u32 {
        let holder = Arc::new(db.connect().await);
        let m = YearMonth::new(2024, i).unwrap();
        let g = MonthLock::new(m)
            .acquire(holder.clone())
            .await
            .unwrap()
            .with_heartbeat(Heartbeat {
                interval: Duration::from_millis(100),
                timeout: Some(Duration::from_secs(5)),
            });
        let pid = backend_pid(&holder).await;
        let lost = tokio::spawn(async move {
            let reason = g.lost().await;
            (reason, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !lost.is_finished(),
            "lost() resolved while the lock was held"
        );
        let terminated = Instant::now();
        let ok: bool = observer
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap()
            .get(0);
        assert!(ok);
        let (reason, at) = tokio::time::timeout(Duration::from_secs(5), lost)
            .await
            .expect("lost() fired")
            .unwrap();
        assert_eq!(reason, LostReason::ConnectionClosed);
        times.push(at - terminated);
    }
    times.sort();
    println!("lost() after pg_terminate_backend (heartbeat interval 100 ms): {times:?}");
    assert!(times.iter().all(|t| *t < Duration::from_secs(2)));
}

#[tokio::test]
async fn lost_fires_when_the_session_no_longer_holds_the_month() {
    let db = server().await.fresh_db("lost_notheld").await;
    let a = db.connect().await;
    let m = ym("2025-01");
    let g = MonthLock::new(m)
        .acquire(&a)
        .await
        .unwrap()
        .with_heartbeat(Heartbeat {
            interval: Duration::from_millis(50),
            timeout: None,
        });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), g.lost())
            .await
            .is_err(),
        "held: no loss"
    );
    assert_eq!(a.release_all().await.unwrap(), 1);
    let reason = tokio::time::timeout(Duration::from_secs(2), g.lost())
        .await
        .expect("lost fired");
    assert_eq!(reason, LostReason::NotHeld);
    assert_eq!(g.lost().await, LostReason::NotHeld, "remembered");
    match g.release().await {
        Err(Error::LockLost {
            ym,
            reason: LostReason::NotHeld,
        }) => assert_eq!(ym, m),
        other => panic!("expected LockLost, got {other:?}"),
    }
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

#[tokio::test]
async fn missing_extension_is_a_distinct_error_naming_create_extension() {
    let db = server().await.bare_db("noext").await;
    let a = db.connect().await;
    let m = ym("2024-03");
    let errors = vec![
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .map(|_| ())
            .unwrap_err()
            .into_error(),
        MonthLock::new(m)
            .acquire(&a)
            .await
            .map(|_| ())
            .unwrap_err()
            .into_error(),
        a.is_locked(m).await.map(|_| ()).unwrap_err(),
        a.locks().await.map(|_| ()).unwrap_err(),
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire_xact(&a)
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, Error::ExtensionMissing { .. }), "{e:?}");
        assert!(e.to_string().contains("CREATE EXTENSION month_lock"), "{e}");
        assert!(
            e.sqlstate() == Some(&SqlState::UNDEFINED_FUNCTION)
                || e.sqlstate() == Some(&SqlState::UNDEFINED_TABLE)
        );
    }
}

#[tokio::test]
async fn database_errors_carry_their_sqlstate() {
    let db = server().await.fresh_db("sqlstate").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let m = ym("2024-03");
    let _g = MonthLock::new(m).acquire(&a).await.unwrap();
    b.batch_execute("SET statement_timeout = 100")
        .await
        .unwrap();
    let e = MonthLock::new(m)
        .acquire(&b)
        .await
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    assert_eq!(e.sqlstate(), Some(&SqlState::QUERY_CANCELED));
    assert!(e.to_string().contains("57014"), "{e}");
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

/// #7's second line of defence: the server grants the month and the statement then fails (a
/// stand-in `month_lock_try` / `month_lock` earlier on the search_path takes the month and
/// raises). Whether or not the server drops the grant itself, the client queues a release
/// before returning the error, and nothing stays held.
#[tokio::test]
async fn an_acquire_that_fails_after_a_grant_leaves_nothing_held() {
    let db = server().await.fresh_db("fail_after_grant").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    a.batch_execute(
        "CREATE SCHEMA shim;
         CREATE FUNCTION shim.take_then_fail(y int, m int) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM public.month_lock_try(y, m, 0);
             RAISE EXCEPTION 'granted, then failed' USING ERRCODE = '40P01';
         END $$;
         CREATE FUNCTION shim.month_lock_try(y int, m int, t int) RETURNS boolean LANGUAGE sql
             AS 'SELECT shim.take_then_fail(y, m)';
         CREATE FUNCTION shim.month_lock(y int, m int) RETURNS void LANGUAGE sql
             AS 'SELECT shim.take_then_fail(y, m)';",
    )
    .await
    .unwrap();
    // Without the client: the server keeps what the failed statement took (a session lock).
    let m = ym("2025-06");
    a.batch_execute("SELECT month_lock_held(2025, 6)")
        .await
        .unwrap(); // loads the extension
    assert!(a
        .batch_execute("SELECT shim.take_then_fail(2025, 6)")
        .await
        .is_err());
    println!(
        "a failed statement's grant kept by the server itself: {}",
        a.held(m).await.unwrap()
    );
    a.release_all().await.unwrap();

    a.batch_execute("SET search_path = shim, public")
        .await
        .unwrap();
    for (i, request) in [
        MonthLock::new(m).timeout(Duration::from_secs(1)),
        MonthLock::new(m),
    ]
    .into_iter()
    .enumerate()
    {
        let e = request.acquire(&a).await.unwrap_err().into_error();
        assert_eq!(
            e.sqlstate(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED),
            "{i}: {e}"
        );
        assert!(e.to_string().contains("granted, then failed"), "{e}");
        assert!(
            !a.held(m).await.unwrap(),
            "{i}: the raced grant was released"
        );
        assert!(!is_locked_elsewhere(&observer, m).await);
    }
}

#[tokio::test]
async fn only_this_crates_own_objects_mean_the_extension_is_missing() {
    let db = server().await.fresh_db("exact_name").await;
    let a = db.connect().await;
    for sql in ["SELECT * FROM month_totals", "SELECT month_lock_totals(1)"] {
        let e: Error = a.query(sql, &[]).await.unwrap_err().into();
        assert!(matches!(e, Error::Database(_)), "{sql}: {e:?}");
        assert!(
            e.to_string().contains("does not exist"),
            "the server's message: {e}"
        );
    }
    // A missing object of the user's, inside a lock: still a database error.
    let g = MonthLock::new(ym("2025-07")).acquire(&a).await.unwrap();
    let e: Error = g
        .client()
        .query("SELECT * FROM month_totals", &[])
        .await
        .unwrap_err()
        .into();
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    g.release().await.unwrap();
}

#[tokio::test]
async fn a_release_in_a_failed_transaction_block_still_releases() {
    let db = server().await.fresh_db("release_25p02").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2025-11");
    let g = MonthLock::new(m).acquire(&a).await.unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    let e = a.batch_execute("SELECT 1/0").await.unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO));
    g.release()
        .await
        .expect("released after ending the aborted transaction");
    assert!(!is_locked_elsewhere(&observer, m).await);
    assert!(!a.held(m).await.unwrap());

    // The same through an owned (pooled) handle: the connection goes back without the month.
    let owned = Arc::new(db.connect().await);
    let g = MonthLock::new(m).acquire(owned.clone()).await.unwrap();
    owned.batch_execute("BEGIN; SELECT 1/0").await.unwrap_err();
    g.release().await.unwrap();
    assert!(!owned.held(m).await.unwrap());
    assert!(!is_locked_elsewhere(&observer, m).await);
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
    let conn = Arc::new(db.connect().await);
    let m = ym("2025-09");
    let g = MonthLock::new(m)
        .acquire(Pooled(Box::new(PoolObject(conn.clone()))))
        .await
        .unwrap();
    // Every release now fails (the extension's functions are not on the search_path).
    g.client()
        .batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    let e = g.release().await.expect_err("the release cannot succeed");
    println!("release failed: {e}");
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
    let shared = Arc::new(db.connect().await);
    let g = MonthLock::new(m).acquire(shared.clone()).await.unwrap();
    shared
        .batch_execute("SET search_path = pg_catalog")
        .await
        .unwrap();
    g.release().await.expect_err("the release cannot succeed");
    assert!(!shared.is_closed());
    shared.batch_execute("RESET search_path").await.unwrap();
    shared
        .batch_execute("SELECT month_lock_release_all()")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_outdated_extension_is_told_apart_from_a_missing_one() {
    // 0.1.0 has no fencing tokens and no sets; decided by SQLSTATE and pg_extension.
    let db = server().await.bare_db("oldext").await;
    let a = db.connect().await;
    a.batch_execute("CREATE EXTENSION month_lock VERSION '0.1.0'")
        .await
        .unwrap();
    let g = MonthLock::new(ym("2024-03")).acquire(&a).await.unwrap();
    match g.token().await {
        Err(Error::ExtensionOutdated { installed, .. }) => assert_eq!(installed, "0.1.0"),
        other => panic!("expected ExtensionOutdated, got {other:?}"),
    }
    g.release().await.unwrap();
    let e = MonthLock::range(ym("2024-01"), ym("2024-02"))
        .acquire(&a)
        .await
        .map(|_| ())
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::ExtensionOutdated { .. }), "{e:?}");
    assert!(
        e.to_string().contains("ALTER EXTENSION month_lock UPDATE"),
        "{e}"
    );
    assert_eq!(e.sqlstate(), Some(&SqlState::UNDEFINED_FUNCTION));
}
