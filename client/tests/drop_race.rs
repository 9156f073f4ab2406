//! A dropped acquisition's clean-up racing another acquisition of the same month on the same
//! connection, started from another thread: the clean-up decides what to release and queues it
//! in one step with respect to claims, so it never releases a month the other request took (the
//! other request either runs before the clean-up and is claimed, or runs after it).

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use month_lock_client::{MonthLock, MonthLockExt};
use month_lock_tests::server;

mod common;
use common::months::ym;

#[test]
fn a_clean_up_never_releases_what_a_racing_acquisition_took() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (m, n) = (ym("2032-07"), ym("2032-08"));
    let (client, blocker) = rt.block_on(async {
        let db = server().await.fresh_db("drop_race").await;
        let db = db.with_new_role("drop_race").await;
        (Arc::new(db.connect().await), db.connect().await)
    });
    // n is busy elsewhere: the dropped set request P takes nothing but m... or nothing at all.
    rt.block_on(blocker.batch_execute("SELECT month_lock(2032, 8)"))
        .unwrap();
    let rounds = 1500;
    let (mut got, mut lost) = (0, 0);
    for i in 0..rounds {
        let mut p = Box::pin(
            MonthLock::set([m, n])
                .unwrap()
                .timeout(Duration::ZERO)
                .acquire(client.clone()),
        );
        if p.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
        {
            continue;
        }
        let mut q = Box::pin(
            MonthLock::new(m)
                .timeout(Duration::from_secs(2))
                .acquire(client.clone()),
        );
        let barrier = Barrier::new(2);
        let mut early = None;
        std::thread::scope(|s| {
            let (barrier, q, early) = (&barrier, &mut q, &mut early);
            s.spawn(move || {
                barrier.wait();
                drop(p);
            });
            s.spawn(move || {
                barrier.wait();
                for _ in 0..(i % 50) {
                    std::hint::spin_loop();
                }
                if let Poll::Ready(r) = q.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    *early = Some(r);
                }
            });
        });
        let outcome = match early {
            Some(r) => r,
            None => rt.block_on(q),
        };
        if let Ok(guard) = outcome {
            got += 1;
            // Everything queued before (the clean-up included) has run.
            rt.block_on(client.batch_execute("SELECT 1")).unwrap();
            if !rt.block_on(client.held(m)).unwrap() {
                lost += 1;
            }
            rt.block_on(guard.release()).ok();
        }
    }
    println!("{got} of {rounds} racing acquisitions got the month");
    assert!(got > rounds / 4, "the race ran ({got} guards)");
    assert_eq!(
        lost, 0,
        "a racing acquisition's month was released by the clean-up in {lost} of {got} rounds"
    );
}
