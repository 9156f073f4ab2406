//! `with_month_lock` against a real PostgreSQL: releases on success, error, panic and cancellation;
//! distinct timeout error; stops the closure and reports a lost lock (rustdoc of
//! `with_month_lock`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{with_month_lock, Error, LostReason, MonthLock, MonthLockExt, YearMonth};
use month_lock_tests::{backend_pid, server};
use tokio_postgres::Client;

mod common;
use common::months::ym;

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("job failed: {0}")]
    Failed(&'static str),
    #[error(transparent)]
    Lock(#[from] Error),
}

#[tokio::test]
async fn runs_only_with_the_month_held_and_releases_after_success() {
    let db = server().await.fresh_db("wl_success").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2024-03");
    let observer = &observer;
    let a_ref = &a;
    let value = with_month_lock(&a, m, None, |got| async move {
        assert_eq!(got, m);
        assert!(
            a_ref.held(m).await?,
            "the closure's session holds the month"
        );
        assert!(observer.is_locked(m).await?);
        assert!(MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(observer)
            .await
            .unwrap_err()
            .is_timeout());
        Ok::<_, Error>(42)
    })
    .await
    .unwrap();
    assert_eq!(value, 42);
    assert!(!a.held(m).await.unwrap());
    assert!(!observer.is_locked(m).await.unwrap());
}

#[tokio::test]
async fn releases_after_the_closure_fails() {
    let db = server().await.fresh_db("wl_error").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2024-04");
    let result: Result<(), JobError> =
        with_month_lock(&a, m, Some(Duration::from_secs(1)), |_| async {
            Err(JobError::Failed("boom"))
        })
        .await;
    assert!(
        matches!(result, Err(JobError::Failed("boom"))),
        "{result:?}"
    );
    assert!(!a.held(m).await.unwrap());
    assert!(!observer.is_locked(m).await.unwrap());
}

#[tokio::test]
async fn releases_after_the_closure_panics_and_the_panic_continues() {
    let db = server().await.fresh_db("wl_panic").await;
    let (a, observer) = (Arc::new(db.connect().await), db.connect().await);
    let m = ym("2024-05");
    let task = {
        let a = a.clone();
        tokio::spawn(async move {
            with_month_lock(a.clone(), m, None, |_| async move {
                assert!(a.held(m).await.unwrap());
                if m.month() == 5 {
                    panic!("closure panicked on purpose");
                }
                Ok::<_, Error>(())
            })
            .await
        })
    };
    let err = task.await.unwrap_err();
    assert!(err.is_panic());
    let message = err
        .into_panic()
        .downcast::<&str>()
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert_eq!(message, "closure panicked on purpose");
    assert!(
        !a.held(m).await.unwrap(),
        "released before the connection's next statement"
    );
    assert!(!observer.is_locked(m).await.unwrap());
}

#[tokio::test]
async fn releases_when_cancelled() {
    let db = server().await.fresh_db("wl_cancel").await;
    let (a, observer) = (Arc::new(db.connect().await), db.connect().await);
    let m = ym("2024-06");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let task = {
        let a = a.clone();
        tokio::spawn(async move {
            with_month_lock(a, m, None, |_| async move {
                started_tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, Error>(())
            })
            .await
        })
    };
    started_rx.await.unwrap();
    assert!(observer.is_locked(m).await.unwrap());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(!a.held(m).await.unwrap());
    assert!(!observer.is_locked(m).await.unwrap());

    // Cancelled by a timeout around it, on a borrowed client.
    let outcome = tokio::time::timeout(
        Duration::from_millis(200),
        with_month_lock(&*a, m, None, |_| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, Error>(())
        }),
    )
    .await;
    assert!(outcome.is_err());
    assert!(!a.held(m).await.unwrap());
}

#[tokio::test]
async fn a_busy_month_gives_a_distinct_timeout_error_without_running_the_closure() {
    let db = server().await.fresh_db("wl_timeout").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let m = ym("2024-07");
    let _held = MonthLock::new(m).acquire(&a).await.unwrap();
    let ran = AtomicBool::new(false);
    let start = Instant::now();
    let result = with_month_lock(&b, m, Some(Duration::from_millis(200)), |_| async {
        ran.store(true, Ordering::SeqCst);
        Ok::<_, Error>(())
    })
    .await;
    match result {
        Err(Error::Timeout { ym, timeout }) => {
            assert_eq!(ym, m);
            assert_eq!(timeout, Duration::from_millis(200));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(190));
    assert!(!ran.load(Ordering::SeqCst));
    let e = Error::Timeout {
        ym: m,
        timeout: Duration::from_millis(200),
    };
    assert_eq!(
        e.to_string(),
        "month 2024-07 is held by another session; not acquired within 200ms"
    );
}

#[tokio::test]
async fn a_lost_lock_stops_the_closure_with_lock_lost() {
    let db = server().await.fresh_db("wl_lost").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let m = ym("2024-08");
    let pid = backend_pid(&a).await;
    let finished = Arc::new(AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let killer = async {
        started_rx.await.unwrap();
        let ok: bool = observer
            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap()
            .get(0);
        assert!(ok);
        Instant::now()
    };
    let work = {
        let finished = finished.clone();
        with_month_lock(&a, m, None, |_| async move {
            started_tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            finished.store(true, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
    };
    let (result, terminated) = tokio::join!(async { (work.await, Instant::now()) }, killer);
    let (result, returned) = result;
    match result {
        Err(Error::LockLost { ym, reason }) => {
            assert_eq!(ym, m);
            assert_eq!(reason, LostReason::ConnectionClosed);
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    let delay = returned - terminated;
    println!("with_month_lock returned LockLost {delay:?} after pg_terminate_backend (default heartbeat)");
    assert!(delay < Duration::from_secs(3), "{delay:?}");
    assert!(!finished.load(Ordering::SeqCst), "the closure was stopped");
    // The client sees the connection close before the dying backend has released its locks
    // (that happens in its exit path): the month comes free shortly after, not necessarily yet.
    let deadline = Instant::now() + Duration::from_secs(5);
    while observer.is_locked(m).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the terminated session's lock was never released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn invalid_months_are_rejected_before_any_query() {
    let e: Error = "2024-13".parse::<YearMonth>().unwrap_err().into();
    assert!(matches!(e, Error::InvalidMonth(_)));
    assert_eq!(
        e.to_string(),
        "invalid month \"2024-13\": month must be between 1 and 12"
    );
    // And the client still works with valid ones.
    let db = server().await.fresh_db("wl_invalid").await;
    let a: Client = db.connect().await;
    assert!(!a.is_locked(ym("2024-12")).await.unwrap());
}
