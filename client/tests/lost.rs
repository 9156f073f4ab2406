//! `MonthLockGuard::lost` tells when a held month is gone: the backend terminated, or the session
//! no longer holds it (client/README.md, "Taking a month", rustdoc of `Heartbeat`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use month_lock_client::{Error, Heartbeat, LostReason, MonthLock, MonthLockExt, YearMonth};
use month_lock_tests::{backend_pid, server};

mod common;
use common::months::ym;

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
