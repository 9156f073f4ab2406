//! A waiting form with a timeout never reports a lock timeout from outside its own wait
//! (docs/semantics.md: "Waiting"): when month_lock's timer fires in the instant the month is
//! granted, the call returns `true` (the raising forms return) and nothing raises 55P03 afterwards
//! — not the next statement of the loop, not the next month of a set. The holder releases at random
//! points around the waiter's 1 ms deadline, thousands of times, in loops that run inside the
//! server so that each round costs a millisecond, not a round trip.

mod common;

use common::*;
use month_lock_tests::server;
use std::time::Duration;
use tokio_postgres::Client;

/// Seconds each waiter loop runs (the holder runs a little longer).
const SECONDS: f64 = 3.0;

/// Runs `waiter_body` (PL/pgSQL statements for one round, which set `got` and may COMMIT;
/// `{M}` stands for the contended month, `{N}` for the month after it) in a loop for [`SECONDS`]
/// against a holder that takes month M of 2040 and releases it after 0..2 ms, then pauses
/// 0..0.5 ms; three such pairs at once on months 1, 3 and 5. Returns (rounds, rounds in which
/// the month was had), summed.
async fn race(hint: &str, waiter_body: &str) -> (i64, i64) {
    let db = server().await.fresh_db(hint).await;
    let role = db.with_new_role("timer_race").await;
    let pairs = [1, 3, 5].map(|m| {
        let body = waiter_body
            .replace("{M}", &m.to_string())
            .replace("{N}", &(m + 1).to_string());
        pair(role.clone(), m, body)
    });
    let results = futures_join3(pairs).await;
    let (rounds, had) = results
        .iter()
        .fold((0, 0), |(r, h), (r2, h2)| (r + r2, h + h2));
    println!("{hint}: {rounds} rounds, month had in {had}");
    assert!(rounds > 3000, "{hint}: only {rounds} rounds");
    assert!(
        had > 0 && had < rounds,
        "{hint}: both outcomes occur ({had}/{rounds})"
    );
    (rounds, had)
}

async fn futures_join3<F: std::future::Future>(pairs: [F; 3]) -> [F::Output; 3] {
    let [a, b, c] = pairs;
    let (a, b, c) = tokio::join!(a, b, c);
    [a, b, c]
}

async fn pair(role: month_lock_tests::TestDb, m: i32, waiter_body: String) -> (i64, i64) {
    let (waiter, holder): (Client, Client) = (role.connect().await, role.connect().await);
    exec(
        &waiter,
        "CREATE TEMP TABLE result (rounds bigint, had bigint)",
    )
    .await;
    let holder_sql = format!(
        "DO $$
         DECLARE stop timestamptz := clock_timestamp() + interval '{} seconds';
         BEGIN
           WHILE clock_timestamp() < stop LOOP
             PERFORM month_lock_try(2040, {m}, 10000);
             PERFORM pg_sleep(random() * 0.002);
             PERFORM month_lock_release(2040, {m});
             PERFORM pg_sleep(random() * 0.0005);
           END LOOP;
         END $$",
        SECONDS + 0.5
    );
    let waiter_sql = format!(
        "DO $$
         DECLARE stop timestamptz := clock_timestamp() + interval '{SECONDS} seconds';
                 rounds bigint := 0; had bigint := 0; got boolean;
         BEGIN
           WHILE clock_timestamp() < stop LOOP
             got := false;
             {waiter_body}
             rounds := rounds + 1;
             IF got THEN
               had := had + 1;
               -- let the holder take the month, so that the next round waits
               PERFORM pg_sleep(0.0005 + random() * 0.001);
             END IF;
           END LOOP;
           INSERT INTO result VALUES (rounds, had);
         END $$"
    );
    let (holder_loop, waiter_loop) = (
        holder.batch_execute(&holder_sql),
        waiter.batch_execute(&waiter_sql),
    );
    let (h, w) = tokio::time::timeout(Duration::from_secs_f64(SECONDS * 4.0 + 30.0), async {
        tokio::join!(holder_loop, waiter_loop)
    })
    .await
    .expect("the loops end by themselves");
    h.unwrap_or_else(|e| panic!("holder: {}", describe(&e)));
    w.unwrap_or_else(|e| panic!("waiter (2040-{m:02}): {}", describe(&e)));
    let row = waiter
        .query_one("SELECT rounds, had FROM result", &[])
        .await
        .unwrap();
    assert_eq!(
        q_i64(&waiter, "SELECT month_lock_release_all()::bigint").await,
        0,
        "2040-{m:02}: nothing left held"
    );
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn month_lock_try_with_a_timeout_returns_true_or_false_and_never_raises() {
    race(
        "try",
        "got := month_lock_try(2040, {M}, 1);
         IF got THEN PERFORM month_lock_release(2040, {M}); END IF;",
    )
    .await;
}

#[tokio::test]
async fn month_lock_try_xact_with_a_timeout_returns_true_or_false_and_never_raises() {
    race(
        "try_xact",
        "got := month_lock_try_xact(2040, {M}, 1);
         COMMIT;",
    )
    .await;
}

#[tokio::test]
async fn month_lock_all_with_a_timeout_returns_true_or_false_and_never_raises() {
    // Month M is contended, N free: the timer of the first wait races its grant, and a
    // pending cancel would surface in the next month's attempt.
    race(
        "all",
        "got := month_lock_all(ARRAY[make_date(2040, {M}, 1), make_date(2040, {N}, 1)], 1);
         IF got THEN PERFORM month_lock_release(ARRAY[make_date(2040, {M}, 1), make_date(2040, {N}, 1)]); END IF;",
    )
    .await;
}

#[tokio::test]
async fn the_raising_forms_raise_55p03_only_when_the_month_was_not_had() {
    race(
        "raising",
        "BEGIN
           PERFORM month_lock(2040, {M}, 1);
           got := true;
           PERFORM month_lock_release(2040, {M});
         EXCEPTION WHEN lock_not_available THEN
           IF month_lock_held(2040, {M}) THEN
             RAISE EXCEPTION 'month_lock raised 55P03 with the month held';
           END IF;
         END;",
    )
    .await;
}

#[tokio::test]
async fn the_raising_transaction_form_raises_55p03_only_when_the_month_was_not_had() {
    race(
        "raising_xact",
        "BEGIN
           PERFORM month_lock_xact(2040, {M}, 1);
           got := true;
         EXCEPTION WHEN lock_not_available THEN
           IF month_lock_held(2040, {M}) THEN
             RAISE EXCEPTION 'month_lock_xact raised 55P03 with the month held';
           END IF;
         END;
         COMMIT;",
    )
    .await;
}
