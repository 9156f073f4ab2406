//! Issue #10 item 1, fencing tokens (/tmp/spec/api10.md §1), against the real server:
//! `month_lock_token(year, month)` is only for an exclusive hold of this session (55000
//! otherwise), the same hold always gets the same token, every later hold of the month (any
//! session, either scope) a larger one, committed tokens survive a restart, and the
//! stale-writer pattern rejects a terminated holder's writes once the next holder wrote.

mod common;

use common::*;
use month_lock_tests::faults;
use month_lock_tests::{backend_pid, server, start_cluster, wait_until_waiting, TestDb};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn db(hint: &str) -> TestDb {
    server().await.fresh_db(hint).await
}

async fn token(c: &Client, y: i32, m: i32) -> i64 {
    q_i64(c, &format!("SELECT month_lock_token({y}, {m})")).await
}

/// The stale-writer write of the documented pattern; returns the rows it touched.
async fn fenced_write(data_path: &Client, month: &str, value: &str, tok: i64) -> u64 {
    data_path
        .execute(
            "UPDATE facts SET value = $1, token = $2 WHERE month = $3::text::date AND token <= $2",
            &[&value, &tok, &month],
        )
        .await
        .unwrap_or_else(|e| panic!("fenced write {value}: {}", describe(&e)))
}

