//! Figures 6–8: how month_lock scales against PostgreSQL's built-in advisory locks — a chain
//! of handoffs through a long queue, lookups against a full lock table, and releasing many
//! months at once. Each opens its own connections and leaves no lock behind.

use crate::experiments::{cpu_of, queued_on};
use crate::figures::{fus, Chain, ChainMethod, Lookup, ReleaseAll};
use crate::methods::{query_bool, NS};
use month_lock_tests::sql::ym;
use month_lock_tests::{backend_pid, TestDb};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The two sides of figures 6–8 (polling has no queue, no lookup and no release-all of its own).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    MonthLock,
    Builtin,
}

const SIDES: [Side; 2] = [Side::MonthLock, Side::Builtin];

/// Runs a statement with the simple protocol (one round trip) and returns the first column of
/// its first row (`None` when it returns no row or NULL).
async fn simple_value(client: &Client, sql: &str) -> Option<String> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

/// Runs `sql` once (one round trip) and returns the time it took, µs, and its value.
async fn timed(client: &Client, sql: &str) -> (f64, Option<String>) {
    let start = Instant::now();
    let value = simple_value(client, sql).await;
    (start.elapsed().as_secs_f64() * 1e6, value)
}

/// Figure 6: per queue length, `runs` chains of each side, interleaved. One pool of sessions
/// (the longest queue, plus a holder) serves both sides: every session has run both sides'
/// calls once before anything is timed.
pub async fn handoff_chains(db: &TestDb, lengths: &[usize], runs: usize) -> Vec<Chain> {
    let (year, month) = (2026, 6);
    let most = lengths.iter().copied().max().unwrap_or(0);
    let t = Instant::now();
    let holder = db.connect_as("bench chain holder").await;
    let observer = db.connect_as("bench observer").await;
    let mut pool = Vec::with_capacity(most);
    for _ in 0..most {
        let client = db.connect_as("bench chain waiter").await;
        // Warm: both sides' calls once, on another month.
        simple_value(&client, "SELECT month_lock(1999, 2)").await;
        assert!(query_bool(&client, "SELECT month_lock_release(1999, 2)").await);
        let k = ym(1999, 2);
        simple_value(&client, &format!("SELECT pg_advisory_lock({NS}, {k})")).await;
        assert!(query_bool(&client, &format!("SELECT pg_advisory_unlock({NS}, {k})")).await);
        let pid = backend_pid(&client).await;
        pool.push((Arc::new(client), pid));
    }
    eprintln!(
        "handoff chain: {most} sessions connected and warmed ({:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let mut figures = Vec::new();
    for &n in lengths {
        let sessions = &pool[..n];
        let mut per_handoff = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        // One untimed chain of each side first: the first chain after a change of length
        // meets cold paths (in a quick run the first 1-session chain took 4 ms, the next 0.2 ms).
        for side in SIDES {
            chain(&holder, &observer, sessions, side, year, month).await;
        }
        for _ in 0..runs {
            for (i, side) in SIDES.into_iter().enumerate() {
                let (wall_us, cpu_us) =
                    chain(&holder, &observer, sessions, side, year, month).await;
                per_handoff[i].push(wall_us / n as f64);
                if let Some(c) = cpu_us {
                    cpu[i].push(c / n as f64);
                }
            }
        }
        let [ml, bi] = per_handoff;
        let [ml_cpu, bi_cpu] = cpu;
        let figure = Chain::new(
            n,
            ChainMethod::new(ml, ml_cpu),
            ChainMethod::new(bi, bi_cpu),
        );
        eprintln!(
            "handoff chain {n:>3}  month_lock {} µs/handoff (CPU {}), built-in {} µs/handoff (CPU {})",
            fus(figure.month_lock.per_handoff_us.p50),
            figure.month_lock.cpu_per_handoff_us.as_ref().map_or("n/a".into(), |d| fus(d.p50)),
            fus(figure.builtin.per_handoff_us.p50),
            figure.builtin.cpu_per_handoff_us.as_ref().map_or("n/a".into(), |d| fus(d.p50)),
        );
        figures.push(figure);
    }
    figures
}

/// One chain: the holder takes the month, every session queues for it (checked in pg_locks),
/// the holder releases; each session, on its grant, records the instant and releases at once.
/// Returns the time from the holder's release to the last grant, µs, and the sessions'
/// backends' on-CPU time over the whole chain, µs (schedstat; `None` without it).
async fn chain(
    holder: &Client,
    observer: &Client,
    sessions: &[(Arc<Client>, i32)],
    side: Side,
    year: i32,
    month: i32,
) -> (f64, Option<f64>) {
    let k = ym(year, month);
    let (take_now, take, release) = match side {
        Side::MonthLock => (
            format!("SELECT month_lock_try({year}, {month})"),
            format!("SELECT month_lock({year}, {month})"),
            format!("SELECT month_lock_release({year}, {month})"),
        ),
        Side::Builtin => (
            format!("SELECT pg_try_advisory_lock({NS}, {k})"),
            format!("SELECT pg_advisory_lock({NS}, {k})"),
            format!("SELECT pg_advisory_unlock({NS}, {k})"),
        ),
    };
    assert!(
        query_bool(holder, &take_now).await,
        "holder could not take the month"
    );
    let cpu_before: Vec<Option<u64>> = sessions.iter().map(|(_, pid)| cpu_of(*pid).1).collect();
    let (take, release) = (Arc::new(take), Arc::new(release));
    let mut tasks = Vec::with_capacity(sessions.len());
    for (client, _) in sessions {
        let (client, take, release) = (client.clone(), take.clone(), release.clone());
        tasks.push(tokio::spawn(async move {
            simple_value(&client, &take).await;
            let granted = Instant::now();
            assert!(query_bool(&client, &release).await, "waiter release failed");
            granted
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while queued_on(observer, year, month).await < sessions.len() {
        assert!(Instant::now() < deadline, "the sessions never all queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start = Instant::now();
    assert!(query_bool(holder, &release).await, "holder release failed");
    let mut last = start;
    for task in tasks {
        last = last.max(task.await.expect("chain waiter"));
    }
    let wall_us = last.duration_since(start).as_secs_f64() * 1e6;
    let cpu_us = sessions
        .iter()
        .zip(cpu_before)
        .map(|((_, pid), before)| Some(cpu_of(*pid).1?.saturating_sub(before?) as f64 / 1e3))
        .sum::<Option<f64>>();
    (wall_us, cpu_us)
}

/// Figure 7: for each size, another session holds that many advisory locks (single-key ones,
/// another key space) and the month being asked about; `reps` calls of `month_is_locked(y, m)`
/// and of the same question asked of `pg_locks`, interleaved, each timed client-side.
pub async fn lookups(db: &TestDb, sizes: &[u64], reps: usize) -> Vec<Lookup> {
    let (year, month) = (2026, 7);
    let other = db.connect_as("bench lock filler").await;
    let asker = db.connect_as("bench asker").await;
    assert!(query_bool(&other, &format!("SELECT month_lock_try({year}, {month})")).await);
    let probes = [
        format!("SELECT month_is_locked({year}, {month})"),
        format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = {NS} AND objid = {} AND objsubid = 2)",
            ym(year, month)
        ),
    ];
    let mut figures = Vec::new();
    let mut held = 0u64;
    for &size in sizes {
        assert!(size >= held, "sizes ascend");
        let sql = format!(
            "SELECT sum(CASE WHEN pg_try_advisory_lock(g) THEN 1 ELSE 0 END) \
             FROM generate_series({}, {size}) g",
            held + 1
        );
        if size > held {
            let got: u64 = simple_value(&other, &sql)
                .await
                .and_then(|v| v.parse().ok())
                .unwrap();
            assert_eq!(got, size - held, "could not take the filler locks");
        }
        held = size;
        for probe in &probes {
            assert_eq!(
                simple_value(&asker, probe).await.as_deref(),
                Some("t"),
                "{probe}"
            );
        }
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (i, probe) in probes.iter().enumerate() {
                let (us, value) = timed(&asker, probe).await;
                assert_eq!(value.as_deref(), Some("t"), "{probe}");
                times[i].push(us);
            }
        }
        let baseline = figures.first().map(|f: &Lookup| f.month_is_locked_us.p50);
        let figure = Lookup::new(size, &times[0], &times[1], baseline);
        eprintln!(
            "lookup, {size:>6} other locks  month_is_locked {} µs, pg_locks {} µs",
            fus(figure.month_is_locked_us.p50),
            fus(figure.pg_locks_us.p50)
        );
        figures.push(figure);
    }
    simple_value(&other, "SELECT pg_advisory_unlock_all()").await;
    figures
}

/// Figure 8: for each number of months, `reps` times per side (interleaved): one session takes
/// that many months in one statement, then one `month_lock_release_all()` (or
/// `pg_advisory_unlock_all()`) is timed; the month_lock count returned is checked.
pub async fn release_all(db: &TestDb, held: &[u64], reps: usize) -> Vec<ReleaseAll> {
    let client = db.connect_as("bench release-all").await;
    // Warm both calls.
    simple_value(&client, "SELECT month_lock_release_all()").await;
    simple_value(&client, "SELECT pg_advisory_unlock_all()").await;
    let mut figures = Vec::new();
    for &n in held {
        let (y, m) = ("(2100 + g / 12)", "(1 + g % 12)");
        let take = [
            format!(
                "SELECT sum(CASE WHEN month_lock_try({y}, {m}) THEN 1 ELSE 0 END) \
                 FROM generate_series(0, {n} - 1) g"
            ),
            format!(
                "SELECT sum(CASE WHEN pg_try_advisory_lock({NS}, {y} * 100 + {m}) THEN 1 ELSE 0 END) \
                 FROM generate_series(0, {n} - 1) g"
            ),
        ];
        let calls = [
            "SELECT month_lock_release_all()",
            "SELECT pg_advisory_unlock_all()",
        ];
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for i in 0..2 {
                let got: u64 = simple_value(&client, &take[i])
                    .await
                    .and_then(|v| v.parse().ok())
                    .unwrap();
                assert_eq!(got, n, "could not take the months");
                let (us, value) = timed(&client, calls[i]).await;
                if i == 0 {
                    assert_eq!(value, Some(n.to_string()), "month_lock_release_all's count");
                }
                times[i].push(us);
            }
        }
        let figure = ReleaseAll::new(n, &times[0], &times[1]);
        eprintln!(
            "release all, {n:>4} months  month_lock {} µs, built-in {} µs",
            fus(figure.month_lock_release_all_us.p50),
            fus(figure.pg_advisory_unlock_all_us.p50)
        );
        figures.push(figure);
    }
    figures
}
