//! Behind PgBouncer, month_lock.session_locks = off makes the session forms raise 55000 while the
//! transaction forms work; without the setting a session lock outlives the pooled client that took
//! it (docs/poolers.md).

use crate::common::*;
use month_lock_tests::pooled::*;
use std::time::Duration;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn with_session_locks_off_session_forms_raise_55000_behind_pgbouncer_and_xact_forms_work() {
    let (db, admin, bouncer) = setup("pooler_guard").await;
    let c = bouncer.connect(&db.name, POOLED).await;
    assert_eq!(
        sq1(&c, "SHOW month_lock.session_locks").await,
        "off",
        "the role setting is in effect"
    );

    // The 0.1.0 failure mode: a session lock taken through a transaction pooler. Now refused,
    // whichever session form is used. Forms that could wait without limit run under a
    // transaction-local statement_timeout so a regression fails instead of hanging.
    let forms = [
        "SELECT month_lock_try(2024, 3)",
        "SELECT month_lock_try(2024, 3, 100)",
        "SELECT month_lock_try_shared(2024, 3)",
        "SELECT month_lock_try_shared(2024, 3, 100)",
        "SELECT month_lock(2024, 3, 100)",
        "SELECT month_lock_shared(2024, 3, 100)",
        "SELECT month_lock(2024, 3)",
        "SELECT month_lock_shared(2024, 3)",
    ];
    let mut problems = Vec::new();
    for form in forms {
        let sql = format!("BEGIN; SET LOCAL statement_timeout = '5s'; {form}; COMMIT");
        let err = sq(&c, if form == forms[0] { form } else { &sql })
            .await
            .expect_err(&format!(
                "{form}: a session-scope form succeeded with session_locks = off"
            ));
        if form != forms[0] {
            sq(&c, "ROLLBACK").await.expect("ROLLBACK");
        }
        let d = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{form}: not a server error: {err}"));
        let (code, message, hint) = (
            d.code().clone(),
            d.message().to_string(),
            d.hint().unwrap_or(""),
        );
        println!("{form}: {} {message} (HINT: {hint})", code.code());
        assert_eq!(
            code,
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{form}: {message}"
        );
        assert!(
            !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
            "{form} left 2024-03 locked"
        );
        for name in ["month_lock.session_locks", "month_lock_try_xact"] {
            if !message.contains(name) {
                problems.push(format!(
                    "{form}: the message does not name {name}: {message:?} (HINT: {hint:?})"
                ));
            }
        }
    }

    // The transaction forms work through the pooler.
    assert_eq!(sq1(&c, "SELECT month_lock_try_xact(2024, 3)").await, "t");
    let rows = sq(
        &c,
        "BEGIN; SELECT month_lock_try_xact(2024, 3, 1000); SELECT month_lock_held(2024, 3); COMMIT",
    )
    .await
    .unwrap_or_else(|e| panic!("try_xact in a transaction: {}", describe(&e)));
    assert_eq!(
        rows,
        vec![vec![Some("t".to_string())], vec![Some("t".to_string())]]
    );
    let rows = sq(
        &c,
        "BEGIN; SELECT month_lock_xact(2024, 3, 1000); SELECT month_lock_held(2024, 3); COMMIT",
    )
    .await
    .unwrap_or_else(|e| panic!("month_lock_xact in a transaction: {}", describe(&e)));
    assert_eq!(rows[1], vec![Some("t".to_string())]);
    assert_eq!(
        sq1(&c, "SELECT month_lock_try_xact_shared(2024, 3)").await,
        "t"
    );
    // Releases, the checks and the view keep working.
    assert_eq!(sq1(&c, "SELECT month_lock_release(2024, 3)").await, "f");
    assert_eq!(
        sq1(&c, "SELECT month_lock_release_shared(2024, 3)").await,
        "f"
    );
    assert_eq!(sq1(&c, "SELECT month_lock_release_all()").await, "0");
    assert_eq!(sq1(&c, "SELECT month_is_locked(2024, 3)").await, "f");
    assert_eq!(sq1(&c, "SELECT count(*) FROM month_locks").await, "0");
    assert!(
        !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
        "nothing may stay held"
    );
    // Checked last so the behaviour above is checked either way (contract: the *message*
    // names both, so logs that keep only the primary message still tell what to do).
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    drop(c);
    drop(bouncer);
}

#[tokio::test]
async fn without_the_setting_a_session_lock_outlives_its_pooled_client() {
    // Why the setting exists: the hazard itself, as PgBouncer shows it.
    let (db, admin, bouncer) = setup("pooler_hazard").await;
    let c = bouncer.connect(&db.name, POOLED_LEGACY).await;
    assert_eq!(sq1(&c, "SELECT month_lock_try(2024, 4)").await, "t");
    drop(c); // the client is gone; PgBouncer keeps the server connection (no reset in transaction mode)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holder: Vec<String> = admin
        .query(
            "SELECT usename::text FROM month_locks WHERE year = 2024 AND month = 4 AND granted",
            &[],
        )
        .await
        .expect("month_locks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        holder,
        vec![POOLED_LEGACY.to_string()],
        "the pooled server connection still holds 2024-04"
    );
    let other = bouncer.connect(&db.name, POOLED_LEGACY).await;
    // Another client of the pool may be handed that server connection and "hold" a month it
    // never took, or be refused a month nobody is working on.
    let held_or_refused = sq1(
        &other,
        "SELECT month_lock_held(2024, 4) OR NOT month_lock_try_xact(2024, 4)",
    )
    .await;
    assert_eq!(held_or_refused, "t");
    exec(
        &admin,
        "SELECT pg_terminate_backend(pid) FROM month_locks WHERE year = 2024 AND month = 4",
    )
    .await;
    drop(other);
    drop(bouncer);
}
