//! Timeout precision: a connection asks for a month another holds, with a 50, 200 or 1000 ms
//! timeout, the methods' attempts interleaved; overshoot = time until the call returns "not
//! obtained" minus the timeout. The polling loop checks its deadline after each refused
//! attempt, so it overshoots by up to one interval.

use super::Ctx;
use crate::methods::{acquire, connect_warm, lock_now, release, Method, PerMethod};
use crate::report::Row;
use crate::stats::{fms, ms, plural, ratio, Dist};
use crate::target::{Bound, Target};
use month_lock_tests::TestDb;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tokio_postgres::Client;

pub const OVERSHOOT: Target = Target {
    measure: "overshoot max",
    bound: Bound::AtMost(5.0),
    unit: " ms",
};

/// (timeout ms, attempts of each method).
fn plan(quick: bool) -> [(u32, usize); 3] {
    if quick {
        [(50, 3), (200, 2), (1000, 1)]
    } else {
        [(50, 20), (200, 10), (1000, 5)]
    }
}

/// One timeout: overshoot, ms.
pub struct Timeout {
    pub timeout_ms: u32,
    pub overshoot_ms: PerMethod<Dist>,
}

impl Timeout {
    pub fn row(&self) -> Row {
        let max = self.overshoot_ms.month_lock.max;
        Row {
            figure: format!(
                "Timeout {} ms on a held month: overshoot p50 / max (ms), {} each",
                self.timeout_ms,
                plural(self.overshoot_ms.month_lock.n as u64, "attempt")
            ),
            cells: self
                .overshoot_ms
                .map(|d| format!("{} / {}", fms(d.p50), fms(d.max))),
            target: OVERSHOOT.text(),
            met: Some(OVERSHOOT.met(max)),
            note: format!(
                "max {} ms ({} of the limit)",
                fms(max),
                ratio(max / OVERSHOOT.limit())
            ),
        }
    }
}

pub async fn measure(ctx: &Ctx) -> Vec<Timeout> {
    let mut rigs = Vec::new();
    for (j, method) in Method::ALL.into_iter().enumerate() {
        rigs.push(Rig::new(&ctx.db, method, 1 + j as i32).await);
    }
    let mut figures = Vec::new();
    for (timeout_ms, attempts) in plan(ctx.quick) {
        let mut overshoots = PerMethod::from_fn(|_| Vec::new());
        for _ in 0..attempts {
            for rig in &rigs {
                overshoots[rig.method].push(rig.attempt(timeout_ms).await);
            }
        }
        let figure = Timeout {
            timeout_ms,
            overshoot_ms: overshoots.map(|s| Dist::of(s)),
        };
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
        assert!(release(&rig.holder, rig.method, YEAR, rig.month).await);
    }
    figures
}

const YEAR: i32 = 2023;

/// One method: a holder of the month and a connection that asks for it.
struct Rig {
    method: Method,
    month: i32,
    holder: Client,
    waiter: Client,
    queries: AtomicU64,
}

impl Rig {
    async fn new(db: &TestDb, method: Method, month: i32) -> Rig {
        let holder = connect_warm(db, method, "bench holder").await;
        assert!(lock_now(&holder, method, YEAR, month).await);
        Rig {
            method,
            month,
            holder,
            waiter: connect_warm(db, method, "bench waiter").await,
            queries: AtomicU64::new(0),
        }
    }

    /// One attempt; the overshoot in ms.
    async fn attempt(&self, timeout_ms: u32) -> f64 {
        let start = Instant::now();
        let (m, q) = (self.method, &self.queries);
        let got = acquire(&self.waiter, m, YEAR, self.month, timeout_ms, q, None).await;
        let elapsed = start.elapsed();
        assert!(!got, "got a month that is held");
        ms(elapsed) - f64::from(timeout_ms)
    }
}
