//! The 0.2.0 contract (issue #7, /tmp/spec/api07.md) probed against the real server: the
//! failed-statement rule and its races, the raising forms and month_lock.session_locks, memory
//! of waited grants, settings that fail closed, release_all, cursors under savepoints and the
//! documented behaviours of item 9. One test (or a few, for item 1) per numbered item.

mod common;

use common::*;
use month_lock_tests::{backend_pid, server, wait_until_waiting, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

async fn db(hint: &str) -> TestDb {
    server().await.fresh_db(hint).await
}

/// The first value of the first row of a simple-protocol result.
fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string).unwrap_or_default()),
        _ => None,
    })
}

// ---- 1. the failed-statement rule ----------------------------------------------------------

/// Outcomes of one race iteration as B's client saw them.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    saw_true: u32,
    saw_false: u32,
    saw_57014: u32,
    leaks: u32,
    lost: u32,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.saw_true += o.saw_true;
        self.saw_false += o.saw_false;
        self.saw_57014 += o.saw_57014;
        self.leaks += o.leaks;
        self.lost += o.lost;
    }
    fn total(&self) -> u32 {
        self.saw_true + self.saw_false + self.saw_57014
    }
}

/// B's call in iteration `i`: the four session-scope forms in turn, returning a boolean.
fn waiting_form(i: usize, y: i32, m: i32, timeout: i32) -> String {
    match i % 4 {
        0 => format!("SELECT month_lock_try({y}, {m}, {timeout})"),
        1 => format!("SELECT month_lock({y}, {m})::text = ''"),
        2 => format!("SELECT month_lock_try_shared({y}, {m}, {timeout})"),
        _ => format!("SELECT month_lock_shared({y}, {m})::text = ''"),
    }
}

/// Runs `sql` on B by the simple or the extended protocol: Ok(bool) or the error.
async fn run_bool(b: &Client, sql: &str, simple: bool) -> Result<bool, tokio_postgres::Error> {
    if simple {
        b.simple_query(sql)
            .await
            .map(|msgs| first_value(&msgs).as_deref() == Some("t"))
    } else {
        b.query_one(sql, &[]).await.map(|r| r.get::<_, bool>(0))
    }
}

/// Classifies B's result and checks `month_lock_held` on B against it.
async fn judge(
    b: &Client,
    y: i32,
    m: i32,
    result: Result<bool, tokio_postgres::Error>,
    what: &str,
) -> Tally {
    let mut t = Tally::default();
    let saw_true = match result {
        Ok(true) => {
            t.saw_true = 1;
            true
        }
        Ok(false) => {
            t.saw_false = 1;
            false
        }
        Err(e) if code(&e) == Some(SqlState::QUERY_CANCELED) => {
            t.saw_57014 = 1;
            false
        }
        Err(e) => panic!("{what}: unexpected error {}", describe(&e)),
    };
    let now_held = match b
        .query_one(&format!("SELECT month_lock_held({y}, {m})"), &[])
        .await
    {
        Ok(r) => r.get::<_, bool>(0),
        Err(e) => panic!(
            "{what}: month_lock_held after the race failed: {}",
            describe(&e)
        ),
    };
    if now_held && !saw_true {
        t.leaks = 1;
        eprintln!("{what}: LEAK: client saw no grant, session holds the month");
    }
    if !now_held && saw_true {
        t.lost = 1;
        eprintln!("{what}: LOST: client saw true, session does not hold the month");
    }
    // Clean up for the next iteration (both modes).
    let released = q_i64(b, "SELECT month_lock_release_all()::bigint").await;
    assert_eq!(
        released,
        i64::from(now_held),
        "{what}: release_all after the race"
    );
    t
}

async fn cancel_race_pair(db: TestDb, y: i32, m: i32, iterations: usize) -> Tally {
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_b = backend_pid(&b).await;
    let b = Arc::new(b);
    let mut tally = Tally::default();
    for i in 0..iterations {
        let what = format!("{}-{m:02} iteration {i} as {}", y, db.user());
        assert!(
            q_bool(&a, &format!("SELECT month_lock_try({y}, {m})")).await,
            "{what}: A cannot retake the month: B kept it"
        );
        let sql = waiting_form(i, y, m, 5000);
        let simple = (i / 4) % 2 == 0;
        let bb = b.clone();
        let call = tokio::spawn(async move { run_bool(&bb, &sql, simple).await });
        wait_until_waiting(&observer, pid_b).await;
        // Release (the month is handed to B at once) and cancel B in the same instant.
        let row = a
            .query_one(
                &format!("SELECT month_lock_release({y}, {m}), pg_cancel_backend({pid_b})"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{what}: {}", describe(&e)));
        assert!(row.get::<_, bool>(0), "{what}: A's release");
        let result = call.await.unwrap();
        tally.add(
            judge(
                &b,
                y,
                m,
                result,
                &format!("{what} ({})", waiting_form(i, y, m, 5000)),
            )
            .await,
        );
    }
    assert_eq!(advisory_count(&observer, pid_b).await, 0);
    tally
}

#[tokio::test]
async fn failed_statement_rule_cancel_racing_a_handoff_never_leaves_a_lock_behind() {
    let db = db("cancel_race").await;
    let role_db = db.with_new_role("racer").await;
    // Four pairs in parallel on months of their own; two of them as an ordinary role.
    let mut tasks = Vec::new();
    for pair in 0..4 {
        let d = if pair < 2 {
            db.clone()
        } else {
            role_db.clone()
        };
        tasks.push(tokio::spawn(cancel_race_pair(d, 2032, 1 + pair, 128)));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.unwrap());
    }
    println!(
        "cancel race: {} iterations: client saw true {}, 57014 {}, false {}; leaks {}, lost grants {}",
        tally.total(),
        tally.saw_true,
        tally.saw_57014,
        tally.saw_false,
        tally.leaks,
        tally.lost
    );
    assert!(tally.total() >= 500);
    assert_eq!((tally.leaks, tally.lost), (0, 0), "{tally:?}");
    assert_eq!(tally.saw_false, 0, "a 5 s wait never times out here");
}

/// `RESET statement_timeout`, which itself runs under the 30 ms timeout it removes: on two
/// loaded cores it is sometimes cancelled (57014) before it takes effect, so try again.
async fn reset_statement_timeout(client: &Client) {
    for _ in 0..50 {
        match client.batch_execute("RESET statement_timeout").await {
            Ok(()) => return,
            Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) => continue,
            Err(e) => panic!("RESET statement_timeout: {}", describe(&e)),
        }
    }
    panic!("RESET statement_timeout was cancelled 50 times");
}

