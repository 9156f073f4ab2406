//! Which schema's functions a statement names (rustdoc of `MonthLock`, "Where the extension's
//! functions are"; client/README.md): functions of an ordinary role in a schema off the
//! `search_path` are never taken for the extension, and such an answer is never remembered for
//! the session; a guard follows the extension's schema when it is renamed while the guard lives.

use std::time::Duration;

use month_lock_client::{Error, MonthLock, MonthLockExt};
use month_lock_tests::server;

mod common;
use common::months::{is_locked_elsewhere, ym};

/// Look-alikes of an ordinary role, in a schema of its own, off everyone's `search_path`.
const LOOKALIKES: &str = "
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.month_lock_held(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE FUNCTION evil.month_lock_try(integer, integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_release(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
";

fn native() -> bool {
    std::env::var("MONTH_LOCK_TEST_EDITION").as_deref() != Ok("portable")
}

#[tokio::test]
async fn another_roles_functions_off_the_search_path_are_not_the_extension() {
    let db = server().await.bare_db("trust_offpath").await;
    let admin = db.connect().await;
    let evil = db.with_new_role("evil").await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            db.name,
            evil.user()
        ))
        .await
        .unwrap();
    evil.connect()
        .await
        .batch_execute(LOOKALIKES)
        .await
        .unwrap();
    let user = db.with_new_role("user").await;
    let (a, b) = (user.connect().await, user.connect().await);
    let m = ym("2035-03");
    for c in [&a, &b] {
        let e = MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(c)
            .await
            .map(|g| g.leak())
            .unwrap_err()
            .into_error();
        assert!(matches!(e, Error::ExtensionMissing { .. }), "{e:?}");
    }
}

#[tokio::test]
async fn an_untrusted_answer_is_not_remembered_across_a_reinstall() {
    if !native() {
        return; // the SQL-only edition has no DROP EXTENSION
    }
    let db = server().await.fresh_db("trust_reinstall").await;
    let admin = db.connect().await;
    let evil = db.with_new_role("evil").await;
    admin
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            db.name,
            evil.user()
        ))
        .await
        .unwrap();
    evil.connect()
        .await
        .batch_execute(LOOKALIKES)
        .await
        .unwrap();
    let user = db.with_new_role("user").await;
    let m = ym("2035-04");
    for round in 0..20 {
        admin
            .batch_execute("DROP EXTENSION month_lock")
            .await
            .unwrap();
        let a = user.connect().await;
        let e = MonthLock::new(m).timeout(Duration::ZERO).acquire(&a).await;
        assert!(
            matches!(
                e.as_ref().map_err(|e| e.error()),
                Err(Error::ExtensionMissing { .. })
            ),
            "round {round}: {:?}",
            e.map(|g| g.leak()).map(|_| ())
        );
        admin
            .batch_execute("CREATE EXTENSION month_lock")
            .await
            .unwrap();
        let b = user.connect().await;
        let ga = MonthLock::new(m).timeout(Duration::ZERO).acquire(&a).await;
        let gb = MonthLock::new(m).timeout(Duration::ZERO).acquire(&b).await;
        assert!(
            ga.is_ok() != gb.is_ok(),
            "round {round}: a {:?}, b {:?}",
            ga.map(|_| ()).map_err(|e| e.into_error()),
            gb.map(|_| ()).map_err(|e| e.into_error())
        );
        assert!(is_locked_elsewhere(&admin, m).await, "round {round}");
        drop((ga, gb));
        a.batch_execute("SELECT 1").await.unwrap();
        b.batch_execute("SELECT 1").await.unwrap();
        assert!(!is_locked_elsewhere(&admin, m).await, "round {round}");
    }
}

/// The extension installed in schema `old`.
async fn in_schema_old(hint: &str) -> (month_lock_tests::TestDb, tokio_postgres::Client) {
    let db = server().await.bare_db(hint).await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE SCHEMA old; GRANT USAGE ON SCHEMA old TO PUBLIC; \
             CREATE EXTENSION month_lock SCHEMA old",
        )
        .await
        .unwrap();
    (db, admin)
}

