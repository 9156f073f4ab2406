//! Is the month locked? Another session holds the month and 0, 10k or 100k other advisory
//! locks (single-key ones, another key space); `month_is_locked(y, m)` and the same question
//! asked of `pg_locks` are timed client-side, one round trip each, interleaved.

use super::Ctx;
use crate::methods::{PerMethod, NS};
use crate::report::Row;
use crate::sql::{query_bool, query_u64, timed, value};
use crate::stats::{fus, median_range_us, plural, ratio, Dist};
use crate::target::{Bound, Target};
use month_lock_tests::sql::ym;

pub const FLAT: Target = Target {
    measure: "month_is_locked",
    bound: Bound::AtMost(2.0),
    unit: "× its time with no other locks",
};

/// (other locks held, ascending; calls of each probe per size).
fn plan(quick: bool) -> (&'static [u64], usize) {
    (&[0, 10_000, 100_000], if quick { 3 } else { 30 })
}

/// One lock-table size, µs per call.
pub struct Lookup {
    pub other_locks: u64,
    pub month_is_locked_us: Dist,
    pub pg_locks_us: Dist,
    /// The median over the median with no other locks (`None` for that size itself).
    pub over_smallest: Option<f64>,
}

impl Lookup {
    pub fn row(&self) -> Row {
        let over_probe = self.month_is_locked_us.p50 / self.pg_locks_us.p50;
        Row {
            figure: format!(
                "Is the month locked? with {} other advisory locks held by another session: µs per call (one round trip), median (min–max) of {}; built-in: EXISTS over pg_locks",
                self.other_locks,
                plural(self.month_is_locked_us.n as u64, "interleaved call")
            ),
            cells: PerMethod::two(
                median_range_us(&self.month_is_locked_us),
                median_range_us(&self.pg_locks_us),
            ),
            target: FLAT.text(),
            met: self.over_smallest.map(|r| FLAT.met(r)),
            note: match self.over_smallest {
                Some(r) => format!("{} its time with none; {} the pg_locks probe", ratio(r), ratio(over_probe)),
                None => format!("{} the pg_locks probe", ratio(over_probe)),
            },
        }
    }
}

pub async fn measure(ctx: &Ctx) -> Vec<Lookup> {
    let (sizes, reps) = plan(ctx.quick);
    let (year, month) = (2026, 7);
    let other = ctx.db.connect_as("bench lock filler").await;
    let asker = ctx.db.connect_as("bench asker").await;
    assert!(query_bool(&other, &format!("SELECT month_lock_try({year}, {month})")).await);
    let probes = [
        format!("SELECT month_is_locked({year}, {month})"),
        format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid = {NS} AND objid = {} AND objsubid = 2)",
            ym(year, month)
        ),
    ];
    let mut figures: Vec<Lookup> = Vec::new();
    let mut held = 0u64;
    for &size in sizes {
        if size > held {
            let sql = format!(
                "SELECT sum(CASE WHEN pg_try_advisory_lock(g) THEN 1 ELSE 0 END) \
                 FROM generate_series({}, {size}) g",
                held + 1
            );
            assert_eq!(query_u64(&other, &sql).await, size - held, "filler locks");
            held = size;
        }
        for probe in &probes {
            assert!(query_bool(&asker, probe).await, "{probe}");
        }
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for (i, probe) in probes.iter().enumerate() {
                let (us, v) = timed(&asker, probe).await;
                assert_eq!(v.as_deref(), Some("t"), "{probe}");
                times[i].push(us);
            }
        }
        let [a, b] = times.map(|t| Dist::of(&t));
        let figure = Lookup {
            other_locks: size,
            over_smallest: figures.first().map(|f| a.p50 / f.month_is_locked_us.p50),
            month_is_locked_us: a,
            pg_locks_us: b,
        };
        eprintln!(
            "lookup, {size:>6} other locks  month_is_locked {} µs, pg_locks {} µs",
            fus(figure.month_is_locked_us.p50),
            fus(figure.pg_locks_us.p50)
        );
        figures.push(figure);
    }
    value(&other, "SELECT pg_advisory_unlock_all()").await;
    figures
}
