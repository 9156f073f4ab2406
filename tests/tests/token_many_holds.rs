//! A session holding many months with tokens: each hold keeps its token across transactions
//! while the session's remembered tokens of ended holds are dropped in batches (the extension
//! prunes them only once they outnumber the live ones, so that no transaction end costs more
//! for the tokens a session holds), and every new hold of a month gets a larger token
//! (docs/semantics.md, "Fencing tokens, claim any, all or nothing": "Fencing tokens").

mod common;

use common::*;
use std::collections::BTreeMap;

/// Month `i` of the months the test uses (2030-01 onwards).
fn month(i: usize) -> (i32, i32) {
    (2030 + (i / 12) as i32, 1 + (i % 12) as i32)
}

#[tokio::test]
async fn many_tokened_holds_keep_their_tokens_while_ended_ones_are_pruned() {
    let db = db("token_many_holds").await;
    let role = db.with_new_role("token_many").await;
    let c = role.connect().await;
    let mut tokens: BTreeMap<usize, i64> = BTreeMap::new();
    let mut last = 0i64;

    // Takes month i and draws its token (two autocommit statements: two transaction ends).
    let take = |i: usize| {
        let c = &c;
        async move {
            let (y, m) = month(i);
            assert!(q_bool(c, &format!("SELECT month_lock_try({y}, {m})")).await);
            token(c, y, m).await
        }
    };
    // Every live hold's token is the one it got, asked twice in separate transactions.
    let check = |tokens: &BTreeMap<usize, i64>, stage: &str| {
        let c = &c;
        let tokens = tokens.clone();
        let stage = stage.to_string();
        async move {
            for _ in 0..2 {
                for (&i, &t) in &tokens {
                    let (y, m) = month(i);
                    assert_eq!(
                        token(c, y, m).await,
                        t,
                        "{stage}: month {y}-{m:02} kept its token"
                    );
                }
            }
        }
    };

    // 100 holds with tokens (the remembered tokens outgrow several pruning thresholds).
    for i in 0..100 {
        let t = take(i).await;
        assert!(t > last, "month {i}: {t} after {last}");
        last = t;
        tokens.insert(i, t);
    }
    check(&tokens, "100 holds").await;

    // 60 of them end; 100 new holds make the ended ones' entries the ones pruned.
    for i in 0..60 {
        let (y, m) = month(i);
        assert!(q_bool(&c, &format!("SELECT month_lock_release({y}, {m})")).await);
        tokens.remove(&i);
    }
    for i in 100..200 {
        let t = take(i).await;
        assert!(t > last, "month {i}: {t} after {last}");
        last = t;
        tokens.insert(i, t);
    }
    check(&tokens, "after pruning").await;

    // The ended months, held again: new holds, larger tokens, also in transaction scope.
    for i in 0..60 {
        let t = if i % 2 == 0 {
            take(i).await
        } else {
            let (y, m) = month(i);
            exec(&c, "BEGIN").await;
            assert!(q_bool(&c, &format!("SELECT month_lock_try_xact({y}, {m})")).await);
            let t = token(&c, y, m).await;
            assert_eq!(token(&c, y, m).await, t, "the same transaction hold");
            exec(&c, "COMMIT").await;
            t
        };
        assert!(t > last, "month {i} again: {t} after {last}");
        last = t;
        if i % 2 == 0 {
            tokens.insert(i, t);
        }
    }
    check(&tokens, "after the ended months were held again").await;

    // A transaction hold that ended is a new hold next time.
    for i in (1..60).step_by(2) {
        let (y, m) = month(i);
        exec(&c, "BEGIN").await;
        assert!(q_bool(&c, &format!("SELECT month_lock_try_xact({y}, {m})")).await);
        let t = token(&c, y, m).await;
        exec(&c, "COMMIT").await;
        assert!(
            t > last,
            "month {i}, a second transaction hold: {t} after {last}"
        );
        last = t;
    }
    check(&tokens, "at the end").await;
    assert!(q_bool(&c, "SELECT month_lock_release_all() = 170").await);
    println!(
        "many holds: {} live tokened holds kept their tokens through pruning, new holds larger up to {last}",
        tokens.len()
    );
}
