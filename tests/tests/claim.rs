//! Issue #10 item 2, claim any free month (/tmp/spec/api10.md §2), against the real server:
//! `month_lock_claim(date[])` and `month_lock_claim_xact(date[])` walk the array in order and
//! take the first month with no conflicting holder and nobody queued, skipping months this
//! session holds; at most one month per call, nothing when NULL. Workers claiming until
//! nothing is left process every month exactly once.

mod common;

use common::*;
use month_lock_tests::{backend_pid, server, wait_until_waiting, TestDb};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Barrier;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn db(hint: &str) -> TestDb {
    server().await.fresh_db(hint).await
}

/// The month a claim returned (as text, first of the month) or None.
async fn claim(c: &Client, sql: &str) -> Option<String> {
    one::<Option<String>>(c, &format!("SELECT ({sql})::text")).await
}

async fn advisory_total(observer: &Client) -> i64 {
    q_i64(
        observer,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await
}

// ---- the worker pattern ----------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    processed: u64,
    /// Claims of a month that another worker had finished after this worker's snapshot of
    /// the to-do list: re-checked under the lock, released unprocessed.
    stale_claims: u64,
    /// NULL from a claim while undone months remained (all of them held by others).
    nulls_with_work_left: u64,
}

/// One worker: claim, re-check under the lock, "process", mark done, release; claim again
/// until a claim returns NULL and nothing is left to do.
async fn worker(c: Client, w: usize, xact: bool, in_hand: Arc<Mutex<HashSet<String>>>) -> Outcome {
    let mut out = Outcome::default();
    // Half the workers walk the list ascending, half descending.
    let order = if w % 2 == 0 { "ASC" } else { "DESC" };
    let func = if xact {
        "month_lock_claim_xact"
    } else {
        "month_lock_claim"
    };
    let claim_sql = format!(
        "SELECT {func}(ARRAY(SELECT month FROM todo WHERE NOT done ORDER BY month {order}))::text"
    );
    loop {
        if xact {
            exec(&c, "BEGIN").await;
        }
        let got: Option<String> = one(&c, &claim_sql).await;
        let Some(month) = got else {
            if xact {
                exec(&c, "COMMIT").await;
            }
            // Nothing free right now: done when nothing is left, else others hold the rest.
            if q_i64(&c, "SELECT count(*) FROM todo WHERE NOT done").await == 0 {
                return out;
            }
            out.nulls_with_work_left += 1;
            tokio::task::yield_now().await;
            continue;
        };
        // The whole hold, from the claim to the release, is in `in_hand`.
        assert!(
            in_hand.lock().unwrap().insert(month.clone()),
            "worker {w}: {month} claimed while another worker holds it"
        );
        // Under the lock, with a new snapshot: done by someone who released it since our list?
        let done = one::<bool>(
            &c,
            &format!("SELECT done FROM todo WHERE month = '{month}'"),
        )
        .await;
        if !done {
            // "Process" the month: one statement that counts the visit and records the worker.
            exec(
                &c,
                &format!(
                    "UPDATE todo SET done = true, visits = visits + 1, worker = {w} WHERE month = '{month}'"
                ),
            )
            .await;
            tokio::task::yield_now().await;
        }
        assert!(in_hand.lock().unwrap().remove(&month));
        if xact {
            exec(&c, "COMMIT").await;
        } else {
            assert_eq!(
                q_i64(
                    &c,
                    &format!("SELECT month_lock_release(ARRAY['{month}']::date[])::bigint")
                )
                .await,
                1,
                "worker {w}: release {month}"
            );
        }
        if done {
            out.stale_claims += 1;
            continue;
        }
        out.processed += 1;
    }
}