#[tokio::test]
async fn a_guard_follows_its_schema_renamed_while_it_lives() {
    if !native() {
        return;
    }
    let (m1, m2, m3, m4, m5) = (
        ym("2035-05"),
        ym("2035-06"),
        ym("2035-07"),
        ym("2035-08"),
        ym("2035-09"),
    );
    for round in 0..10 {
        let (db, admin) = in_schema_old(&format!("trust_rename_{round}")).await;
        let user = db.with_new_role("user").await;
        let a = user.connect().await;
        let g1 = MonthLock::new(m1).acquire(&a).await.unwrap();
        let g2 = MonthLock::new(m2).acquire(&a).await.unwrap();
        let g3 = MonthLock::new(m3).acquire(&a).await.unwrap();
        let g4 = MonthLock::set([m4, m5]).unwrap().acquire(&a).await.unwrap();
        admin
            .batch_execute("ALTER SCHEMA old RENAME TO new")
            .await
            .unwrap();
        // A release and a token name the new schema.
        assert!(g3.token().await.is_ok(), "round {round}");
        g1.release().await.unwrap();
        assert!(!is_locked_elsewhere(&admin, m1).await, "round {round}");
        g4.release().await.unwrap();
        assert!(!is_locked_elsewhere(&admin, m4).await, "round {round}");
        assert!(!is_locked_elsewhere(&admin, m5).await, "round {round}");
        // A dropped guard's release is sent again (with the new schema) ahead of the next
        // acquisition on the connection.
        drop(g2);
        a.batch_execute("SELECT 1").await.unwrap();
        tokio::task::yield_now().await;
        let g = MonthLock::new(ym("2035-10")).acquire(&a).await.unwrap();
        assert!(!is_locked_elsewhere(&admin, m2).await, "round {round}");
        g.release().await.unwrap();
        assert!(a.held(m3).await.unwrap());
        g3.release().await.unwrap();
        assert!(!is_locked_elsewhere(&admin, m3).await, "round {round}");
    }
}

#[tokio::test]
async fn a_heartbeat_follows_its_schema_renamed_while_it_lives() {
    if !native() {
        return;
    }
    let (db, admin) = in_schema_old("trust_rename_hb").await;
    let a = db.connect().await;
    let m = ym("2035-11");
    let g =
        MonthLock::new(m)
            .acquire(&a)
            .await
            .unwrap()
            .with_heartbeat(month_lock_client::Heartbeat {
                interval: Duration::from_millis(50),
                ..Default::default()
            });
    admin
        .batch_execute("ALTER SCHEMA old RENAME TO new")
        .await
        .unwrap();
    // Not lost; and once the old schema is back under another name the heartbeat still tells
    // a release behind the guard's back.
    tokio::select! {
        reason = g.lost() => panic!("lost: {reason}"),
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
    }
    a.batch_execute("SELECT new.month_lock_release(2035, 11)")
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), g.lost())
        .await
        .expect("the heartbeat names the renamed schema");
    assert_eq!(reason, month_lock_client::LostReason::NotHeld);
}

#[tokio::test]
async fn a_clean_up_refused_for_a_renamed_schema_runs_again_with_the_new_one() {
    if !native() {
        return;
    }
    let (db, admin) = in_schema_old("trust_rename_cleanup").await;
    let user = db.with_new_role("user").await;
    let (a, holder) = (user.connect().await, user.connect().await);
    let a_pid = month_lock_tests::backend_pid(&a).await;
    let (m, other) = (ym("2035-12"), ym("2036-01"));
    let held = MonthLock::new(m).acquire(&holder).await.unwrap();
    let mut acquisition = Box::pin(
        MonthLock::new(m)
            .timeout(Duration::from_secs(30))
            .acquire(&a),
    );
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // Polled until its statement waits in the lock queue (the schema lookup comes first).
    while !month_lock_tests::is_waiting(&admin, a_pid).await {
        assert!(std::future::Future::poll(acquisition.as_mut(), &mut cx).is_pending());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(acquisition); // its clean-up names schema `old`
    admin
        .batch_execute("ALTER SCHEMA old RENAME TO new")
        .await
        .unwrap();
    // The dropped wait is granted; its clean-up fails (3F000).
    let holder = held.leak();
    holder
        .batch_execute("SELECT new.month_lock_release(2035, 12)")
        .await
        .unwrap();
    a.batch_execute("SELECT 1").await.unwrap();
    tokio::task::yield_now().await;
    // The next acquisitions on the connection send it again, naming `new`.
    for _ in 0..2 {
        if let Ok(g) = MonthLock::new(other).acquire(&a).await {
            g.release().await.unwrap();
        }
    }
    assert!(!is_locked_elsewhere(&admin, m).await);
}
