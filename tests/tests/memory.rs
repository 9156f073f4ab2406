//! Ten thousand waited grants in one transaction grow a backend's memory about as much as the
//! built-in pg_advisory_xact_lock taking as many locks without waits, and COMMIT releases them
//! all: a wait happens in PostgreSQL's own lock manager and leaves nothing of its own behind
//! (docs/semantics.md: "Waiting").

mod common;

use common::*;
use month_lock_tests::backend_pid;
use std::sync::Arc;
use std::time::Instant;

#[tokio::test]
async fn ten_thousand_waited_grants_in_one_transaction_use_bounded_memory() {
    const N: i32 = 10_000;
    let db = db("memory").await;
    let (holder, waiter, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let (pid_w, pid_h) = (backend_pid(&waiter).await, backend_pid(&holder).await);
    // Month i is (1000 + i/12, 1 + i%12): 10,000 distinct months, all held by `holder`.
    let month = "1000 + i / 12, 1 + i % 12";
    assert_eq!(
        q_i64(
            &holder,
            &format!(
                "SELECT count(*) FROM generate_series(0, {N} - 1) i WHERE month_lock_try({month})"
            )
        )
        .await,
        i64::from(N)
    );
    exec(
        &waiter,
        "BEGIN; DO $$ BEGIN PERFORM month_lock_held(1, 1); END $$",
    )
    .await;
    let before = q_i64(
        &waiter,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    let waiter = Arc::new(waiter);
    let w = waiter.clone();
    let waiting_loop = tokio::spawn(async move {
        w.batch_execute(&format!(
            "DO $$ BEGIN
               FOR i IN 0..{N} - 1 LOOP
                 IF NOT month_lock_try_xact({month}, 10000) THEN
                   RAISE EXCEPTION 'month % not granted', i;
                 END IF;
               END LOOP;
             END $$"
        ))
        .await
    });
    // The holder releases month i only once the waiter is queued behind it: the waiter asks
    // for the months in order, so when it is blocked by the holder it waits for month i
    // (checked exactly against pg_locks every 500th month).
    let start = Instant::now();
    let releasing = holder
        .batch_execute(&format!(
            "DO $$
             DECLARE deadline timestamptz := clock_timestamp() + interval '150 s';
             BEGIN
               FOR i IN 0..{N} - 1 LOOP
                 WHILE NOT pg_backend_pid() = ANY (pg_blocking_pids({pid_w})) LOOP
                   IF clock_timestamp() > deadline THEN
                     RAISE EXCEPTION 'waiter never queued for month %', i;
                   END IF;
                 END LOOP;
                 IF i % 500 = 0 AND NOT EXISTS (
                      SELECT 1 FROM pg_locks
                       WHERE locktype = 'advisory' AND pid = {pid_w} AND NOT granted
                         AND classid::bigint = {DEFAULT_NAMESPACE} AND objsubid = 2
                         AND objid::bigint = (1000 + i / 12) * 100 + 1 + i % 12) THEN
                   RAISE EXCEPTION 'waiter is not queued for month % itself', i;
                 END IF;
                 IF NOT month_lock_release({month}) THEN
                   RAISE EXCEPTION 'release of month % failed', i;
                 END IF;
               END LOOP;
             END $$"
        ))
        .await;
    releasing.unwrap_or_else(|e| panic!("releasing loop: {}", describe(&e)));
    waiting_loop
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("waiting loop: {}", describe(&e)));
    let took = start.elapsed();
    let after = q_i64(
        &waiter,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    assert_eq!(
        q_i64(&observer, &format!("SELECT count(*) FROM pg_locks WHERE pid = {pid_w} AND locktype = 'advisory' AND granted")).await,
        i64::from(N),
        "the transaction holds every month"
    );
    assert_eq!(advisory_count(&observer, pid_h).await, 0);
    exec(&waiter, "COMMIT").await;
    assert_eq!(advisory_count(&observer, pid_w).await, 0);

    // For comparison: the built-in taking 10,000 transaction locks (no waits) in one transaction
    // of a fresh backend (its local lock table grows the same way).
    let fresh = db.connect().await;
    exec(&fresh, "BEGIN; DO $$ BEGIN PERFORM 1; END $$").await;
    let b0 = q_i64(
        &fresh,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    exec(&fresh, &format!("DO $$ BEGIN FOR i IN 1..{N} LOOP PERFORM pg_advisory_xact_lock(777, i); END LOOP; END $$")).await;
    let b1 = q_i64(
        &fresh,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    exec(&fresh, "COMMIT").await;

    let growth = after - before;
    println!(
        "memory: {N} waited grants in one transaction in {took:?}: backend contexts grew {} KB ({} bytes per grant); \
         built-in pg_advisory_xact_lock x {N} without waits: {} KB",
        growth / 1024,
        growth / i64::from(N),
        (b1 - b0) / 1024
    );
    assert!(
        growth < 4 * 1024 * 1024,
        "grew {growth} bytes over {N} waited grants"
    );
    // Beyond what the built-in's local lock table needs for as many locks: < 100 B a grant.
    assert!(
        growth - (b1 - b0) < 1024 * 1024,
        "grew {growth} bytes, built-in {}",
        b1 - b0
    );
}
