//! `make demo`: what month_lock is for, live on a throwaway cluster on loopback — a queued
//! handoff and the `month_locks` view, a timeout, the raising form in one round trip, a fencing
//! token refusing a stale writer, all or nothing, and a claim-any backfill. The workers log in
//! as an ordinary role. Each step checks what it prints; the program ends by itself.

use month_lock_tests::sql::{describe, one};
use month_lock_tests::{backend_pid, server, wait_until_waiting, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

const QUARTER: &str = "ARRAY['2024-07-01', '2024-08-01', '2024-09-01']::date[]";

#[tokio::main]
async fn main() {
    let t0 = Instant::now();
    let server = server().await;
    let db = server.fresh_db("demo").await;
    let admin = db.connect().await;
    let app = db.with_new_role("app").await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE facts (month date PRIMARY KEY, total int, token bigint NOT NULL DEFAULT 0);
             CREATE TABLE todo (month date PRIMARY KEY, done boolean NOT NULL DEFAULT false, worker text);
             INSERT INTO todo (month) SELECT generate_series('2025-01-01'::date, '2025-06-01', '1 month');
             GRANT ALL ON facts, todo TO \"{}\";",
            app.user()
        ))
        .await
        .expect("demo tables");
    let version: String = one(
        &admin,
        "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'",
    )
    .await;
    let server_version: String = one(&admin, "SHOW server_version").await;
    println!(
        "== month_lock {version} on a throwaway PostgreSQL {server_version} (loopback), database {};\n   the workers log in as the ordinary role {}\n",
        db.name,
        app.user()
    );

    let observer = app.connect_as("observer").await;
    let a = Arc::new(app.connect_as("worker-a").await);
    let b = Arc::new(app.connect_as("worker-b").await);
    let c = app.connect_as("worker-c").await;

    handoff_and_view(&observer, &a, &b).await; // worker-b holds 2024-03 afterwards
    timeout(&c).await;
    raising_form(&observer, &b, &c).await;
    fencing_token(&app, &observer, &b).await;
    all_or_nothing(&observer, &a, &b).await;
    claim_any(&app, &observer).await;

    println!(
        "\n== done in {:.1} s; the throwaway server stops as this program exits",
        t0.elapsed().as_secs_f64()
    );
}

/// A waiter queues in PostgreSQL's lock queue and is handed the month at the release.
async fn handoff_and_view(observer: &Client, a: &Arc<Client>, b: &Arc<Client>) {
    println!("1. Queued handoff, and the month_locks view");
    assert!(one::<bool>(a, "SELECT month_lock_try(2024, 3)").await);
    println!("   worker-a  SELECT month_lock_try(2024, 3)         -> true (one attempt, no wait)");
    let b_pid = backend_pid(b).await;
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            let got: bool = one(&b, "SELECT month_lock_try(2024, 3, 5000)").await;
            (got, Instant::now())
        })
    };
    wait_until_waiting(observer, b_pid).await;
    println!("   worker-b  SELECT month_lock_try(2024, 3, 5000)   ... queued in the server, one statement");
    println!("   observer  SELECT * FROM month_locks:");
    print_view(observer).await;
    let released = Instant::now();
    assert!(one::<bool>(a, "SELECT month_lock_release(2024, 3)").await);
    let (got, at) = waiter.await.unwrap();
    assert!(got, "the waiter is handed the month");
    println!(
        "   worker-a  SELECT month_lock_release(2024, 3)     -> true; worker-b's call returns true {:.2} ms later",
        ms(at - released)
    );
}

/// A timeout returns false, without an error, and leaves nothing held.
async fn timeout(c: &Client) {
    println!("\n2. Timeout (worker-b holds 2024-03)");
    let started = Instant::now();
    let got: bool = one(c, "SELECT month_lock_try(2024, 3, 200)").await;
    let took = started.elapsed();
    assert!(!got && took >= Duration::from_millis(200));
    assert!(!one::<bool>(c, "SELECT month_lock_held(2024, 3)").await);
    println!(
        "   worker-c  SELECT month_lock_try(2024, 3, 200)    -> false after {:.0} ms, no error; it holds nothing",
        ms(took)
    );
}

