//! month_lock behind a real PgBouncer in transaction-pooling mode (Debian's `pgbouncer`,
//! started by each test on a free loopback port; default_pool_size = 3).
//!
//! Clients log in to PgBouncer as the ordinary role `pooled_app`, which has
//! `ALTER ROLE pooled_app IN DATABASE … SET month_lock.session_locks = off`, and use the simple query
//! protocol (PgBouncer 1.18 does not carry prepared statements across server connections in
//! transaction mode). Observers and holders that need a session of their own connect directly
//! to the server (as `postgres` or the ordinary role `direct_app`).

mod common;

use common::*;
use month_lock_tests::pgbouncer::{pool_value, PgBouncer};
use month_lock_tests::{connect_config, server, TestDb};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Pooled role (session locks off) and two roles without the setting.
const POOLED: &str = "pooled_app";
const POOLED_LEGACY: &str = "pooled_legacy";
const DIRECT: &str = "direct_app";

/// A fresh database, the roles, and a PgBouncer in front of the server.
async fn setup(hint: &str) -> (TestDb, Client, PgBouncer) {
    let db = server().await.fresh_db(hint).await;
    let admin = db.connect().await;
    for role in [POOLED, POOLED_LEGACY, DIRECT] {
        // Roles are cluster-wide and tests run in parallel: create idempotently.
        exec(
            &admin,
            &format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            ),
        )
        .await;
    }
    // Per database: the roles are cluster-wide and tests run in parallel, and concurrent
    // ALTER ROLE ... SET of one role can collide (23505 in pg_db_role_setting).
    exec(
        &admin,
        &format!(
            "ALTER ROLE {POOLED} IN DATABASE \"{}\" SET month_lock.session_locks = off",
            db.name
        ),
    )
    .await;
    let bouncer = PgBouncer::start(
        &db.config,
        &[POOLED, POOLED_LEGACY],
        &[("default_pool_size", "3")],
    );
    (db, admin, bouncer)
}

async fn connect_direct(db: &TestDb, role: &str) -> Client {
    let mut config = db.config.clone();
    config.user(role);
    connect_config(&config).await
}

