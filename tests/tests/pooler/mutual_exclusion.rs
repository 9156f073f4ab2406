//! Transaction locks taken through PgBouncer give mutual exclusion under contention: many clients,
//! few server connections, no two critical sections of one month overlap (docs/poolers.md).

use crate::common::*;
use month_lock_tests::pooled::*;
use std::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const WORKERS: i32 = 8;
const CYCLES: i32 = 200;

/// Entry and exit of every critical section take a value of one sequence (nextval never
/// blocks and is not rolled back), so the ticks put all entries and exits of committed holds
/// in one exact order. With mutual exclusion nobody else takes a tick inside a hold: every hold
/// has leave_tick = enter_tick + 1. Any overlap breaks that, without any clock involved.
const LEDGER: &str = "
CREATE TABLE holds (worker int, cycle int, form text, pid int, enter_tick bigint NOT NULL,
                    leave_tick bigint, PRIMARY KEY (worker, cycle));
CREATE SEQUENCE ticks;
GRANT SELECT, INSERT, UPDATE ON holds TO pooled_app;
GRANT USAGE ON SEQUENCE ticks TO pooled_app;";

fn enter_sql(w: i32, c: i32, form: &str) -> String {
    format!(
        "INSERT INTO holds VALUES ({w}, {c}, '{form}', pg_backend_pid(), nextval('ticks'), NULL);"
    )
}
fn work_and_leave_sql(w: i32, c: i32) -> String {
    format!(
        "SELECT pg_sleep(0.001), count(*) FROM generate_series(1, 100);
         UPDATE holds SET leave_tick = nextval('ticks') WHERE worker = {w} AND cycle = {c};"
    )
}

/// Holds that another critical section broke into, and overlapping pairs.
async fn overlaps(admin: &Client) -> (i64, i64) {
    let broken = q_i64(
        admin,
        "SELECT count(*) FROM holds WHERE leave_tick IS DISTINCT FROM enter_tick + 1",
    )
    .await;
    let pairs = q_i64(
        admin,
        "SELECT count(*) FROM holds a JOIN holds b
             ON a.enter_tick < b.enter_tick AND b.enter_tick < coalesce(a.leave_tick, 9223372036854775807)",
    )
    .await;
    (broken, pairs)
}

#[tokio::test]
async fn transaction_locks_through_pgbouncer_give_mutual_exclusion_under_contention() {
    let (db, admin, bouncer) = setup("pooler_mutex").await;
    exec(&admin, LEDGER).await;

    // The detector detects: two sections that do overlap (scripted, no locks) are caught.
    let (x, y) = (
        bouncer.connect(&db.name, POOLED).await,
        bouncer.connect(&db.name, POOLED).await,
    );
    sq(&x, &format!("BEGIN; {}", enter_sql(-1, 0, "control")))
        .await
        .unwrap();
    sq(
        &y,
        &format!(
            "BEGIN; {} {} COMMIT;",
            enter_sql(-2, 0, "control"),
            work_and_leave_sql(-2, 0)
        ),
    )
    .await
    .unwrap();
    sq(&x, &format!("{} COMMIT;", work_and_leave_sql(-1, 0)))
        .await
        .unwrap();
    let (broken, pairs) = overlaps(&admin).await;
    assert_eq!(
        (broken, pairs),
        (1, 1),
        "the overlap detector missed a scripted overlap"
    );
    exec(&admin, "TRUNCATE holds").await;
    drop((x, y));

    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = bouncer.connect(&db.name, POOLED).await;
        tasks.push(tokio::spawn(async move {
            let (mut held, mut timeouts) = (0u32, 0u32);
            for c in 0..CYCLES {
                if (w + c) % 2 == 0 {
                    // The raising form, the whole cycle as one query string.
                    let script = format!(
                        "BEGIN; SELECT month_lock_xact(2024, 3, 5000); {} {} COMMIT;",
                        enter_sql(w, c, "xact"),
                        work_and_leave_sql(w, c)
                    );
                    match sq(&client, &script).await {
                        Ok(_) => held += 1,
                        Err(e)
                            if e.as_db_error().map(|d| d.code())
                                == Some(&SqlState::LOCK_NOT_AVAILABLE) =>
                        {
                            timeouts += 1;
                            sq(&client, "ROLLBACK").await.expect("ROLLBACK");
                        }
                        Err(e) => panic!("worker {w} cycle {c}: {}", describe(&e)),
                    }
                } else {
                    // The boolean form: ask, then work or roll back (one transaction).
                    let got =
                        sq1(&client, "BEGIN; SELECT month_lock_try_xact(2024, 3, 5000)").await;
                    if got == "t" {
                        let script = format!(
                            "{} {} COMMIT;",
                            enter_sql(w, c, "try_xact"),
                            work_and_leave_sql(w, c)
                        );
                        sq(&client, &script)
                            .await
                            .unwrap_or_else(|e| panic!("worker {w} cycle {c}: {}", describe(&e)));
                        held += 1;
                    } else {
                        assert_eq!(got, "f");
                        timeouts += 1;
                        sq(&client, "ROLLBACK").await.expect("ROLLBACK");
                    }
                }
            }
            (held, timeouts)
        }));
    }
    let (mut held, mut timeouts) = (0u32, 0u32);
    for t in tasks {
        let (h, to) = t.await.expect("worker panicked");
        held += h;
        timeouts += to;
    }
    let elapsed = start.elapsed();

    let rows = q_i64(&admin, "SELECT count(*) FROM holds").await;
    let pids = q_i64(&admin, "SELECT count(DISTINCT pid) FROM holds").await;
    let (broken, pairs) = overlaps(&admin).await;
    println!(
        "pooler mutex: {WORKERS} clients x {CYCLES} cycles through PgBouncer (pool 3) in {elapsed:?}: \
         {held} holds, {timeouts} timeouts, {rows} ledger rows from {pids} server backends, \
         {broken} broken holds, {pairs} overlapping pairs"
    );
    assert_eq!(held + timeouts, (WORKERS * CYCLES) as u32);
    assert_eq!(rows, held as i64, "every committed hold is in the ledger");
    assert!(
        held >= (WORKERS * CYCLES) as u32 * 9 / 10,
        "too many timeouts: {timeouts}"
    );
    assert!(
        pids <= 3,
        "{pids} server backends served the holds; the pool has 3"
    );
    assert_eq!(broken, 0, "holds broken into by another holder");
    assert_eq!(pairs, 0, "overlapping holds");
    assert!(
        !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
        "a month lock was left behind"
    );
    drop(bouncer);
}
