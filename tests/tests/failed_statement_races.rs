//! A failed request leaves no month behind even when its failure races the grant: a
//! pg_cancel_backend or a statement_timeout firing in the instant the month is handed over,
//! hundreds of times over the four session forms and both protocols, leaves the session holding the
//! month exactly when the client saw true (docs/semantics.md: "A session lock never
//! outlives a failed request that took it").

mod common;

use common::*;
use month_lock_tests::{backend_pid, wait_until_waiting, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

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
