//! Release all: one session takes 1, 10, 100 or 1000 months in one statement, then one
//! `month_lock_release_all()` (or `pg_advisory_unlock_all()`) is timed, one round trip;
//! month_lock's count returned is checked. No target (O(months held)).

use super::Ctx;
use crate::methods::{PerMethod, NS};
use crate::report::Row;
use crate::sql::{query_u64, timed, value};
use crate::stats::{fus, median_range_us, plural, ratio, Dist};

/// (months held, interleaved runs of each side).
fn plan(quick: bool) -> (&'static [u64], usize) {
    (&[1, 10, 100, 1000], if quick { 3 } else { 15 })
}

/// One number of months held, µs per call, [month_lock, built-in].
pub struct ReleaseAll {
    pub months_held: u64,
    pub us: [Dist; 2],
}

impl ReleaseAll {
    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "Release all, {} held: µs per call (one round trip), median (min–max) of {}; built-in: pg_advisory_unlock_all()",
                plural(self.months_held, "month"),
                plural(self.us[0].n as u64, "interleaved run")
            ),
            cells: PerMethod::two(median_range_us(&self.us[0]), median_range_us(&self.us[1])),
            target: "none set (O(months held), for comparison)".into(),
            met: None,
            note: format!("{} built-in", ratio(self.us[0].p50 / self.us[1].p50)),
        }
    }
}

pub async fn measure(ctx: &Ctx) -> Vec<ReleaseAll> {
    let (held, reps) = plan(ctx.quick);
    let client = ctx.db.connect_as("bench release-all").await;
    value(&client, "SELECT month_lock_release_all()").await;
    value(&client, "SELECT pg_advisory_unlock_all()").await;
    let calls = [
        "SELECT month_lock_release_all()",
        "SELECT pg_advisory_unlock_all()",
    ];
    let (y, m) = ("(2100 + g / 12)", "(1 + g % 12)");
    let mut figures = Vec::new();
    for &n in held {
        let take = [
            format!("month_lock_try({y}, {m})"),
            format!("pg_try_advisory_lock({NS}, {y} * 100 + {m})"),
        ]
        .map(|t| {
            format!(
                "SELECT sum(CASE WHEN {t} THEN 1 ELSE 0 END) FROM generate_series(0, {n} - 1) g"
            )
        });
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..reps {
            for i in 0..2 {
                assert_eq!(query_u64(&client, &take[i]).await, n, "take the months");
                let (us, v) = timed(&client, calls[i]).await;
                if i == 0 {
                    assert_eq!(v, Some(n.to_string()), "month_lock_release_all's count");
                }
                times[i].push(us);
            }
        }
        let figure = ReleaseAll {
            months_held: n,
            us: times.map(|t| Dist::of(&t)),
        };
        eprintln!(
            "release all, {n:>4} months  month_lock {} µs, built-in {} µs",
            fus(figure.us[0].p50),
            fus(figure.us[1].p50)
        );
        figures.push(figure);
    }
    figures
}
