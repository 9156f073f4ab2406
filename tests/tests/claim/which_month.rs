//! Which month a claim takes: the first in array order with no conflicting holder and nobody
//! queued, skipping months this session holds; at most one per call, nothing when NULL; the _xact
//! form holds until the transaction ends, and a failed request keeps no claimed month
//! (docs/semantics.md, "Fencing tokens, claim any, all or nothing": "Claim any").

use crate::common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::sync::Arc;
use tokio_postgres::error::SqlState;

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
