//! The original application's eight cases, run by contention.rs as the superuser and by
//! roles.rs as an ordinary role: each takes the database (and so the role) to run in.

use super::*;
use month_lock_tests::{backend_pid, wait_until_waiting, TestDb};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;

pub async fn three_workers_on_one_month_exactly_one_wins(db: &TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let worker = db.connect().await;
        tasks.push(tokio::spawn(async move {
            let won = q_bool(&worker, "SELECT month_lock_try(2020, 1, 300)").await;
            (won, worker) // keep the connection (and its lock) open until all are done
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(
        results.iter().filter(|(won, _)| *won).count(),
        1,
        "exactly one winner"
    );
}

pub async fn a_release_lets_the_next_worker_in(db: &TestDb) {
    let (a, b) = (db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 2)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2020, 2)").await);
    assert!(q_bool(&a, "SELECT month_lock_release(2020, 2)").await);
    assert!(q_bool(&b, "SELECT month_lock_try(2020, 2)").await);
    assert!(!q_bool(&a, "SELECT month_lock_try(2020, 2)").await);
}

pub async fn closing_a_connection_releases(db: &TestDb) {
    let (a, b) = (db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 3)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2020, 3)").await);
    drop(a);
    let start = Instant::now();
    assert!(q_bool(&b, "SELECT month_lock_try(2020, 3, 5000)").await);
    assert!(start.elapsed() < SLOW);
}

pub async fn a_failed_transaction_cleans_up_as_documented(db: &TestDb) {
    let (a, b) = (db.connect().await, db.connect().await);

    // Transaction scope: the failed transaction's rollback releases the month.
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2020, 4)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2020, 4)").await);
    let (code, _) = error_of(&a, "SELECT 1 / 0").await;
    assert_eq!(code, SqlState::DIVISION_BY_ZERO);
    exec(&a, "ROLLBACK").await;
    assert!(!q_bool(&a, "SELECT month_lock_held(2020, 4)").await);
    assert!(q_bool(&b, "SELECT month_lock_try(2020, 4)").await);
    assert!(q_bool(&b, "SELECT month_lock_release(2020, 4)").await);

    // Session scope: like every session-level advisory lock it survives the rollback, and the
    // wrapper's release (in its error path) frees it.
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 5)").await);
    let _ = error_of(&a, "SELECT 1 / 0").await;
    exec(&a, "ROLLBACK").await;
    assert!(q_bool(&a, "SELECT month_lock_held(2020, 5)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2020, 5)").await);
    assert!(q_bool(&a, "SELECT month_lock_release(2020, 5)").await);
    assert!(q_bool(&b, "SELECT month_lock_try(2020, 5)").await);
}

pub async fn different_months_run_in_parallel(db: &TestDb) {
    let (a, b, c) = (db.connect().await, db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 6)").await);
    assert!(q_bool(&b, "SELECT month_lock_try(2020, 7)").await);
    let pid_a = backend_pid(&a).await;
    // While `a` queues for b's month, another month is still free at once.
    let waiter = tokio::spawn(async move {
        let got = q_bool(&a, "SELECT month_lock_try(2020, 7, 3000)").await;
        (got, a)
    });
    wait_until_waiting(&c, pid_a).await;
    let start = Instant::now();
    assert!(q_bool(&c, "SELECT month_lock_try(2020, 8, 3000)").await);
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "an unrelated month did not wait"
    );
    assert!(q_bool(&b, "SELECT month_lock_release(2020, 7)").await);
    let (got, a) = waiter.await.unwrap();
    assert!(got);
    assert!(
        q_bool(
            &a,
            "SELECT month_lock_held(2020, 6) AND month_lock_held(2020, 7)"
        )
        .await
    );
}