/// Waits until `observer` can take the month (then releases it): a failed request's grant is
/// undone when PostgreSQL rolls the request back, microseconds after the client has received
/// the error, so another session may see it held for that long. Returns how long it took.
async fn becomes_free(observer: &Client, y: i32, m: i32) -> Duration {
    let start = Instant::now();
    loop {
        if q_bool(observer, &format!("SELECT month_lock_try({y}, {m})")).await {
            assert!(q_bool(observer, &format!("SELECT month_lock_release({y}, {m})")).await);
            return start.elapsed();
        }
        assert!(
            start.elapsed() < SLOW,
            "{y}-{m:02} still held {:?} after the error",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn statement_timeout_race_pair(db: TestDb, y: i32, m: i32, iterations: usize) -> Tally {
    const WAIT_MS: u64 = 30;
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_b = backend_pid(&b).await;
    let b = Arc::new(b);
    let mut tally = Tally::default();
    for i in 0..iterations {
        let what = format!("{y}-{m:02} iteration {i}");
        assert!(
            q_bool(&a, &format!("SELECT month_lock_try({y}, {m})")).await,
            "{what}: A cannot retake the month: B kept it"
        );
        // statement_timeout equal to the wait; the SET and the call are one request, and the
        // SET is undone if the request fails.
        let form = waiting_form(i, y, m, WAIT_MS as i32);
        let sql = format!("SET statement_timeout = {WAIT_MS}; {form}");
        let bb = b.clone();
        let sent = Instant::now();
        let call = tokio::spawn(async move { run_bool(&bb, &sql, true).await });
        // With a 30 ms statement_timeout the call may end before it is seen queued.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !call.is_finished()
            && !q_bool(
                &observer,
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = {pid_b} AND NOT granted)"
                ),
            )
            .await
        {
            assert!(
                Instant::now() < deadline,
                "{what}: B neither queued nor returned"
            );
        }
        // Release around the moment both timeouts fire: 20..40 ms after the call was sent.
        let jitter = Duration::from_micros(20_000 + (i as u64 * 2_654_435_761) % 20_000);
        tokio::time::sleep_until((sent + jitter).into()).await;
        assert!(
            q_bool(&a, &format!("SELECT month_lock_release({y}, {m})")).await,
            "{what}"
        );
        let result = call.await.unwrap();
        reset_statement_timeout(&b).await;
        tally.add(judge(&b, y, m, result, &format!("{what} ({form})")).await);
    }
    assert_eq!(advisory_count(&observer, pid_b).await, 0);
    tally
}

#[tokio::test]
async fn failed_statement_rule_statement_timeout_racing_the_wait_never_leaves_a_lock_behind() {
    let db = db("stmt_timeout_race").await;
    let role_db = db.with_new_role("racer").await;
    let mut tasks = Vec::new();
    for pair in 0..4 {
        let d = if pair < 2 {
            db.clone()
        } else {
            role_db.clone()
        };
        tasks.push(tokio::spawn(statement_timeout_race_pair(
            d,
            2033,
            1 + pair,
            128,
        )));
    }
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.unwrap());
    }
    println!(
        "statement_timeout race: {} iterations: true {}, false (timeout) {}, 57014 {}; leaks {}, lost grants {}",
        tally.total(),
        tally.saw_true,
        tally.saw_false,
        tally.saw_57014,
        tally.leaks,
        tally.lost
    );
    assert!(tally.total() >= 500);
    assert_eq!((tally.leaks, tally.lost), (0, 0), "{tally:?}");
}

