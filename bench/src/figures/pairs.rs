//! The uncontended take+release pair, the shape both pair figures run: `n` pairs in one
//! statement, `SELECT count(*) FROM generate_series(1, n) i WHERE <take> AND <release>`, over
//! the 12 months of 2000 in turn, for month_lock and for the built-in advisory-lock functions
//! on the same lock; and the bare loop, the same statement with arithmetic in place of the
//! calls, whose cost both figures subtract. The count is checked: every pair succeeded, in
//! order. The transaction-scope pair has no release of its own (the commit releases): its
//! statement takes a month per row, which after the first twelve rows is a month this
//! transaction already holds, for month_lock and the built-in alike.

use crate::methods::NS;
use crate::stats::ratio;
use crate::target::{Bound, Target};
use std::fmt::Write as _;

pub const OVER_BUILTIN: Target = Target {
    measure: "month_lock's pair",
    bound: Bound::AtMost(1.10),
    unit: "× the built-in pair",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pair {
    Exclusive,
    Shared,
    Xact,
}

impl Pair {
    pub const ALL: [Pair; 3] = [Pair::Exclusive, Pair::Shared, Pair::Xact];

    pub fn label(self) -> &'static str {
        match self {
            Pair::Exclusive => "exclusive",
            Pair::Shared => "shared",
            Pair::Xact => "transaction scope",
        }
    }

    /// The WHERE clause of month_lock's statement and of the built-in's.
    pub fn quals(self) -> [String; 2] {
        let key = format!("{NS}, 200001 + i % 12");
        let month = "2000, 1 + i % 12";
        match self {
            Pair::Exclusive => [
                format!("month_lock_try({month}) AND month_lock_release({month})"),
                format!("pg_try_advisory_lock({key}) AND pg_advisory_unlock({key})"),
            ],
            Pair::Shared => [
                format!("month_lock_try_shared({month}) AND month_lock_release_shared({month})"),
                format!("pg_try_advisory_lock_shared({key}) AND pg_advisory_unlock_shared({key})"),
            ],
            Pair::Xact => [
                format!("month_lock_try_xact({month}) AND (1 + i % 12) > 0"),
                format!("pg_try_advisory_xact_lock({key}) AND (1 + i % 12) > 0"),
            ],
        }
    }
}

pub const BARE: &str = "(2000 + i % 12) > 0 AND (1 + i % 12) > 0";

pub fn statement(qual: &str, n: u64) -> String {
    format!("SELECT count(*) FROM generate_series(1, {n}) i WHERE {qual}")
}

/// Warms every call once (the library loaded, the functions looked up) on a month and keys
/// that the statements do not use.
pub const WARM_UP: &str = "SELECT month_lock_try(1999, 1), month_lock_release(1999, 1), \
    month_lock_try_shared(1999, 1), month_lock_release_shared(1999, 1), \
    pg_try_advisory_lock(1), pg_advisory_unlock(1), \
    pg_try_advisory_lock_shared(1), pg_advisory_unlock_shared(1)";

/// One line of the pair table.
pub struct PairRow {
    pub pair: Pair,
    /// What the numbers are, e.g. "instructions per pair (callgrind)".
    pub measure: String,
    pub month_lock: String,
    pub builtin: String,
    /// month_lock over the built-in, the figure the target judges.
    pub ratio: f64,
    /// A further figure after the ratio.
    pub extra: Option<String>,
}

/// The pair table of results.md.
pub fn table(intro: &str, rows: &[PairRow]) -> String {
    let mut t = format!(
        "{intro}\n\n| Pair | Measure | month_lock | built-in | Target | Met? (month_lock / built-in) |\n\
         |---|---|---|---|---|---|\n"
    );
    for r in rows {
        let extra = r.extra.as_ref().map_or(String::new(), |e| format!(", {e}"));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {}{}{extra} |",
            r.pair.label(),
            r.measure,
            r.month_lock,
            r.builtin,
            OVER_BUILTIN.text(),
            if OVER_BUILTIN.met(r.ratio) {
                "yes: "
            } else {
                "**NO**: "
            },
            ratio(r.ratio)
        );
    }
    t
}
