//! Through PgBouncer a one-query script that takes a transaction lock does its work only with the
//! month, and times out with 55P03 without doing it (docs/poolers.md).

use crate::common::*;
use month_lock_tests::pooled::*;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn a_one_query_script_works_only_with_the_month_and_times_out_with_55p03_without_the_work() {
    let (db, admin, bouncer) = setup("pooler_script").await;
    exec(
        &admin,
        "CREATE TABLE work_done (tag text, held boolean, at timestamptz DEFAULT clock_timestamp());
         GRANT SELECT, INSERT ON work_done TO pooled_app;",
    )
    .await;
    let holder = db.connect_as_role(DIRECT).await;
    let pooled = bouncer.connect(&db.name, POOLED).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2024, 3)").await);

    // Waits in the queue while someone else has the month, works once it is handed over.
    let script_a = "BEGIN; SELECT month_lock_xact(2024, 3, 5000); \
                    INSERT INTO work_done (tag, held) VALUES ('a', month_lock_held(2024, 3)); COMMIT;";
    let task = tokio::spawn(async move {
        let r = sq(&pooled, script_a).await.map_err(|e| describe(&e));
        (r, pooled)
    });
    wait_count(
        &admin,
        "SELECT count(*) FROM month_locks WHERE NOT granted AND usename = 'pooled_app'",
        1,
        "waiter",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !task.is_finished(),
        "the script finished while the month was held by another session"
    );
    assert_eq!(
        q_i64(&admin, "SELECT count(*) FROM work_done").await,
        0,
        "work ran without the month"
    );
    exec(
        &admin,
        "CREATE TABLE released_at AS SELECT clock_timestamp() AS t",
    )
    .await;
    assert!(q_bool(&holder, "SELECT month_lock_release(2024, 3)").await);
    let (r, pooled) = tokio::time::timeout(SLOW, task)
        .await
        .expect("script did not finish")
        .unwrap();
    r.expect("script a");
    assert!(
        q_bool(
            &admin,
            "SELECT held AND at > (SELECT t FROM released_at) FROM work_done WHERE tag = 'a'"
        )
        .await,
        "the work ran with the month held and after the release"
    );
    assert!(
        !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
        "COMMIT released the month"
    );

    // At the timeout: 55P03 naming the month and the timeout, and the work did not happen.
    assert!(q_bool(&holder, "SELECT month_lock_try(2024, 3)").await);
    let script_b = "BEGIN; SELECT month_lock_xact(2024, 3, 300); \
                    INSERT INTO work_done (tag, held) VALUES ('b', month_lock_held(2024, 3)); COMMIT;";
    let start = Instant::now();
    let (code, message) = sq_err(&pooled, script_b).await;
    let elapsed = start.elapsed();
    println!(
        "timed-out script: {} {message} after {elapsed:?}",
        code.code()
    );
    assert_eq!(code, SqlState::LOCK_NOT_AVAILABLE, "{message}");
    assert!(
        message.contains("2024-03") && message.contains("300"),
        "message names month and timeout: {message}"
    );
    assert!(
        elapsed >= Duration::from_millis(300),
        "raised after {elapsed:?}, before the timeout"
    );
    assert!(elapsed < SLOW);
    // The rest of the string was skipped and the client is in the failed transaction (still on
    // its server connection) until it rolls back.
    let (code, _) = sq_err(&pooled, "SELECT 1").await;
    assert_eq!(code, SqlState::IN_FAILED_SQL_TRANSACTION);
    sq(&pooled, "ROLLBACK").await.expect("ROLLBACK");
    assert_eq!(sq1(&pooled, "SELECT 1").await, "1");
    assert_eq!(
        q_i64(&admin, "SELECT count(*) FROM work_done WHERE tag = 'b'").await,
        0,
        "the work happened"
    );
    assert_eq!(
        q_i64(
            &admin,
            "SELECT count(*) FROM month_locks WHERE usename = 'pooled_app'"
        )
        .await,
        0,
        "the pooled session holds or waits for nothing"
    );
    assert!(
        q_bool(&holder, "SELECT month_lock_release(2024, 3)").await,
        "the holder kept its month"
    );
    drop(bouncer);
}
