//! The five measurements, each returning its typed figure(s). Each opens its own connections
//! to the benchmark database and uses its own months, and leaves no lock behind. Progress goes
//! to stderr as each figure completes.

use crate::figures::{
    fms, Contention, Handoff, InServer, Pgbench, Throughput, Timeout, Waiting, WaitingCost,
};
use crate::methods::{acquire, lock_now, release, Method, PerMethod, Rng, NS};
use crate::plan::HandoffCase;
use month_lock_tests::sql::{host_of, pg_bindir, ym};
use month_lock_tests::{backend_pid, TestDb};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Waits long enough that no waiter of the handoff and throughput runs ever times out.
const LONG_WAIT_MS: u32 = 60_000;

/// A connection whose backend has already run the method's calls once (uncontended, on a
/// month no experiment uses), so that no figure includes a new backend's first-call costs
/// (loading the extension's library, catalog cache misses).
pub async fn connect_warm(db: &TestDb, method: Method, app: &str) -> Client {
    let client = db.connect_as(app).await;
    let queries = AtomicU64::new(0);
    assert!(
        acquire(&client, method, 1999, 1, 1000, &queries, None).await,
        "warm-up lock"
    );
    assert!(release(&client, method, 1999, 1).await, "warm-up release");
    assert!(lock_now(&client, method, 1999, 1).await, "warm-up lock");
    assert!(release(&client, method, 1999, 1).await, "warm-up release");
    client
}

async fn connect_many(db: &TestDb, method: Method, n: usize, app: &str) -> Vec<Arc<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Arc::new(connect_warm(db, method, app).await));
    }
    clients
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Number of backends queued (not granted) on the month's advisory lock in this database.
pub async fn queued_on(observer: &Client, year: i32, month: i32) -> usize {
    let sql = format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid = {NS} AND objid = {} AND objsubid = 2",
        ym(year, month)
    );
    let row = observer
        .query_one(sql.as_str(), &[])
        .await
        .expect("count waiters in pg_locks");
    row.get::<_, i64>(0) as usize
}

/// Figure 1 for one queue length (`index`: its place in the plan, for the seeds): the three
/// methods' rounds interleaved, each method with its own connections and month.
pub async fn handoff(db: &TestDb, case: &HandoffCase, index: usize) -> Handoff {
    let rounds = PerMethod::from_fn(|m| match m {
        Method::Polling => case.polling_rounds,
        Method::MonthLock | Method::Queued => case.queued_rounds,
    });
    let t = Instant::now();
    let mut rigs = Vec::new();
    for (j, method) in Method::ALL.into_iter().enumerate() {
        let seed = 1000 + 10 * index as u64 + j as u64;
        rigs.push(HandoffRig::new(db, method, 3 + j as i32, case.waiters, seed).await);
    }
    let mut samples = PerMethod::from_fn(|_| Vec::new());
    for r in 0..case.queued_rounds.max(case.polling_rounds) {
        for rig in &mut rigs {
            if r < rounds[rig.method] {
                samples[rig.method].extend(rig.round().await);
            }
        }
    }
    drop(rigs);
    let figure = Handoff::new(case.waiters, rounds, samples);
    for (method, d) in figure.ms.iter() {
        eprintln!(
            "handoff {:>2} waiters  {:<22} p50 {} p99 {} max {} ms  ({} handoffs)",
            case.waiters,
            method.label(),
            fms(d.p50),
            fms(d.p99),
            fms(d.max),
            d.n
        );
    }
    eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
    figure
}

/// Figure 1: Handoff latency, for one method. Each round: a holder takes the month, `waiters`
/// connections start waiting for it (polling ones at a random phase of their 100 ms cycle),
/// and once all are queued (seen in pg_locks; for polling: refused once, then a further random
/// 0-100 ms) the holder records the instant and sends its release. Whoever gets the month
/// records the instant its call returned; the difference is one sample. It then records the
/// instant and releases at once, handing the month to the next waiter, so a round is a chain
/// of `waiters` handoffs while the queue drains from `waiters` to 1. The caller interleaves
/// the methods' rounds, so that a disturbance of the machine hits all methods alike.
struct HandoffRig {
    method: Method,
    year: i32,
    month: i32,
    holder: Client,
    observer: Client,
    clients: Vec<Arc<Client>>,
    queries: Arc<AtomicU64>,
    last_release: Arc<Mutex<Instant>>,
    rng: Rng,
}

