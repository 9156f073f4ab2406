//! A session waiting for a month through PgBouncer occupies one of the pool's server connections
//! (docs/poolers.md).

use crate::common::*;
use month_lock_tests::pgbouncer::pool_value;
use month_lock_tests::pooled::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_waiter_occupies_a_pooled_server_connection() {
    let (db, admin, bouncer) = setup("pooler_occupy").await;
    let console = bouncer.admin().await;
    let holder = db.connect_as_role(DIRECT).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2024, 5)").await);

    // Three pooled clients wait for the month: each occupies one of the pool's 3 connections.
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let c = bouncer.connect(&db.name, POOLED).await;
        waiters.push(tokio::spawn(async move {
            let got = sq1(&c, "SELECT month_lock_try_xact(2024, 5, 30000)").await;
            (got, Instant::now(), c)
        }));
    }
    wait_count(
        &admin,
        "SELECT count(*) FROM month_locks WHERE year = 2024 AND month = 5 AND NOT granted",
        3,
        "3 waiters",
    )
    .await;
    let pool = bouncer.pool(&console, &db.name, POOLED).await;
    println!("pool with 3 waiters: {pool:?}");
    assert_eq!(pool_value(&pool, "sv_active"), 3, "{pool:?}");
    assert_eq!(pool_value(&pool, "cl_waiting"), 0, "{pool:?}");

    // A 4th client's trivial query has no server connection to run on.
    let fourth = bouncer.connect(&db.name, POOLED).await;
    let asked = Instant::now();
    let fourth_task = tokio::spawn(async move {
        let v = sq1(&fourth, "SELECT 42").await;
        (v, Instant::now(), fourth)
    });
    let deadline = Instant::now() + SLOW;
    loop {
        let pool = bouncer.pool(&console, &db.name, POOLED).await;
        if pool_value(&pool, "cl_waiting") == 1 {
            println!("pool with a 4th client: {pool:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 4th client never queued in PgBouncer: {pool:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fourth_task.is_finished(),
        "SELECT 42 ran although all 3 server connections were waiting"
    );
    assert_eq!(
        q_i64(&admin, &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{POOLED}' AND datname = current_database()")).await,
        3,
        "PgBouncer opened more than 3 server connections"
    );

    // The holder lets go: the first waiter takes the month (its statement, and so its hold,
    // ends at once), its connection goes back to the pool, and the 4th client runs.
    let released = Instant::now();
    assert!(q_bool(&holder, "SELECT month_lock_release(2024, 5)").await);
    let (v, fourth_done, _fourth) = tokio::time::timeout(SLOW, fourth_task)
        .await
        .expect("4th client stuck")
        .unwrap();
    assert_eq!(v, "42");
    let mut first_waiter_done = None;
    for w in waiters {
        let (got, done, _c) = tokio::time::timeout(SLOW, w)
            .await
            .expect("waiter stuck")
            .unwrap();
        assert_eq!(got, "t", "every waiter gets the month in turn");
        first_waiter_done = Some(first_waiter_done.map_or(done, |d: Instant| d.min(done)));
    }
    let first_waiter_done = first_waiter_done.unwrap();
    println!(
        "4th client delayed {:?} (until {:?} after the release); first waiter done {:?} after the release",
        fourth_done - asked,
        fourth_done - released,
        first_waiter_done - released
    );
    assert!(
        fourth_done > released,
        "the 4th query finished before any waiter finished"
    );
    assert!(fourth_done - asked >= Duration::from_millis(500));
    drop(console);
    drop(bouncer);
}