async fn fact(c: &Client, month: &str) -> (String, i64) {
    let row = c
        .query_one(
            "SELECT value, token FROM facts WHERE month = $1::text::date",
            &[&month],
        )
        .await
        .unwrap_or_else(|e| panic!("read facts: {}", describe(&e)));
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn stale_holder_writes_are_rejected_once_the_next_holder_wrote() {
    let db = db("fencing_stale").await;
    let admin = db.connect().await;
    exec(
        &admin,
        "CREATE TABLE facts(month date PRIMARY KEY, value text, token bigint);
         INSERT INTO facts VALUES ('2024-03-01', 'initial', 0);",
    )
    .await;
    let role = db.with_new_role("fenced_worker").await;
    exec(
        &admin,
        &format!("GRANT SELECT, UPDATE ON facts TO \"{}\"", role.user()),
    )
    .await;
    const M: &str = "2024-03-01";

    // Worker A: the lock on A1, its data path on A2. Worker B: one connection.
    let (a1, a2, b) = (
        role.connect().await,
        role.connect().await,
        role.connect().await,
    );
    let (pid_a1, pid_b) = (backend_pid(&a1).await, backend_pid(&b).await);
    assert!(q_bool(&a1, "SELECT month_lock_try(2024, 3)").await);
    let tok_a = token(&a1, 2024, 3).await;
    assert!(tok_a > 0, "tokens are positive: {tok_a}");
    assert_eq!(token(&a1, 2024, 3).await, tok_a, "same hold, same token");
    // A2 is another session: it holds nothing, so it has no token of its own.
    let (c, msg) = error_of(&a2, "SELECT month_lock_token(2024, 3)").await;
    assert_eq!(c, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{msg}");
    assert_eq!(fenced_write(&a2, M, "A first write", tok_a).await, 1);
    assert_eq!(fact(&admin, M).await, ("A first write".into(), tok_a));

    // B queues for the month.
    let b = Arc::new(b);
    let bb = b.clone();
    let b_wait = tokio::spawn(async move {
        let t = Instant::now();
        bb.batch_execute("SELECT month_lock(2024, 3)")
            .await
            .map(|_| t.elapsed())
    });
    wait_until_waiting(&admin, pid_b).await;
    assert!(!b_wait.is_finished(), "B waits while A holds the month");
    assert_eq!(
        fenced_write(&a2, M, "A second write", tok_a).await,
        1,
        "A still holds the month: its writes go through"
    );

    // A1's session is terminated: the month passes to B.
    assert!(q_bool(&admin, &format!("SELECT pg_terminate_backend({pid_a1})")).await);
    let waited = tokio::time::timeout(SLOW, b_wait)
        .await
        .expect("B is granted the month once A1 is gone")
        .unwrap()
        .unwrap_or_else(|e| panic!("B's month_lock: {}", describe(&e)));
    assert!(a1.query_one("SELECT 1", &[]).await.is_err(), "A1 is gone");
    assert!(q_bool(&b, "SELECT month_lock_held(2024, 3)").await);

    // A keeps "working" before B wrote: the pattern lets it through (the stored token is
    // still its own), which is why the check is `<=` and the new holder must write.
    assert_eq!(
        fenced_write(&a2, M, "A write after losing the lock", tok_a).await,
        1,
        "before the next holder wrote, the stale writer is not yet fenced"
    );

    let tok_b = token(&b, 2024, 3).await;
    assert!(tok_b > tok_a, "next holder's token {tok_b} > {tok_a}");
    assert_eq!(fenced_write(&b, M, "B", tok_b).await, 1, "B writes");
    assert_eq!(fact(&admin, M).await, ("B".into(), tok_b));

    // A keeps "working" through A2 with its old token: rejected, every time.
    for i in 0..3 {
        assert_eq!(
            fenced_write(&a2, M, &format!("stale A write {i}"), tok_a).await,
            0,
            "stale writer after the next holder wrote"
        );
    }
    assert_eq!(
        fact(&admin, M).await,
        ("B".into(), tok_b),
        "B's write stands"
    );
    // B can keep writing with its token.
    assert_eq!(fenced_write(&b, M, "B again", tok_b).await, 1);
    assert_eq!(token(&b, 2024, 3).await, tok_b);
    assert!(q_bool(&b, "SELECT month_lock_release(2024, 3)").await);
    println!(
        "fencing: A token {tok_a}, B token {tok_b}, B waited {waited:?}; A's stale writes touched 0 rows"
    );
}

#[tokio::test]
async fn token_without_an_exclusive_hold_of_this_session_raises_55000() {
    let db = db("fencing_errors").await;
    let role = db.with_new_role("token_user").await;
    let (c, other, observer) = (
        role.connect().await,
        role.connect().await,
        db.connect().await,
    );
    let pid = backend_pid(&c).await;

    let expect_55000 = |sql: &'static str, why: &'static str| {
        let c = &c;
        async move {
            let (code, msg) = error_full(c, sql).await;
            assert_eq!(
                code,
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "{why}: {sql}: {msg}"
            );
            msg
        }
    };

    // Not held at all.
    let msg = expect_55000("SELECT month_lock_token(2024, 3)", "not held").await;
    assert!(
        msg.contains("2024-03") && msg.contains("not held exclusively"),
        "the message names the month: {msg}"
    );
    println!("not held: {msg}");
    // Held by another session only.
    assert!(q_bool(&other, "SELECT month_lock_try(2024, 3)").await);
    expect_55000(
        "SELECT month_lock_token(2024, 3)",
        "held by another session",
    )
    .await;
    assert!(q_bool(&other, "SELECT month_lock_release(2024, 3)").await);
    // Held shared only, session scope.
    assert!(q_bool(&c, "SELECT month_lock_try_shared(2024, 3)").await);
    let msg = expect_55000("SELECT month_lock_token(2024, 3)", "held shared").await;
    assert!(msg.contains("2024-03"), "{msg}");
    assert!(q_bool(&c, "SELECT month_lock_release_shared(2024, 3)").await);
    // Held shared only, transaction scope.
    exec(&c, "BEGIN").await;
    assert!(q_bool(&c, "SELECT month_lock_try_xact_shared(2024, 4)").await);
    let err = c
        .query_one("SELECT month_lock_token(2024, 4)", &[])
        .await
        .expect_err("shared xact hold has no token");
    assert_eq!(
        code(&err),
        Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
        "{}",
        describe(&err)
    );
    exec(&c, "ROLLBACK").await;
    // A transaction-scope exclusive hold has a token inside its transaction, none after it.
    exec(&c, "BEGIN").await;
    assert!(q_bool(&c, "SELECT month_lock_try_xact(2024, 5)").await);
    let t = token(&c, 2024, 5).await;
    assert!(t > 0);
    exec(&c, "COMMIT").await;
    expect_55000(
        "SELECT month_lock_token(2024, 5)",
        "xact hold ended at COMMIT",
    )
    .await;
    // After a release.
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 6)").await);
    token(&c, 2024, 6).await;
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 6)").await);
    expect_55000("SELECT month_lock_token(2024, 6)", "after release").await;
    // A failed token call takes nothing.
    assert_eq!(advisory_count(&observer, pid).await, 0);
    // A month that does not exist: the same SQLSTATE as the locking functions give.
    let (want, _) = error_of(&c, "SELECT month_lock_try(2024, 13)").await;
    let (got, msg) = error_of(&c, "SELECT month_lock_token(2024, 13)").await;
    assert_eq!(got, want, "month 13: {msg}");
    let (want, _) = error_of(&c, "SELECT month_lock_try(0, 1)").await;
    let (got, msg) = error_of(&c, "SELECT month_lock_token(0, 1)").await;
    assert_eq!(got, want, "year 0: {msg}");
    // Holding shared and exclusive both: the exclusive hold has a token.
    assert!(q_bool(&c, "SELECT month_lock_try_shared(2024, 7)").await);
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 7)").await);
    let t = token(&c, 2024, 7).await;
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 7)").await);
    expect_55000(
        "SELECT month_lock_token(2024, 7)",
        "exclusive released, shared still held",
    )
    .await;
    assert!(t > 0);
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        1
    );
    assert_eq!(advisory_count(&observer, pid).await, 0);
}

