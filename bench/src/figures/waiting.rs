//! Cost of waiting: 64 connections wait 10 s for a month that stays held (each method's own
//! timeout ends the wait): the queries they sent (counted client-side) and the CPU time of
//! their backends over the wait, on-CPU time from `/proc/<pid>/schedstat`.

use super::Ctx;
use crate::machine::cpu_ns;
use crate::methods::{acquire, connect_many, connect_warm, lock_now, release, Method, PerMethod};
use crate::report::Row;
use crate::stats::ratio;
use crate::target::{texts, Bound, Target};
use month_lock_tests::{backend_pid, TestDb};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub const QUERIES: Target = Target {
    measure: "queries per waiter",
    bound: Bound::AtMost(1.0),
    unit: "",
};
pub const CPU: Target = Target {
    measure: "CPU of all waiters together",
    bound: Bound::AtMost(1.0),
    unit: "% of one core",
};

/// (waiters, seconds).
fn plan(quick: bool) -> (usize, u32) {
    (64, if quick { 2 } else { 10 })
}

/// One method's waiters.
pub struct Cost {
    pub queries: u64,
    /// Their backends' on-CPU time over the wait, ms.
    pub cpu_ms: f64,
    pub wall_s: f64,
}

pub struct Waiting {
    pub waiters: usize,
    pub seconds: u32,
    pub by_method: PerMethod<Cost>,
}

impl Waiting {
    pub fn row(&self) -> Row {
        let (ml, polling) = (&self.by_method.month_lock, &self.by_method.polling);
        let per_waiter = ml.queries as f64 / self.waiters as f64;
        let core_percent = ml.cpu_ms / (ml.wall_s * 1000.0) * 100.0;
        Row {
            figure: format!(
                "{} waiters for {} s, 1 run: queries sent / on-CPU ms of their backends",
                self.waiters, self.seconds
            ),
            cells: self
                .by_method
                .map(|w| format!("{} / {:.1}", w.queries, w.cpu_ms)),
            target: texts(&[&QUERIES, &CPU]),
            met: Some(QUERIES.met(per_waiter) && CPU.met(core_percent)),
            note: format!(
                "{per_waiter} per waiter, {core_percent:.3}% of one core; polling sends {} and burns {}",
                ratio(polling.queries as f64 / ml.queries.max(1) as f64),
                ratio(polling.cpu_ms / ml.cpu_ms.max(0.001))
            ),
        }
    }
}

/// Each method in turn.
pub async fn measure(ctx: &Ctx) -> Waiting {
    let (waiters, secs) = plan(ctx.quick);
    let mut costs = Vec::new();
    for method in Method::ALL {
        let c = cost(&ctx.db, method, waiters, secs).await;
        eprintln!(
            "waiting {waiters} x {secs} s  {:<22} {} queries, CPU {:.1} ms",
            method.label(),
            c.queries,
            c.cpu_ms
        );
        costs.push(c);
    }
    Waiting {
        waiters,
        seconds: secs,
        by_method: {
            let [month_lock, builtin_queued_wait, polling] = costs.try_into().ok().unwrap();
            PerMethod {
                month_lock,
                builtin_queued_wait,
                polling,
            }
        },
    }
}

async fn cost(db: &TestDb, method: Method, waiters: usize, secs: u32) -> Cost {
    let (year, month) = (2024, 7);
    let holder = connect_warm(db, method, "bench holder").await;
    let clients = connect_many(db, method, waiters, "bench waiter").await;
    let mut pids = Vec::with_capacity(waiters);
    for client in &clients {
        pids.push(backend_pid(client).await);
    }
    assert!(lock_now(&holder, method, year, month).await);
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
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
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ns(p)).collect();
    assert!(release(&holder, method, year, month).await);
    Cost {
        queries: queries.load(Ordering::SeqCst),
        cpu_ms: before
            .iter()
            .zip(&after)
            .map(|(b, a)| a.saturating_sub(*b) as f64 / 1e6)
            .sum(),
        wall_s,
    }
}
