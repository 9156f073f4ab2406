//! `make demo`: month_lock live on a throwaway local cluster. Ends by itself in a few seconds.

use month_lock_tests::{backend_pid, server, wait_until_waiting};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

async fn one_bool(c: &Client, sql: &str) -> bool {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn print_view(c: &Client) {
    let rows = c
        .query(
            "SELECT format('%s-%s', year, lpad(month::text, 2, '0')), mode, granted, pid, \
                    coalesce(application_name, ''), \
                    coalesce(to_char(waiting_since, 'HH24:MI:SS.MS'), '') \
               FROM month_locks",
            &[],
        )
        .await
        .expect("month_locks");
    println!(
        "    {:<8} {:<9} {:<7} {:>7}  {:<12} waiting_since",
        "month", "mode", "granted", "pid", "application"
    );
    for r in rows {
        println!(
            "    {:<8} {:<9} {:<7} {:>7}  {:<12} {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, bool>(2),
            r.get::<_, i32>(3),
            r.get::<_, String>(4),
            r.get::<_, String>(5)
        );
    }
}

#[tokio::main]
async fn main() {
    let t0 = Instant::now();
    let server = server().await;
    let db = server.fresh_db("demo").await;
    println!(
        "== month_lock demo on a throwaway PostgreSQL ({}), database {}",
        server_desc(server),
        db.name
    );
    let observer = db.connect_as("observer").await;
    let version: String = observer
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!("   CREATE EXTENSION month_lock -> version {version}\n");

    // 1. A race: four workers want 2024-01 at the same instant.
    println!("1. Four workers race for 2024-01 with month_lock_try(2024, 1):");
    let mut workers = Vec::new();
    for i in 1..=4 {
        workers.push(Arc::new(db.connect_as(&format!("worker-{i}")).await));
    }
    let mut attempts = Vec::new();
    for (i, w) in workers.iter().enumerate() {
        let w = w.clone();
        attempts.push(tokio::spawn(async move {
            (i + 1, one_bool(&w, "SELECT month_lock_try(2024, 1)").await)
        }));
    }
    let mut winner = 0;
    for a in attempts {
        let (i, got) = a.await.unwrap();
        println!(
            "   worker-{i}: {}",
            if got {
                "true  (it holds 2024-01)"
            } else {
                "false"
            }
        );
        if got {
            winner = i;
        }
    }
    assert!(winner > 0, "exactly one worker wins");
    let holder = workers[winner - 1].clone();
    let next = workers[winner % 4].clone();
    let late = workers[(winner + 1) % 4].clone();

    // 2. Another worker queues in PostgreSQL's lock queue; the view shows holder and waiter.
    println!(
        "\n2. worker-{} queues with month_lock_try(2024, 1, 5000); the month_locks view meanwhile:",
        winner % 4 + 1
    );
    let next_pid = backend_pid(&next).await;
    let queued = {
        let next = next.clone();
        tokio::spawn(async move {
            let got = one_bool(&next, "SELECT month_lock_try(2024, 1, 5000)").await;
            (got, Instant::now())
        })
    };
    wait_until_waiting(&observer, next_pid).await;
    print_view(&observer).await;

    // 3. The release hands the month to the waiter at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released = Instant::now();
    assert!(one_bool(&holder, "SELECT month_lock_release(2024, 1)").await);
    let (got, at) = queued.await.unwrap();
    assert!(got);
    println!(
        "\n3. worker-{winner} releases 2024-01: worker-{} returns true {:.2} ms after the release was sent",
        winner % 4 + 1,
        (at - released).as_secs_f64() * 1e3
    );
    println!("   (a client polling every 100 ms would have noticed after ~55 ms on average)");

    // 4. A timeout returns false, without an error, not before it is due.
    let started = Instant::now();
    let got = one_bool(&late, "SELECT month_lock_try(2024, 1, 200)").await;
    println!(
        "\n4. worker-{} tries with a 200 ms timeout: {got} after {:.0} ms, no error; it holds nothing: month_lock_held = {}",
        (winner + 1) % 4 + 1,
        started.elapsed().as_secs_f64() * 1e3,
        one_bool(&late, "SELECT month_lock_held(2024, 1)").await
    );
    assert!(!got);
    assert!(one_bool(&next, "SELECT month_lock_release(2024, 1)").await);

    // 5. A backfill: three workers walk months 2024-01..2024-06 in different orders; each month
    //    is processed exactly once and never by two workers at a time.
    println!("\n5. Backfill of 2024-01..2024-06 by three workers (lock, skip if done, work 150 ms, mark done, release):");
    observer
        .batch_execute("CREATE TABLE done (month int PRIMARY KEY, worker text, at timestamptz DEFAULT clock_timestamp())")
        .await
        .unwrap();
    let t5 = Instant::now();
    let mut jobs = Vec::new();
    for (i, order) in [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [3, 1, 5, 2, 6, 4]]
        .into_iter()
        .enumerate()
    {
        let w = workers[i].clone();
        jobs.push(tokio::spawn(async move {
            let name = format!("worker-{}", i + 1);
            for m in order {
                let got = one_bool(&w, &format!("SELECT month_lock_try(2024, {m}, 1000)")).await;
                if !got {
                    println!(
                        "   {:>6.0} ms  {name}: 2024-{m:02} busy for 1 s, moving on",
                        t_ms(t5)
                    );
                    continue;
                }
                let done = one_bool(
                    &w,
                    &format!("SELECT EXISTS (SELECT 1 FROM done WHERE month = {m})"),
                )
                .await;
                if !done {
                    println!("   {:>6.0} ms  {name}: processing 2024-{m:02}", t_ms(t5));
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    w.execute(
                        "INSERT INTO done (month, worker) VALUES ($1, $2)",
                        &[&m, &name],
                    )
                    .await
                    .unwrap();
                }
                assert!(one_bool(&w, &format!("SELECT month_lock_release(2024, {m})")).await);
            }
        }));
    }
    for j in jobs {
        j.await.unwrap();
    }
    let rows = observer
        .query("SELECT month, worker FROM done ORDER BY month", &[])
        .await
        .unwrap();
    println!("   result: {} months, each processed once:", rows.len());
    for r in rows {
        println!(
            "     2024-{:02} by {}",
            r.get::<_, i32>(0),
            r.get::<_, String>(1)
        );
    }
    println!(
        "\n== done in {:.1} s; the throwaway server stops as this program exits",
        t0.elapsed().as_secs_f64()
    );
}

fn t_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn server_desc(server: &month_lock_tests::Server) -> String {
    let c = server.admin_config();
    let host = match &c.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    format!("{host}:{}", c.get_ports().first().copied().unwrap_or(5432))
}