#[tokio::test]
async fn the_same_hold_returns_the_same_token_on_every_call() {
    let db = db("fencing_same").await;
    let role = db.with_new_role("token_same").await;
    let c = role.connect().await;

    // Session scope: across statements, transactions and re-entry (which does not stack).
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let t = token(&c, 2024, 3).await;
    for _ in 0..5 {
        assert_eq!(token(&c, 2024, 3).await, t);
    }
    assert_eq!(
        q_i64(
            &c,
            "SELECT count(DISTINCT month_lock_token(2024, 3)) FROM generate_series(1, 100)"
        )
        .await,
        1,
        "100 calls in one statement"
    );
    exec(&c, "BEGIN").await;
    assert_eq!(token(&c, 2024, 3).await, t, "inside a transaction");
    exec(&c, "ROLLBACK").await;
    assert_eq!(token(&c, 2024, 3).await, t, "after a ROLLBACK");
    assert!(
        q_bool(&c, "SELECT month_lock_try(2024, 3)").await,
        "re-entry"
    );
    assert_eq!(token(&c, 2024, 3).await, t, "re-entry is the same hold");
    assert!(
        q_bool(&c, "SELECT month_lock_try(2024, 3, 1000)").await,
        "re-entry"
    );
    assert_eq!(token(&c, 2024, 3).await, t);
    // A failed statement after the token does not change it.
    let (code, _) = error_of(&c, "SELECT month_lock_token(2024, 3), 1/0").await;
    assert_eq!(code, SqlState::DIVISION_BY_ZERO);
    assert_eq!(token(&c, 2024, 3).await, t);
    // Session scope through savepoints: the same hold, the same token.
    exec(&c, "BEGIN; SAVEPOINT s").await;
    assert_eq!(token(&c, 2024, 3).await, t);
    exec(&c, "ROLLBACK TO s").await;
    assert_eq!(
        token(&c, 2024, 3).await,
        t,
        "session hold after ROLLBACK TO"
    );
    exec(&c, "COMMIT").await;
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);
    // A session hold whose token was first asked in a transaction that rolled back.
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 6)").await);
    exec(&c, "BEGIN").await;
    let r1 = token(&c, 2024, 6).await;
    exec(&c, "ROLLBACK").await;
    let r2 = token(&c, 2024, 6).await;
    assert_eq!(token(&c, 2024, 6).await, r2);
    assert!(r2 >= r1, "never shrinks: {r1} then {r2}");
    println!("session hold: token first asked in a rolled-back transaction {r1}, afterwards {r2}");
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 6)").await);

    // Transaction scope: the same token for every call in the transaction.
    exec(&c, "BEGIN").await;
    exec(&c, "SELECT month_lock_xact(2024, 4)").await;
    let x = token(&c, 2024, 4).await;
    for _ in 0..5 {
        assert_eq!(token(&c, 2024, 4).await, x);
    }
    // ROLLBACK TO SAVEPOINT of a savepoint taken after the token: it may grow, never shrink.
    exec(&c, "SAVEPOINT s").await;
    assert_eq!(token(&c, 2024, 4).await, x);
    exec(&c, "ROLLBACK TO s").await;
    let after = token(&c, 2024, 4).await;
    // The contract allows growth here (never shrinking), even for a token asked before the
    // savepoint; it stays the same hold: later calls agree with each other.
    assert!(
        after >= x,
        "never shrinks after ROLLBACK TO SAVEPOINT: {x} then {after}"
    );
    assert_eq!(token(&c, 2024, 4).await, after);
    // Token first asked inside a savepoint that is rolled back.
    exec(&c, "SELECT month_lock_xact(2024, 5); SAVEPOINT s2").await;
    let y = token(&c, 2024, 5).await;
    exec(&c, "ROLLBACK TO s2").await;
    let y2 = token(&c, 2024, 5).await;
    assert!(
        y2 >= y,
        "never shrinks after ROLLBACK TO SAVEPOINT: {y} then {y2}"
    );
    assert_eq!(token(&c, 2024, 5).await, y2);
    exec(&c, "COMMIT").await;
    println!(
        "savepoint: token asked before a savepoint {x}, after ROLLBACK TO {after}; asked inside a rolled-back savepoint {y}, afterwards {y2}"
    );
}