impl HandoffRig {
    async fn new(db: &TestDb, method: Method, month: i32, waiters: usize, seed: u64) -> HandoffRig {
        HandoffRig {
            method,
            year: 2024,
            month,
            holder: connect_warm(db, method, "bench holder").await,
            observer: db.connect_as("bench observer").await,
            clients: connect_many(db, method, waiters, "bench waiter").await,
            queries: Arc::new(AtomicU64::new(0)),
            last_release: Arc::new(Mutex::new(Instant::now())),
            rng: Rng::new(seed),
        }
    }

    /// One round; returns its `waiters` samples in ms.
    async fn round(&mut self) -> Vec<f64> {
        let (method, year, month, waiters) =
            (self.method, self.year, self.month, self.clients.len());
        assert!(
            lock_now(&self.holder, method, year, month).await,
            "holder could not take the month"
        );
        let refused = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(waiters);
        for client in &self.clients {
            let (client, refused, queries, last_release) = (
                client.clone(),
                refused.clone(),
                self.queries.clone(),
                self.last_release.clone(),
            );
            let phase = match method {
                Method::Polling => Duration::from_micros(self.rng.below(100_000)),
                _ => Duration::ZERO,
            };
            tasks.push(tokio::spawn(async move {
                if !phase.is_zero() {
                    tokio::time::sleep(phase).await;
                }
                let got = acquire(
                    &client,
                    method,
                    year,
                    month,
                    LONG_WAIT_MS,
                    &queries,
                    Some(&refused),
                )
                .await;
                let returned = Instant::now();
                assert!(got, "a handoff waiter timed out");
                let sent = *last_release.lock().unwrap();
                *last_release.lock().unwrap() = Instant::now();
                assert!(
                    release(&client, method, year, month).await,
                    "waiter release failed"
                );
                returned - sent
            }));
        }
        match method {
            Method::Polling => {
                while refused.load(Ordering::SeqCst) < waiters {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Release at a random point of the pollers' 100 ms cycle.
                tokio::time::sleep(Duration::from_micros(self.rng.below(100_000))).await;
            }
            Method::MonthLock | Method::Queued => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while queued_on(&self.observer, year, month).await < waiters {
                    assert!(Instant::now() < deadline, "waiters never queued");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                // Let the last one settle into its sleep.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        *self.last_release.lock().unwrap() = Instant::now();
        assert!(
            release(&self.holder, method, year, month).await,
            "holder release failed"
        );
        let mut samples = Vec::with_capacity(waiters);
        for task in tasks {
            samples.push(ms(task.await.expect("waiter task")));
        }
        samples
    }
}

/// Figure 2, one figure per (timeout ms, repetitions): the methods' attempts interleaved.
pub async fn timeouts(db: &TestDb, cases: &[(u32, usize)]) -> Vec<Timeout> {
    let mut rigs = Vec::new();
    for (j, method) in Method::ALL.into_iter().enumerate() {
        rigs.push(TimeoutRig::new(db, method, 1 + j as i32).await);
    }
    let mut figures = Vec::new();
    for &(timeout_ms, reps) in cases {
        let mut overshoots = PerMethod::from_fn(|_| Vec::new());
        for _ in 0..reps {
            for rig in &rigs {
                overshoots[rig.method].push(rig.attempt(timeout_ms).await);
            }
        }
        let figure = Timeout::new(timeout_ms, reps, overshoots);
        for (method, d) in figure.overshoot_ms.iter() {
            eprintln!(
                "timeout {timeout_ms:>4} ms  {:<22} overshoot p50 {} max {} ms",
                method.label(),
                fms(d.p50),
                fms(d.max)
            );
        }
        figures.push(figure);
    }
    for rig in rigs {
        rig.finish().await;
    }
    figures
}

/// Timeout precision, for one method: one connection asks for a month that another holds.
struct TimeoutRig {
    method: Method,
    month: i32,
    holder: Client,
    waiter: Client,
    queries: AtomicU64,
}

impl TimeoutRig {
    async fn new(db: &TestDb, method: Method, month: i32) -> TimeoutRig {
        let holder = connect_warm(db, method, "bench holder").await;
        assert!(lock_now(&holder, method, 2023, month).await);
        TimeoutRig {
            method,
            month,
            holder,
            waiter: connect_warm(db, method, "bench waiter").await,
            queries: AtomicU64::new(0),
        }
    }

    /// One attempt; returns the overshoot (elapsed - timeout) in ms.
    async fn attempt(&self, timeout_ms: u32) -> f64 {
        let start = Instant::now();
        let got = acquire(
            &self.waiter,
            self.method,
            2023,
            self.month,
            timeout_ms,
            &self.queries,
            None,
        )
        .await;
        let elapsed = start.elapsed();
        assert!(!got, "got a month that is held");
        ms(elapsed) - f64::from(timeout_ms)
    }

    async fn finish(self) {
        assert!(release(&self.holder, self.method, 2023, self.month).await);
    }
}

/// Figure 3a: In-server cost: `n` try+release pairs inside one statement, over the 12 months of 2024
/// in turn, timed client-side (one round trip per `n` pairs). Takes ns per pair, the fastest
/// of `reps` interleaved repetitions (the run least disturbed by anything else on the
/// machine), for each method and for the bare loop.
pub async fn in_server(db: &TestDb, n: u64, reps: usize) -> InServer {
    let client = db.connect_as("bench in-server").await;
    let k = format!("{NS}, 202400 + 1 + g % 12");
    let statement = |pair: &str| {
        format!("SELECT sum(CASE WHEN {pair} ELSE 0 END) FROM generate_series(1, {n}) g")
    };
    let cases: Vec<(Option<Method>, String)> = vec![
        (None, statement("1 + g % 12 > 0 THEN (1 + g % 12 > 0)::int")),
        (
            Some(Method::MonthLock),
            statement(
                "month_lock_try(2024, 1 + g % 12) THEN month_lock_release(2024, 1 + g % 12)::int",
            ),
        ),
        (
            Some(Method::Queued),
            statement(&format!(
                "pg_advisory_lock({k}) IS NOT NULL THEN pg_advisory_unlock({k})::int"
            )),
        ),
        (
            Some(Method::Polling),
            statement(&format!(
                "pg_try_advisory_lock({k}) THEN pg_advisory_unlock({k})::int"
            )),
        ),
    ];
    let run = |sql: String| {
        let client = &client;
        async move {
            let start = Instant::now();
            let messages = client
                .simple_query(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let elapsed = start.elapsed();
            let sum: u64 = messages
                .iter()
                .find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().expect("sum")),
                    _ => None,
                })
                .expect("a row");
            assert_eq!(sum, n, "not every pair succeeded: {sql}");
            elapsed.as_secs_f64() * 1e9 / n as f64
        }
    };
    // Warm up caches and the plan path once.
    for (_, sql) in &cases {
        run(sql.clone()).await;
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..reps {
        for (i, (_, sql)) in cases.iter().enumerate() {
            times[i].push(run(sql.clone()).await);
        }
    }
    let mut runs_of = cases
        .iter()
        .map(|(method, _)| *method)
        .zip(times)
        .collect::<Vec<(Option<Method>, Vec<f64>)>>();
    let mut take = |m: Option<Method>| {
        let i = runs_of.iter().position(|(x, _)| *x == m).unwrap();
        std::mem::take(&mut runs_of[i].1)
    };
    let bare = take(None);
    let figure = InServer::new(n, bare, PerMethod::from_fn(|m| take(Some(m))));
    for (method, net) in figure.ns_per_pair_net.iter() {
        eprintln!(
            "in-server {:<22} {net:.0} ns per pair ({:.0} ns raw, loop {:.0} ns)",
            method.label(),
            figure.ns_per_pair_raw[method],
            figure.bare_loop_ns
        );
    }
    figure
}

/// `PGOPTIONS` of the built-in queued wait's pgbench sessions.
pub const PGBENCH_QUEUED_OPTIONS: &str = "-c lock_timeout=1000";

/// The pgbench transactions: per method, take a month of the client's own year (so the pair
/// is uncontended even with 16 clients), release it; two round trips per transaction. Every
/// script gets its numbers ready from `\set` (year, month, and the built-in key and namespace),
/// so every statement has the same shape, `SELECT f(:a, :b)` (`SELECT f($1, $2)` prepared).
/// The built-in queued wait's 1 s `lock_timeout` is set for its pgbench sessions
/// ([`PGBENCH_QUEUED_OPTIONS`]) rather than by a `SET LOCAL` in the script, which would make its
/// first statement two (and cannot be prepared).
fn pgbench_scripts() -> PerMethod<String> {
    let vars = format!(
        "\\set y 2000 + :client_id\n\\set m random(1, 12)\n\\set k :y * 100 + :m\n\\set ns {NS}\n"
    );
    PerMethod {
        month_lock: format!(
            "{vars}SELECT month_lock_try(:y, :m);\n\
             SELECT month_lock_release(:y, :m);\n"
        ),
        builtin_queued_wait: format!(
            "{vars}SELECT pg_advisory_lock(:ns, :k);\n\
             SELECT pg_advisory_unlock(:ns, :k);\n"
        ),
        polling: format!(
            "{vars}SELECT pg_try_advisory_lock(:ns, :k);\n\
             SELECT pg_advisory_unlock(:ns, :k);\n"
        ),
    }
}

/// Figure 3b: pgbench TPS of each script with `clients` clients in protocol `mode` (`simple`
/// or `prepared`), `reps` interleaved runs of `secs` seconds each (blocking: runs pgbench).
pub fn pgbench(
    db: &TestDb,
    mode: &'static str,
    clients: u32,
    secs: u32,
    reps: usize,
    dir: &Path,
) -> Pgbench {
    let pgbench = pg_bindir().join("pgbench");
    let scripts = pgbench_scripts();
    let host = host_of(&db.config);
    let port = db
        .config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = db.user();
    let mut runs = PerMethod::from_fn(|_| Vec::new());
    for _ in 0..reps {
        for (method, text) in scripts.iter() {
            let name = method.key();
            let script = dir.join(format!("pgbench_{name}.sql"));
            std::fs::write(&script, text).expect("write pgbench script");
            let out = Command::new(&pgbench)
                .args(["-n", "-M", mode, "-h", &host, "-p", &port, "-U", &user])
                .args([
                    "-c",
                    &clients.to_string(),
                    "-j",
                    &clients.min(2).to_string(),
                ])
                .args(["-T", &secs.to_string(), "-f"])
                .arg(&script)
                .arg(&db.name)
                .env("PGAPPNAME", "bench pgbench")
                .env(
                    "PGOPTIONS",
                    if method == Method::Queued {
                        PGBENCH_QUEUED_OPTIONS
                    } else {
                        ""
                    },
                )
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", pgbench.display()));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "pgbench failed for {name}:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let tps = stdout
                .lines()
                .find_map(|l| l.strip_prefix("tps = "))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"));
            runs[method].push(tps);
        }
    }
    let figure = Pgbench::new(mode, clients, secs, scripts, runs);
    for (method, tps) in figure.tps_mean.iter() {
        eprintln!(
            "pgbench {mode:<8} {clients:>2} clients  {:<27} {tps:.0} TPS",
            method.key()
        );
    }
    figure
}

/// CPU time of a process so far: (utime+stime in ms from /proc/<pid>/stat,
/// on-CPU ns from /proc/<pid>/schedstat when the kernel keeps it).
pub fn cpu_of(pid: i32) -> (f64, Option<u64>) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|e| {
        panic!("read /proc/{pid}/stat: {e} (the server must run on this machine)")
    });
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        v if v > 0 => v,
        _ => 100,
    };
    let sched = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok());
    (ticks as f64 * 1000.0 / hz as f64, sched)
}