#[tokio::test]
async fn failed_statement_rule_a_later_error_in_the_same_request_releases_the_grant() {
    let db = db("later_error").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;

    // The literal form (1/0 may be folded before anything runs: it must hold nothing).
    let (c, _) = error_of(&a, "SELECT month_lock_try(2024, 3), 1/0").await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    assert!(!held(&a, 2024, 3).await);
    // The same with the error provably raised after the month was granted in that statement.
    let after_grant = "SELECT month_lock_try(2024, 3), 1/(NOT month_lock_held(2024, 3))::int";
    let (c, _) = error_of(&a, after_grant).await;
    assert_eq!(
        c,
        SqlState::DIVISION_BY_ZERO,
        "the month was taken before the error"
    );
    assert!(!held(&a, 2024, 3).await, "{after_grant}");
    assert!(q_bool(&b, "SELECT month_lock_try(2024, 3)").await);
    assert!(q_bool(&b, "SELECT month_lock_release(2024, 3)").await);
    // Extended protocol, shared form.
    let err = a
        .query_one(
            "SELECT month_lock_try_shared(2024, 3), 1/(NOT month_lock_held(2024, 3))::int",
            &[],
        )
        .await
        .expect_err("division by zero");
    assert_eq!(code(&err), Some(SqlState::DIVISION_BY_ZERO));
    assert!(!held(&a, 2024, 3).await, "shared, extended protocol");

    // An error in a later statement of the same simple-query string.
    for sql in [
        "SELECT month_lock_try(2024, 3); SELECT 1/0",
        "SELECT month_lock_try(2024, 3); SELECT 1/(NOT month_lock_held(2024, 3))::int",
        "SELECT month_lock(2024, 3); SELECT month_lock_shared(2024, 4); SELECT 1/0",
    ] {
        let (c, _) = error_of(&a, sql).await;
        assert_eq!(c, SqlState::DIVISION_BY_ZERO, "{sql}");
        assert!(
            !held(&a, 2024, 3).await && !held(&a, 2024, 4).await,
            "{sql}"
        );
        assert_eq!(advisory_count(&b, pid_a).await, 0, "{sql}");
    }

    // Inside BEGIN: the failing statement's grant goes as the error is raised; the lock of an
    // earlier, completed statement survives the error and the ROLLBACK.
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try(2024, 5)").await);
    let (c, _) = error_of(
        &a,
        "SELECT month_lock_try(2024, 6), 1/(NOT month_lock_held(2024, 6))::int",
    )
    .await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    let took = becomes_free(&b, 2024, 6).await;
    assert!(
        took < Duration::from_millis(500),
        "released before ROLLBACK: {took:?}"
    );
    assert!(q_bool(&b, "SELECT month_lock_try(2024, 6)").await);
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2024, 5)").await,
        "the earlier lock is held"
    );
    assert!(q_bool(&b, "SELECT month_lock_release(2024, 6)").await);
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2024, 5).await && !held(&a, 2024, 6).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        1
    );

    // Under a SAVEPOINT: the same, and ROLLBACK TO keeps locks of completed statements.
    exec(&a, "BEGIN; SAVEPOINT s").await;
    assert!(q_bool(&a, "SELECT month_lock_try(2024, 7)").await);
    let (c, _) = error_of(
        &a,
        "SELECT month_lock_try(2024, 8), 1/(NOT month_lock_held(2024, 8))::int",
    )
    .await;
    assert_eq!(c, SqlState::DIVISION_BY_ZERO);
    let took = becomes_free(&b, 2024, 8).await;
    assert!(
        took < Duration::from_millis(500),
        "released with the failed request: {took:?}"
    );
    exec(&a, "ROLLBACK TO s").await;
    assert!(held(&a, 2024, 7).await && !held(&a, 2024, 8).await);
    exec(&a, "COMMIT").await;
    assert!(held(&a, 2024, 7).await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2024, 7)").await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        1
    );
}

#[tokio::test]
async fn failed_statement_rule_plpgsql_exception_block_keeps_the_month() {
    let db = db("plpgsql_exception").await;
    let (a, b) = (db.connect().await, db.connect().await);
    // Taken before the block whose error is caught.
    exec(
        &a,
        "DO $$ BEGIN
            PERFORM month_lock_try(2025, 1);
            BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN NULL; END;
         END $$",
    )
    .await;
    // Taken inside the block (its subtransaction is rolled back by the caught error).
    exec(
        &a,
        "DO $$ BEGIN
            BEGIN
              PERFORM month_lock_shared(2025, 2);
              PERFORM 1/(NOT month_lock_held(2025, 2))::int;
            EXCEPTION WHEN division_by_zero THEN NULL; END;
         END $$",
    )
    .await;
    // A function, with a waited grant: b holds the month and releases it once a is queued.
    exec(
        &a,
        "CREATE FUNCTION take_and_catch() RETURNS boolean LANGUAGE plpgsql AS $$
         DECLARE got boolean;
         BEGIN
            got := month_lock_try(2025, 3, 10000);
            BEGIN PERFORM 1/0; EXCEPTION WHEN OTHERS THEN NULL; END;
            RETURN got;
         END $$",
    )
    .await;
    assert!(q_bool(&b, "SELECT month_lock_try(2025, 3)").await);
    let pid_a = backend_pid(&a).await;
    let a = Arc::new(a);
    let aa = a.clone();
    let call = tokio::spawn(async move { q_bool(&aa, "SELECT take_and_catch()").await });
    wait_until_waiting(&b, pid_a).await;
    assert!(q_bool(&b, "SELECT month_lock_release(2025, 3)").await);
    assert!(call.await.unwrap());
    for m in 1..=3 {
        assert!(
            held(&a, 2025, m).await,
            "2025-{m:02} is held after the request"
        );
        assert!(
            !q_bool(&b, &format!("SELECT month_lock_try(2025, {m})")).await,
            "2025-{m:02}"
        );
    }
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        3
    );
}

#[tokio::test]
async fn failed_statement_rule_completed_request_keeps_its_lock_after_rollback() {
    let db = db("completed_request").await;
    let (a, b) = (db.connect().await, db.connect().await);
    exec(&a, "BEGIN; SELECT month_lock_try(2025, 4)").await;
    exec(&a, "ROLLBACK").await;
    assert!(
        held(&a, 2025, 4).await,
        "0.1.0 semantics: a session lock survives ROLLBACK"
    );
    assert!(!q_bool(&b, "SELECT month_lock_try(2025, 4)").await);
    // The same after a later failed statement in that transaction.
    exec(&a, "BEGIN; SELECT month_lock_try_shared(2025, 5)").await;
    let _ = error_of(&a, "SELECT 1/0").await;
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2025, 5).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        2
    );
}

// ---- 4. raising forms and month_lock.session_locks -------------------------------------------

