//! A session whose `search_path` leaves out the extension's schema (client/README.md, "Taking a
//! month"): a guard's own statements are qualified with the schema its acquisition reported, so
//! they still work (release, drop of a pooled guard, token, heartbeat); what cannot be qualified
//! says what is wrong instead of calling the extension outdated.

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
async fn an_acquisition_off_the_search_path_names_the_schema() {
    let db = server().await.fresh_db("search_path_acquire").await;
    let a = db.connect().await;
    a.batch_execute(OFF_PATH).await.unwrap();
    let e = MonthLock::new(ym("2021-06"))
        .acquire(&a)
        .await
        .map(|_| ())
        .unwrap_err()
        .into_error();
    match &e {
        Error::ExtensionNotOnSearchPath { schema, .. } => assert_eq!(schema, "public"),
        other => panic!("expected ExtensionNotOnSearchPath, got {other:?}"),
    }
    assert!(e.to_string().contains("search_path"), "{e}");
    let e = a.held(ym("2021-06")).await.unwrap_err();
    assert!(matches!(e, Error::ExtensionNotOnSearchPath { .. }), "{e:?}");
}