/// All values of all rows of a (possibly multi-statement) simple query, in order.
async fn sq(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    Ok(c.simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// The first value of the first row; panics on an error.
async fn sq1(c: &Client, sql: &str) -> String {
    let rows = sq(c, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    rows.first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_else(|| panic!("{sql}: no value"))
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// SQLSTATE and message of a failed simple query.
async fn sq_err(c: &Client, sql: &str) -> (SqlState, String) {
    match sq(c, sql).await {
        Ok(rows) => panic!("{sql}: expected an error, got {rows:?}"),
        Err(e) => {
            let d = e
                .as_db_error()
                .unwrap_or_else(|| panic!("{sql}: not a server error: {e}"));
            (d.code().clone(), d.message().to_string())
        }
    }
}

/// Waits (up to `SLOW`) until `sql` (a count) returns `want` on `observer`.
async fn wait_count(observer: &Client, sql: &str, want: i64, what: &str) {
    let deadline = Instant::now() + SLOW;
    loop {
        let n = q_i64(observer, sql).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {sql} = {n}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- mutual exclusion under contention -------------------------------------------------------

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

// ---- month_lock.session_locks = off ---------------------------------------------------------

#[tokio::test]
async fn with_session_locks_off_session_forms_raise_55000_behind_pgbouncer_and_xact_forms_work() {
    let (db, admin, bouncer) = setup("pooler_guard").await;
    let c = bouncer.connect(&db.name, POOLED).await;
    assert_eq!(
        sq1(&c, "SHOW month_lock.session_locks").await,
        "off",
        "the role setting is in effect"
    );

    // The 0.1.0 failure mode: a session lock taken through a transaction pooler. Now refused,
    // whichever session form is used. Forms that could wait without limit run under a
    // transaction-local statement_timeout so a regression fails instead of hanging.
    let forms = [
        "SELECT month_lock_try(2024, 3)",
        "SELECT month_lock_try(2024, 3, 100)",
        "SELECT month_lock_try_shared(2024, 3)",
        "SELECT month_lock_try_shared(2024, 3, 100)",
        "SELECT month_lock(2024, 3, 100)",
        "SELECT month_lock_shared(2024, 3, 100)",
        "SELECT month_lock(2024, 3)",
        "SELECT month_lock_shared(2024, 3)",
    ];
    let mut problems = Vec::new();
    for form in forms {
        let sql = format!("BEGIN; SET LOCAL statement_timeout = '5s'; {form}; COMMIT");
        let err = sq(&c, if form == forms[0] { form } else { &sql })
            .await
            .expect_err(&format!(
                "{form}: a session-scope form succeeded with session_locks = off"
            ));
        if form != forms[0] {
            sq(&c, "ROLLBACK").await.expect("ROLLBACK");
        }
        let d = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{form}: not a server error: {err}"));
        let (code, message, hint) = (
            d.code().clone(),
            d.message().to_string(),
            d.hint().unwrap_or(""),
        );
        println!("{form}: {} {message} (HINT: {hint})", code.code());
        assert_eq!(
            code,
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{form}: {message}"
        );
        assert!(
            !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
            "{form} left 2024-03 locked"
        );
        for name in ["month_lock.session_locks", "month_lock_try_xact"] {
            if !message.contains(name) {
                problems.push(format!(
                    "{form}: the message does not name {name}: {message:?} (HINT: {hint:?})"
                ));
            }
        }
    }

    // The transaction forms work through the pooler.
    assert_eq!(sq1(&c, "SELECT month_lock_try_xact(2024, 3)").await, "t");
    let rows = sq(
        &c,
        "BEGIN; SELECT month_lock_try_xact(2024, 3, 1000); SELECT month_lock_held(2024, 3); COMMIT",
    )
    .await
    .unwrap_or_else(|e| panic!("try_xact in a transaction: {}", describe(&e)));
    assert_eq!(
        rows,
        vec![vec![Some("t".to_string())], vec![Some("t".to_string())]]
    );
    let rows = sq(
        &c,
        "BEGIN; SELECT month_lock_xact(2024, 3, 1000); SELECT month_lock_held(2024, 3); COMMIT",
    )
    .await
    .unwrap_or_else(|e| panic!("month_lock_xact in a transaction: {}", describe(&e)));
    assert_eq!(rows[1], vec![Some("t".to_string())]);
    assert_eq!(
        sq1(&c, "SELECT month_lock_try_xact_shared(2024, 3)").await,
        "t"
    );
    // Releases, the checks and the view keep working.
    assert_eq!(sq1(&c, "SELECT month_lock_release(2024, 3)").await, "f");
    assert_eq!(
        sq1(&c, "SELECT month_lock_release_shared(2024, 3)").await,
        "f"
    );
    assert_eq!(sq1(&c, "SELECT month_lock_release_all()").await, "0");
    assert_eq!(sq1(&c, "SELECT month_is_locked(2024, 3)").await, "f");
    assert_eq!(sq1(&c, "SELECT count(*) FROM month_locks").await, "0");
    assert!(
        !q_bool(&admin, "SELECT month_is_locked(2024, 3)").await,
        "nothing may stay held"
    );
    // Checked last so the behaviour above is checked either way (contract: the *message*
    // names both, so logs that keep only the primary message still tell what to do).
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    drop(c);
    drop(bouncer);
}

#[tokio::test]
async fn without_the_setting_a_session_lock_outlives_its_pooled_client() {
    // Why the setting exists: the hazard itself, as PgBouncer shows it.
    let (db, admin, bouncer) = setup("pooler_hazard").await;
    let c = bouncer.connect(&db.name, POOLED_LEGACY).await;
    assert_eq!(sq1(&c, "SELECT month_lock_try(2024, 4)").await, "t");
    drop(c); // the client is gone; PgBouncer keeps the server connection (no reset in transaction mode)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let holder: Vec<String> = admin
        .query(
            "SELECT usename::text FROM month_locks WHERE year = 2024 AND month = 4 AND granted",
            &[],
        )
        .await
        .expect("month_locks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        holder,
        vec![POOLED_LEGACY.to_string()],
        "the pooled server connection still holds 2024-04"
    );
    let other = bouncer.connect(&db.name, POOLED_LEGACY).await;
    // Another client of the pool may be handed that server connection and "hold" a month it
    // never took, or be refused a month nobody is working on.
    let held_or_refused = sq1(
        &other,
        "SELECT month_lock_held(2024, 4) OR NOT month_lock_try_xact(2024, 4)",
    )
    .await;
    assert_eq!(held_or_refused, "t");
    exec(
        &admin,
        "SELECT pg_terminate_backend(pid) FROM month_locks WHERE year = 2024 AND month = 4",
    )
    .await;
    drop(other);
    drop(bouncer);
}

// ---- the one-round-trip script ---------------------------------------------------------------

#[tokio::test]
async fn a_one_query_script_works_only_with_the_month_and_times_out_with_55p03_without_the_work() {
    let (db, admin, bouncer) = setup("pooler_script").await;
    exec(
        &admin,
        "CREATE TABLE work_done (tag text, held boolean, at timestamptz DEFAULT clock_timestamp());
         GRANT SELECT, INSERT ON work_done TO pooled_app;",
    )
    .await;
    let holder = connect_direct(&db, DIRECT).await;
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

// ---- a waiter occupies a server connection ----------------------------------------------------

#[tokio::test]
async fn a_waiter_occupies_a_pooled_server_connection() {
    let (db, admin, bouncer) = setup("pooler_occupy").await;
    let console = bouncer.admin().await;
    let holder = connect_direct(&db, DIRECT).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2024, 5)").await);

    // Three pooled clients wait for the month: each occupies one of the pool's 3 connections.
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let c = bouncer.connect(&db.name, POOLED).await;
        waiters.push(tokio::spawn(async move {
            let got = sq1(&c, "SELECT month_lock_try_xact(2024, 5, 30000)").await;
            (got, Instant::now(), c)
        }));
    }
    wait_count(
        &admin,
        "SELECT count(*) FROM month_locks WHERE year = 2024 AND month = 5 AND NOT granted",
        3,
        "3 waiters",
    )
    .await;
    let pool = bouncer.pool(&console, &db.name, POOLED).await;
    println!("pool with 3 waiters: {pool:?}");
    assert_eq!(pool_value(&pool, "sv_active"), 3, "{pool:?}");
    assert_eq!(pool_value(&pool, "cl_waiting"), 0, "{pool:?}");

    // A 4th client's trivial query has no server connection to run on.
    let fourth = bouncer.connect(&db.name, POOLED).await;
    let asked = Instant::now();
    let fourth_task = tokio::spawn(async move {
        let v = sq1(&fourth, "SELECT 42").await;
        (v, Instant::now(), fourth)
    });
    let deadline = Instant::now() + SLOW;
    loop {
        let pool = bouncer.pool(&console, &db.name, POOLED).await;
        if pool_value(&pool, "cl_waiting") == 1 {
            println!("pool with a 4th client: {pool:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the 4th client never queued in PgBouncer: {pool:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fourth_task.is_finished(),
        "SELECT 42 ran although all 3 server connections were waiting"
    );
    assert_eq!(
        q_i64(&admin, &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{POOLED}' AND datname = current_database()")).await,
        3,
        "PgBouncer opened more than 3 server connections"
    );

    // The holder lets go: the first waiter takes the month (its statement, and so its hold,
    // ends at once), its connection goes back to the pool, and the 4th client runs.
    let released = Instant::now();
    assert!(q_bool(&holder, "SELECT month_lock_release(2024, 5)").await);
    let (v, fourth_done, _fourth) = tokio::time::timeout(SLOW, fourth_task)
        .await
        .expect("4th client stuck")
        .unwrap();
    assert_eq!(v, "42");
    let mut first_waiter_done = None;
    for w in waiters {
        let (got, done, _c) = tokio::time::timeout(SLOW, w)
            .await
            .expect("waiter stuck")
            .unwrap();
        assert_eq!(got, "t", "every waiter gets the month in turn");
        first_waiter_done = Some(first_waiter_done.map_or(done, |d: Instant| d.min(done)));
    }
    let first_waiter_done = first_waiter_done.unwrap();
    println!(
        "4th client delayed {:?} (until {:?} after the release); first waiter done {:?} after the release",
        fourth_done - asked,
        fourth_done - released,
        first_waiter_done - released
    );
    assert!(
        fourth_done > released,
        "the 4th query finished before any waiter finished"
    );
    assert!(fourth_done - asked >= Duration::from_millis(500));
    drop(console);
    drop(bouncer);
}
