//! Soak: 64 connections over 24 months in both scopes and modes with random timeouts, while a
//! chaos task terminates holders and waiters, cancels waiters, closes client sockets abruptly
//! and restarts the server once (fast shutdown). Runs `SOAK_SECS` seconds (default 15) on a
//! cluster of its own and ends by itself (docs/testing.md, "The suites of `make test`").
//!
//! The ledger is kept client-side with the server's clock. A worker records, for each hold,
//! only instants at which it *knows* it held the month: `clock_timestamp()` read in a
//! statement that ran after the grant, on the same live session, before the release (or the
//! COMMIT). The recorded interval is thus inside the true one, also when the session dies
//! mid-hold (its end is the last instant confirmed, never a later guess), so two recorded
//! intervals that overlap prove a real overlap: no false alarms, and any overlap longer than
//! a worker's confirmation gaps is seen.

#[path = "soak/chaos.rs"]
mod chaos;
mod common;
#[path = "soak/worker.rs"]
mod worker;

use chaos::chaos;
use worker::Worker;

use common::*;
use month_lock_tests::faults;
use month_lock_tests::{start_cluster, Server, TestDb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

const WORKERS: usize = 64;
const MONTHS: i32 = 24; // 2023-01 .. 2024-12
const ROLE: &str = "soak_worker";
/// Server clock in microseconds since the epoch.
const NOW_US: &str = "floor(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

/// A tiny xorshift generator (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Exclusive,
    Shared,
}

#[derive(Debug)]
#[allow(dead_code)] // all fields are shown in failure messages
struct Hold {
    worker: usize,
    month: i32,
    mode: Mode,
    xact: bool,
    start: i64,
    end: i64,
    end_confirmed: bool,
}

#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    acquires: AtomicU64,
    timeouts: AtomicU64,
    cancels_seen: AtomicU64,
    connection_losses: AtomicU64,
    reconnects: AtomicU64,
    unconfirmed_ends: AtomicU64,
    // chaos
    terminated_holders: AtomicU64,
    terminated_waiters: AtomicU64,
    cancelled_waiters: AtomicU64,
    socket_closes: AtomicU64,
    restarts: AtomicU64,
    // contract violations seen by workers
    leftovers: AtomicU64,
    release_false: AtomicU64,
    unexpected: AtomicU64,
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// What went wrong with a query.
#[derive(Debug)]
#[allow(dead_code)] // the reason is shown when debugging
enum Failure {
    /// The connection is gone (terminated, restarted, closed by us): reconnect.
    Lost(String),
    /// A server error on a live connection.
    Db(SqlState, String),
}

struct Conn {
    client: Client,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Abrupt: the socket goes away with the driver task.
        self.driver.abort();
    }
}

async fn connect(config: &Config) -> Result<Conn, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { client, driver })
}