#[tokio::test]
async fn raising_forms_raise_55p03_at_the_timeout_not_before_naming_the_month() {
    let db = db("raising").await;
    let (holder, a, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    assert!(q_bool(&holder, "SELECT month_lock_try(2026, 3)").await);
    for (sql, timeout_ms) in [
        ("SELECT month_lock(2026, 3, 300)", 300u64),
        ("SELECT month_lock_shared(2026, 3, 200)", 200),
        ("BEGIN; SELECT month_lock_xact(2026, 3, 200)", 200),
        ("BEGIN; SELECT month_lock_xact_shared(2026, 3, 200)", 200),
        ("SELECT month_lock(2026, 3, 0)", 0),
        ("SELECT month_lock_xact(2026, 3, 0)", 0),
        ("SELECT month_lock_shared(2026, 3, 0)", 0),
        ("SELECT month_lock_xact_shared(2026, 3, 0)", 0),
    ] {
        let start = Instant::now();
        let (c, message) = error_of(&a, sql).await;
        let elapsed = start.elapsed();
        exec(&a, "ROLLBACK").await; // ends the BEGIN of the _xact cases (a warning otherwise)
        assert_eq!(c, SqlState::LOCK_NOT_AVAILABLE, "{sql}: {message}");
        assert!(
            message.contains("2026-03"),
            "{sql}: message names the month: {message}"
        );
        let names_timeout = if timeout_ms == 0 {
            message.contains("0 ms") || message.contains("timeout_ms = 0")
        } else {
            message.contains(&format!("{timeout_ms} ms"))
        };
        assert!(names_timeout, "{sql}: names the timeout: {message}");
        assert!(
            elapsed >= Duration::from_millis(timeout_ms),
            "{sql}: raised after {elapsed:?}"
        );
        assert!(elapsed < SLOW, "{sql}: raised after {elapsed:?}");
        if timeout_ms == 0 {
            assert!(
                elapsed < Duration::from_millis(1000),
                "{sql}: one attempt, took {elapsed:?}"
            );
        }
        assert_eq!(
            advisory_count(&observer, pid_a).await,
            0,
            "{sql}: nothing held after"
        );
    }
    println!("55P03 messages name month and timeout; 300 ms form raised at >= 300 ms");
    // A free month: the raising forms return (void) and take it.
    exec(
        &a,
        "SELECT month_lock(2026, 4, 0); SELECT month_lock_shared(2026, 5, 100)",
    )
    .await;
    assert!(held(&a, 2026, 4).await && held(&a, 2026, 5).await);
    // A waiter is granted at the release, before its timeout.
    let a = Arc::new(a);
    let aa = a.clone();
    let w =
        tokio::spawn(async move { aa.batch_execute("SELECT month_lock(2026, 3, 10000)").await });
    wait_until_waiting(&observer, pid_a).await;
    assert!(q_bool(&holder, "SELECT month_lock_release(2026, 3)").await);
    w.await.unwrap().expect("granted when released");
    assert!(held(&a, 2026, 3).await);
    assert_eq!(
        q_i64(&a, "SELECT month_lock_release_all()::bigint").await,
        3
    );
}

#[tokio::test]
async fn raising_xact_forms_hold_until_the_transaction_ends() {
    let db = db("raising_xact").await;
    let (a, b, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    // Outside BEGIN the transaction is the statement.
    exec(&a, "SELECT month_lock_xact(2026, 6)").await;
    assert!(!held(&a, 2026, 6).await);
    for end in ["COMMIT", "ROLLBACK"] {
        exec(
            &a,
            "BEGIN; SELECT month_lock_xact(2026, 6); SELECT month_lock_xact_shared(2026, 7, 100)",
        )
        .await;
        assert!(held(&a, 2026, 6).await && held(&a, 2026, 7).await, "{end}");
        assert!(
            !q_bool(&a, "SELECT month_lock_release(2026, 6)").await,
            "not a session lock"
        );
        assert!(!q_bool(&a, "SELECT month_lock_release_shared(2026, 7)").await);
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 6)").await, "{end}");
        assert!(!q_bool(&b, "SELECT month_lock_try(2026, 7)").await, "{end}");
        assert!(
            q_bool(&b, "SELECT month_lock_try_shared(2026, 7)").await,
            "shared with shared"
        );
        assert!(q_bool(&b, "SELECT month_lock_release_shared(2026, 7)").await);
        exec(&a, end).await;
        assert!(
            !held(&a, 2026, 6).await && !held(&a, 2026, 7).await,
            "{end}"
        );
    }
    // month_lock_xact(y, m) waits without limit (lock_timeout does not apply) until granted.
    assert!(q_bool(&b, "SELECT month_lock_try(2026, 8)").await);
    exec(&a, "SET lock_timeout = '50ms'; BEGIN").await;
    let a = Arc::new(a);
    let aa = a.clone();
    let w = tokio::spawn(async move { aa.batch_execute("SELECT month_lock_xact(2026, 8)").await });
    wait_until_waiting(&observer, pid_a).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !w.is_finished(),
        "still waiting after 200 ms despite lock_timeout = 50ms"
    );
    assert!(q_bool(&b, "SELECT month_lock_release(2026, 8)").await);
    w.await.unwrap().expect("granted");
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2026, 8)").await,
        "held to commit"
    );
    exec(&a, "COMMIT").await;
    assert!(q_bool(&b, "SELECT month_lock_try(2026, 8)").await);
}

const SESSION_ACQUIRING: [&str; 8] = [
    "SELECT month_lock_try(2026, 9)",
    "SELECT month_lock_try(2026, 9, 10)",
    "SELECT month_lock(2026, 9)",
    "SELECT month_lock(2026, 9, 10)",
    "SELECT month_lock_try_shared(2026, 9)",
    "SELECT month_lock_try_shared(2026, 9, 10)",
    "SELECT month_lock_shared(2026, 9)",
    "SELECT month_lock_shared(2026, 9, 10)",
];

