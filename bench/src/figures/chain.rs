//! Handoff chain: N sessions queue on one month (checked in pg_locks), the holder releases, and
//! each session releases as soon as it is granted, handing the month on. Time from the holder's
//! release to the last grant, per handoff, and the waiters' backend CPU per handoff (schedstat),
//! month_lock(y, m) against pg_advisory_lock(ns, key). A run is one chain of each side back to
//! back, in alternating order; the ratio to the built-in is the median of the runs' own ratios,
//! so that a slow spell of the machine lands on both sides of a ratio instead of on one side's
//! median.

use super::Ctx;
use crate::machine::cpu_ns;
use crate::methods::{PerMethod, NS};
use crate::report::Row;
use crate::sql::{query_bool, queued_on, value};
use crate::stats::{fus, median_range_us, plural, ratio, Dist};
use crate::target::{Bound, Target};
use month_lock_tests::backend_pid;
use month_lock_tests::sql::ym;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

pub const PER_HANDOFF: Target = Target {
    measure: "time and waiters' CPU per handoff with 100 or more sessions queued",
    bound: Bound::AtMost(1.05),
    unit: "× built-in",
};
const TARGET_FROM: usize = 100;

/// (queue lengths, runs: one chain of each side per run).
fn plan(quick: bool) -> (&'static [usize], usize) {
    if quick {
        (&[1, 10, 100], 1)
    } else {
        (&[1, 10, 100, 500], 7)
    }
}

/// One queue length: every run's µs per handoff and waiters' CPU µs per handoff,
/// [month_lock, built-in], and the runs' ratios month_lock / built-in.
pub struct Chain {
    pub waiters: usize,
    pub per_handoff_us: [Dist; 2],
    pub cpu_per_handoff_us: [Dist; 2],
    pub over: Dist,
    pub cpu_over: Dist,
}

impl Chain {
    pub fn row(&self) -> Row {
        let (over, cpu_over) = (self.over.p50, self.cpu_over.p50);
        let cell = |i: usize| {
            format!(
                "{} / CPU {}",
                median_range_us(&self.per_handoff_us[i]),
                median_range_us(&self.cpu_per_handoff_us[i])
            )
        };
        let judged = self.waiters >= TARGET_FROM;
        Row {
            figure: format!(
                "Handoff chain, {} queued on one month, each releasing on its grant: µs per handoff / waiters' backend CPU µs per handoff, median (min–max) of {}",
                plural(self.waiters as u64, "session"),
                plural(self.per_handoff_us[0].n as u64, "paired run")
            ),
            cells: PerMethod::two(cell(0), cell(1)),
            target: if judged {
                PER_HANDOFF.text()
            } else {
                "none at this length (for comparison)".into()
            },
            met: judged.then(|| PER_HANDOFF.met(over) && PER_HANDOFF.met(cpu_over)),
            note: format!(
                "{} built-in per handoff, CPU {} (medians of the runs' ratios; CPU {}–{})",
                ratio(over),
                ratio(cpu_over),
                ratio(self.cpu_over.min),
                ratio(self.cpu_over.max)
            ),
        }
    }
}

/// One pool of sessions (the longest queue) serves both sides: every session has run both
/// sides' calls once before anything is timed.
pub async fn measure(ctx: &Ctx) -> Vec<Chain> {
    let (lengths, runs) = plan(ctx.quick);
    let db = &ctx.db;
    let most = lengths.iter().copied().max().unwrap_or(0);
    let t = Instant::now();
    let holder = db.connect_as("bench chain holder").await;
    let observer = db.connect_as("bench observer").await;
    let mut pool = Vec::with_capacity(most);
    for _ in 0..most {
        let client = db.connect_as("bench chain waiter").await;
        let k = ym(1999, 2);
        for sql in [
            "SELECT month_lock(1999, 2)".to_string(),
            "SELECT month_lock_release(1999, 2)".into(),
            format!("SELECT pg_advisory_lock({NS}, {k})"),
            format!("SELECT pg_advisory_unlock({NS}, {k})"),
        ] {
            value(&client, &sql).await;
        }
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
        // meets cold paths.
        for side in 0..2 {
            chain(&holder, &observer, sessions, side).await;
        }
        let (mut over, mut cpu_over) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternating order: neither side always runs first (after the other's chain).
            for side in [run % 2, 1 - run % 2] {
                let (wall_us, cpu_us) = chain(&holder, &observer, sessions, side).await;
                per_handoff[side].push(wall_us / n as f64);
                cpu[side].push(cpu_us / n as f64);
            }
            over.push(per_handoff[0][run] / per_handoff[1][run]);
            cpu_over.push(cpu[0][run] / cpu[1][run]);
        }
        let figure = Chain {
            waiters: n,
            per_handoff_us: per_handoff.map(|v| Dist::of(&v)),
            cpu_per_handoff_us: cpu.map(|v| Dist::of(&v)),
            over: Dist::of(&over),
            cpu_over: Dist::of(&cpu_over),
        };
        eprintln!(
            "handoff chain {n:>3}  month_lock {} µs/handoff (CPU {}), built-in {} µs/handoff (CPU {}); runs' ratios {} (CPU {})",
            fus(figure.per_handoff_us[0].p50),
            fus(figure.cpu_per_handoff_us[0].p50),
            fus(figure.per_handoff_us[1].p50),
            fus(figure.cpu_per_handoff_us[1].p50),
            ratio(figure.over.p50),
            ratio(figure.cpu_over.p50),
        );
        figures.push(figure);
    }
    figures
}

const YEAR: i32 = 2026;
const MONTH: i32 = 6;

/// One chain of side 0 (month_lock) or 1 (built-in): µs from the holder's release to the last
/// grant, and the sessions' backends' on-CPU µs over the chain.
async fn chain(
    holder: &Client,
    observer: &Client,
    sessions: &[(Arc<Client>, i32)],
    side: usize,
) -> (f64, f64) {
    let k = ym(YEAR, MONTH);
    let [take_now, take, release] = if side == 0 {
        ["month_lock_try", "month_lock", "month_lock_release"]
            .map(|f| format!("SELECT {f}({YEAR}, {MONTH})"))
    } else {
        [
            "pg_try_advisory_lock",
            "pg_advisory_lock",
            "pg_advisory_unlock",
        ]
        .map(|f| format!("SELECT {f}({NS}, {k})"))
    };
    assert!(query_bool(holder, &take_now).await, "holder");
    let cpu_before: Vec<u64> = sessions.iter().map(|(_, pid)| cpu_ns(*pid)).collect();
    let (take, release) = (Arc::new(take), Arc::new(release));
    let mut tasks = Vec::with_capacity(sessions.len());
    for (client, _) in sessions {
        let (client, take, release) = (client.clone(), take.clone(), release.clone());
        tasks.push(tokio::spawn(async move {
            value(&client, &take).await;
            let granted = Instant::now();
            assert!(query_bool(&client, &release).await, "waiter release");
            granted
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while queued_on(observer, YEAR, MONTH).await < sessions.len() as u64 {
        assert!(Instant::now() < deadline, "the sessions never all queued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start = Instant::now();
    assert!(query_bool(holder, &release).await, "holder release");
    let mut last = start;
    for task in tasks {
        last = last.max(task.await.expect("chain waiter"));
    }
    let cpu_us = sessions
        .iter()
        .zip(cpu_before)
        .map(|((_, pid), before)| cpu_ns(*pid).saturating_sub(before) as f64 / 1e3)
        .sum();
    (last.duration_since(start).as_secs_f64() * 1e6, cpu_us)
}