async fn run_round(db: &TestDb, workers: usize, months: i64, xact: bool) -> Outcome {
    let setup = db.connect().await;
    exec(
        &setup,
        &format!(
            "TRUNCATE todo;
             INSERT INTO todo SELECT d::date, false, 0, NULL
               FROM generate_series('2020-01-01'::date, '2020-01-01'::date + interval '1 month' * ({months} - 1), interval '1 month') d;"
        ),
    )
    .await;
    let in_hand = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let c = db.connect().await;
        let in_hand = in_hand.clone();
        tasks.push(tokio::spawn(worker(c, w, xact, in_hand)));
    }
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await.unwrap();
        total.processed += o.processed;
        total.stale_claims += o.stale_claims;
        total.nulls_with_work_left += o.nulls_with_work_left;
    }
    let bad: Vec<String> = setup
        .query(
            "SELECT month::text || ' visits ' || visits FROM todo WHERE visits <> 1 OR NOT done ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        bad.is_empty(),
        "every month processed exactly once: {bad:?}"
    );
    assert_eq!(total.processed, months as u64);
    assert_eq!(q_i64(&setup, "SELECT count(*) FROM todo").await, months);
    total
}

#[tokio::test]
async fn workers_claiming_until_none_is_left_process_every_month_exactly_once() {
    const WORKERS: usize = 8;
    const MONTHS: i64 = 48;
    const ROUNDS: usize = 16;
    let db = db("claim_workers").await;
    let admin = db.connect().await;
    exec(
        &admin,
        "CREATE TABLE todo(month date PRIMARY KEY, done boolean NOT NULL, visits int NOT NULL, worker int)",
    )
    .await;
    let role = db.with_new_role("claimer").await;
    exec(&admin, &format!("GRANT ALL ON todo TO \"{}\"", role.user())).await;
    let start = Instant::now();
    let mut claims = 0;
    let mut stale = 0;
    let mut nulls = 0;
    for round in 0..ROUNDS {
        let xact = round % 2 == 1;
        let o = run_round(&role, WORKERS, MONTHS, xact).await;
        assert_eq!(
            advisory_total(&admin).await,
            0,
            "round {round}: no lock left after the workers finished"
        );
        assert_eq!(q_i64(&admin, "SELECT count(*) FROM month_locks").await, 0);
        claims += o.processed + o.stale_claims;
        stale += o.stale_claims;
        nulls += o.nulls_with_work_left;
    }
    println!(
        "claim: {ROUNDS} rounds (session and xact scope) of {WORKERS} workers over {MONTHS} months: \
         {} months processed exactly once, {claims} claims ({stale} of a month finished after the \
         claimer's snapshot, re-checked under the lock), {nulls} NULLs while others held the rest, \
         no month claimed twice while held, no lock left; {:?}",
        ROUNDS as i64 * MONTHS,
        start.elapsed()
    );
}