async fn assert_session_locks_refused(c: &Client, observer: &Client, how: &str) {
    let pid = backend_pid(c).await;
    for sql in SESSION_ACQUIRING {
        let (code, message) = error_of(c, sql).await;
        let (_, full) = error_full(c, sql).await;
        assert_eq!(
            code,
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "{how}: {sql}: {full}"
        );
        assert!(
            message.contains("month_lock.session_locks"),
            "{how}: {sql}: {full}"
        );
        // The way out is named in the error report (message, detail or hint).
        assert!(full.contains("month_lock_try_xact"), "{how}: {sql}: {full}");
        if sql == SESSION_ACQUIRING[0] && how.starts_with("SET as") {
            println!("session_locks = off: {code:?}: {full}");
        }
    }
    assert_eq!(
        advisory_count(observer, pid).await,
        0,
        "{how}: nothing taken"
    );
    // What keeps working.
    exec(c, "BEGIN").await;
    assert!(
        q_bool(c, "SELECT month_lock_try_xact(2026, 9)").await,
        "{how}"
    );
    assert!(
        q_bool(c, "SELECT month_lock_try_xact_shared(2026, 10, 100)").await,
        "{how}"
    );
    exec(
        c,
        "SELECT month_lock_xact(2026, 11); SELECT month_lock_xact_shared(2026, 12, 100)",
    )
    .await;
    assert!(
        q_bool(
            c,
            "SELECT month_is_locked(2026, 9) AND month_lock_held(2026, 12)"
        )
        .await
    );
    assert_eq!(
        q_i64(
            c,
            "SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"
        )
        .await,
        4,
        "{how}: the view"
    );
    assert!(
        !q_bool(c, "SELECT month_lock_release(2026, 9)").await,
        "{how}"
    );
    assert!(
        !q_bool(c, "SELECT month_lock_release_shared(2026, 10)").await,
        "{how}"
    );
    assert_eq!(
        q_i64(c, "SELECT month_lock_release_all()::bigint").await,
        0,
        "{how}"
    );
    exec(c, "COMMIT").await;
    assert_eq!(advisory_count(observer, pid).await, 0, "{how}");
}

#[tokio::test]
async fn session_locks_off_refuses_session_locks_with_55000_and_xact_forms_still_work() {
    let db = db("session_locks_off").await;
    let role_db = db.with_new_role("pooled_app").await;
    let observer = db.connect().await;
    // SET, as the superuser and as an ordinary role.
    for d in [&db, &role_db] {
        let c = d.connect().await;
        exec(&c, "SET month_lock.session_locks = off").await;
        assert_session_locks_refused(&c, &observer, &format!("SET as {}", d.user())).await;
        exec(&c, "SET month_lock.session_locks = on").await;
        assert!(
            q_bool(&c, "SELECT month_lock_try(2026, 9)").await,
            "on again"
        );
        assert!(q_bool(&c, "SELECT month_lock_release(2026, 9)").await);
    }
    // ALTER ROLE ... SET for the ordinary role, on a new connection (before the library loads).
    exec(
        &observer,
        &format!(
            "ALTER ROLE \"{}\" SET month_lock.session_locks = off",
            role_db.user()
        ),
    )
    .await;
    let c = role_db.connect().await;
    assert_session_locks_refused(&c, &observer, "ALTER ROLE SET").await;
}

// ---- 5. memory -------------------------------------------------------------------------------

