//! month_lock works the same for an ordinary role (no superuser, no CREATEDB/CREATEROLE, trust
//! auth), and no role or session can release another's lock (docs/semantics.md:
//! "Roles"): the original application's eight cases and the view, what the view shows of other
//! roles' sessions. The extension is created by the superuser (fresh_db); everything after
//! runs as the role.

mod common;

use common::*;
use month_lock_tests::{backend_pid, server, wait_until_waiting, TestDb};

/// A fresh database (extension created by the superuser) and a new ordinary role to use it.
async fn role_db(hint: &str) -> TestDb {
    server()
        .await
        .fresh_db(hint)
        .await
        .with_new_role("app")
        .await
}

// ---- the original application's eight cases, as the role -------------------------------------

#[tokio::test]
async fn as_role_three_workers_on_one_month_exactly_one_wins() {
    cases::three_workers_on_one_month_exactly_one_wins(&role_db("r_three").await).await;
}

#[tokio::test]
async fn as_role_a_release_lets_the_next_worker_in() {
    cases::a_release_lets_the_next_worker_in(&role_db("r_release_next").await).await;
}

#[tokio::test]
async fn as_role_closing_a_connection_releases() {
    cases::closing_a_connection_releases(&role_db("r_close").await).await;
}

#[tokio::test]
async fn as_role_a_failed_transaction_cleans_up_as_documented() {
    cases::a_failed_transaction_cleans_up_as_documented(&role_db("r_failed_xact").await).await;
}

#[tokio::test]
async fn as_role_different_months_run_in_parallel() {
    cases::different_months_run_in_parallel(&role_db("r_parallel").await).await;
}

#[tokio::test]
async fn as_role_a_200ms_timeout_returns_false_without_raising_not_sooner() {
    cases::a_200ms_timeout_returns_false_without_raising_not_sooner(&role_db("r_timeout").await)
        .await;
}

#[tokio::test]
async fn as_role_is_locked_before_during_and_after() {
    cases::is_locked_before_during_and_after(&role_db("r_is_locked").await).await;
}

#[tokio::test]
async fn as_role_the_view_shows_holder_and_waiter() {
    cases::the_view_shows_holder_and_waiter(&role_db("r_view").await).await;
}

// ---- the view across roles --------------------------------------------------------------------

#[tokio::test]
async fn as_role_the_view_hides_client_addr_and_backend_start_of_other_roles_only() {
    let su = server().await.fresh_db("r_view_other").await;
    let app = su.with_new_role("app").await;
    let stats = su.with_new_role("stats_reader").await;
    exec(
        &su.connect().await,
        &format!("GRANT pg_read_all_stats TO \"{}\"", stats.user()),
    )
    .await;

    let other_role = su.connect_as("admin-job").await; // the superuser's session
    let own = app.connect_as("app-job").await; // a session of the viewer's own role
    let (pid_other, pid_own) = (backend_pid(&other_role).await, backend_pid(&own).await);
    assert!(q_bool(&other_role, "SELECT month_lock_try(2026, 1)").await);
    assert!(q_bool(&own, "SELECT month_lock_try(2026, 2)").await);

    let row = |pid: i32| {
        format!(
            "SELECT application_name || '|' || usename::text || '|' || \
                    (client_addr IS NULL)::text || '|' || (backend_start IS NULL)::text \
               FROM month_locks WHERE pid = {pid}"
        )
    };
    let viewer = app.connect().await;
    assert_eq!(view_rows(&viewer).await.len(), 2, "the role reads the view");
    assert_eq!(
        q_text(&viewer, &row(pid_other)).await,
        "admin-job|postgres|true|true",
        "another role's session: name and user, no address or start"
    );
    assert_eq!(
        q_text(&viewer, &row(pid_own)).await,
        format!("app-job|{}|false|false", app.user()),
        "own role's session: everything"
    );
    // Members of pg_read_all_stats see everything, as in pg_stat_activity.
    let reader = stats.connect().await;
    assert_eq!(
        q_text(&reader, &row(pid_other)).await,
        "admin-job|postgres|false|false"
    );
    // Exactly what pg_stat_activity shows the viewer.
    assert!(
        q_bool(
            &viewer,
            &format!(
                "SELECT (m.client_addr IS NOT DISTINCT FROM a.client_addr) \
                    AND (m.backend_start IS NOT DISTINCT FROM a.backend_start) \
                    AND (m.application_name IS NOT DISTINCT FROM a.application_name) \
                   FROM month_locks m JOIN pg_stat_activity a USING (pid) WHERE m.pid = {pid_other}"
            )
        )
        .await
    );
}

// ---- one role's (or session's) lock is not another's to release --------------------------------

#[tokio::test]
async fn as_role_no_other_role_or_session_can_release_a_lock() {
    let su = server().await.fresh_db("r_no_release").await;
    let (app, other) = (
        su.with_new_role("app").await,
        su.with_new_role("other_app").await,
    );
    let holder = app.connect().await;
    let holder_pid = backend_pid(&holder).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2026, 3)").await);
    assert!(q_bool(&holder, "SELECT month_lock_try_shared(2026, 4)").await);

    for (who, d) in [
        ("another role", &other),
        ("another session of the same role", &app),
    ] {
        let b = d.connect().await;
        assert!(
            !q_bool(&b, "SELECT month_lock_release(2026, 3)").await,
            "{who}"
        );
        assert!(
            !q_bool(&b, "SELECT month_lock_release_shared(2026, 4)").await,
            "{who}"
        );
        assert_eq!(
            q_i64(&b, "SELECT month_lock_release_all()::bigint").await,
            0,
            "{who}"
        );
        exec(&b, "SELECT pg_advisory_unlock_all()").await;
        assert!(
            !q_bool(&b, "SELECT pg_advisory_unlock(1835821824, 202603)").await,
            "{who}"
        );
        assert!(
            q_bool(
                &holder,
                "SELECT month_lock_held(2026, 3) AND month_lock_held(2026, 4)"
            )
            .await,
            "{who}"
        );
        assert!(q_bool(&b, "SELECT month_is_locked(2026, 3)").await, "{who}");
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 3)").await, "{who}");
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 4)").await, "{who}");
    }
    // A waiter of another role gets the month only when the holder releases it.
    let b = other.connect().await;
    let pid_b = backend_pid(&b).await;
    let w =
        tokio::spawn(async move { (q_bool(&b, "SELECT month_lock_try(2026, 3, 10000)").await, b) });
    wait_until_waiting(&holder, pid_b).await;
    assert!(!w.is_finished());
    assert_eq!(
        view_rows(&holder).await,
        vec![
            format!("2026-03 exclusive granted {holder_pid}"),
            format!("2026-03 exclusive waiting {pid_b}"),
            format!("2026-04 shared granted {holder_pid}"),
        ]
    );
    assert!(q_bool(&holder, "SELECT month_lock_release(2026, 3)").await);
    let (got, _b) = w.await.unwrap();
    assert!(got);
}