#[tokio::test]
async fn simultaneous_claims_of_one_month_give_it_to_exactly_one() {
    const SESSIONS: usize = 8;
    const ROUNDS: usize = 200;
    let db = db("claim_one").await;
    let role = db.with_new_role("claim_racer").await;
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let winners = Arc::new(Mutex::new(vec![0u32; ROUNDS]));
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let c = role.connect().await;
        let (barrier, winners) = (barrier.clone(), winners.clone());
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                barrier.wait().await;
                // Two months per round: every session asks for both, in an order of its own.
                let sql = if s % 2 == 0 {
                    "month_lock_claim(ARRAY['2024-03-01', '2024-04-01']::date[])"
                } else {
                    "month_lock_claim(ARRAY['2024-04-15', '2024-03-15']::date[])"
                };
                let got = claim(&c, sql).await;
                barrier.wait().await;
                if let Some(m) = got {
                    winners.lock().unwrap()[r] += 1;
                    assert!(
                        m == "2024-03-01" || m == "2024-04-01",
                        "returned the first of the month: {m}"
                    );
                    let (y, mo) = (2024, if m == "2024-03-01" { 3 } else { 4 });
                    assert!(q_bool(&c, &format!("SELECT month_lock_release({y}, {mo})")).await);
                    assert_eq!(
                        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
                        0,
                        "took one month only"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let winners = winners.lock().unwrap();
    assert!(
        winners.iter().all(|&n| n == 2),
        "two months, two winners per round: {winners:?}"
    );
    println!("claim race: {ROUNDS} rounds of {SESSIONS} sessions claiming from two months: exactly two winners every round");
}

#[tokio::test]
async fn claim_skips_months_held_by_others_or_by_this_session_and_takes_one() {
    let db = db("claim_skips").await;
    let role = db.with_new_role("claim_user").await;
    let observer = db.connect().await;
    let (c, x, y) = (
        role.connect().await,
        role.connect().await,
        role.connect().await,
    );
    let pid = backend_pid(&c).await;

    // Held by others: exclusive, shared (conflicts with an exclusive claim), xact scope.
    assert!(q_bool(&x, "SELECT month_lock_try(2024, 1)").await);
    assert!(q_bool(&y, "SELECT month_lock_try_shared(2024, 2)").await);
    exec(&x, "BEGIN; SELECT month_lock_xact(2024, 3)").await;
    let all4 = arr(&["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]);
    assert_eq!(
        claim(&c, &format!("month_lock_claim({all4})"))
            .await
            .as_deref(),
        Some("2024-04-01")
    );
    assert_eq!(locks_of(&observer, pid).await, vec!["202404 ExclusiveLock"]);
    // Now all four are held (one by this session): NULL, and nothing new taken.
    assert_eq!(claim(&c, &format!("month_lock_claim({all4})")).await, None);
    assert_eq!(
        claim(&c, &format!("month_lock_claim_xact({all4})")).await,
        None
    );
    assert_eq!(locks_of(&observer, pid).await, vec!["202404 ExclusiveLock"]);
    exec(&x, "COMMIT").await;
    // 2024-03 is free again: the claim walks in the given order.
    assert_eq!(
        claim(&c, &format!("month_lock_claim({all4})"))
            .await
            .as_deref(),
        Some("2024-03-01")
    );

    // Months this session holds in any mode or scope are skipped.
    assert!(q_bool(&c, "SELECT month_lock_try_shared(2024, 5)").await);
    assert_eq!(
        claim(&c, &format!("month_lock_claim({})", arr(&["2024-05-01"]))).await,
        None,
        "held shared by this session: skipped, not upgraded"
    );
    assert!(!q_bool(&x, "SELECT month_lock_try(2024, 5)").await);
    assert_eq!(
        locks_of(&observer, pid).await,
        vec![
            "202403 ExclusiveLock",
            "202404 ExclusiveLock",
            "202405 ShareLock"
        ]
    );
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 6)").await;
    assert_eq!(
        claim(
            &c,
            &format!("month_lock_claim({})", arr(&["2024-06-01", "2024-07-01"]))
        )
        .await
        .as_deref(),
        Some("2024-07-01"),
        "held in transaction scope by this session: skipped"
    );
    exec(&c, "COMMIT").await;
    assert!(held(&c, 2024, 7).await && !held(&c, 2024, 6).await);

    // At most one month per call, the first free one in array order; any day names its month.
    let free = arr(&["2024-12-31", "2024-11-17", "2024-10-01"]);
    assert_eq!(
        claim(&c, &format!("month_lock_claim({free})"))
            .await
            .as_deref(),
        Some("2024-12-01")
    );
    assert!(!held(&c, 2024, 11).await && !held(&c, 2024, 10).await);
    assert_eq!(
        claim(&c, &format!("month_lock_claim({free})"))
            .await
            .as_deref(),
        Some("2024-11-01")
    );
    // Duplicates of a month this session now holds: skipped.
    assert_eq!(
        claim(
            &c,
            &format!("month_lock_claim({})", arr(&["2024-12-02", "2024-11-30"]))
        )
        .await,
        None
    );
    // Empty array: NULL.
    assert_eq!(claim(&c, "month_lock_claim(ARRAY[]::date[])").await, None);
    let before = locks_of(&observer, pid).await;
    assert_eq!(before.len(), 6, "{before:?}");

    // Invalid input: 22004 for NULLs (naming "months"), 22023 out of range; nothing taken.
    for (sql, want) in [
        (
            "SELECT month_lock_claim(NULL)",
            SqlState::NULL_VALUE_NOT_ALLOWED,
        ),
        (
            "SELECT month_lock_claim(ARRAY['2025-01-01', NULL]::date[])",
            SqlState::NULL_VALUE_NOT_ALLOWED,
        ),
        (
            "SELECT month_lock_claim_xact(ARRAY[NULL]::date[])",
            SqlState::NULL_VALUE_NOT_ALLOWED,
        ),
        (
            "SELECT month_lock_claim(ARRAY['2025-01-01', '10000-01-01']::date[])",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
        (
            "SELECT month_lock_claim(ARRAY['0044-03-15 BC']::date[])",
            SqlState::INVALID_PARAMETER_VALUE,
        ),
    ] {
        let (code, msg) = error_full(&c, sql).await;
        assert_eq!(code, want, "{sql}: {msg}");
        if want == SqlState::NULL_VALUE_NOT_ALLOWED && sql.contains("ARRAY") {
            assert!(msg.contains("months"), "{sql}: names the argument: {msg}");
        }
    }
    assert_eq!(locks_of(&observer, pid).await, before, "nothing taken");
    assert!(!q_bool(&observer, "SELECT month_is_locked(2025, 1)").await);

    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        6
    );
    assert_eq!(
        q_i64(&x, "SELECT month_lock_release_all()::bigint").await,
        1
    );
    assert_eq!(
        q_i64(&y, "SELECT month_lock_release_all()::bigint").await,
        1
    );
}

#[tokio::test]
async fn claim_never_jumps_the_queue_of_a_month_being_handed_over() {
    const ROUNDS: usize = 200;
    let db = db("claim_queue").await;
    let role = db.with_new_role("claim_queue").await;
    let observer = db.connect().await;
    let (holder, waiter, claimer) = (
        role.connect().await,
        role.connect().await,
        role.connect().await,
    );
    let pid_w = backend_pid(&waiter).await;
    let waiter = Arc::new(waiter);
    let claimer = Arc::new(claimer);
    let mut claimed_other = 0;
    for r in 0..ROUNDS {
        assert!(q_bool(&holder, "SELECT month_lock_try(2024, 3)").await);
        let w = waiter.clone();
        let wait = tokio::spawn(async move {
            w.query_one("SELECT month_lock_try(2024, 3, 10000)", &[])
                .await
                .map(|r| r.get::<_, bool>(0))
        });
        wait_until_waiting(&observer, pid_w).await;
        // Queued waiter, held month: a claim skips it (2024-04 is free and comes second).
        let sql = "month_lock_claim(ARRAY['2024-03-01', '2024-04-01']::date[])";
        // Release and claim at the same instant, from two sessions.
        let cl = claimer.clone();
        let claim_task = tokio::spawn(async move { claim(&cl, sql).await });
        assert!(q_bool(&holder, "SELECT month_lock_release(2024, 3)").await);
        let got = claim_task.await.unwrap();
        assert!(
            wait.await.unwrap().unwrap(),
            "round {r}: the queued waiter gets the month"
        );
        assert_eq!(
            got.as_deref(),
            Some("2024-04-01"),
            "round {r}: the claim never takes the month the waiter was queued for"
        );
        claimed_other += 1;
        assert!(q_bool(&waiter, "SELECT month_lock_release(2024, 3)").await);
        assert!(q_bool(&claimer, "SELECT month_lock_release(2024, 4)").await);
    }
    // A month with a queued waiter and a holder that is this session in shared mode: skipped
    // (a waiting exclusive request of this session could pass the queue; a claim must not).
    assert!(q_bool(&claimer, "SELECT month_lock_try_shared(2024, 5)").await);
    let w = waiter.clone();
    let wait = tokio::spawn(async move {
        w.query_one("SELECT month_lock_try(2024, 5, 10000)", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
    });
    wait_until_waiting(&observer, pid_w).await;
    assert_eq!(
        claim(&claimer, "month_lock_claim(ARRAY['2024-05-01']::date[])").await,
        None
    );
    assert!(q_bool(&claimer, "SELECT month_lock_release_shared(2024, 5)").await);
    assert!(wait.await.unwrap().unwrap());
    assert!(q_bool(&waiter, "SELECT month_lock_release(2024, 5)").await);
    assert_eq!(advisory_total(&observer).await, 0);
    println!("claim queue: {ROUNDS} releases racing a claim with a waiter queued: the waiter got the month every time, the claim took the next free month ({claimed_other})");
}

#[tokio::test]
async fn claim_xact_holds_until_the_transaction_ends() {
    let db = db("claim_xact").await;
    let role = db.with_new_role("claim_xact").await;
    let observer = db.connect().await;
    let (c, other) = (role.connect().await, role.connect().await);
    let pid = backend_pid(&c).await;
    let one_month = "month_lock_claim_xact(ARRAY['2024-03-09']::date[])";

    for end in ["COMMIT", "ROLLBACK"] {
        exec(&c, "BEGIN").await;
        assert_eq!(claim(&c, one_month).await.as_deref(), Some("2024-03-01"));
        assert!(!q_bool(&other, "SELECT month_lock_try(2024, 3)").await);
        assert_eq!(
            claim(&other, "month_lock_claim(ARRAY['2024-03-01']::date[])").await,
            None
        );
        assert!(
            !q_bool(&c, "SELECT month_lock_release(2024, 3)").await,
            "a session release does not end a transaction hold"
        );
        assert_eq!(
            q_i64(
                &c,
                "SELECT month_lock_release(ARRAY['2024-03-01']::date[])::bigint"
            )
            .await,
            0
        );
        assert!(held(&c, 2024, 3).await);
        assert_eq!(claim(&c, one_month).await, None, "held by this session");
        exec(&c, end).await;
        assert_eq!(advisory_count(&observer, pid).await, 0, "after {end}");
        assert!(
            q_bool(&other, "SELECT month_lock_try(2024, 3)").await,
            "{end}"
        );
        assert!(q_bool(&other, "SELECT month_lock_release(2024, 3)").await);
    }
    // Outside a transaction block the statement is the transaction.
    assert_eq!(claim(&c, one_month).await.as_deref(), Some("2024-03-01"));
    assert!(!held(&c, 2024, 3).await);
    // Ended by ROLLBACK TO SAVEPOINT of an enclosing savepoint.
    exec(&c, "BEGIN; SAVEPOINT s").await;
    assert_eq!(claim(&c, one_month).await.as_deref(), Some("2024-03-01"));
    exec(&c, "ROLLBACK TO s").await;
    assert!(!held(&c, 2024, 3).await);
    exec(&c, "COMMIT").await;

    // month_lock.session_locks = off: the session form is refused (55000), the xact form works.
    exec(&c, "SET month_lock.session_locks = off").await;
    let (code, msg) = error_full(&c, "SELECT month_lock_claim(ARRAY['2024-03-01']::date[])").await;
    assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{msg}");
    exec(&c, "BEGIN").await;
    assert_eq!(claim(&c, one_month).await.as_deref(), Some("2024-03-01"));
    exec(&c, "COMMIT").await;
    assert_eq!(advisory_count(&observer, pid).await, 0);
}

#[tokio::test]
async fn a_failed_request_keeps_no_claimed_month() {
    let db = db("claim_failed").await;
    let role = db.with_new_role("claim_failed").await;
    let observer = db.connect().await;
    let (c, other) = (role.connect().await, role.connect().await);
    let pid = backend_pid(&c).await;
    for sql in [
        "SELECT month_lock_claim(ARRAY['2024-03-01']::date[]), 1/0",
        "SELECT month_lock_claim(ARRAY['2024-03-01']::date[]), 1/(NOT month_lock_held(2024, 3))::int",
        "SELECT month_lock_claim(ARRAY['2024-03-01']::date[]); SELECT 1/(NOT month_lock_held(2024, 3))::int",
        "BEGIN; SELECT month_lock_claim(ARRAY['2024-03-01']::date[]); SELECT 1/0",
    ] {
        let (code, msg) = error_of(&c, sql).await;
        assert_eq!(code, SqlState::DIVISION_BY_ZERO, "{sql}: {msg}");
        exec(&c, "ROLLBACK").await;
        assert_eq!(advisory_count(&observer, pid).await, 0, "{sql}");
        assert!(q_bool(&other, "SELECT month_lock_try(2024, 3)").await, "{sql}");
        assert!(q_bool(&other, "SELECT month_lock_release(2024, 3)").await);
    }
    // A completed claim survives a later failed request and ROLLBACK (session semantics).
    exec(&c, "BEGIN").await;
    assert_eq!(
        claim(&c, "month_lock_claim(ARRAY['2024-03-01']::date[])")
            .await
            .as_deref(),
        Some("2024-03-01")
    );
    let (code, _) = error_of(&c, "SELECT 1/0").await;
    assert_eq!(code, SqlState::DIVISION_BY_ZERO);
    exec(&c, "ROLLBACK").await;
    assert!(held(&c, 2024, 3).await);
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        1
    );
}
