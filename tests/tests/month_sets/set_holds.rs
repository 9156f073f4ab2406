//! What a set call holds: months held before a call that answers false stay held, duplicates are
//! ignored, month_lock_release(date[]) counts what it released, and month_lock_all_xact holds every
//! month until the transaction ends (docs/semantics.md, "Fencing tokens, claim any, all or
//! nothing": "All or nothing").

use crate::common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn months_held_before_a_false_call_stay_held() {
    let db = db("all_before").await;
    let role = db.with_new_role("set_before").await;
    let observer = db.connect().await;
    let (c, other) = (role.connect().await, role.connect().await);
    let pid = backend_pid(&c).await;
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 2)").await);
    assert!(q_bool(&c, "SELECT month_lock_try_shared(2024, 3)").await);
    assert!(q_bool(&other, "SELECT month_lock_try(2024, 5)").await);
    let before = locks_of(&observer, pid).await;
    assert_eq!(before, vec!["202402 ExclusiveLock", "202403 ShareLock"]);
    for timeout in [0, 150] {
        assert!(
            !q_bool(
                &c,
                &format!("SELECT month_lock_all({}, {timeout})", months_2024(1..=5))
            )
            .await,
            "2024-05 is held by another session"
        );
        assert_eq!(
            locks_of(&observer, pid).await,
            before,
            "timeout {timeout}: 02 (exclusive) and 03 (shared) held before stay, \
             01, 03 (exclusive) and 04 taken by the call are released"
        );
    }
    // In a transaction, with a transaction-scope hold from before.
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 4)").await;
    assert!(
        !q_bool(
            &c,
            &format!("SELECT month_lock_all_xact({}, 100)", months_2024(1..=5))
        )
        .await
    );
    assert!(q_bool(&c, "SELECT month_lock_held(2024, 4)").await);
    assert!(
        q_bool(&other, "SELECT month_lock_try(2024, 1)").await,
        "taken by the false call: released at once, before the transaction ends"
    );
    assert!(q_bool(&other, "SELECT month_lock_release(2024, 1)").await);
    exec(&c, "COMMIT").await;
    assert_eq!(locks_of(&observer, pid).await, before);
    // With the whole set free, true: 02 stays one hold (re-entry does not stack).
    assert!(q_bool(&other, "SELECT month_lock_release(2024, 5)").await);
    assert!(
        q_bool(
            &c,
            &format!("SELECT month_lock_all({})", months_2024(1..=5))
        )
        .await
    );
    assert_eq!(
        q_i64(
            &c,
            &format!("SELECT month_lock_release({})::bigint", months_2024(1..=5))
        )
        .await,
        5
    );
    assert_eq!(
        locks_of(&observer, pid).await,
        vec!["202403 ShareLock"],
        "the shared hold is not released by month_lock_release(date[])"
    );
    assert!(q_bool(&c, "SELECT month_lock_release_shared(2024, 3)").await);
}