#[tokio::test]
async fn every_later_hold_gets_a_larger_token_in_either_scope_and_any_session() {
    let db = db("fencing_larger").await;
    let role = db.with_new_role("token_next").await;
    let (x, y) = (role.connect().await, role.connect().await);
    let mut last = 0i64;
    let mut n = 0;
    // 60 holds of one month, cycling through sessions, scopes and ways of taking the month
    // (holds that never ask for a token in between are fine too).
    for i in 0..60 {
        let c = if i % 2 == 0 { &x } else { &y };
        let t = match i % 6 {
            0 | 1 => {
                assert!(q_bool(c, "SELECT month_lock_try(2024, 3)").await);
                let t = token(c, 2024, 3).await;
                assert!(q_bool(c, "SELECT month_lock_release(2024, 3)").await);
                t
            }
            2 | 3 => {
                exec(c, "BEGIN").await;
                assert!(q_bool(c, "SELECT month_lock_try_xact(2024, 3, 1000)").await);
                let t = token(c, 2024, 3).await;
                exec(c, "COMMIT").await;
                t
            }
            4 => {
                // Token asked in the same statement that takes the month (xact, autocommit).
                q_i64(
                    c,
                    "SELECT month_lock_token(2024, 3) FROM (SELECT month_lock_xact(2024, 3)) s",
                )
                .await
            }
            _ => {
                // A hold that never asks, then one that does.
                assert!(q_bool(c, "SELECT month_lock_try(2024, 3)").await);
                assert!(q_bool(c, "SELECT month_lock_release(2024, 3)").await);
                assert!(q_bool(c, "SELECT month_lock_try(2024, 3)").await);
                let t = token(c, 2024, 3).await;
                assert!(q_bool(c, "SELECT month_lock_release_all() = 1").await);
                t
            }
        };
        assert!(t > last, "hold {i}: token {t} after {last}");
        last = t;
        n += 1;
    }
    // Session and transaction hold in the same session, one after the other.
    exec(&x, "BEGIN").await;
    assert!(q_bool(&x, "SELECT month_lock_try_xact(2024, 3)").await);
    let tx = token(&x, 2024, 3).await;
    exec(&x, "COMMIT").await;
    assert!(q_bool(&x, "SELECT month_lock_try(2024, 3)").await);
    let ts = token(&x, 2024, 3).await;
    assert!(q_bool(&x, "SELECT month_lock_release(2024, 3)").await);
    assert!(tx > last && ts > tx, "{last} < {tx} < {ts}");
    println!(
        "larger: {n} holds in two sessions and both scopes, tokens strictly increasing up to {ts}"
    );
}

#[tokio::test]
async fn tokens_increase_strictly_in_hold_order_under_contention() {
    const WORKERS: usize = 6;
    const ROUNDS: usize = 60;
    let db = db("fencing_contention").await;
    let role = db.with_new_role("token_racer").await;
    // Each worker takes the month (waiting in the queue), asks for its token and appends it
    // to the ledger while it holds the month, then releases: the ledger is in hold order.
    let ledger = Arc::new(Mutex::new(Vec::<(usize, i64)>::new()));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let c = role.connect().await;
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let xact = (w + r) % 3 == 0;
                let t = if xact {
                    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 3)").await;
                    let t = token(&c, 2024, 3).await;
                    ledger.lock().unwrap().push((w, t));
                    assert_eq!(token(&c, 2024, 3).await, t);
                    exec(&c, "COMMIT").await;
                    t
                } else {
                    exec(&c, "SELECT month_lock(2024, 3)").await;
                    let t = token(&c, 2024, 3).await;
                    ledger.lock().unwrap().push((w, t));
                    assert_eq!(token(&c, 2024, 3).await, t);
                    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);
                    t
                };
                assert!(t > 0);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = ledger.lock().unwrap();
    assert_eq!(ledger.len(), WORKERS * ROUNDS);
    let mut handovers = 0;
    for pair in ledger.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "hold order {:?} then {:?}: tokens must increase",
            pair[0],
            pair[1]
        );
        if pair[1].0 != pair[0].0 {
            handovers += 1;
        }
    }
    println!(
        "contention: {} holds by {WORKERS} workers ({handovers} handovers between sessions), tokens strictly increasing",
        ledger.len()
    );
}

