//! Fencing tokens grow: every later hold of a month, in either scope and any session, gets a larger
//! token, strictly in hold order under contention, and so does a new hold in the same session
//! however the last one ended (docs/semantics.md, "Fencing tokens, claim any, all or nothing":
//! "Fencing tokens").

mod common;

use common::*;
use std::sync::Arc;
use std::sync::Mutex;
use tokio_postgres::error::SqlState;

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