/// Figure 4: Cost of waiting, each method in turn.
pub async fn waiting(db: &TestDb, waiters: usize, secs: u32) -> Waiting {
    let mut by_method = Vec::new();
    for method in Method::ALL {
        let c = waiting_cost(db, method, waiters, secs).await;
        eprintln!(
            "waiting {waiters} x {secs} s  {:<22} {} queries, CPU {:.1} ms (stat) {} (schedstat)",
            method.label(),
            c.queries,
            c.cpu_ms_stat,
            c.cpu_ms_sched
                .map_or("n/a".into(), |v| format!("{v:.1} ms"))
        );
        by_method.push(c);
    }
    Waiting::new(waiters, secs, PerMethod::from_vec(by_method))
}

/// Cost of waiting, one method: `waiters` connections wait `secs` seconds for a month that
/// stays held (the wait ends by each method's own timeout). Counts the queries they send and
/// the CPU time of their backends over that time.
async fn waiting_cost(db: &TestDb, method: Method, waiters: usize, secs: u32) -> WaitingCost {
    let (year, month) = (2024, 7);
    let holder = connect_warm(db, method, "bench holder").await;
    let clients = connect_many(db, method, waiters, "bench waiter").await;
    let mut pids = Vec::with_capacity(waiters);
    for client in &clients {
        pids.push(backend_pid(client).await);
    }
    assert!(lock_now(&holder, method, year, month).await);
    let before: Vec<_> = pids.iter().map(|&p| cpu_of(p)).collect();
    let queries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(waiters);
    for client in &clients {
        let (client, queries) = (client.clone(), queries.clone());
        tasks.push(tokio::spawn(async move {
            acquire(&client, method, year, month, secs * 1000, &queries, None).await
        }));
    }
    for task in tasks {
        assert!(
            !task.await.expect("waiter task"),
            "a waiter got a held month"
        );
    }
    let wall_s = start.elapsed().as_secs_f64();
    let after: Vec<_> = pids.iter().map(|&p| cpu_of(p)).collect();
    assert!(release(&holder, method, year, month).await);
    let cpu_ms_stat = before.iter().zip(&after).map(|(b, a)| a.0 - b.0).sum();
    let cpu_ms_sched = before
        .iter()
        .zip(&after)
        .map(|(b, a)| Some(a.1?.saturating_sub(b.1?) as f64 / 1e6))
        .sum::<Option<f64>>();
    WaitingCost {
        queries: queries.load(Ordering::SeqCst),
        cpu_ms_stat,
        cpu_ms_sched,
        wall_s,
    }
}