#[tokio::test]
async fn committed_tokens_survive_a_server_restart() {
    let server = start_cluster(&[]).await;
    let db = server.fresh_db("fencing_restart").await;
    let role = db.with_new_role("token_restart").await;
    let c = role.connect().await;
    // A session hold's token (autocommit: committed when the statement ends) ...
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let t_session = token(&c, 2024, 3).await;
    // ... and a transaction hold's token in a committed transaction, on another month.
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 4)").await;
    let t_xact = token(&c, 2024, 4).await;
    exec(&c, "COMMIT").await;
    // The session keeps holding 2024-03 across the restart request: the restart ends it.
    let down = faults::restart(&server).await;
    assert!(c.query_one("SELECT 1", &[]).await.is_err(), "session ended");

    let c = role.connect().await;
    assert!(
        q_bool(&c, "SELECT month_lock_try(2024, 3)").await,
        "locks do not survive a restart"
    );
    let t3 = token(&c, 2024, 3).await;
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 4)").await;
    let t4 = token(&c, 2024, 4).await;
    exec(&c, "COMMIT").await;
    assert!(
        t3 > t_session,
        "2024-03: token after restart {t3} > before {t_session}"
    );
    assert!(
        t4 > t_xact,
        "2024-04: token after restart {t4} > before {t_xact}"
    );
    assert!(t3 > t_xact.max(t_session) || t4 > t_xact.max(t_session));

    // An immediate shutdown (SIGQUIT: crash recovery at the next start) as well.
    let before = t3.max(t4);
    drop(c);
    let down_crash = faults::crash_restart(&server).await;
    let log = std::fs::read_to_string(server.dir.as_ref().expect("ours").join("server.log"))
        .unwrap_or_default();
    assert!(
        log.contains("not properly shut down") || log.contains("automatic recovery"),
        "the start after SIGQUIT ran crash recovery:\n{}",
        server.log_tail()
    );
    let c = role.connect().await;
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let t5 = token(&c, 2024, 3).await;
    assert!(t5 > before, "after crash recovery: {t5} > {before}");
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);
    println!(
        "restart: tokens {t_session}/{t_xact} before, {t3}/{t4} after a fast restart (down {down:?}), {t5} after a crash (down {down_crash:?})"
    );
}

