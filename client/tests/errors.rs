//! The errors of a request (client/README.md, "Taking a month", rustdoc of `Error`): a missing or
//! outdated extension told apart by SQLSTATE and catalog, SQLSTATEs carried, and nothing held after
//! an acquisition that fails after a grant.

use std::time::Duration;

use month_lock_client::{Error, MonthLock, MonthLockExt};
use month_lock_tests::server;
use tokio_postgres::error::SqlState;

mod common;
use common::months::{is_locked_elsewhere, ym};

#[tokio::test]
async fn missing_extension_is_a_distinct_error_naming_create_extension() {
    let db = server().await.bare_db("noext").await;
    let a = db.connect().await;
    let m = ym("2024-03");
    let errors = vec![
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .map(|_| ())
            .unwrap_err()
            .into_error(),
        MonthLock::new(m)
            .acquire(&a)
            .await
            .map(|_| ())
            .unwrap_err()
            .into_error(),
        a.is_locked(m).await.map(|_| ()).unwrap_err(),
        a.locks().await.map(|_| ()).unwrap_err(),
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire_xact(&a)
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, Error::ExtensionMissing { .. }), "{e:?}");
        assert!(e.to_string().contains("CREATE EXTENSION month_lock"), "{e}");
        assert!(
            e.sqlstate() == Some(&SqlState::UNDEFINED_FUNCTION)
                || e.sqlstate() == Some(&SqlState::UNDEFINED_TABLE)
        );
    }
}

#[tokio::test]
async fn database_errors_carry_their_sqlstate() {
    let db = server().await.fresh_db("sqlstate").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let m = ym("2024-03");
    let _g = MonthLock::new(m).acquire(&a).await.unwrap();
    b.batch_execute("SET statement_timeout = 100")
        .await
        .unwrap();
    let e = MonthLock::new(m)
        .acquire(&b)
        .await
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    assert_eq!(e.sqlstate(), Some(&SqlState::QUERY_CANCELED));
    assert!(e.to_string().contains("57014"), "{e}");
}

/// The second line of defence: the server grants the month and the statement then fails (a
/// stand-in `month_lock_try` / `month_lock` in the extension's schema, the real ones renamed,
/// takes the month and raises; the client names the functions in the extension's schema, so
/// a stand-in elsewhere on the search_path would not be called). Whether or not the server
/// drops the grant itself, the client queues a release before returning the error, and nothing
/// stays held.
#[tokio::test]
async fn an_acquire_that_fails_after_a_grant_leaves_nothing_held() {
    let db = server().await.fresh_db("fail_after_grant").await;
    let (a, observer) = (db.connect().await, db.connect().await);
    a.batch_execute(
        "ALTER FUNCTION public.month_lock_try(int, int, int) RENAME TO month_lock_try_real;
         ALTER FUNCTION public.month_lock(int, int) RENAME TO month_lock_real;
         CREATE SCHEMA shim;
         CREATE FUNCTION shim.take_then_fail(y int, m int) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM public.month_lock_try_real(y, m, 0);
             RAISE EXCEPTION 'granted, then failed' USING ERRCODE = '40P01';
         END $$;
         CREATE FUNCTION public.month_lock_try(y int, m int, t int) RETURNS boolean LANGUAGE sql
             AS 'SELECT shim.take_then_fail(y, m)';
         CREATE FUNCTION public.month_lock(y int, m int) RETURNS void LANGUAGE sql
             AS 'SELECT shim.take_then_fail(y, m)';",
    )
    .await
    .unwrap();
    // Without the client: the server keeps what the failed statement took (a session lock).
    let m = ym("2025-06");
    a.batch_execute("SELECT month_lock_held(2025, 6)")
        .await
        .unwrap(); // loads the extension
    assert!(a
        .batch_execute("SELECT shim.take_then_fail(2025, 6)")
        .await
        .is_err());
    println!(
        "a failed statement's grant kept by the server itself: {}",
        a.held(m).await.unwrap()
    );
    a.release_all().await.unwrap();

    for (i, request) in [
        MonthLock::new(m).timeout(Duration::from_secs(1)),
        MonthLock::new(m),
    ]
    .into_iter()
    .enumerate()
    {
        let e = request.acquire(&a).await.unwrap_err().into_error();
        assert_eq!(
            e.sqlstate(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED),
            "{i}: {e}"
        );
        assert!(e.to_string().contains("granted, then failed"), "{e}");
        assert!(
            !a.held(m).await.unwrap(),
            "{i}: the raced grant was released"
        );
        assert!(!is_locked_elsewhere(&observer, m).await);
    }
}