#[tokio::test]
async fn ten_thousand_waited_grants_in_one_transaction_use_bounded_memory() {
    const N: i32 = 10_000;
    let db = db("memory").await;
    let (holder, waiter, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let (pid_w, pid_h) = (backend_pid(&waiter).await, backend_pid(&holder).await);
    // Month i is (1000 + i/12, 1 + i%12): 10,000 distinct months, all held by `holder`.
    let month = "1000 + i / 12, 1 + i % 12";
    assert_eq!(
        q_i64(
            &holder,
            &format!(
                "SELECT count(*) FROM generate_series(0, {N} - 1) i WHERE month_lock_try({month})"
            )
        )
        .await,
        i64::from(N)
    );
    exec(
        &waiter,
        "BEGIN; DO $$ BEGIN PERFORM month_lock_held(1, 1); END $$",
    )
    .await;
    let before = q_i64(
        &waiter,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    let waiter = Arc::new(waiter);
    let w = waiter.clone();
    let waiting_loop = tokio::spawn(async move {
        w.batch_execute(&format!(
            "DO $$ BEGIN
               FOR i IN 0..{N} - 1 LOOP
                 IF NOT month_lock_try_xact({month}, 10000) THEN
                   RAISE EXCEPTION 'month % not granted', i;
                 END IF;
               END LOOP;
             END $$"
        ))
        .await
    });
    // The holder releases month i only once the waiter is queued behind it: the waiter asks
    // for the months in order, so when it is blocked by the holder it waits for month i
    // (checked exactly against pg_locks every 500th month).
    let start = Instant::now();
    let releasing = holder
        .batch_execute(&format!(
            "DO $$
             DECLARE deadline timestamptz := clock_timestamp() + interval '150 s';
             BEGIN
               FOR i IN 0..{N} - 1 LOOP
                 WHILE NOT pg_backend_pid() = ANY (pg_blocking_pids({pid_w})) LOOP
                   IF clock_timestamp() > deadline THEN
                     RAISE EXCEPTION 'waiter never queued for month %', i;
                   END IF;
                 END LOOP;
                 IF i % 500 = 0 AND NOT EXISTS (
                      SELECT 1 FROM pg_locks
                       WHERE locktype = 'advisory' AND pid = {pid_w} AND NOT granted
                         AND classid::bigint = {DEFAULT_NAMESPACE} AND objsubid = 2
                         AND objid::bigint = (1000 + i / 12) * 100 + 1 + i % 12) THEN
                   RAISE EXCEPTION 'waiter is not queued for month % itself', i;
                 END IF;
                 IF NOT month_lock_release({month}) THEN
                   RAISE EXCEPTION 'release of month % failed', i;
                 END IF;
               END LOOP;
             END $$"
        ))
        .await;
    releasing.unwrap_or_else(|e| panic!("releasing loop: {}", describe(&e)));
    waiting_loop
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("waiting loop: {}", describe(&e)));
    let took = start.elapsed();
    let after = q_i64(
        &waiter,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    assert_eq!(
        q_i64(&observer, &format!("SELECT count(*) FROM pg_locks WHERE pid = {pid_w} AND locktype = 'advisory' AND granted")).await,
        i64::from(N),
        "the transaction holds every month"
    );
    assert_eq!(advisory_count(&observer, pid_h).await, 0);
    exec(&waiter, "COMMIT").await;
    assert_eq!(advisory_count(&observer, pid_w).await, 0);

    // For comparison: the built-in taking 10,000 transaction locks (no waits) in one transaction
    // of a fresh backend (its local lock table grows the same way).
    let fresh = db.connect().await;
    exec(&fresh, "BEGIN; DO $$ BEGIN PERFORM 1; END $$").await;
    let b0 = q_i64(
        &fresh,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    exec(&fresh, &format!("DO $$ BEGIN FOR i IN 1..{N} LOOP PERFORM pg_advisory_xact_lock(777, i); END LOOP; END $$")).await;
    let b1 = q_i64(
        &fresh,
        "SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts",
    )
    .await;
    exec(&fresh, "COMMIT").await;

    let growth = after - before;
    println!(
        "memory: {N} waited grants in one transaction in {took:?}: backend contexts grew {} KB ({} bytes per grant); \
         built-in pg_advisory_xact_lock x {N} without waits: {} KB",
        growth / 1024,
        growth / i64::from(N),
        (b1 - b0) / 1024
    );
    assert!(
        growth < 4 * 1024 * 1024,
        "grew {growth} bytes over {N} waited grants"
    );
    // Beyond what the built-in's local lock table needs for as many locks: < 100 B a grant.
    assert!(
        growth - (b1 - b0) < 1024 * 1024,
        "grew {growth} bytes, built-in {}",
        b1 - b0
    );
}

// ---- 6. settings fail closed -----------------------------------------------------------------

const EVERY_KIND_OF_CALL: [&str; 7] = [
    "SELECT month_lock_try(2027, 3)",
    "SELECT month_lock_held(2027, 3)",
    "SELECT month_is_locked(2027, 3)",
    "SELECT month_lock_release(2027, 3)",
    "SELECT month_lock_release_all()",
    "BEGIN; SELECT month_lock_try_xact(2027, 3); COMMIT",
    "SELECT count(*) FROM month_locks",
];

/// Every kind of call fails with 22023 naming the setting and the value; collects all
/// deviations before failing, so one run shows the whole picture.
async fn assert_fails_closed(c: &Client, observer: &Client, setting: &str, value: &str, how: &str) {
    let pid = backend_pid(c).await;
    let mut wrong = Vec::new();
    for sql in EVERY_KIND_OF_CALL {
        let result = c.batch_execute(sql).await;
        exec(c, "ROLLBACK").await;
        match result {
            Ok(()) => wrong.push(format!("{sql}: succeeded")),
            Err(e) => {
                let (code, message) = match e.as_db_error() {
                    Some(d) => (d.code().clone(), d.message().to_string()),
                    None => panic!("{how}: {sql}: {e}"),
                };
                if code != SqlState::INVALID_PARAMETER_VALUE
                    || !message.contains(setting)
                    || !message.contains(value)
                {
                    wrong.push(format!("{sql}: {} {message}", code.code()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{how}: expected 22023 naming {setting} and '{value}' from every call:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        advisory_count(observer, pid).await,
        0,
        "{how}: nothing taken"
    );
}

#[tokio::test]
async fn settings_with_unusable_values_fail_closed() {
    let db = db("fail_closed").await;
    let observer = db.connect().await;

    // Placeholders set before the library is loaded in the session (first statement).
    for (setting, bad, good) in [
        ("month_lock.namespace", "seven", "7"),
        ("month_lock.legacy_keys", "maybe", "off"),
        ("month_lock.session_locks", "sometimes", "on"),
    ] {
        let c = db.connect().await;
        exec(&c, &format!("SET {setting} = '{bad}'")).await;
        assert_fails_closed(
            &c,
            &observer,
            setting,
            bad,
            &format!("SET {setting} before load"),
        )
        .await;
        exec(&c, &format!("SET {setting} = {good}")).await;
        assert!(
            q_bool(&c, "SELECT month_lock_try(2027, 3)").await,
            "{setting} = {good} works"
        );
        if setting == "month_lock.namespace" {
            assert_eq!(
                advisory_locks_of(&observer, backend_pid(&c).await).await,
                ["7/202703/2 ExclusiveLock granted"]
            );
        }
        assert!(q_bool(&c, "SELECT month_lock_release(2027, 3)").await);
    }

    // ALTER ROLE ... SET for an ordinary role, from a session that has not loaded the library
    // (with it loaded the ALTER itself would be refused); a new connection of that role.
    let role_db = db.with_new_role("r").await;
    let fresh_admin = db.connect().await;
    exec(
        &fresh_admin,
        &format!(
            "ALTER ROLE \"{}\" SET month_lock.namespace = 'seven'",
            role_db.user()
        ),
    )
    .await;
    let c = role_db.connect().await;
    assert_fails_closed(
        &c,
        &observer,
        "month_lock.namespace",
        "seven",
        "ALTER ROLE SET",
    )
    .await;
    exec(&c, "SET month_lock.namespace = 8").await;
    assert!(q_bool(&c, "SELECT month_lock_try(2027, 3)").await);
    assert_eq!(
        advisory_locks_of(&observer, backend_pid(&c).await).await,
        ["8/202703/2 ExclusiveLock granted"]
    );

    // Once loaded, PostgreSQL itself refuses a bad value and an unknown month_lock.* name.
    let loaded = db.connect().await;
    assert!(!q_bool(&loaded, "SELECT month_lock_held(2027, 3)").await);
    let (code, message) = error_of(&loaded, "SET month_lock.namespace = 'seven'").await;
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE, "{message}");
    assert!(message.contains("month_lock.namespace"), "{message}");
    let version: i32 = one(&loaded, "SELECT current_setting('server_version_num')::int").await;
    if version >= 150000 {
        let (code, message) = error_of(&loaded, "SET month_lock.namspace = 1").await;
        assert_eq!(code, SqlState::INVALID_NAME, "{message}");
        assert!(message.contains("month_lock.namspace"), "{message}");
    } else {
        // PostgreSQL 14 has no reserved prefixes: it only warned when the library was loaded.
        exec(&loaded, "SET month_lock.namspace = 1").await;
    }
    assert!(
        q_bool(&loaded, "SELECT month_lock_try(2027, 4)").await,
        "session still usable"
    );
}

// ---- 7. release_all --------------------------------------------------------------------------

#[tokio::test]
async fn release_all_releases_only_what_month_lock_took() {
    let db = db("release_all_only").await;
    let (c, observer) = (db.connect().await, db.connect().await);
    let pid = backend_pid(&c).await;

    // Legacy keys: another library's pg_advisory_lock(4207) on the same session is not a month
    // (it would read as year 42, month 7) and neither shows nor is released.
    exec(&c, "SET month_lock.legacy_keys = on").await;
    exec(&c, "SELECT pg_advisory_lock(4207); SELECT pg_advisory_lock(99901); SELECT pg_advisory_lock(202413)").await;
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    assert_eq!(
        view_rows(&c).await,
        vec![format!("2024-03 exclusive granted {pid}")]
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        1
    );
    assert_eq!(
        advisory_locks_of(&observer, pid).await,
        [
            "0/202413/1 ExclusiveLock granted",
            "0/4207/1 ExclusiveLock granted",
            "0/99901/1 ExclusiveLock granted"
        ]
    );
    assert!(view_rows(&c).await.is_empty());
    // Years below 1000 are not six-digit keys: refused in legacy mode.
    let (code, message) = error_of(&c, "SELECT month_lock_try(999, 1)").await;
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE, "{message}");
    assert!(message.contains("year"), "{message}");
    exec(
        &c,
        "SELECT pg_advisory_unlock_all(); RESET month_lock.legacy_keys",
    )
    .await;

    // Default keys: a raw pg_advisory_lock(namespace, 202403) is the caller's to release.
    assert!(
        q_bool(
            &c,
            &format!("SELECT pg_try_advisory_lock({DEFAULT_NAMESPACE}, 202403)")
        )
        .await
    );
    assert!(
        q_bool(
            &c,
            "SELECT month_lock_try(2024, 4) AND month_lock_try_shared(2024, 5)"
        )
        .await
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        2
    );
    assert_eq!(
        advisory_locks_of(&observer, pid).await,
        [format!(
            "{DEFAULT_NAMESPACE}/202403/2 ExclusiveLock granted"
        )]
    );
    assert!(
        q_bool(
            &c,
            &format!("SELECT pg_advisory_unlock({DEFAULT_NAMESPACE}, 202403)")
        )
        .await
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        0
    );
}

#[tokio::test]
async fn release_all_cost_does_not_grow_with_other_sessions_advisory_locks() {
    let db = db("release_all_cost").await;
    let (c, other) = (db.connect().await, db.connect().await);
    // Timed in the server (clock_timestamp around each call), so that scheduling of the client
    // on loaded cores does not count; 3 months held at each call.
    exec(
        &c,
        "CREATE FUNCTION pg_temp.release_all_ms(calls int) RETURNS float8 LANGUAGE plpgsql AS $$
         DECLARE total interval := '0'; t0 timestamptz; n int;
         BEGIN
           FOR i IN 1..calls LOOP
             PERFORM month_lock_try(2024, 3), month_lock_try(2024, 4), month_lock_try_shared(2024, 5);
             t0 := clock_timestamp();
             n := month_lock_release_all();
             total := total + (clock_timestamp() - t0);
             IF n <> 3 THEN RAISE EXCEPTION 'call %: released %', i, n; END IF;
           END LOOP;
           RETURN extract(epoch FROM total) * 1000 / calls;
         END $$",
    )
    .await;
    let mut averages = Vec::new();
    for other_locks in [0, 50_000] {
        if other_locks > 0 {
            let sql = format!(
                "SELECT count(pg_advisory_lock(5, i)) FROM generate_series(1, {other_locks}) i"
            );
            assert_eq!(q_i64(&other, &sql).await, other_locks);
        }
        averages.push(one::<f64>(&c, "SELECT pg_temp.release_all_ms(200)").await);
    }
    println!(
        "release_all with 3 months held, 200 calls timed in the server: {:.4} ms per call alone, \
         {:.4} ms with 50,000 other advisory locks in the table",
        averages[0], averages[1]
    );
    assert!(
        averages[1] < 5.0,
        "release_all took {} ms per call",
        averages[1]
    );
}

// ---- 8. cursor + savepoint -------------------------------------------------------------------

/// Declares a cursor taking two transaction locks, fetches the first inside SAVEPOINT s (no
/// wait) and the second (waits for `holder` to release it), rolls back to s and returns which
/// of the two keys the transaction still holds, read from pg_locks.
async fn cursor_under_savepoint(
    db: &TestDb,
    cursor_sql: &str,
    hold_second: &str,
    release_second: &str,
    key: impl Fn(i32) -> String,
) -> [bool; 2] {
    let (a, holder, observer) = (db.connect().await, db.connect().await, db.connect().await);
    let pid_a = backend_pid(&a).await;
    exec(&holder, hold_second).await;
    exec(
        &a,
        &format!("BEGIN; DECLARE c CURSOR FOR {cursor_sql}; SAVEPOINT s"),
    )
    .await;
    let start = Instant::now();
    exec(&a, "FETCH 1 FROM c").await;
    assert!(start.elapsed() < SLOW);
    let a = Arc::new(a);
    let aa = a.clone();
    let fetch = tokio::spawn(async move { aa.batch_execute("FETCH 1 FROM c").await });
    wait_until_waiting(&observer, pid_a).await;
    exec(&holder, release_second).await;
    fetch
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("second FETCH: {}", describe(&e)));
    exec(&a, "ROLLBACK TO s").await;
    let mut kept = [false; 2];
    for (i, k) in kept.iter_mut().enumerate() {
        *k = q_bool(
            &observer,
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid_a} AND granted AND {})",
                key(i as i32 + 1)
            ),
        )
        .await;
    }
    exec(&a, "COMMIT").await;
    assert_eq!(
        advisory_count(&observer, pid_a).await,
        0,
        "{cursor_sql}: all gone at commit"
    );
    kept
}

#[tokio::test]
async fn cursor_fetched_inside_a_savepoint_keeps_xact_months_like_pg_advisory_xact_lock() {
    let db = db("cursor_savepoint").await;
    let builtin = cursor_under_savepoint(
        &db,
        "SELECT pg_advisory_xact_lock(777, m)::text FROM generate_series(1, 2) m",
        "SELECT pg_advisory_lock(777, 2)",
        "SELECT pg_advisory_unlock(777, 2)",
        |m| format!("classid = 777 AND objid = {m} AND objsubid = 2"),
    )
    .await;
    let month_lock = cursor_under_savepoint(
        &db,
        "SELECT month_lock_try_xact(2040, m, 5000) FROM generate_series(1, 2) m",
        "SELECT month_lock_try(2040, 2)",
        "SELECT month_lock_release(2040, 2)",
        |m| {
            format!(
                "classid::bigint = {DEFAULT_NAMESPACE} AND objid::bigint = {} AND objsubid = 2",
                ym(2040, m)
            )
        },
    )
    .await;
    println!("after ROLLBACK TO s: pg_advisory_xact_lock keeps {builtin:?}, month_lock_try_xact keeps {month_lock:?}");
    assert_eq!(
        month_lock, builtin,
        "[no-wait month, waited month] held after ROLLBACK TO s"
    );
}

// ---- 9. documented behaviours ------------------------------------------------------------------
// (Deadlock: contention.rs a_deadlock_raises_40p01_in_one_session_and_the_other_gets_its_month
// asserts that the other session stays queued until the loser releases.)

#[tokio::test]
async fn release_returns_true_while_a_transaction_hold_of_the_same_month_stays() {
    let db = db("release_with_xact").await;
    let (a, b) = (db.connect().await, db.connect().await);
    assert!(q_bool(&a, "SELECT month_lock_try(2041, 1)").await);
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 1)").await);
    assert!(
        q_bool(&a, "SELECT month_lock_release(2041, 1)").await,
        "the session hold is dropped"
    );
    assert!(held(&a, 2041, 1).await, "the transaction hold stays");
    assert!(
        !q_bool(&b, "SELECT month_lock_try(2041, 1)").await,
        "others still blocked"
    );
    assert!(
        !q_bool(&a, "SELECT month_lock_release(2041, 1)").await,
        "nothing left to release"
    );
    exec(&a, "COMMIT").await;
    assert!(!held(&a, 2041, 1).await);
    assert!(q_bool(&b, "SELECT month_lock_try(2041, 1)").await);
}

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

#[tokio::test]
async fn create_extension_as_non_superuser_follows_the_trusted_flag() {
    let bare = server().await.bare_db("create_ext_role").await;
    let role = bare.with_new_role("creator").await;
    let admin = bare.connect().await;
    exec(
        &admin,
        &format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            bare.name,
            role.user()
        ),
    )
    .await;
    let trusted = q_bool(
        &admin,
        "SELECT v.trusted FROM pg_available_extension_versions v JOIN pg_available_extensions e \
           ON e.name = v.name AND e.default_version = v.version WHERE v.name = 'month_lock'",
    )
    .await;
    let c = role.connect().await;
    let result = c.batch_execute("CREATE EXTENSION month_lock").await;
    println!(
        "month_lock trusted = {trusted}; CREATE EXTENSION as a non-superuser: {:?}",
        result.as_ref().map_err(describe)
    );
    if trusted {
        result.unwrap_or_else(|e| panic!("trusted, yet: {}", describe(&e)));
        assert!(q_bool(&c, "SELECT month_lock_try(2041, 5)").await);
    } else {
        let e = result.expect_err("superuser = true, trusted = false");
        assert_eq!(
            code(&e),
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "{}",
            describe(&e)
        );
        assert_eq!(
            q_i64(
                &admin,
                "SELECT count(*) FROM pg_extension WHERE extname = 'month_lock'"
            )
            .await,
            0
        );
    }
}

