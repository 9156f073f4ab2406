//! A session whose `search_path` leaves out the extension's schema (client/README.md, "Taking a
//! month"; rustdoc of `MonthLock`, "Where the extension's functions are"): every statement names
//! the extension's functions with the schema found in `pg_catalog`, so a guard's own statements
//! (release, drop of a pooled guard, token, heartbeat), acquisitions of every form,
//! `acquire_xact` and `MonthLockExt` all work; a session follows the extension to a new schema.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use month_lock_client::{Error, Heartbeat, MonthLock, MonthLockExt, Pooled};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::{is_locked_elsewhere, wait_until_free, ym};

struct PoolObject(Arc<Client>);
impl Deref for PoolObject {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.0
    }
}

const OFF_PATH: &str = "CREATE SCHEMA IF NOT EXISTS tenant_x; SET search_path = tenant_x";

#[tokio::test]
async fn a_guards_statements_do_not_depend_on_the_search_path() {
    let db = server().await.fresh_db("search_path_guard").await;
    let a = db.connect().await;
    let observer = db.connect().await;
    let m = ym("2021-03");
    let g = MonthLock::new(m).acquire(&a).await.unwrap();
    a.batch_execute(OFF_PATH).await.unwrap();
    assert!(g.token().await.unwrap() > 0);
    let g = g.with_heartbeat(Heartbeat {
        interval: Duration::from_millis(20),
        timeout: Some(Duration::from_secs(5)),
    });
    let lost = tokio::time::timeout(Duration::from_millis(300), g.lost()).await;
    assert!(lost.is_err(), "a held lock reported lost: {lost:?}");
    g.release().await.unwrap();
    assert!(!is_locked_elsewhere(&observer, m).await);

    // A set, released by drop.
    a.batch_execute("RESET search_path").await.unwrap();
    let set = MonthLock::set([m, ym("2021-04")]).unwrap();
    let g = set.acquire(&a).await.unwrap();
    a.batch_execute(OFF_PATH).await.unwrap();
    drop(g);
    wait_until_free(&observer, m).await;
}

#[tokio::test]
async fn a_dropped_pooled_guard_goes_back_without_the_month_whatever_the_search_path() {
    let db = server().await.fresh_db("search_path_pooled").await;
    let conn = Arc::new(db.connect().await);
    let observer = db.connect().await;
    let m = ym("2021-05");
    for round in 0..20 {
        conn.batch_execute("RESET search_path").await.unwrap();
        let g = MonthLock::new(m)
            .acquire(Pooled(Box::new(PoolObject(conn.clone()))))
            .await
            .unwrap();
        g.client().batch_execute(OFF_PATH).await.unwrap();
        drop(g);
        // The next borrower's first statement runs after the queued release.
        conn.batch_execute("RESET search_path").await.unwrap();
        assert!(!conn.held(m).await.unwrap(), "round {round}");
    }
    assert!(!is_locked_elsewhere(&observer, m).await);
}

#[tokio::test]
async fn an_extension_off_the_search_path_works_for_every_statement() {
    let db = server().await.fresh_db("search_path_acquire").await;
    let db = db.with_new_role("search_path_acquire").await;
    let (mut a, observer) = (db.connect().await, db.connect().await);
    a.batch_execute("SET search_path = ''").await.unwrap();
    let (m, n) = (ym("2021-06"), ym("2021-07"));
    let g = MonthLock::new(m)
        .timeout(Duration::from_secs(1))
        .acquire(&a)
        .await
        .unwrap();
    assert!(a.held(m).await.unwrap() && a.is_locked(m).await.unwrap());
    assert_eq!(a.locks().await.unwrap().len(), 1);
    assert!(is_locked_elsewhere(&observer, m).await);
    g.release().await.unwrap();
    let g = MonthLock::set([m, n]).unwrap().acquire(&a).await.unwrap();
    assert!(MonthLock::any_of([m, n])
        .unwrap()
        .acquire(&a)
        .await
        .is_err());
    drop(g);
    let g = MonthLock::any_of([m, n])
        .unwrap()
        .acquire(&a)
        .await
        .unwrap();
    assert_eq!(g.year_month(), m);
    let g = g.leak();
    assert_eq!(g.release_all().await.unwrap(), 1);
    let tx = a.transaction().await.unwrap();
    MonthLock::new(m).acquire_xact(&tx).await.unwrap();
    assert!(is_locked_elsewhere(&observer, m).await);
    tx.rollback().await.unwrap();
    assert!(!is_locked_elsewhere(&observer, m).await);
}

#[tokio::test]
async fn a_session_follows_the_extension_to_another_schema() {
    // Native only: the SQL-only edition has no DROP EXTENSION.
    if std::env::var("MONTH_LOCK_TEST_EDITION").as_deref() == Ok("portable") {
        return;
    }
    let db = server().await.fresh_db("search_path_moved").await;
    let (a, admin) = (db.connect().await, db.connect().await);
    let m = ym("2021-08");
    MonthLock::new(m)
        .acquire(&a)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    admin
        .batch_execute(
            "DROP EXTENSION month_lock; CREATE SCHEMA moved; \
             CREATE EXTENSION month_lock SCHEMA moved",
        )
        .await
        .unwrap();
    // The session was told `public`: that one call fails with the server's error ...
    let e = MonthLock::new(m)
        .acquire(&a)
        .await
        .map(|_| ())
        .unwrap_err()
        .into_error();
    assert!(matches!(e, Error::Database(_)), "{e:?}");
    assert_eq!(e.sqlstate().map(|c| c.code()), Some("42883"), "{e:?}");
    // ... and the next looks the schema up again.
    let g = MonthLock::new(m).acquire(&a).await.unwrap();
    assert!(is_locked_elsewhere(&admin, m).await);
    g.release().await.unwrap();
    assert!(!is_locked_elsewhere(&admin, m).await);
}
