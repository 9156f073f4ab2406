//! Workers claiming until nothing is left process every month exactly once, and simultaneous claims
//! of one month give it to exactly one of them (docs/semantics.md, "Fencing tokens, claim any, all
//! or nothing": "Claim any").

use crate::common::*;
use month_lock_tests::TestDb;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Barrier;
use tokio_postgres::Client;

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
