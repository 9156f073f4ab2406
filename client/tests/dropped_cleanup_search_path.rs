//! A dropped acquisition's clean-up runs after whatever was queued behind the acquisition, e.g.
//! another task's `SET search_path`: it finds the extension's functions all the same.

use std::future::Future;
use std::task::{Context, Waker};

use month_lock_client::MonthLockExt;
use month_lock_tests::server;

mod common;
use common::months::{acquisition, ym};

#[tokio::test]
async fn a_clean_up_behind_a_search_path_change_releases_what_the_request_took() {
    let db = server().await.fresh_db("cleanup_search_path").await;
    let db = db.with_new_role("cleanup_search_path").await;
    let (client, observer) = (db.connect().await, db.connect().await);
    let (m, n) = (ym("2033-01"), ym("2033-02"));
    let rounds = 60;
    for shape in ["one", "any_of", "set"] {
        let mut left = 0;
        for _ in 0..rounds {
            {
                let c = &client;
                let mut acquisition = acquisition(shape, c, m, n);
                let mut cx = Context::from_waker(Waker::noop());
                assert!(acquisition.as_mut().poll(&mut cx).is_pending());
                // Another task's statement, queued behind the acquisition.
                let mut other = Box::pin(client.batch_execute("SET search_path = pg_catalog"));
                let done = other.as_mut().poll(&mut cx).is_ready();
                drop(acquisition);
                if !done {
                    other.await.unwrap();
                }
            }
            client.batch_execute("RESET search_path").await.unwrap();
            if observer.is_locked(m).await.unwrap() {
                left += 1;
                client
                    .batch_execute("SELECT month_lock_release_all()")
                    .await
                    .unwrap();
            }
        }
        assert_eq!(
            left, 0,
            "{shape}: the dropped request's month was left held in {left} of {rounds} rounds"
        );
    }
}
