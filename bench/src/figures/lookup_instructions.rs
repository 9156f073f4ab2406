//! Is the month locked? in CPU instructions: `month_is_locked` and `month_lock_held` in a
//! single-user backend under callgrind ([`SingleUser`]) that holds the probed months (the
//! twelve of 2026) and 0, 10k or 100k other advisory locks itself. With no other session, its
//! own locks are the shared lock table's entries, as another session's would be (the shared
//! lookup reads them alike), and they fill its local lock table, where `month_lock_held` looks.
//! Each statement is `SELECT count(*) FROM generate_series(1, n) i WHERE <call on month 1 + i %
//! 12>`, every answer checked, net of the bare loop's statement after the same set-up. Beside
//! them the built-in pair `pg_try_advisory_lock_shared` + `pg_advisory_unlock_shared` on a free
//! key of the same shape: PostgreSQL's own cost in the same tables (a single-user backend has no
//! other session whose hold could refuse the built-in probe of the in-server figure).

use super::pairs::statement;
use super::single_user::SingleUser;
use crate::methods::{PerMethod, NS};
use crate::report::Row;
use crate::stats::ratio;

use super::lookup::FLAT;

/// (other locks held, calls per statement).
fn plan(quick: bool) -> (&'static [u64], u64) {
    if quick {
        (&[0, 10_000], 5_000)
    } else {
        (&[0, 10_000, 100_000], 20_000)
    }
}

/// Room in the shared lock table for 100k locks of one backend.
const SETTINGS: &[&str] = &["max_locks_per_transaction=2048"];

const BARE: &str = "(2026 + i % 12) > 0 AND (1 + i % 12) > 0";

/// [month_is_locked (a held month), month_lock_held (a month not held: both modes looked up),
/// the built-in pair]; each true on every row.
fn quals() -> [String; 3] {
    [
        "month_is_locked(2026, 1 + i % 12)".into(),
        "NOT month_lock_held(2027, 1 + i % 12)".into(),
        format!(
            "pg_try_advisory_lock_shared({NS}, 202701 + i % 12) AND pg_advisory_unlock_shared({NS}, 202701 + i % 12)"
        ),
    ]
}

pub struct LookupInstructions {
    pub calls: u64,
    /// (other locks held, per call net of the bare loop: [month_is_locked, month_lock_held,
    /// built-in pair]).
    pub per_size: Vec<(u64, [f64; 3])>,
}

impl LookupInstructions {
    pub fn rows(&self) -> Vec<Row> {
        let none = self.per_size.first().map(|(_, v)| *v);
        self.per_size
            .iter()
            .map(|&(size, [is, held, builtin])| {
                let over = none.filter(|_| size > 0).map(|[a, b, _]| [is / a, held / b]);
                Row {
                    figure: format!(
                        "Is the month locked? instructions per call (callgrind, {} calls, net of the bare loop), a single backend holding {size} other advisory locks; month_lock: month_is_locked / month_lock_held; built-in: the pair pg_try_advisory_lock_shared + pg_advisory_unlock_shared",
                        self.calls
                    ),
                    cells: PerMethod::two(format!("{is:.0} / {held:.0}"), format!("{builtin:.0}")),
                    target: FLAT.text(),
                    met: over.map(|[a, b]| FLAT.met(a.max(b))),
                    note: match over {
                        Some([a, b]) => format!("{} / {} their count with none", ratio(a), ratio(b)),
                        None => "(the reference)".into(),
                    },
                }
            })
            .collect()
    }
}

/// Blocking: initdb, then four backends under callgrind per size.
pub fn measure(quick: bool) -> LookupInstructions {
    let (sizes, n) = plan(quick);
    let backend = SingleUser::new();
    let quals = quals();
    let per_size = sizes
        .iter()
        .map(|&size| {
            let set_up = format!(
                "SELECT month_is_locked(1999, 1), month_lock_held(1999, 1), \
                 pg_try_advisory_lock_shared(1), pg_advisory_unlock_shared(1);\n\
                 SELECT count(*) FROM generate_series(1, 12) m WHERE pg_try_advisory_lock({NS}, 202600 + m);\n\
                 SELECT count(*) FROM generate_series(1, {size}) g WHERE pg_try_advisory_lock(g);"
            );
            let count = |qual: &str| {
                let script = format!("{set_up}\n{};", statement(qual, n));
                let c = backend.instructions(&script, n, SETTINGS);
                eprintln!("callgrind {c:>12} instructions, {size:>6} other locks: {qual}");
                c
            };
            let bare = count(BARE) as f64;
            let net = quals.clone().map(|q| (count(&q) as f64 - bare) / n as f64);
            eprintln!(
                "lookup instructions per call, {size:>6} other locks: month_is_locked {:.0}, month_lock_held {:.0}, built-in pair {:.0}",
                net[0], net[1], net[2]
            );
            (size, net)
        })
        .collect();
    LookupInstructions { calls: n, per_size }
}
