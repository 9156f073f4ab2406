//! One timeout covers the whole set: month_lock_all(months, timeout_ms) answers false within the
//! timeout measured from the call's start, however many months it waited for (docs/semantics.md,
//! "Fencing tokens, claim any, all or nothing": "All or nothing").

use crate::common::*;
use month_lock_tests::backend_pid;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_timeout_is_measured_over_the_whole_set() {
    let db = db("all_timeout").await;
    let role = db.with_new_role("set_timeout").await;
    let observer = db.connect().await;
    let c = role.connect().await;
    let pid = backend_pid(&c).await;
    let holders = [
        role.connect().await,
        role.connect().await,
        role.connect().await,
    ];
    for (k, h) in holders.iter().enumerate() {
        assert!(q_bool(h, &format!("SELECT month_lock_try(2024, {})", k + 1)).await);
    }
    // Holders release 2024-01 at 700 ms, 2024-02 at 1400 ms, 2024-03 at 2100 ms after the
    // call starts. A per-month timeout of 1200 ms would get all three at ~2100 ms (each wait
    // is 700 ms); one timeout over the set returns false at ~1200 ms.
    const TIMEOUT_MS: u64 = 1200;
    let start = Instant::now();
    let mut releases = Vec::new();
    for (k, h) in holders.into_iter().enumerate() {
        let at = start + Duration::from_millis(700 * (k as u64 + 1));
        releases.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            assert!(q_bool(&h, &format!("SELECT month_lock_release(2024, {})", k + 1)).await);
            h
        }));
    }
    let got = q_bool(
        &c,
        &format!(
            "SELECT month_lock_all({}, {TIMEOUT_MS})",
            months_2024(1..=3)
        ),
    )
    .await;
    let took = start.elapsed();
    let locks_after = locks_of(&observer, pid).await;
    assert!(!got, "false at the overall timeout (took {took:?})");
    assert!(
        took >= Duration::from_millis(TIMEOUT_MS - 50),
        "not before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(TIMEOUT_MS + 700),
        "false at ~{TIMEOUT_MS} ms, not after a timeout per month: {took:?}"
    );
    assert!(
        locks_after.is_empty(),
        "nothing kept after false (2024-01 was taken by the call): {locks_after:?}"
    );
    for r in releases {
        r.await.unwrap();
    }
    println!("overall timeout: three months released at 700/1400/2100 ms, timeout {TIMEOUT_MS} ms: false after {took:?}, nothing held");

    // Timeout 0: one no-wait attempt per month.
    let blocker = role.connect().await;
    assert!(q_bool(&blocker, "SELECT month_lock_try(2024, 5)").await);
    let t = Instant::now();
    assert!(
        !q_bool(
            &c,
            &format!("SELECT month_lock_all({})", months_2024(4..=6))
        )
        .await
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "timeout 0 does not wait"
    );
    assert!(locks_of(&observer, pid).await.is_empty());
    assert!(
        q_bool(
            &c,
            &format!("SELECT month_lock_all({}, 0)", months_2024(7..=9))
        )
        .await,
        "all free"
    );
    assert_eq!(
        locks_of(&observer, pid).await,
        excl(&[202407, 202408, 202409])
    );
    assert_eq!(
        q_i64(
            &c,
            &format!("SELECT month_lock_release({})::bigint", months_2024(7..=9))
        )
        .await,
        3
    );
    // A wait inside the timeout that ends with every month: true.
    let b2 = Arc::new(blocker);
    let bb = b2.clone();
    let rel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(q_bool(&bb, "SELECT month_lock_release(2024, 5)").await);
    });
    let t = Instant::now();
    assert!(
        q_bool(
            &c,
            &format!("SELECT month_lock_all({}, 5000)", months_2024(4..=6))
        )
        .await
    );
    let waited = t.elapsed();
    rel.await.unwrap();
    assert!(waited < Duration::from_millis(4000), "{waited:?}");
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        3
    );
}
