//! month_lock_all takes the months of a set in ascending order whatever the argument order, so jobs
//! overlapping in opposite order never deadlock, and a job queued behind another holds only the
//! months below the one it waits for (docs/semantics.md, "Fencing tokens, claim any, all or
//! nothing": "All or nothing").

use crate::common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

#[tokio::test]
async fn overlapping_jobs_in_opposite_order_never_deadlock() {
    const ITERATIONS: usize = 200;
    let db = db("all_no_deadlock").await;
    let role = db.with_new_role("set_job").await;
    let observer = db.connect().await;
    // Job A: 2024-01..06 ascending; job B: 2024-09..03 descending (overlap 03..06); job C
    // (transaction scope): 06, 01, 09 in no order. A deadlock would show as 40P01 after
    // deadlock_timeout (1 s), or as false at the timeout.
    let a_set = months_2024(1..=6);
    let b_set = months_2024((3..=9).rev());
    let c_set = months_2024([6, 1, 9]);
    let (a, b, c) = (
        Arc::new(role.connect().await),
        Arc::new(role.connect().await),
        Arc::new(role.connect().await),
    );
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut waited = 0;
    for i in 0..ITERATIONS {
        // Each job takes its set, checks it holds every month, and releases it.
        let job = |c: Arc<Client>, set: String, n: i64, xact: bool| {
            tokio::spawn(async move {
                if xact {
                    c.batch_execute("BEGIN").await.unwrap();
                }
                let func = if xact {
                    "month_lock_all_xact"
                } else {
                    "month_lock_all"
                };
                let t = Instant::now();
                let r = c
                    .query_one(&format!("SELECT {func}({set}, 10000)"), &[])
                    .await
                    .map(|r| r.get::<_, bool>(0));
                let took = t.elapsed();
                if let Ok(true) = r {
                    let held = q_i64(
                        &c,
                        "SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid() AND granted",
                    )
                    .await;
                    assert_eq!(held, n, "{func}: holds the whole set");
                }
                if xact {
                    c.batch_execute("COMMIT").await.unwrap();
                } else if let Ok(true) = r {
                    let released =
                        q_i64(&c, &format!("SELECT month_lock_release({set})::bigint")).await;
                    assert_eq!(released, n, "release of the set");
                }
                (r, took)
            })
        };
        let ta = job(a.clone(), a_set.clone(), 6, false);
        let tb = job(b.clone(), b_set.clone(), 7, false);
        let tc = job(c.clone(), c_set.clone(), 3, true);
        for (k, t) in [ta, tb, tc].into_iter().enumerate() {
            let (r, took) = t.await.unwrap();
            match r {
                Ok(true) => {}
                Ok(false) => panic!("iteration {i}: job {k} got false after {took:?}"),
                Err(e) => panic!("iteration {i}: job {k} failed: {}", describe(&e)),
            }
            if took > Duration::from_millis(2) {
                waited += 1;
            }
            slowest = slowest.max(took);
        }
    }
    assert_eq!(
        q_i64(
            &observer,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        .await,
        0
    );
    println!(
        "no deadlock: {ITERATIONS} iterations of three overlapping jobs (ascending, descending, \
         unordered, xact) all true, {waited} calls took over 2 ms, slowest {slowest:?}; {:?}",
        start.elapsed()
    );
}

/// A job that queues behind the holder of part of its set holds only the months below the
/// one it waits for (ascending order), and gets the whole set once the other job, which took
/// its overlapping months in the opposite argument order, releases.
#[tokio::test]
async fn a_job_queued_behind_an_opposite_order_job_holds_only_the_lower_months_then_gets_all() {
    const ITERATIONS: usize = 200;
    let db = db("all_queued").await;
    let role = db.with_new_role("set_queue").await;
    let observer = db.connect().await;
    let (a, b) = (role.connect().await, role.connect().await);
    let pid_b = backend_pid(&b).await;
    let b = Arc::new(b);
    for i in 0..ITERATIONS {
        // A holds 2024-07 and 2024-03 (argument order descending).
        assert!(
            q_bool(
                &a,
                &format!("SELECT month_lock_all({})", months_2024([7, 3]))
            )
            .await
        );
        let bb = b.clone();
        let set = months_2024((1..=8).rev());
        let tb = tokio::spawn(async move {
            bb.query_one(&format!("SELECT month_lock_all({set}, 10000)"), &[])
                .await
                .map(|r| r.get::<_, bool>(0))
        });
        wait_until_waiting(&observer, pid_b).await;
        assert_eq!(
            locks_of(&observer, pid_b).await,
            excl(&[202401, 202402]),
            "iteration {i}: B waits for 2024-03 holding only the months below it"
        );
        assert_eq!(
            q_i64(
                &a,
                &format!("SELECT month_lock_release({})::bigint", months_2024([3, 7]))
            )
            .await,
            2
        );
        assert!(tb.await.unwrap().unwrap(), "iteration {i}");
        assert_eq!(
            q_i64(
                &b,
                &format!("SELECT month_lock_release({})::bigint", months_2024(1..=8))
            )
            .await,
            8,
            "iteration {i}"
        );
    }
    // Ascending is chronological across a year boundary: waiting for 2025-01, B holds 2024-12
    // (and not the other way round).
    assert!(q_bool(&a, "SELECT month_lock_try(2025, 1)").await);
    let bb = b.clone();
    let tb = tokio::spawn(async move {
        bb.query_one(
            "SELECT month_lock_all(ARRAY['2025-01-01', '2024-12-01', '2025-02-01']::date[], 10000)",
            &[],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
    });
    wait_until_waiting(&observer, pid_b).await;
    assert_eq!(locks_of(&observer, pid_b).await, excl(&[202412]));
    assert!(q_bool(&a, "SELECT month_lock_release(2025, 1)").await);
    assert!(tb.await.unwrap().unwrap());
    assert_eq!(
        locks_of(&observer, pid_b).await,
        excl(&[202412, 202501, 202502])
    );
    assert_eq!(
        q_i64(&b, "SELECT month_lock_release_all()::bigint").await,
        3
    );
    println!("queued: {ITERATIONS} iterations: B waited for 2024-03 holding 01..02 only, then got all eight");
}
