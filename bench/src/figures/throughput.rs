//! Throughput under contention: 64 connections loop over the 12 months of 2025: pick a month at
//! random, take it (waiting as long as needed), hold it for 1 ms of client-side work (a tokio
//! sleep: 1–2 ms), release. Completed cycles per second, and the fewest and most cycles any one
//! worker completed (fairness). No target.

use super::Ctx;
use crate::methods::{acquire, connect_many, release, Method, PerMethod, Rng, LONG_WAIT_MS};
use crate::report::Row;
use crate::stats::ratio;
use month_lock_tests::TestDb;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (workers, seconds).
fn plan(quick: bool) -> (usize, u32) {
    (64, if quick { 2 } else { 10 })
}

pub struct Throughput {
    pub workers: usize,
    pub seconds: u32,
    pub cycles_per_worker: PerMethod<Vec<u64>>,
}

impl Throughput {
    fn rate(&self, m: Method) -> f64 {
        self.cycles_per_worker[m].iter().sum::<u64>() as f64 / f64::from(self.seconds)
    }

    pub fn row(&self) -> Row {
        let ml = self.rate(Method::MonthLock);
        Row {
            figure: format!(
                "{} workers over 12 months, lock → 1 ms → release, 1 run of {} s: cycles/s (min–max cycles per worker)",
                self.workers, self.seconds
            ),
            cells: PerMethod::from_fn(|m| {
                let c = &self.cycles_per_worker[m];
                let (lo, hi) = (c.iter().min().unwrap_or(&0), c.iter().max().unwrap_or(&0));
                format!("{:.0} ({lo}–{hi})", self.rate(m))
            }),
            target: "none set (for comparison)".into(),
            met: None,
            note: format!(
                "{} built-in, {} polling",
                ratio(ml / self.rate(Method::Queued)),
                ratio(ml / self.rate(Method::Polling))
            ),
        }
    }
}

/// Each method in turn.
pub async fn measure(ctx: &Ctx) -> Throughput {
    let (workers, secs) = plan(ctx.quick);
    let mut cycles = PerMethod::from_fn(|_| Vec::new());
    for method in Method::ALL {
        cycles[method] = contention(&ctx.db, method, workers, secs, 77).await;
    }
    let figure = Throughput {
        workers,
        seconds: secs,
        cycles_per_worker: cycles,
    };
    for m in Method::ALL {
        eprintln!(
            "throughput {workers} workers  {:<22} {:.0} cycles/s",
            m.label(),
            figure.rate(m)
        );
    }
    figure
}

/// One method: the cycles each worker completed within the window.
async fn contention(db: &TestDb, method: Method, workers: usize, secs: u32, seed: u64) -> Vec<u64> {
    let year = 2025;
    let clients = connect_many(db, method, workers, "bench worker").await;
    let queries = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs.into());
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
                assert!(release(&client, method, year, month).await, "release");
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
    per_worker
}
