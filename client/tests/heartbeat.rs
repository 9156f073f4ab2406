//! The heartbeat never takes a busy connection for a dead one, still notices a terminated
//! backend within its bound, and `lost()` can be made anew as often as one likes (rustdoc of
//! `Heartbeat`).

use std::time::{Duration, Instant};

use month_lock_client::{
    with_month_lock, with_month_lock_heartbeat, Error, Heartbeat, LostReason, MonthLock,
    MonthLockExt,
};
use month_lock_tests::{backend_pid, server};

/// A heartbeat that gives up quickly once the server runs it.
const QUICK: Heartbeat = Heartbeat {
    interval: Duration::from_millis(100),
    timeout: Some(Duration::from_millis(500)),
};

mod common;
use common::months::ym;

#[tokio::test]
async fn a_statement_longer_than_the_heartbeat_timeout_completes_without_lock_lost() {
    let db = server().await.fresh_db("hb_busy").await;
    let a = db.connect().await;
    let m = ym("2024-04");
    let a_ref = &a;
    let start = Instant::now();
    // The statement runs 6 times the heartbeat's timeout on the guard's own connection.
    let slept = with_month_lock_heartbeat(&a, m, None, QUICK, |_| async move {
        a_ref.execute("SELECT pg_sleep(3)", &[]).await?;
        Ok::<_, Error>(start.elapsed())
    })
    .await
    .expect("no LockLost while the connection is busy");
    assert!(slept >= Duration::from_secs(3));
    assert!(!a.held(m).await.unwrap(), "released after the closure");
}

#[tokio::test]
async fn a_30_second_statement_inside_with_month_lock_completes() {
    let db = server().await.fresh_db("hb_30s").await;
    let a = db.connect().await;
    let a_ref = &a;
    let rows = with_month_lock(&a, ym("2024-05"), None, |_| async move {
        a_ref.execute("SELECT pg_sleep(30)", &[]).await?;
        Ok::<_, Error>(1)
    })
    .await
    .expect("default heartbeat: no LockLost during a 30 s statement");
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_terminated_backend_is_noticed_while_the_connection_is_busy() {
    let db = server().await.fresh_db("hb_busy_term").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    let pid = backend_pid(&a).await;
    let a_ref = &a;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let killer = async {
        rx.await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        observer
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        Instant::now()
    };
    let work = with_month_lock_heartbeat(&a, ym("2024-06"), None, QUICK, |_| async move {
        tx.send(()).unwrap();
        a_ref.execute("SELECT pg_sleep(30)", &[]).await?;
        Ok::<_, Error>(())
    });
    let ((result, returned), terminated) =
        tokio::join!(async { (work.await, Instant::now()) }, killer);
    match result {
        Err(Error::LockLost { reason, .. }) => assert_eq!(reason, LostReason::ConnectionClosed),
        // The closure's own statement may see the closed connection first.
        Err(Error::Database(e)) => assert!(e.is_closed() || e.as_db_error().is_some(), "{e}"),
        other => panic!("expected the loss, got {other:?}"),
    }
    let delay = returned - terminated;
    println!("terminated backend noticed {delay:?} later while the connection was busy");
    assert!(delay < Duration::from_secs(2), "{delay:?}");
}

#[tokio::test]
async fn lost_made_anew_in_a_fast_loop_still_reports_a_loss() {
    let db = server().await.fresh_db("hb_loop").await;
    let a = db.connect().await;
    let m = ym("2024-07");
    let guard = MonthLock::new(m)
        .acquire(&a)
        .await
        .unwrap()
        .with_heartbeat(QUICK);
    a.release_all().await.unwrap();
    let start = Instant::now();
    let mut rounds = 0u32;
    let reason = loop {
        rounds += 1;
        // A fresh lost() future each round, dropped long before a round trip.
        tokio::select! {
            reason = guard.lost() => break reason,
            _ = tokio::time::sleep(Duration::from_micros(200)) => {}
        }
        assert!(start.elapsed() < Duration::from_secs(5), "never reported");
    };
    assert_eq!(reason, LostReason::NotHeld);
    println!(
        "NotHeld reported after {rounds} fresh lost() futures, {:?}",
        start.elapsed()
    );
    // Remembered: answered at once, and token() refuses a lost hold.
    assert_eq!(guard.lost().await, LostReason::NotHeld);
    match guard.token().await {
        Err(Error::LockLost { reason, .. }) => assert_eq!(reason, LostReason::NotHeld),
        other => panic!("token after a lost hold: {other:?}"),
    }
}