#[tokio::test]
async fn prepare_transaction_refuses_a_month_held_in_both_scopes_and_works_with_xact_only() {
    let db = db("prepare").await;
    let (a, b) = (db.connect().await, db.connect().await);
    let gid = format!("{}_p", db.name);
    assert!(q_bool(&a, "SELECT month_lock_try(2041, 3)").await);
    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 3)").await);
    let (code, message) = error_of(&a, &format!("PREPARE TRANSACTION '{gid}'")).await;
    assert_eq!(code, SqlState::FEATURE_NOT_SUPPORTED, "{message}");
    assert!(
        message.contains("cannot PREPARE while holding both session-level and transaction-level locks on the same object"),
        "{message}"
    );
    exec(&a, "ROLLBACK").await;
    assert!(held(&a, 2041, 3).await, "the session hold survives");
    assert!(q_bool(&a, "SELECT month_lock_release(2041, 3)").await);

    exec(&a, "BEGIN").await;
    assert!(q_bool(&a, "SELECT month_lock_try_xact(2041, 4)").await);
    exec(&a, &format!("PREPARE TRANSACTION '{gid}'")).await;
    assert!(
        !held(&a, 2041, 4).await,
        "the prepared transaction holds it, not the session"
    );
    assert!(q_bool(&b, "SELECT month_is_locked(2041, 4)").await);
    assert!(!q_bool(&b, "SELECT month_lock_try(2041, 4)").await);
    exec(&a, &format!("COMMIT PREPARED '{gid}'")).await;
    assert!(q_bool(&b, "SELECT month_lock_try(2041, 4)").await);
}
