//! Who gets a fencing token: month_lock_token(year, month) answers only for an exclusive hold of
//! this session (55000 otherwise), and the same hold gets the same token on every call
//! (docs/semantics.md, "Fencing tokens, claim any, all or nothing": "Fencing tokens").

mod common;

use common::*;
use month_lock_tests::backend_pid;
use tokio_postgres::error::SqlState;

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
