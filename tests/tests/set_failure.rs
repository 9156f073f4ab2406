//! A `month_lock_all[_xact]` call that returns false or raises leaves exactly what the session
//! held before it (README, "All or nothing"): for a month held before in session scope, in
//! transaction scope, in both, or shared, and a set that fails by no-wait, by timeout, by a
//! cancel or by `statement_timeout` — in either scope of the call.

mod common;

use common::*;
use month_lock_tests::{backend_pid, server, wait_until_waiting};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// How the session held 2024-01 before the call.
#[derive(Clone, Copy, Debug)]
enum Before {
    Session,
    Transaction,
    Both,
    SharedSession,
    SharedTransaction,
}

/// How the call fails: 2024-02 is held by another session.
#[derive(Clone, Copy, Debug)]
enum Failure {
    NoWait,
    Timeout,
    Cancel,
    StatementTimeout,
}

const SET: &str = "ARRAY['2024-01-01', '2024-02-01']::date[]";

async fn take_before(c: &Client, before: Before) {
    let sql = match before {
        Before::Session => "SELECT month_lock_try(2024, 1)",
        Before::Transaction => "SELECT month_lock_try_xact(2024, 1)",
        Before::Both => "SELECT month_lock_try(2024, 1) AND month_lock_try_xact(2024, 1)",
        Before::SharedSession => "SELECT month_lock_try_shared(2024, 1)",
        Before::SharedTransaction => "SELECT month_lock_try_xact_shared(2024, 1)",
    };
    assert!(q_bool(c, sql).await, "{sql}");
}

/// The session's advisory locks on 2024-01 as "mode" strings (one row per mode held).
async fn modes_on_january(observer: &Client, pid: i32) -> Vec<String> {
    advisory_locks_of(observer, pid)
        .await
        .into_iter()
        .filter(|l| l.contains(&format!("/{}/", ym(2024, 1))))
        .collect()
}

async fn run(before: Before, failure: Failure, xact_call: bool) {
    let tag = format!("{before:?} {failure:?} xact_call={xact_call}");
    let db = server().await.fresh_db("set_failure").await;
    let role = db.with_new_role("set_failure").await;
    let (c, blocker, observer) = (
        role.connect().await,
        role.connect().await,
        role.connect().await,
    );
    assert!(q_bool(&blocker, "SELECT month_lock_try(2024, 2)").await);
    let pid = backend_pid(&c).await;
    exec(&c, "BEGIN").await;
    take_before(&c, before).await;
    let locks_before = modes_on_january(&observer, pid).await;

    let call = format!(
        "SELECT month_lock_all{}({SET}, {})",
        if xact_call { "_xact" } else { "" },
        match failure {
            Failure::NoWait => 0,
            Failure::Timeout => 50,
            Failure::Cancel | Failure::StatementTimeout => 60_000,
        }
    );
    if let Failure::StatementTimeout = failure {
        exec(
            &c,
            "SAVEPOINT before_call; SET LOCAL statement_timeout = 200",
        )
        .await;
    } else {
        exec(&c, "SAVEPOINT before_call").await;
    }
    let raised = match failure {
        Failure::NoWait | Failure::Timeout => {
            assert!(!q_bool(&c, &call).await, "{tag}: false");
            false
        }
        Failure::Cancel => {
            let token = c.cancel_token();
            let (code, _) = tokio::join!(error_of(&c, &call), async {
                wait_until_waiting(&observer, pid).await;
                token.cancel_query(tokio_postgres::NoTls).await.unwrap();
            })
            .0;
            assert_eq!(code, SqlState::QUERY_CANCELED, "{tag}");
            true
        }
        Failure::StatementTimeout => {
            let (code, _) = error_of(&c, &call).await;
            assert_eq!(code, SqlState::QUERY_CANCELED, "{tag}");
            true
        }
    };
    if raised {
        // The error aborted the savepoint's subtransaction only; what was held before the
        // savepoint is what the session should still hold.
        exec(&c, "ROLLBACK TO before_call").await;
    }
    assert_eq!(
        modes_on_january(&observer, pid).await,
        locks_before,
        "{tag}: the same modes on 2024-01 right after the call"
    );

    // Exactly the references held before: release those by their documented means and
    // nothing may be left.
    let session_before = matches!(
        before,
        Before::Session | Before::Both | Before::SharedSession
    );
    if matches!(before, Before::Session | Before::Both) {
        assert!(
            q_bool(&c, "SELECT month_lock_release(2024, 1)").await,
            "{tag}"
        );
    }
    if matches!(before, Before::SharedSession) {
        assert!(
            q_bool(&c, "SELECT month_lock_release_shared(2024, 1)").await,
            "{tag}"
        );
    }
    if matches!(before, Before::Session | Before::SharedSession) {
        assert_eq!(
            modes_on_january(&observer, pid).await,
            Vec::<String>::new(),
            "{tag}: no transaction reference left by the call"
        );
    }
    exec(&c, "COMMIT").await;
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        0,
        "{tag}: no session reference left by the call (session before: {session_before})"
    );
    assert_eq!(
        modes_on_january(&observer, pid).await,
        Vec::<String>::new(),
        "{tag}"
    );
    assert!(q_bool(&blocker, "SELECT month_lock_release(2024, 2)").await);
}

#[tokio::test]
async fn a_failed_set_leaves_exactly_what_was_held_before_it() {
    for before in [
        Before::Session,
        Before::Transaction,
        Before::Both,
        Before::SharedSession,
        Before::SharedTransaction,
    ] {
        for failure in [
            Failure::NoWait,
            Failure::Timeout,
            Failure::Cancel,
            Failure::StatementTimeout,
        ] {
            for xact_call in [false, true] {
                run(before, failure, xact_call).await;
            }
        }
    }
}