pub async fn a_200ms_timeout_returns_false_without_raising_not_sooner(db: &TestDb) {
    let (a, b) = (db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 9)").await);
    // The caller's own lock_timeout is neither used (50 ms would cut the wait short and raise)
    // nor changed.
    exec(&b, "SET lock_timeout = '50ms'").await;
    let start = Instant::now();
    let got = q_bool(&b, "SELECT month_lock_try(2020, 9, 200)").await;
    let elapsed = start.elapsed();
    assert!(!got);
    assert!(
        elapsed >= Duration::from_millis(200),
        "returned after {elapsed:?}"
    );
    assert!(elapsed < SLOW, "returned after {elapsed:?}");
    println!("200 ms timeout returned false after {elapsed:?}");
    assert_eq!(q_text(&b, "SHOW lock_timeout").await, "50ms");
    assert!(!q_bool(&b, "SELECT month_lock_held(2020, 9)").await);
    // The session is fine afterwards, and inside a transaction too.
    exec(&b, "BEGIN").await;
    assert!(!q_bool(&b, "SELECT month_lock_try_xact(2020, 9, 100)").await);
    assert_eq!(q_i64(&b, "SELECT 41::bigint + 1").await, 42);
    exec(&b, "COMMIT").await;
}

pub async fn is_locked_before_during_and_after(db: &TestDb) {
    let (a, observer) = (db.connect().await, db.connect().await);
    let q = "SELECT month_is_locked(2020, 10)";
    assert!(!q_bool(&observer, q).await, "before");
    assert!(!q_bool(&a, q).await, "before, holder's view");
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 10)").await);
    assert!(q_bool(&observer, q).await, "during");
    assert!(q_bool(&a, q).await, "during, holder's view");
    assert!(!q_bool(&observer, "SELECT month_lock_held(2020, 10)").await);
    assert!(q_bool(&a, "SELECT month_lock_held(2020, 10)").await);
    assert!(
        !q_bool(&observer, "SELECT month_is_locked(2020, 11)").await,
        "another month"
    );
    assert!(q_bool(&a, "SELECT month_lock_release(2020, 10)").await);
    assert!(!q_bool(&observer, q).await, "after");
}

pub async fn the_view_shows_holder_and_waiter(db: &TestDb) {
    let (a, b, observer) = (
        db.connect_as("worker-a").await,
        db.connect_as("worker-b").await,
        db.connect().await,
    );
    let (pid_a, pid_b) = (backend_pid(&a).await, backend_pid(&b).await);
    assert!(q_bool(&a, "SELECT month_lock_try(2020, 12)").await);
    assert_eq!(
        view_rows(&observer).await,
        vec![format!("2020-12 exclusive granted {pid_a}")]
    );

    let waiter = tokio::spawn(async move {
        (
            q_bool(&b, "SELECT month_lock_try(2020, 12, 10000)").await,
            b,
        )
    });
    wait_until_waiting(&observer, pid_b).await;
    assert_eq!(
        view_rows(&observer).await,
        vec![
            format!("2020-12 exclusive granted {pid_a}"),
            format!("2020-12 exclusive waiting {pid_b}")
        ]
    );
    let row = observer
        .query_one(
            "SELECT month_start::text, application_name, usename::text, waiting_since IS NULL, \
                    client_addr IS NOT NULL, backend_start IS NOT NULL \
               FROM month_locks WHERE pid = $1",
            &[&pid_a],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "2020-12-01");
    assert_eq!(row.get::<_, String>(1), "worker-a");
    assert_eq!(row.get::<_, String>(2), db.user());
    assert!(row.get::<_, bool>(3), "a holder has no waiting_since");
    assert!(row.get::<_, bool>(4) && row.get::<_, bool>(5));
    let waiting: (Option<String>, bool) = {
        let r = observer
            .query_one(
                "SELECT application_name, waiting_since <= now() FROM month_locks WHERE pid = $1",
                &[&pid_b],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(waiting, (Some("worker-b".into()), true));
    // No query text is exposed.
    let columns: Vec<String> = observer
        .query(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = 'month_locks'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        columns,
        [
            "year",
            "month",
            "month_start",
            "mode",
            "granted",
            "pid",
            "waiting_since",
            "application_name",
            "usename",
            "client_addr",
            "backend_start"
        ]
    );
    assert!(q_bool(&a, "SELECT month_lock_release(2020, 12)").await);
    let (got, _b) = waiter.await.unwrap();
    assert!(got);
    assert_eq!(
        view_rows(&observer).await,
        vec![format!("2020-12 exclusive granted {pid_b}")]
    );
}
