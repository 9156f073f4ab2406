//! The pair in time: each statement of [`super::pairs`] on one connection, interleaved — a
//! round runs the bare loop and every pair's two statements, alternating which of the two goes
//! first. Two clocks per statement: wall-clock, timed client-side (one round trip per
//! statement of many pairs: a rounding error, and it cancels in the subtraction), and the
//! backend's on-CPU time (`/proc/<pid>/schedstat`), which leaves out the time the backend
//! waited for a core on a busy machine. Figures are medians over the rounds (see
//! [`PairTime::net`]).

use super::pairs::{statement, Pair, PairRow, BARE, WARM_UP};
use super::Ctx;
use crate::machine::cpu_ns;
use crate::sql::query_u64;
use crate::stats::{ratio, Dist};
use month_lock_tests::backend_pid;
use std::time::Instant;

/// (pairs per statement, rounds).
fn plan(quick: bool) -> (u64, usize) {
    if quick {
        (20_000, 3)
    } else {
        (100_000, 31)
    }
}

/// ns per pair of every round of one statement, [wall, CPU].
type Runs = [Vec<f64>; 2];

pub struct PairTime {
    pub pairs: u64,
    pub bare: Runs,
    /// Per pair: [month_lock, built-in].
    pub runs: Vec<(Pair, [Runs; 2])>,
}

const CLOCKS: [&str; 2] = ["wall-clock", "backend CPU"];

impl PairTime {
    /// On one clock: month_lock's and the built-in's ns per pair net of the bare loop (median
    /// over the rounds of each round's statement minus that round's bare loop), and month_lock
    /// minus the built-in (median over the rounds of the two adjacent statements' difference,
    /// in which the loop cancels without being measured apart).
    fn net(&self, [ml, bi]: &[Runs; 2], clock: usize) -> (f64, f64, f64) {
        let bare = &self.bare[clock];
        let net = |runs: &Runs| {
            let v: Vec<f64> = runs[clock].iter().zip(bare).map(|(t, b)| t - b).collect();
            Dist::of(&v).p50
        };
        let diff: Vec<f64> = ml[clock]
            .iter()
            .zip(&bi[clock])
            .map(|(a, b)| a - b)
            .collect();
        (net(ml), net(bi), Dist::of(&diff).p50)
    }

    pub fn rows(&self) -> Vec<PairRow> {
        let mut rows = Vec::new();
        for (pair, sides) in &self.runs {
            for (clock, name) in CLOCKS.iter().enumerate() {
                let (ml, bi, diff) = self.net(sides, clock);
                rows.push(PairRow {
                    pair: *pair,
                    measure: format!(
                        "{name} ns per pair, net of the bare loop ({:.0} ns): median of {} interleaved rounds of {} pairs",
                        Dist::of(&self.bare[clock]).p50,
                        self.bare[0].len(),
                        self.pairs
                    ),
                    month_lock: format!("{ml:.0}"),
                    builtin: format!("{bi:.0}"),
                    ratio: ml / bi,
                    extra: Some(format!("{diff:+.0} ns per pair")),
                });
            }
        }
        rows
    }
}

pub async fn measure(ctx: &Ctx) -> PairTime {
    let (n, rounds) = plan(ctx.quick);
    let client = ctx.db.connect_as("bench pair").await;
    let pid = backend_pid(&client).await;
    client.simple_query(WARM_UP).await.expect("warm-up");
    // [wall, CPU] ns per pair of one statement, checking that every pair succeeded.
    let run = |qual: String| {
        let client = &client;
        async move {
            let sql = statement(&qual, n);
            let (start, cpu) = (Instant::now(), cpu_ns(pid));
            let count = query_u64(client, &sql).await;
            let wall = start.elapsed().as_secs_f64() * 1e9;
            let cpu = cpu_ns(pid).saturating_sub(cpu) as f64;
            assert_eq!(count, n, "not every pair succeeded: {sql}");
            [wall / n as f64, cpu / n as f64]
        }
    };
    let quals: Vec<[String; 2]> = Pair::ALL.iter().map(|p| p.quals()).collect();
    // One untimed round: caches and plans.
    run(BARE.into()).await;
    for q in quals.iter().flatten() {
        run(q.clone()).await;
    }
    let push = |runs: &mut Runs, [w, c]: [f64; 2]| {
        runs[0].push(w);
        runs[1].push(c);
    };
    let mut bare: Runs = Default::default();
    let mut runs: Vec<[Runs; 2]> = Pair::ALL.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        push(&mut bare, run(BARE.into()).await);
        for (i, [ml, bi]) in quals.iter().enumerate() {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let qual = if side == 0 { ml } else { bi };
                push(&mut runs[i][side], run(qual.clone()).await);
            }
        }
    }
    let figure = PairTime {
        pairs: n,
        bare,
        runs: Pair::ALL.into_iter().zip(runs).collect(),
    };
    for (pair, sides) in &figure.runs {
        for (clock, name) in CLOCKS.iter().enumerate() {
            let (ml, bi, diff) = figure.net(sides, clock);
            eprintln!(
                "{name:<11} ns per pair, {:<17} month_lock {ml:.0}, built-in {bi:.0}: {} ({diff:+.0} ns)",
                pair.label(),
                ratio(ml / bi),
            );
        }
    }
    figure
}
