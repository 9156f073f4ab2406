//! Handoff latency: the time from the instant the holder *sends* its release to the instant the
//! next waiter's call *returns* true, with 1, 8 or 64 waiters queued. The chart shows these
//! distributions.

use super::Ctx;
use crate::methods::{acquire, connect_many, connect_warm, lock_now, release, LONG_WAIT_MS};
use crate::methods::{Method, PerMethod, Rng};
use crate::report::Row;
use crate::sql::queued_on;
use crate::stats::{fms, ms, plural, ratio, Dist};
use crate::target::{texts, Bound, Target};
use month_lock_tests::TestDb;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

pub const P99: Target = Target {
    measure: "p99",
    bound: Bound::AtMost(1.1),
    unit: "× built-in",
};
pub const POLLING_P50: Target = Target {
    measure: "p50",
    bound: Bound::AtLeast(50.0),
    unit: "× faster than polling",
};

/// One queue length: (waiters, rounds of month_lock and the built-in wait, rounds of polling).
/// Polling needs fewer rounds: only its median enters a target, and its rounds take 100 times
/// longer.
fn plan(quick: bool) -> [(usize, usize, usize); 3] {
    if quick {
        [(1, 15, 10), (8, 2, 2), (64, 1, 1)]
    } else {
        [(1, 300, 100), (8, 40, 12), (64, 6, 3)]
    }
}

/// One queue length: handoff latencies, ms.
pub struct Handoff {
    pub queued_waiters: usize,
    pub ms: PerMethod<Dist>,
    pub samples_ms: PerMethod<Vec<f64>>,
}

impl Handoff {
    fn p99_ratio(&self) -> f64 {
        self.ms.month_lock.p99 / self.ms.builtin_queued_wait.p99
    }

    fn speedup(&self) -> f64 {
        self.ms.polling.p50 / self.ms.month_lock.p50
    }

    pub fn row(&self) -> Row {
        let (p99, speedup) = (self.p99_ratio(), self.speedup());
        Row {
            figure: format!(
                "Handoff, {}: p50 / p99 / max (ms); {} / {} / {} handoffs",
                plural(self.queued_waiters as u64, "queued waiter"),
                self.ms.month_lock.n,
                self.ms.builtin_queued_wait.n,
                self.ms.polling.n
            ),
            cells: self
                .ms
                .map(|d| format!("{} / {} / {}", fms(d.p50), fms(d.p99), fms(d.max))),
            target: texts(&[&P99, &POLLING_P50]),
            met: Some(P99.met(p99) && POLLING_P50.met(speedup)),
            note: format!(
                "p99 {} built-in ({}), p50 {} faster than polling ({})",
                ratio(p99),
                P99.verdict(p99),
                ratio(speedup),
                POLLING_P50.verdict(speedup)
            ),
        }
    }
}

/// Every queue length, one after the other; at each, the three methods' rounds interleaved,
/// each method with its own connections and month.
pub async fn measure(ctx: &Ctx) -> Vec<Handoff> {
    let mut figures = Vec::new();
    for (index, (waiters, queued_rounds, polling_rounds)) in plan(ctx.quick).into_iter().enumerate()
    {
        let rounds = |m: Method| match m {
            Method::Polling => polling_rounds,
            _ => queued_rounds,
        };
        let t = Instant::now();
        let mut rigs = Vec::new();
        for (j, method) in Method::ALL.into_iter().enumerate() {
            let seed = 1000 + 10 * index as u64 + j as u64;
            rigs.push(Rig::new(&ctx.db, method, 3 + j as i32, waiters, seed).await);
        }
        let mut samples = PerMethod::from_fn(|_| Vec::new());
        for r in 0..queued_rounds.max(polling_rounds) {
            for rig in &mut rigs {
                if r < rounds(rig.method) {
                    samples[rig.method].extend(rig.round().await);
                }
            }
        }
        let figure = Handoff {
            queued_waiters: waiters,
            ms: samples.map(|s| Dist::of(s)),
            samples_ms: samples,
        };
        for (method, d) in figure.ms.iter() {
            eprintln!(
                "handoff {waiters:>2} waiters  {:<22} p50 {} p99 {} max {} ms  ({} handoffs)",
                method.label(),
                fms(d.p50),
                fms(d.p99),
                fms(d.max),
                d.n
            );
        }
        eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
        figures.push(figure);
    }
    figures
}

/// One method's connections and month. Each round: a holder takes the month, every waiter
/// starts waiting for it (polling ones at a random phase of their 100 ms cycle), and once all
/// are queued (seen in pg_locks; for polling: refused once, then a further random 0–100 ms)
/// the holder records the instant and sends its release. Whoever gets the month records the
/// instant its call returned (one sample), then records the instant and releases at once,
/// handing the month on: a round is a chain of handoffs while the queue drains.
struct Rig {
    method: Method,
    month: i32,
    holder: Client,
    observer: Client,
    clients: Vec<Arc<Client>>,
    queries: Arc<AtomicU64>,
    last_release: Arc<Mutex<Instant>>,
    rng: Rng,
}

const YEAR: i32 = 2024;

impl Rig {
    async fn new(db: &TestDb, method: Method, month: i32, waiters: usize, seed: u64) -> Rig {
        Rig {
            method,
            month,
            holder: connect_warm(db, method, "bench holder").await,
            observer: db.connect_as("bench observer").await,
            clients: connect_many(db, method, waiters, "bench waiter").await,
            queries: Arc::new(AtomicU64::new(0)),
            last_release: Arc::new(Mutex::new(Instant::now())),
            rng: Rng::new(seed),
        }
    }

    /// One round; returns one sample per waiter, ms.
    async fn round(&mut self) -> Vec<f64> {
        let (method, month, waiters) = (self.method, self.month, self.clients.len());
        assert!(lock_now(&self.holder, method, YEAR, month).await, "holder");
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
                tokio::time::sleep(phase).await;
                let got = acquire(
                    &client,
                    method,
                    YEAR,
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
                    release(&client, method, YEAR, month).await,
                    "waiter release"
                );
                returned - sent
            }));
        }
        if method == Method::Polling {
            while refused.load(Ordering::SeqCst) < waiters {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Release at a random point of the pollers' 100 ms cycle.
            tokio::time::sleep(Duration::from_micros(self.rng.below(100_000))).await;
        } else {
            let deadline = Instant::now() + Duration::from_secs(30);
            while queued_on(&self.observer, YEAR, month).await < waiters as u64 {
                assert!(Instant::now() < deadline, "waiters never queued");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Let the last one settle into its sleep.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        *self.last_release.lock().unwrap() = Instant::now();
        assert!(
            release(&self.holder, method, YEAR, month).await,
            "holder release"
        );
        let mut samples = Vec::with_capacity(waiters);
        for task in tasks {
            samples.push(ms(task.await.expect("waiter task")));
        }
        samples
    }
}
