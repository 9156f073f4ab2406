//! A session that holds a month shared and asks for it exclusively with a wait is granted ahead of
//! an earlier queued waiter once no other holder conflicts, as PostgreSQL's lock queue does
//! (docs/semantics.md: "Shared holders asking for exclusive").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_shared_holder_waiting_for_exclusive_goes_ahead_of_a_queued_waiter() {
    let db = db("shared_upgrade").await;
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_b = backend_pid(&b).await;
    assert!(q_bool(&a, "SELECT month_lock_try_shared(2041, 2)").await);
    let w =
        tokio::spawn(async move { (q_bool(&b, "SELECT month_lock_try(2041, 2, 10000)").await, b) });
    wait_until_waiting(&observer, pid_b).await;
    // PostgreSQL 17 applies the "holders go ahead of waiters they do not conflict with" rule to
    // no-wait requests too; 14..16 refuse a no-wait request while anyone is queued.
    let version: i32 = one(&a, "SELECT current_setting('server_version_num')::int").await;
    assert_eq!(
        q_bool(&a, "SELECT month_lock_try(2041, 2)").await,
        version >= 170000,
        "no-wait while b is queued, PostgreSQL {version}"
    );
    let start = Instant::now();
    assert!(
        q_bool(&a, "SELECT month_lock_try(2041, 2, 1000)").await,
        "waiting: granted ahead of b"
    );
    let elapsed = start.elapsed();
    println!("shared holder's waiting exclusive request granted after {elapsed:?}, ahead of the queued waiter");
    assert!(
        elapsed < Duration::from_millis(1000),
        "granted at once, not at the timeout"
    );
    assert!(!w.is_finished());
    wait_until_waiting(&observer, pid_b).await;
    let a_pid = backend_pid(&a).await;
    assert_eq!(
        view_rows(&observer).await,
        vec![
            format!("2041-02 exclusive granted {a_pid}"),
            format!("2041-02 shared granted {a_pid}"),
            format!("2041-02 exclusive waiting {pid_b}")
        ]
    );
    assert!(q_bool(&a, "SELECT month_lock_release(2041, 2)").await);
    assert!(!w.is_finished(), "b still waits for the shared hold");
    assert!(q_bool(&a, "SELECT month_lock_release_shared(2041, 2)").await);
    let (got, _b) = w.await.unwrap();
    assert!(got);
}