#[tokio::test]
async fn duplicates_are_ignored_and_release_of_an_array_counts_what_it_released() {
    let db = db("all_dups").await;
    let role = db.with_new_role("set_dups").await;
    let observer = db.connect().await;
    let c = role.connect().await;
    let pid = backend_pid(&c).await;
    let dup = arr(&[
        "2024-03-31",
        "2024-01-05",
        "2024-03-01",
        "2024-03-17",
        "2024-01-31",
    ]);
    assert!(q_bool(&c, &format!("SELECT month_lock_all({dup})")).await);
    assert_eq!(locks_of(&observer, pid).await, excl(&[202401, 202403]));
    assert!(
        q_bool(&c, &format!("SELECT month_lock_all({dup}, 100)")).await,
        "again: held"
    );
    assert_eq!(locks_of(&observer, pid).await, excl(&[202401, 202403]));
    // One release per month frees it (no stacking), duplicates and unheld months count 0.
    assert_eq!(
        q_i64(
            &c,
            &format!(
                "SELECT month_lock_release({})::bigint",
                arr(&["2024-01-09", "2024-03-02", "2024-03-03", "2024-05-01"])
            )
        )
        .await,
        2
    );
    assert!(locks_of(&observer, pid).await.is_empty());
    assert_eq!(
        q_i64(&c, &format!("SELECT month_lock_release({dup})::bigint")).await,
        0
    );
    // A large set: 600 months (1990-01 .. 2039-12), given in descending order.
    let big = "ARRAY(SELECT d::date FROM generate_series('2039-12-01'::date, '1990-01-01', '-1 month') d)";
    let t = Instant::now();
    assert!(q_bool(&c, &format!("SELECT month_lock_all({big}, 1000)")).await);
    let took = t.elapsed();
    assert_eq!(locks_of(&observer, pid).await.len(), 600);
    assert_eq!(
        q_i64(&c, &format!("SELECT month_lock_release({big})::bigint")).await,
        600
    );
    println!("600 months: month_lock_all took {took:?}");
    // Empty set: true, nothing taken; release of an empty array: 0.
    assert!(q_bool(&c, "SELECT month_lock_all(ARRAY[]::date[], 100)").await);
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release(ARRAY[]::date[])::bigint").await,
        0
    );
    // release(date[]) leaves shared and transaction-scope holds alone.
    assert!(q_bool(&c, "SELECT month_lock_try_shared(2024, 6)").await);
    exec(&c, "BEGIN; SELECT month_lock_xact(2024, 7)").await;
    assert_eq!(
        q_i64(
            &c,
            &format!("SELECT month_lock_release({})::bigint", months_2024(6..=7))
        )
        .await,
        0
    );
    exec(&c, "COMMIT").await;
    assert_eq!(locks_of(&observer, pid).await, vec!["202406 ShareLock"]);
    assert!(q_bool(&c, "SELECT month_lock_release_shared(2024, 6)").await);

    // Input errors: 22004 for NULLs (naming "months"), 22023 out of range; nothing taken.
    for sql in [
        "SELECT month_lock_all(NULL, 100)",
        "SELECT month_lock_all(ARRAY['2024-01-01', NULL]::date[], 100)",
        "SELECT month_lock_all_xact(ARRAY[NULL]::date[])",
        "SELECT month_lock_release(NULL::date[])",
        "SELECT month_lock_release(ARRAY['2024-01-01', NULL]::date[])",
    ] {
        let (code, msg) = error_full(&c, sql).await;
        assert_eq!(code, SqlState::NULL_VALUE_NOT_ALLOWED, "{sql}: {msg}");
        if sql.contains("ARRAY") {
            assert!(msg.contains("months"), "{sql}: {msg}");
        }
    }
    for sql in [
        "SELECT month_lock_all(ARRAY['2024-01-01', '10000-01-01']::date[])",
        "SELECT month_lock_all_xact(ARRAY['0001-12-31 BC']::date[])",
        "SELECT month_lock_release(ARRAY['10000-01-01']::date[])",
    ] {
        let (code, msg) = error_full(&c, sql).await;
        assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE, "{sql}: {msg}");
    }
    // A negative timeout: an error or false, never a hold.
    match c
        .query_one(
            &format!("SELECT month_lock_all({}, -1)", months_2024(1..=2)),
            &[],
        )
        .await
    {
        Ok(r) => println!("month_lock_all(.., -1) returned {}", r.get::<_, bool>(0)),
        Err(e) => println!("month_lock_all(.., -1): {}", describe(&e)),
    }
    let _ = q_i64(&c, "SELECT month_lock_release_all()::bigint").await;
    assert!(locks_of(&observer, pid).await.is_empty());
    // month_lock.session_locks = off refuses the session form with 55000; xact form works.
    exec(&c, "SET month_lock.session_locks = off").await;
    let (code, msg) = error_full(
        &c,
        &format!("SELECT month_lock_all({})", months_2024(1..=2)),
    )
    .await;
    assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{msg}");
    exec(&c, "BEGIN").await;
    assert!(
        q_bool(
            &c,
            &format!("SELECT month_lock_all_xact({})", months_2024(1..=2))
        )
        .await
    );
    assert_eq!(locks_of(&observer, pid).await, excl(&[202401, 202402]));
    exec(&c, "COMMIT").await;
    assert!(locks_of(&observer, pid).await.is_empty());
}

#[tokio::test]
async fn month_lock_all_xact_holds_every_month_until_the_transaction_ends() {
    let db = db("all_xact").await;
    let role = db.with_new_role("set_xact").await;
    let observer = db.connect().await;
    let (c, other) = (role.connect().await, role.connect().await);
    let pid = backend_pid(&c).await;
    for end in ["COMMIT", "ROLLBACK"] {
        exec(&c, "BEGIN").await;
        assert!(
            q_bool(
                &c,
                &format!(
                    "SELECT month_lock_all_xact({}, 100)",
                    months_2024([3, 1, 2])
                )
            )
            .await
        );
        assert_eq!(
            locks_of(&observer, pid).await,
            excl(&[202401, 202402, 202403])
        );
        assert!(!q_bool(&other, "SELECT month_lock_try(2024, 2)").await);
        assert_eq!(
            q_i64(
                &c,
                &format!("SELECT month_lock_release({})::bigint", months_2024(1..=3))
            )
            .await,
            0,
            "session release leaves transaction holds"
        );
        exec(&c, end).await;
        assert!(locks_of(&observer, pid).await.is_empty(), "{end}");
    }
    // Autocommit: the statement is the transaction.
    assert!(
        q_bool(
            &c,
            &format!("SELECT month_lock_all_xact({})", months_2024(1..=3))
        )
        .await
    );
    assert!(locks_of(&observer, pid).await.is_empty());
    // A queued all_xact gets every month once the holder commits.
    exec(&other, "BEGIN; SELECT month_lock_xact(2024, 2)").await;
    let c = Arc::new(c);
    let cc = c.clone();
    let t = tokio::spawn(async move {
        cc.batch_execute("BEGIN").await.unwrap();
        let r = cc
            .query_one(
                &format!("SELECT month_lock_all_xact({}, 10000)", months_2024(1..=3)),
                &[],
            )
            .await
            .map(|r| r.get::<_, bool>(0));
        r
    });
    wait_until_waiting(&observer, pid).await;
    assert_eq!(locks_of(&observer, pid).await, excl(&[202401]));
    exec(&other, "COMMIT").await;
    assert!(t.await.unwrap().unwrap());
    assert_eq!(
        locks_of(&observer, pid).await,
        excl(&[202401, 202402, 202403])
    );
    exec(&c, "COMMIT").await;
    assert!(locks_of(&observer, pid).await.is_empty());
}