/// Figure 5: Throughput under contention, each method in turn.
pub async fn throughput(db: &TestDb, workers: usize, secs: u32, seed: u64) -> Throughput {
    let mut by_method = Vec::new();
    for method in Method::ALL {
        let c = contention(db, method, workers, secs, seed).await;
        eprintln!(
            "throughput {workers} workers  {:<22} {:.0} cycles/s, per worker {}..{}",
            method.label(),
            c.cycles_per_s,
            c.cycles_per_worker_min,
            c.cycles_per_worker_max
        );
        by_method.push(c);
    }
    Throughput::new(workers, 12, secs, PerMethod::from_vec(by_method))
}

/// Throughput under contention, one method: `workers` connections loop for `secs` seconds over
/// the 12 months of 2025: pick a month at random, take it (waiting as long as needed), hold it
/// for 1 ms of client-side work, release. Counts the cycles completed within the window.
async fn contention(
    db: &TestDb,
    method: Method,
    workers: usize,
    secs: u32,
    seed: u64,
) -> Contention {
    let year = 2025;
    let clients = connect_many(db, method, workers, "bench worker").await;
    let queries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs.into());
    let mut tasks = Vec::with_capacity(workers);
    for (i, client) in clients.iter().enumerate() {
        let (client, queries) = (client.clone(), queries.clone());
        let mut rng = Rng::new(seed + i as u64);
        tasks.push(tokio::spawn(async move {
            let mut cycles = 0u64;
            while Instant::now() < end {
                let month = 1 + rng.below(12) as i32;
                assert!(acquire(&client, method, year, month, LONG_WAIT_MS, &queries, None).await);
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert!(
                    release(&client, method, year, month).await,
                    "release failed"
                );
                if Instant::now() <= end {
                    cycles += 1;
                }
            }
            cycles
        }));
    }
    let mut per_worker = Vec::with_capacity(workers);
    for task in tasks {
        per_worker.push(task.await.expect("worker task"));
    }
    Contention::new(per_worker, f64::from(secs))
}
