//! The stale-writer pattern with fencing tokens works: a terminated holder's writes are rejected
//! once the next holder wrote with its larger token (docs/semantics.md, "Fencing tokens, claim any,
//! all or nothing": "Fencing tokens").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

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
