//! The clean-up of a dropped acquisition is plain SQL (rustdoc of `MonthLockGuard`, "Cancelling
//! an acquisition"): a role without `USAGE` on PL/pgSQL (so no `DO` block) still gets the
//! dropped request's month released, for one month, `any_of` and sets. Also against the
//! SQL-only edition (its functions are PL/pgSQL, which calling does not need `USAGE` for).

use std::task::{Context, Waker};

use month_lock_client::MonthLockExt;
use month_lock_tests::server;

mod common;
use common::months::{acquisition, ym};

#[tokio::test]
async fn a_dropped_acquisition_is_cleaned_up_without_plpgsql() {
    let db = server().await.fresh_db("cleanup_no_plpgsql").await;
    let admin = db.connect().await;
    admin
        .batch_execute("REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC")
        .await
        .unwrap();
    let db = db.with_new_role("no_plpgsql").await;
    let (client, observer) = (db.connect().await, db.connect().await);
    // The role may not run a DO block.
    let refused = client.batch_execute("DO $$BEGIN END$$").await.unwrap_err();
    assert_eq!(
        refused.code().map(|c| c.code()),
        Some("42501"),
        "{refused:?}"
    );
    let (m, n) = (ym("2033-05"), ym("2033-06"));
    // The session's first statement looks the extension's schema up; from then on an
    // acquisition is on the wire after its first poll.
    assert!(!client.held(m).await.unwrap());
    let rounds = 100;
    for shape in ["one", "any_of", "set"] {
        let mut left = 0;
        for _ in 0..rounds {
            {
                let c = &client;
                let mut acquisition = acquisition(shape, c, m, n);
                let mut cx = Context::from_waker(Waker::noop());
                assert!(acquisition.as_mut().poll(&mut cx).is_pending());
                drop(acquisition);
            }
            // Runs after the acquisition and its clean-up (one connection, in order).
            client.batch_execute("SELECT 1").await.unwrap();
            if observer.is_locked(m).await.unwrap() || observer.is_locked(n).await.unwrap() {
                left += 1;
                client.release_all().await.unwrap();
            }
        }
        assert_eq!(
            left, 0,
            "{shape}: the dropped request's month was left held in {left} of {rounds} rounds"
        );
    }
}