/// One query string that runs its work only with the month held: lock, work, commit.
async fn raising_form(observer: &Client, b: &Client, c: &Client) {
    println!(
        "\n3. The raising form: lock and work in one round trip (transaction scope, pooler-safe)"
    );
    let script = "BEGIN; SELECT month_lock_xact(2024, 3, 300); \
                  INSERT INTO facts (month, total) VALUES ('2024-03-01', 42); COMMIT;";
    println!("   worker-c sends: {script}");
    let e = c
        .batch_execute(script)
        .await
        .expect_err("worker-b holds the month: the script must fail");
    assert_eq!(sqlstate(&e).as_deref(), Some("55P03"), "{}", describe(&e));
    let rows: i64 = one(observer, "SELECT count(*) FROM facts").await;
    assert_eq!(rows, 0);
    println!(
        "   while worker-b holds 2024-03: ERROR {}; the INSERT did not run (then ROLLBACK)",
        describe(&e)
    );
    // The failed BEGIN block is the client's to end, as after any error in a transaction.
    c.batch_execute("ROLLBACK").await.unwrap();
    assert!(one::<bool>(b, "SELECT month_lock_release(2024, 3)").await);
    c.batch_execute(script)
        .await
        .unwrap_or_else(|e| panic!("{script}: {}", describe(&e)));
    let rows: i64 = one(observer, "SELECT count(*) FROM facts").await;
    assert_eq!(rows, 1);
    assert!(!one::<bool>(observer, "SELECT month_is_locked(2024, 3)").await);
    println!(
        "   after worker-b's release: the same string commits its row, and COMMIT ended the lock"
    );
}

/// Every hold gets a larger token; the data refuses a writer whose hold is over.
async fn fencing_token(app: &TestDb, observer: &Client, b: &Client) {
    println!("\n4. Fencing token: a stale writer is refused by the data");
    let stalled = app.connect_as("worker-stalled").await;
    assert!(one::<bool>(&stalled, "SELECT month_lock_try(2024, 4)").await);
    let t1: i64 = one(&stalled, "SELECT month_lock_token(2024, 4)").await;
    stalled
        .batch_execute(&format!(
            "INSERT INTO facts (month, total, token) VALUES ('2024-04-01', 1, {t1})"
        ))
        .await
        .unwrap();
    println!(
        "   worker-stalled holds 2024-04 with token {t1} and writes; then its session is lost"
    );
    let pid = backend_pid(&stalled).await;
    assert!(one::<bool>(observer, &format!("SELECT pg_terminate_backend({pid})")).await);
    assert!(one::<bool>(b, "SELECT month_lock_try(2024, 4, 5000)").await);
    let t2: i64 = one(b, "SELECT month_lock_token(2024, 4)").await;
    assert!(t2 > t1);
    let fenced_write = |token: i64, total: i32| {
        format!(
            "UPDATE facts SET total = {total}, token = {token} \
              WHERE month = '2024-04-01' AND token <= {token}"
        )
    };
    assert_eq!(b.execute(&fenced_write(t2, 2), &[]).await.unwrap(), 1);
    println!("   worker-b  takes 2024-04: token {t2}; UPDATE ... WHERE token <= {t2} -> 1 row");
    let late = app.connect_as("worker-stalled").await;
    assert_eq!(late.execute(&fenced_write(t1, 99), &[]).await.unwrap(), 0);
    println!("   worker-stalled wakes up, writes with token {t1}: UPDATE ... WHERE token <= {t1} -> 0 rows");
    assert!(one::<bool>(b, "SELECT month_lock_release(2024, 4)").await);
}