/// Holds that overlap an earlier conflicting hold of the same month (exclusive vs anything).
fn overlaps(holds: &[Hold]) -> (usize, Vec<String>) {
    let mut by_month: Vec<Vec<&Hold>> = (0..MONTHS).map(|_| Vec::new()).collect();
    for h in holds {
        by_month[h.month as usize].push(h);
    }
    let (mut n, mut examples) = (0, Vec::new());
    for list in &mut by_month {
        list.sort_by_key(|h| h.start);
        let mut max_end_excl: Option<&Hold> = None;
        let mut max_end_any: Option<&Hold> = None;
        for h in list.iter() {
            let hit = match (max_end_excl, max_end_any) {
                (Some(e), _) if h.start < e.end => Some(e),
                (_, Some(a)) if h.mode == Mode::Exclusive && h.start < a.end => Some(a),
                _ => None,
            };
            if let Some(other) = hit {
                n += 1;
                if examples.len() < 5 {
                    examples.push(format!("{other:?} overlaps {h:?}"));
                }
            }
            if h.mode == Mode::Exclusive && max_end_excl.is_none_or(|e| h.end > e.end) {
                max_end_excl = Some(h);
            }
            if max_end_any.is_none_or(|a| h.end > a.end) {
                max_end_any = Some(h);
            }
        }
    }
    (n, examples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_terminations_cancels_closed_sockets_and_a_restart() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let server = start_cluster(&[
        ("max_connections", "120"),
        ("client_connection_check_interval", "200ms"),
    ])
    .await;
    let db = server.fresh_db("soak").await;
    let admin = db.connect().await;
    exec(
        &admin,
        &format!(
            "CREATE ROLE {ROLE} LOGIN NOSUPERUSER;
             ALTER ROLE {ROLE} SET statement_timeout = '10s';"
        ),
    )
    .await;
    drop(admin);

    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let give_up = until + Duration::from_secs(60);
    let stop = Arc::new(AtomicBool::new(false));
    let closers: Vec<Arc<Notify>> = (0..WORKERS).map(|_| Arc::new(Notify::new())).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("soak: {WORKERS} workers, {MONTHS} months, {secs} s, seed {seed}");

    let mut tasks = Vec::new();
    for (id, close_now) in closers.iter().enumerate() {
        let mut config = db.config.clone();
        config.user(ROLE).application_name(format!("soak-{id}"));
        let mut worker = Worker {
            id,
            config,
            conn: None,
            close_now: close_now.clone(),
            counts: counts.clone(),
            rng: Rng(seed.wrapping_mul(id as u64 * 2 + 1).rotate_left(id as u32) | 1),
            holds: Vec::new(),
            errors: Vec::new(),
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                worker.ensure_connected(give_up).await;
                worker.cycle().await;
                let pause = 10 + worker.rng.below(30);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            worker.conn = None;
            (worker.holds, worker.errors)
        }));
    }
    let chaos_until = until - Duration::from_millis(500);
    let restart_at = start + Duration::from_secs(secs) * 2 / 5;
    chaos(
        &server,
        db.clone(),
        closers.clone(),
        counts.clone(),
        chaos_until,
        restart_at,
    )
    .await;

    let mut holds = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        let (h, e) = tokio::time::timeout(Duration::from_secs(90), t)
            .await
            .expect("a worker did not stop")
            .expect("a worker panicked");
        holds.extend(h);
        errors.extend(e);
    }
    let elapsed = start.elapsed();

    // All workers are disconnected: no month lock may be left once their backends exit.
    let admin = db.connect().await;
    let deadline = Instant::now() + SLOW;
    let left = loop {
        let left = q_i64(&admin, "SELECT count(*) FROM month_locks").await;
        if left == 0 || Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let left_rows = view_rows(&admin).await;

    let (overlap_count, examples) = overlaps(&holds);
    let n = |f: &dyn Fn(&Hold) -> bool| holds.iter().filter(|h| f(h)).count();
    let log = std::fs::read_to_string(server.dir.as_ref().unwrap().join("server.log"))
        .unwrap_or_default();
    let signal_deaths: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("terminated by signal"))
        .collect();

    println!(
        "soak: {elapsed:.1?}: {} attempts, {} acquires ({} session excl, {} session shared, {} xact excl, {} xact shared), \
         {} timeouts, {} cancels seen, chaos: {} holders and {} waiters terminated, {} waiters cancelled, \
         {} sockets closed, {} restarts; {} connection losses, {} (re)connects, {} holds with unconfirmed end; \
         overlaps {overlap_count}, leftovers after failed acquires {}, release=false while held {}, \
         unexpected errors {}, month locks left {left}, backends dead of a signal {}",
        get(&counts.attempts),
        get(&counts.acquires),
        n(&|h| !h.xact && h.mode == Mode::Exclusive),
        n(&|h| !h.xact && h.mode == Mode::Shared),
        n(&|h| h.xact && h.mode == Mode::Exclusive),
        n(&|h| h.xact && h.mode == Mode::Shared),
        get(&counts.timeouts),
        get(&counts.cancels_seen),
        get(&counts.terminated_holders),
        get(&counts.terminated_waiters),
        get(&counts.cancelled_waiters),
        get(&counts.socket_closes),
        get(&counts.restarts),
        get(&counts.connection_losses),
        get(&counts.reconnects),
        get(&counts.unconfirmed_ends),
        get(&counts.leftovers),
        get(&counts.release_false),
        get(&counts.unexpected),
        signal_deaths.len(),
    );
    for e in &errors {
        println!("  {e}");
    }

    assert_eq!(
        overlap_count, 0,
        "conflicting holds overlapped: {examples:#?}"
    );
    assert_eq!(
        left, 0,
        "month locks left after all workers disconnected: {left_rows:?}"
    );
    assert!(
        signal_deaths.is_empty(),
        "backends died of a signal:\n{}",
        signal_deaths.join("\n")
    );
    assert_eq!(
        get(&counts.leftovers),
        0,
        "a failed acquire left the month held: {errors:?}"
    );
    assert_eq!(
        get(&counts.release_false),
        0,
        "a release of a held month returned false"
    );
    assert_eq!(get(&counts.unexpected), 0, "unexpected errors: {errors:?}");
    // The run did what it claims.
    assert_eq!(get(&counts.restarts), 1, "the server was not restarted");
    for (what, k) in [
        (
            "session exclusive",
            n(&|h| !h.xact && h.mode == Mode::Exclusive),
        ),
        ("session shared", n(&|h| !h.xact && h.mode == Mode::Shared)),
        (
            "xact exclusive",
            n(&|h| h.xact && h.mode == Mode::Exclusive),
        ),
        ("xact shared", n(&|h| h.xact && h.mode == Mode::Shared)),
    ] {
        assert!(k > 0, "no {what} holds");
    }
    assert!(get(&counts.timeouts) > 0, "no timeouts");
    assert!(
        get(&counts.terminated_holders) > 0,
        "no holder was terminated"
    );
    assert!(
        get(&counts.terminated_waiters) + get(&counts.cancelled_waiters) > 0,
        "no waiter was terminated or cancelled"
    );
    assert!(get(&counts.socket_closes) > 0, "no socket was closed");
    assert!(
        get(&counts.reconnects) > WORKERS as u64,
        "workers never reconnected"
    );
}

#[test]
fn the_overlap_check_finds_conflicting_overlaps_and_only_those() {
    let h = |worker, mode, start, end| Hold {
        worker,
        month: 3,
        mode,
        xact: false,
        start,
        end,
        end_confirmed: true,
    };
    // Shared holds may overlap each other; touching intervals do not overlap.
    let fine = [
        h(0, Mode::Shared, 0, 10),
        h(1, Mode::Shared, 5, 15),
        h(2, Mode::Exclusive, 15, 20),
        h(3, Mode::Exclusive, 20, 30),
    ];
    assert_eq!(overlaps(&fine).0, 0);
    // Exclusive inside a long shared hold; exclusive overlapping exclusive; shared starting
    // inside an exclusive hold.
    let bad = [
        h(0, Mode::Shared, 0, 100),
        h(1, Mode::Exclusive, 50, 60),
        h(2, Mode::Exclusive, 59, 70),
        h(3, Mode::Shared, 65, 66),
    ];
    assert_eq!(overlaps(&bad).0, 3);
}
