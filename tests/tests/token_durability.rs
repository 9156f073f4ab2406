//! Fencing tokens never go backwards: a committed token survives a server restart and a crash
//! however the sequence's WAL was written; a remembered token is never handed to a hold other than
//! the one it was drawn for; one uninterrupted hold keeps one token across scopes
//! (docs/semantics.md, "Fencing tokens, claim any, all or nothing": "Fencing tokens"). The crash
//! tests run a server whose WAL writer waits 10 s between rounds, so that WAL nobody flushed is
//! still in shared memory when the server is stopped immediately.

mod common;

use common::*;
use month_lock_tests::{backend_pid, faults, server, start_cluster};
use tokio_postgres::error::SqlState;

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