#[tokio::test]
async fn only_this_crates_own_objects_mean_the_extension_is_missing() {
    let db = server().await.fresh_db("exact_name").await;
    let a = db.connect().await;
    for sql in ["SELECT * FROM month_totals", "SELECT month_lock_totals(1)"] {
        let e: Error = a.query(sql, &[]).await.unwrap_err().into();
        assert!(matches!(e, Error::Database(_)), "{sql}: {e:?}");
        assert!(
            e.to_string().contains("does not exist"),
            "the server's message: {e}"
        );
    }
    // A missing object of the user's, inside a lock: still a database error.
    let g = MonthLock::new(ym("2025-07")).acquire(&a).await.unwrap();
    let e: Error = g
        .client()
        .query("SELECT * FROM month_totals", &[])
        .await
        .unwrap_err()
        .into();
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    g.release().await.unwrap();
}

#[tokio::test]
async fn an_outdated_extension_is_told_apart_from_a_missing_one() {
    // 0.1.0 has no fencing tokens and no sets; decided by SQLSTATE and pg_extension.
    let db = server().await.bare_db("oldext").await;
    let a = db.connect().await;
    a.batch_execute("CREATE EXTENSION month_lock VERSION '0.1.0'")
        .await
        .unwrap();
    let g = MonthLock::new(ym("2024-03")).acquire(&a).await.unwrap();
    match g.token().await {
        Err(Error::ExtensionOutdated { installed, .. }) => assert_eq!(installed, "0.1.0"),
        other => panic!("expected ExtensionOutdated, got {other:?}"),
    }
    g.release().await.unwrap();
    let e = MonthLock::range(ym("2024-01"), ym("2024-02"))
        .unwrap()
        .acquire(&a)
        .await
        .map(|_| ())
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::ExtensionOutdated { .. }), "{e:?}");
    assert!(
        e.to_string().contains("ALTER EXTENSION month_lock UPDATE"),
        "{e}"
    );
    assert_eq!(e.sqlstate(), Some(&SqlState::UNDEFINED_FUNCTION));
}

#[tokio::test]
async fn an_edition_without_one_of_its_functions_is_outdated_not_missing() {
    // Both editions: the native one has a pg_extension row, the SQL-only one (psql -f) none.
    let db = server().await.fresh_db("onegone").await;
    let a = db.connect().await;
    let drop = if std::env::var("MONTH_LOCK_TEST_EDITION").as_deref() == Ok("portable") {
        "DROP FUNCTION month_lock_claim(date[])"
    } else {
        "ALTER EXTENSION month_lock DROP FUNCTION month_lock_claim(date[]); \
         DROP FUNCTION month_lock_claim(date[])"
    };
    a.batch_execute(drop).await.unwrap();
    let e = MonthLock::any_of([ym("2024-03"), ym("2024-04")])
        .unwrap()
        .acquire(&a)
        .await
        .map(|_| ())
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::ExtensionOutdated { .. }), "{e:?}");
    assert_eq!(e.sqlstate(), Some(&SqlState::UNDEFINED_FUNCTION));
    // What is there still works.
    MonthLock::new(ym("2024-03"))
        .acquire(&a)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}
