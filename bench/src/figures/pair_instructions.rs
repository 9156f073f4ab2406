//! The pair in CPU instructions: each statement of [`super::pairs`] in a single-user backend
//! under valgrind's callgrind ([`SingleUser`]), which counts the instructions the whole process
//! executed; the bare loop's count is subtracted and the rest divided by the pairs. Independent
//! of the machine's load.

use super::pairs::{statement, Pair, PairRow, BARE, WARM_UP};
use super::single_user::SingleUser;
use crate::stats::ratio;

fn pairs(quick: bool) -> u64 {
    if quick {
        10_000
    } else {
        100_000
    }
}

pub struct PairInstructions {
    pub pairs: u64,
    /// Per pair, net of the bare loop: (pair, [month_lock, built-in]).
    pub per_pair: Vec<(Pair, [f64; 2])>,
}

impl PairInstructions {
    pub fn rows(&self) -> Vec<PairRow> {
        self.per_pair
            .iter()
            .map(|&(pair, [ml, bi])| PairRow {
                pair,
                measure: format!(
                    "instructions per pair (callgrind, {} pairs, net of the bare loop)",
                    self.pairs
                ),
                month_lock: format!("{ml:.0}"),
                builtin: format!("{bi:.0}"),
                ratio: ml / bi,
                extra: Some(format!("{:+.0} per pair", ml - bi)),
            })
            .collect()
    }
}

/// Blocking: runs initdb and seven backends under callgrind.
pub fn measure(quick: bool) -> PairInstructions {
    let n = pairs(quick);
    let backend = SingleUser::new();
    let count = |qual: &str| {
        let script = format!("{WARM_UP};\n{};", statement(qual, n));
        let c = backend.instructions(&script, n, &[]);
        eprintln!("callgrind {c:>12} instructions: {qual}");
        c
    };
    let bare = count(BARE);
    let net = |c: u64| (c as f64 - bare as f64) / n as f64;
    let per_pair: Vec<(Pair, [f64; 2])> = Pair::ALL
        .into_iter()
        .map(|pair| {
            let [ml, bi] = pair.quals();
            (pair, [net(count(&ml)), net(count(&bi))])
        })
        .collect();
    for (pair, [ml, bi]) in &per_pair {
        eprintln!(
            "instructions per pair, {:<17} month_lock {ml:.0}, built-in {bi:.0} ({})",
            pair.label(),
            ratio(ml / bi)
        );
    }
    PairInstructions { pairs: n, per_pair }
}
