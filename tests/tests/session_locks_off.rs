//! With month_lock.session_locks = off (SET, or ALTER ROLE … SET) every session-scope acquiring
//! form raises 55000 and takes nothing, as superuser and as an ordinary role, while the transaction
//! forms still work (docs/sql.md, "Keys and settings": month_lock.session_locks).

mod common;

use common::*;
use month_lock_tests::backend_pid;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const SESSION_ACQUIRING: [&str; 8] = [
    "SELECT month_lock_try(2026, 9)",
    "SELECT month_lock_try(2026, 9, 10)",
    "SELECT month_lock(2026, 9)",
    "SELECT month_lock(2026, 9, 10)",
    "SELECT month_lock_try_shared(2026, 9)",
    "SELECT month_lock_try_shared(2026, 9, 10)",
    "SELECT month_lock_shared(2026, 9)",
    "SELECT month_lock_shared(2026, 9, 10)",
];

async fn assert_session_locks_refused(c: &Client, observer: &Client, how: &str) {
    let pid = backend_pid(c).await;
    for sql in SESSION_ACQUIRING {
        let (code, message) = error_of(c, sql).await;
        let (_, full) = error_full(c, sql).await;
        assert_eq!(
            code,
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{how}: {sql}: {full}"
        );
        assert!(
            message.contains("month_lock.session_locks"),
            "{how}: {sql}: {full}"
        );
        // The way out is named in the error report (message, detail or hint).
        assert!(full.contains("month_lock_try_xact"), "{how}: {sql}: {full}");
        if sql == SESSION_ACQUIRING[0] && how.starts_with("SET as") {
            println!("session_locks = off: {code:?}: {full}");
        }
    }
    assert_eq!(
        advisory_count(observer, pid).await,
        0,
        "{how}: nothing taken"
    );
    // What keeps working.
    exec(c, "BEGIN").await;
    assert!(
        q_bool(c, "SELECT month_lock_try_xact(2026, 9)").await,
        "{how}"
    );
    assert!(
        q_bool(c, "SELECT month_lock_try_xact_shared(2026, 10, 100)").await,
        "{how}"
    );
    exec(
        c,
        "SELECT month_lock_xact(2026, 11); SELECT month_lock_xact_shared(2026, 12, 100)",
    )
    .await;
    assert!(
        q_bool(
            c,
            "SELECT month_is_locked(2026, 9) AND month_lock_held(2026, 12)"
        )
        .await
    );
    assert_eq!(
        q_i64(
            c,
            "SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"
        )
        .await,
        4,
        "{how}: the view"
    );
    assert!(
        !q_bool(c, "SELECT month_lock_release(2026, 9)").await,
        "{how}"
    );
    assert!(
        !q_bool(c, "SELECT month_lock_release_shared(2026, 10)").await,
        "{how}"
    );
    assert_eq!(
        q_i64(c, "SELECT month_lock_release_all()::bigint").await,
        0,
        "{how}"
    );
    exec(c, "COMMIT").await;
    assert_eq!(advisory_count(observer, pid).await, 0, "{how}");
}

#[tokio::test]
async fn session_locks_off_refuses_session_locks_with_55000_and_xact_forms_still_work() {
    let db = db("session_locks_off").await;
    let role_db = db.with_new_role("pooled_app").await;
    let observer = db.connect().await;
    // SET, as the superuser and as an ordinary role.
    for d in [&db, &role_db] {
        let c = d.connect().await;
        exec(&c, "SET month_lock.session_locks = off").await;
        assert_session_locks_refused(&c, &observer, &format!("SET as {}", d.user())).await;
        exec(&c, "SET month_lock.session_locks = on").await;
        assert!(
            q_bool(&c, "SELECT month_lock_try(2026, 9)").await,
            "on again"
        );
        assert!(q_bool(&c, "SELECT month_lock_release(2026, 9)").await);
    }
    // ALTER ROLE ... SET for the ordinary role, on a new connection (before the library loads).
    exec(
        &observer,
        &format!(
            "ALTER ROLE \"{}\" SET month_lock.session_locks = off",
            role_db.user()
        ),
    )
    .await;
    let c = role_db.connect().await;
    assert_session_locks_refused(&c, &observer, "ALTER ROLE SET").await;
}
