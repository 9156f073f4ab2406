//! The pair in wall-clock time: each statement of [`super::pairs`] on one connection, timed
//! client-side (one round trip per statement of many pairs, so the round trip is a rounding
//! error, and it cancels in the subtraction). A round runs the bare loop and then every pair's
//! two statements, alternating which of the two goes first; each round's figures are net of
//! that round's bare loop, so a disturbance of the machine falls on both sides alike. The
//! figure is the median over the rounds, with the rounds' spread.

use super::pairs::{statement, Pair, PairRow, BARE, WARM_UP};
use super::Ctx;
use crate::sql::query_u64;
use crate::stats::{ratio, Dist};
use std::time::Instant;

/// (pairs per statement, rounds).
fn plan(quick: bool) -> (u64, usize) {
    if quick {
        (30_000, 3)
    } else {
        (300_000, 21)
    }
}

pub struct PairTime {
    pub pairs: u64,
    pub rounds: usize,
    pub bare_ns: Dist,
    /// Per pair: ns per pair net of the bare loop, [month_lock, built-in], and the per-round
    /// ratio.
    pub per_pair: Vec<(Pair, [Dist; 2], Dist)>,
}

impl PairTime {
    pub fn rows(&self) -> Vec<PairRow> {
        let cell = |d: &Dist| format!("{:.0} ({:.0}–{:.0})", d.p50, d.min, d.max);
        self.per_pair
            .iter()
            .map(|(pair, [ml, bi], r)| PairRow {
                pair: *pair,
                measure: format!(
                    "ns per pair, net of the bare loop ({:.0} ns): median (min–max) of {} interleaved rounds of {} pairs",
                    self.bare_ns.p50, self.rounds, self.pairs
                ),
                month_lock: cell(ml),
                builtin: cell(bi),
                ratio: r.p50,
                spread: Some((r.min, r.max)),
            })
            .collect()
    }
}

pub async fn measure(ctx: &Ctx) -> PairTime {
    let (n, rounds) = plan(ctx.quick);
    let client = ctx.db.connect_as("bench pair").await;
    client.simple_query(WARM_UP).await.expect("warm-up");
    let quals: Vec<[String; 2]> = Pair::ALL.iter().map(|p| p.quals()).collect();
    // ns per pair of one statement, checking that every pair succeeded.
    let run = |qual: String| {
        let client = &client;
        async move {
            let sql = statement(&qual, n);
            let start = Instant::now();
            let count = query_u64(client, &sql).await;
            let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
            assert_eq!(count, n, "not every pair succeeded: {sql}");
            ns
        }
    };
    // One untimed round: caches and plans.
    run(BARE.into()).await;
    for q in quals.iter().flatten() {
        run(q.clone()).await;
    }
    let mut bare = Vec::with_capacity(rounds);
    let mut net: Vec<[Vec<f64>; 2]> = Pair::ALL.iter().map(|_| [vec![], vec![]]).collect();
    let mut ratios: Vec<Vec<f64>> = Pair::ALL.iter().map(|_| vec![]).collect();
    for round in 0..rounds {
        let b = run(BARE.into()).await;
        bare.push(b);
        for (i, [ml, bi]) in quals.iter().enumerate() {
            let (ml, bi) = if round % 2 == 0 {
                let ml = run(ml.clone()).await;
                (ml, run(bi.clone()).await)
            } else {
                let bi = run(bi.clone()).await;
                (run(ml.clone()).await, bi)
            };
            net[i][0].push(ml - b);
            net[i][1].push(bi - b);
            ratios[i].push((ml - b) / (bi - b));
        }
    }
    let figure = PairTime {
        pairs: n,
        rounds,
        bare_ns: Dist::of(&bare),
        per_pair: Pair::ALL
            .into_iter()
            .zip(net.iter().zip(&ratios))
            .map(|(p, ([ml, bi], r))| (p, [Dist::of(ml), Dist::of(bi)], Dist::of(r)))
            .collect(),
    };
    for (pair, [ml, bi], r) in &figure.per_pair {
        eprintln!(
            "ns per pair, {:<17} month_lock {:.0}, built-in {:.0} ({}, rounds {}–{}; loop {:.0} ns)",
            pair.label(),
            ml.p50,
            bi.p50,
            ratio(r.p50),
            ratio(r.min),
            ratio(r.max),
            figure.bare_ns.p50
        );
    }
    figure
}