/// Every month of a set or none, within one timeout.
async fn all_or_nothing(observer: &Client, a: &Client, b: &Client) {
    println!("\n5. All or nothing: the quarter 2024-07..2024-09");
    assert!(one::<bool>(a, "SELECT month_lock_try(2024, 8)").await);
    let started = Instant::now();
    let got: bool = one(b, &format!("SELECT month_lock_all({QUARTER}, 300)")).await;
    let took = started.elapsed();
    assert!(!got);
    let held: i64 = one(
        observer,
        "SELECT count(*) FROM month_locks WHERE application_name = 'worker-b'",
    )
    .await;
    assert_eq!(held, 0);
    println!(
        "   worker-a holds 2024-08; worker-b  SELECT month_lock_all(quarter, 300) -> false after {:.0} ms, holding none of it",
        ms(took)
    );
    assert!(one::<bool>(a, "SELECT month_lock_release(2024, 8)").await);
    assert!(one::<bool>(b, &format!("SELECT month_lock_all({QUARTER}, 300)")).await);
    let held: i64 = one(
        observer,
        "SELECT count(*) FROM month_locks WHERE application_name = 'worker-b' AND granted",
    )
    .await;
    assert_eq!(held, 3);
    println!("   after worker-a's release: true, worker-b holds all three months");
    let released: i32 = one(b, &format!("SELECT month_lock_release({QUARTER})")).await;
    assert_eq!(released, 3);
    println!("   worker-b  SELECT month_lock_release(quarter)      -> {released}");
}

/// Three workers share a to-do list: each claims whichever month is free, never waiting.
async fn claim_any(app: &TestDb, observer: &Client) {
    println!("\n6. Claim any: three workers back-fill 2025-01..2025-06 from one to-do list");
    let started = Instant::now();
    let mut jobs = Vec::new();
    for i in 1..=3 {
        let w = app.connect_as(&format!("worker-{i}")).await;
        jobs.push(tokio::spawn(async move {
            let name = format!("worker-{i}");
            loop {
                let month: Option<String> = one(
                    &w,
                    "SELECT to_char(month_lock_claim(ARRAY(SELECT month FROM todo \
                     WHERE NOT done ORDER BY month)), 'YYYY-MM-DD')",
                )
                .await;
                let Some(month) = month else { break };
                // The list was read before the claim: check again, in a later statement.
                let done: bool = one(
                    &w,
                    &format!("SELECT done FROM todo WHERE month = '{month}'"),
                )
                .await;
                if !done {
                    println!(
                        "   {:>5.0} ms  {name} claimed {}",
                        ms(started.elapsed()),
                        &month[..7]
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    w.batch_execute(&format!(
                        "UPDATE todo SET done = true, worker = '{name}' WHERE month = '{month}'"
                    ))
                    .await
                    .unwrap();
                }
                let released: i32 = one(
                    &w,
                    &format!("SELECT month_lock_release(ARRAY['{month}']::date[])"),
                )
                .await;
                assert_eq!(released, 1);
            }
        }));
    }
    for j in jobs {
        j.await.unwrap();
    }
    let rows = observer
        .query(
            "SELECT to_char(month, 'YYYY-MM'), worker FROM todo WHERE done ORDER BY month",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6, "every month done");
    let list: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    println!("   every month done exactly once: {}", list.join(", "));
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn print_view(c: &Client) {
    let rows = c
        .query(
            "SELECT to_char(month_start, 'YYYY-MM'), mode, granted, pid, application_name FROM month_locks",
            &[],
        )
        .await
        .expect("month_locks");
    println!(
        "             {:<8} {:<9} {:<7} {:>7}  application_name",
        "month", "mode", "granted", "pid"
    );
    for r in rows {
        println!(
            "             {:<8} {:<9} {:<7} {:>7}  {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, bool>(2),
            r.get::<_, i32>(3),
            r.get::<_, Option<String>>(4).unwrap_or_default()
        );
    }
}