/// However a hold ends, the next hold of the month in the same session (nothing in between)
/// gets a larger token, and the months month_lock_all and month_lock_claim take have tokens.
#[tokio::test]
async fn a_new_hold_in_the_same_session_gets_a_larger_token_however_the_last_one_ended() {
    let db = db("fencing_same_session").await;
    let role = db.with_new_role("token_again").await;
    let (c, other) = (role.connect().await, role.connect().await);
    const MAR: &str = "ARRAY['2024-03-01']::date[]";
    let mut last = 0i64;
    let mut check = |t: i64, how: &str| {
        assert!(t > last, "{how}: token {t} after {last}");
        last = t;
    };

    // Session holds, each ended a different way, then taken again.
    let endings: [(&str, &str); 6] = [
        ("month_lock_try", "SELECT month_lock_release(2024, 3)"),
        ("month_lock_try", "SELECT month_lock_release_all()"),
        (
            "month_lock_try",
            &format!("SELECT month_lock_release({MAR})"),
        ),
        (
            "month_lock_all",
            &format!("SELECT month_lock_release({MAR})"),
        ),
        ("month_lock_claim", "SELECT month_lock_release(2024, 3)"),
        ("month_lock", "SELECT month_lock_release(2024, 3)"),
    ]
    .map(|(a, b)| (a, Box::leak(b.to_string().into_boxed_str()) as &str));
    for (take, end) in endings {
        let sql = match take {
            "month_lock_all" => format!("SELECT month_lock_all({MAR})::text"),
            "month_lock_claim" => format!("SELECT month_lock_claim({MAR})::text"),
            "month_lock" => "SELECT month_lock(2024, 3)::text".to_string(),
            _ => "SELECT month_lock_try(2024, 3)::text".to_string(),
        };
        let got = q_text(&c, &sql).await;
        assert!(
            got == "true" || got == "2024-03-01" || got.is_empty(),
            "{sql}: {got}"
        );
        let t = token(&c, 2024, 3).await;
        check(t, &format!("{take}, previous hold ended by {end}"));
        exec(&c, end).await;
        let (code, _) = error_of(&c, "SELECT month_lock_token(2024, 3)").await;
        assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{end}");
    }

    // Transaction holds: COMMIT, ROLLBACK, and ROLLBACK TO SAVEPOINT then taken again in the
    // same transaction (a new hold: strictly larger).
    for end in ["COMMIT", "ROLLBACK"] {
        exec(&c, "BEGIN; SELECT month_lock_xact(2024, 3)").await;
        check(token(&c, 2024, 3).await, &format!("xact, before {end}"));
        exec(&c, end).await;
    }
    exec(&c, "BEGIN; SAVEPOINT s; SELECT month_lock_xact(2024, 3)").await;
    check(token(&c, 2024, 3).await, "xact inside a savepoint");
    exec(&c, "ROLLBACK TO s").await;
    assert!(!q_bool(&c, "SELECT month_lock_held(2024, 3)").await);
    exec(&c, "SELECT month_lock_xact(2024, 3)").await;
    check(
        token(&c, 2024, 3).await,
        "xact taken again after ROLLBACK TO ended the first",
    );
    exec(&c, "COMMIT").await;
    for take in [
        format!("month_lock_all_xact({MAR})::text"),
        format!("month_lock_claim_xact({MAR})::text"),
    ] {
        exec(&c, "BEGIN").await;
        q_text(&c, &format!("SELECT {take}")).await;
        check(token(&c, 2024, 3).await, &take);
        exec(&c, "COMMIT").await;
    }

    // A failed request undoes its grant: the next hold is a new one.
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let before_failed = token(&c, 2024, 3).await;
    check(before_failed, "before the failed request");
    exec(&c, "SELECT month_lock_release(2024, 3)").await;
    let (code, _) = error_of(
        &c,
        "SELECT month_lock_try(2024, 3), month_lock_token(2024, 3), 1/(NOT month_lock_held(2024, 3))::int",
    )
    .await;
    assert_eq!(code, SqlState::DIVISION_BY_ZERO);
    assert!(!q_bool(&c, "SELECT month_lock_held(2024, 3)").await);
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    check(
        token(&c, 2024, 3).await,
        "after a failed request's grant was undone",
    );

    // A hold from before a false month_lock_all keeps its token; a hold that call took and
    // gave back is gone.
    let kept = token(&c, 2024, 3).await;
    assert!(q_bool(&other, "SELECT month_lock_try(2024, 5)").await);
    assert!(
        !q_bool(
            &c,
            "SELECT month_lock_all(ARRAY['2024-03-01', '2024-04-01', '2024-05-01']::date[], 50)"
        )
        .await
    );
    assert_eq!(
        token(&c, 2024, 3).await,
        kept,
        "held before the call: same hold"
    );
    let (code, _) = error_of(&c, "SELECT month_lock_token(2024, 4)").await;
    assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);

    // Both scopes at once: one token while any exclusive hold lasts, a larger one after.
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let t = token(&c, 2024, 3).await;
    check(t, "session hold");
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 3)").await;
    let in_both = token(&c, 2024, 3).await;
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);
    let xact_only = token(&c, 2024, 3).await;
    exec(&c, "COMMIT").await;
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    let next = token(&c, 2024, 3).await;
    println!(
        "same session: session token {t}, with an xact hold added {in_both}, xact hold only {xact_only}, next hold {next}"
    );
    assert!(
        in_both >= t && xact_only >= in_both,
        "never shrinks while held"
    );
    check(next, "after both holds ended");
    assert!(q_bool(&c, "SELECT month_lock_release(2024, 3)").await);
}
