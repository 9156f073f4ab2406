//! Fencing tokens never go backwards (README, "Fencing tokens"): a token handed to a
//! transaction that committed survives a crash however the sequence's WAL was written; a
//! remembered token is never handed to a hold other than the one it was drawn for; one
//! uninterrupted hold keeps one token across scopes.
//!
//! The crash tests run a server whose WAL writer waits 10 s between rounds, so that WAL
//! nobody flushed is still in shared memory when the server is stopped immediately.

mod common;

use common::*;
use month_lock_tests::{backend_pid, faults, server, start_cluster};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn token(c: &Client, y: i32, m: i32) -> i64 {
    q_i64(c, &format!("SELECT month_lock_token({y}, {m})")).await
}

/// Who wrote the sequence's WAL record that covers the committed token.
#[derive(Clone, Copy, Debug)]
enum Logger {
    /// Another transaction, which rolled back.
    RolledBack,
    /// Another transaction, whose backend was terminated before it ended.
    Terminated,
    /// The committing transaction itself, as the first token after a checkpoint.
    Itself,
}

#[tokio::test]
async fn a_committed_token_is_never_handed_out_again_after_a_crash() {
    let server = start_cluster(&[("wal_writer_delay", "10s")]).await;
    let db = server.fresh_db("token_crash").await;
    let role = db.with_new_role("token_crash").await;
    let mut report = Vec::new();
    for round in 0..2 {
        for logger in [Logger::RolledBack, Logger::Terminated, Logger::Itself] {
            let admin_now = db.connect().await;
            // The next nextval writes the sequence's WAL record (the first after a checkpoint).
            exec(&admin_now, "CHECKPOINT").await;
            let a = role.connect().await;
            let first = match logger {
                Logger::Itself => None,
                Logger::RolledBack | Logger::Terminated => {
                    exec(&a, "BEGIN; SELECT month_lock_try_xact(2031, 1)").await;
                    let t = token(&a, 2031, 1).await;
                    if let Logger::RolledBack = logger {
                        exec(&a, "ROLLBACK").await;
                    } else {
                        let pid = backend_pid(&a).await;
                        exec(
                            &admin_now,
                            &format!("SELECT pg_terminate_backend({pid}, 5000)"),
                        )
                        .await;
                    }
                    Some(t)
                }
            };
            // Committed (autocommit), and written with the data in real use.
            let b = role.connect().await;
            assert!(q_bool(&b, "SELECT month_lock_try(2031, 1)").await);
            let committed = token(&b, 2031, 1).await;
            assert!(q_bool(&b, "SELECT month_lock_release(2031, 1)").await);
            drop((a, b, admin_now));

            faults::crash_restart(&server).await;
            let c = role.connect().await;
            assert!(q_bool(&c, "SELECT month_lock_try(2031, 1)").await);
            let after = token(&c, 2031, 1).await;
            assert!(q_bool(&c, "SELECT month_lock_release(2031, 1)").await);
            report.push(format!(
                "round {round} {logger:?}: logger {first:?}, committed {committed}, after crash {after}"
            ));
            assert!(
                after > committed,
                "round {round}, {logger:?}: token {after} after the crash, {committed} committed before"
            );
        }
    }
    println!("{}", report.join("\n"));
}

/// A hold that vanished without month_lock seeing it (a pooler's `DISCARD ALL`, the raw unlock
/// functions) takes its token with it: the next hold gets a larger one, however it is taken.
#[tokio::test]
async fn a_token_is_never_handed_to_a_hold_other_than_its_own() {
    let db = server().await.fresh_db("token_vanished").await;
    let role = db.with_new_role("token_vanished").await;
    let (a, b) = (role.connect().await, role.connect().await);
    let key = format!("{DEFAULT_NAMESPACE}, {}", ym(2060, 11));
    let vanish = [
        "DISCARD ALL".to_string(),
        "SELECT pg_advisory_unlock_all()".to_string(),
        format!("SELECT pg_advisory_unlock({key})"),
    ];
    for how in &vanish {
        for retake in [
            "SELECT month_lock_try(2060, 11)",
            "SELECT month_lock_try_xact(2060, 11)",
        ] {
            // Session hold with a token, gone behind month_lock's back.
            assert!(q_bool(&a, "SELECT month_lock_try(2060, 11)").await);
            let old = token(&a, 2060, 11).await;
            exec(&a, how).await;
            let (code, _) = error_of(&a, "SELECT month_lock_token(2060, 11)").await;
            assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE, "{how}");
            // Another session holds it in between.
            assert!(q_bool(&b, "SELECT month_lock_try(2060, 11)").await, "{how}");
            let between = token(&b, 2060, 11).await;
            assert!(q_bool(&b, "SELECT month_lock_release(2060, 11)").await);
            // Taken again by the first session: a new hold, a larger token.
            exec(&a, "BEGIN").await;
            assert!(q_bool(&a, retake).await);
            let again = token(&a, 2060, 11).await;
            exec(&a, "COMMIT").await;
            assert!(
                again > between && between > old,
                "{how}, then {retake}: tokens {old}, {between}, then {again}"
            );
            exec(&a, "SELECT month_lock_release_all()").await;
        }
        // Taken again with the raw function: still a new hold.
        assert!(q_bool(&a, "SELECT month_lock_try(2060, 11)").await);
        let old = token(&a, 2060, 11).await;
        exec(&a, how).await;
        exec(&a, &format!("SELECT pg_advisory_lock({key})")).await;
        let again = token(&a, 2060, 11).await;
        assert!(
            again > old,
            "{how}, then pg_advisory_lock: {old} then {again}"
        );
        exec(&a, &format!("SELECT pg_advisory_unlock({key})")).await;
        exec(&a, "SELECT month_lock_release_all()").await;
    }
}

/// "The same hold" is one uninterrupted exclusive hold, in either scope or both: it keeps its
/// token when its scope changes, and the next hold gets a larger one.
#[tokio::test]
async fn one_uninterrupted_hold_keeps_its_token_across_scopes() {
    let db = server().await.fresh_db("token_scopes").await;
    let role = db.with_new_role("token_scopes").await;
    let c = role.connect().await;
    // Transaction scope, then session scope added, then the transaction ends.
    exec(&c, "BEGIN; SELECT month_lock_try_xact(2061, 1)").await;
    let t = token(&c, 2061, 1).await;
    assert!(q_bool(&c, "SELECT month_lock_try(2061, 1)").await);
    assert_eq!(token(&c, 2061, 1).await, t);
    exec(&c, "COMMIT").await;
    assert_eq!(token(&c, 2061, 1).await, t, "xact then session: one hold");
    // Session scope, then transaction scope added, then the session hold released.
    exec(&c, "BEGIN; SELECT month_lock_try_xact(2061, 1)").await;
    assert!(q_bool(&c, "SELECT month_lock_release(2061, 1)").await);
    assert_eq!(token(&c, 2061, 1).await, t, "session then xact: one hold");
    exec(&c, "COMMIT").await;
    let (code, _) = error_of(&c, "SELECT month_lock_token(2061, 1)").await;
    assert_eq!(code, SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    assert!(q_bool(&c, "SELECT month_lock_try(2061, 1)").await);
    assert!(token(&c, 2061, 1).await > t, "the next hold");
    // A token asked in a transaction that rolled back stays the hold's token.
    exec(&c, "BEGIN").await;
    let r = token(&c, 2061, 1).await;
    exec(&c, "ROLLBACK").await;
    assert_eq!(token(&c, 2061, 1).await, r);
    assert!(q_bool(&c, "SELECT month_lock_release(2061, 1)").await);
}
