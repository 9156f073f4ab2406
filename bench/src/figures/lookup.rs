//! Is the month locked? `month_is_locked(y, m)` looks the month up in one partition of the
//! shared lock table and `month_lock_held(y, m)` in the session's own local lock table: neither
//! should cost more as those tables fill. Both are measured side by side with a built-in probe
//! of the same SQL shape, `NOT pg_try_advisory_lock_shared(ns, yyyymm)`: an attempt that the
//! holder's exclusive lock refuses, so it looks the same lock up in the same partition (and in
//! the local lock table) and takes nothing. Another session holds the probed months (the twelve
//! of 2026) throughout; the states of the lock tables, in order:
//!
//! - that session also holds 0, 10k or 100k other advisory locks;
//! - the asking session itself holds 10k or 100k other advisory locks (its local lock table is
//!   that large too);
//! - the asking session holds 10k months through month_lock (its grant ledger is a table).
//!
//! Two measures per state:
//! - *in the server*: one statement of n calls, `SELECT count(*) FROM generate_series(1, n) i
//!   WHERE <call on month 1 + i % 12>`, every answer checked; the backend's CPU ns per call
//!   (`/proc/<pid>/schedstat`: time spent waiting for a core left out) net of the bare loop (the
//!   same statement with arithmetic in place of the call), median of interleaved rounds — the
//!   functions' own cost, the figure the target judges;
//! - *one round trip per call*: `SELECT month_is_locked(2026, 7)` and the built-in probe,
//!   interleaved. With the other session's locks, the same question asked of `pg_locks` too,
//!   timed after them rather than between them: a call right after that probe pays for part of
//!   it (with 100k locks, many times the call's own time). A round trip ends its
//!   transaction, and PostgreSQL's end of transaction walks the session's whole local lock
//!   table, so with the asking session's own locks both probes' round trips grow alike.

use super::pairs::statement;
use super::Ctx;
use crate::machine::cpu_ns;
use crate::methods::{PerMethod, NS};
use crate::report::Row;
use crate::sql::{query_u64, timed, value};
use crate::stats::{fus, median_range_us, plural, ratio, Dist};
use crate::target::{Bound, Target};
use month_lock_tests::backend_pid;
use tokio_postgres::Client;

pub const FLAT: Target = Target {
    measure: "month_is_locked and month_lock_held in the server",
    bound: Bound::AtMost(2.0),
    unit: "× their time with no other locks",
};

/// The probed year: another session holds its twelve months exclusively.
const YEAR: i32 = 2026;

/// (calls per in-server statement, in-server rounds, round trips of each probe).
fn plan(quick: bool) -> (u64, usize, usize) {
    if quick {
        (20_000, 3, 3)
    } else {
        (100_000, 11, 30)
    }
}

/// A state of the lock tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The other session holds this many other advisory locks.
    Other(u64),
    /// The asking session holds this many other advisory locks.
    Own(u64),
    /// The asking session holds this many months through month_lock.
    OwnMonths(u64),
}

impl State {
    fn all(quick: bool) -> Vec<State> {
        if quick {
            vec![
                State::Other(0),
                State::Other(10_000),
                State::Own(10_000),
                State::OwnMonths(1_000),
            ]
        } else {
            vec![
                State::Other(0),
                State::Other(10_000),
                State::Other(100_000),
                State::Own(10_000),
                State::Own(100_000),
                State::OwnMonths(10_000),
            ]
        }
    }

    fn text(self) -> String {
        match self {
            State::Other(n) => format!("{n} other advisory locks held by another session"),
            State::Own(n) => format!("{n} other advisory locks held by the asking session"),
            State::OwnMonths(n) => format!("{n} months held by the asking session (month_lock)"),
        }
    }
}

/// The in-server statements' conditions: [month_is_locked, month_lock_held, built-in probe];
/// each is true on every row.
fn quals() -> [String; 3] {
    let month = format!("{YEAR}, 1 + i % 12");
    [
        format!("month_is_locked({month})"),
        format!("NOT month_lock_held({month})"),
        format!(
            "NOT pg_try_advisory_lock_shared({NS}, {} + i % 12)",
            YEAR * 100 + 1
        ),
    ]
}

const BARE: &str = "(2026 + i % 12) > 0 AND (1 + i % 12) > 0";

/// One state of the lock tables.
pub struct Lookup {
    pub state: State,
    pub calls: u64,
    pub rounds: usize,
    /// In the server, ns per call net of the bare loop (medians): [month_is_locked,
    /// month_lock_held, built-in probe].
    pub in_server_ns: [f64; 3],
    pub bare_ns: f64,
    /// One round trip per call, µs: [month_is_locked, built-in probe].
    pub round_trip_us: [Dist; 2],
    /// The `pg_locks` probe's round trip, µs (states with the other session's locks).
    pub pg_locks_us: Option<Dist>,
    /// month_is_locked's and month_lock_held's in-server times over those with no other locks
    /// (`None` for that state itself).
    pub over_none: Option<[f64; 2]>,
}

impl Lookup {
    pub fn rows(&self) -> Vec<Row> {
        let [is, held, builtin] = self.in_server_ns;
        let in_server = Row {
            figure: format!(
                "Is the month locked? in the server, {}: backend CPU ns per call net of the bare loop ({:.0} ns), median of {} of {} calls; month_lock: month_is_locked / month_lock_held; built-in: NOT pg_try_advisory_lock_shared",
                self.state.text(),
                self.bare_ns,
                plural(self.rounds as u64, "interleaved round"),
                self.calls
            ),
            cells: PerMethod::two(format!("{is:.0} / {held:.0}"), format!("{builtin:.0}")),
            target: FLAT.text(),
            met: self.over_none.map(|[a, b]| FLAT.met(a.max(b))),
            note: match self.over_none {
                Some([a, b]) => format!(
                    "{} / {} their time with none; month_is_locked {} the built-in probe",
                    ratio(a),
                    ratio(b),
                    ratio(is / builtin)
                ),
                None => format!("month_is_locked {} the built-in probe", ratio(is / builtin)),
            },
        };
        let [ml, bi] = &self.round_trip_us;
        let round_trip = Row {
            figure: format!(
                "Is the month locked? one round trip per call, {}: µs, median (min–max) of {}; built-in: SELECT NOT pg_try_advisory_lock_shared{}",
                self.state.text(),
                plural(ml.n as u64, "interleaved call"),
                match &self.pg_locks_us {
                    Some(d) => format!(
                        "; EXISTS over pg_locks, timed apart: {}",
                        median_range_us(d)
                    ),
                    None => String::new(),
                }
            ),
            cells: PerMethod::two(median_range_us(ml), median_range_us(bi)),
            target: "none set (the in-server row is judged)".into(),
            met: None,
            note: format!(
                "{} the built-in probe{}",
                ratio(ml.p50 / bi.p50),
                match &self.pg_locks_us {
                    Some(d) => format!(", {} the pg_locks probe", ratio(ml.p50 / d.p50)),
                    None => String::new(),
                }
            ),
        };
        vec![in_server, round_trip]
    }
}

pub async fn measure(ctx: &Ctx) -> Vec<Lookup> {
    let (calls, rounds, reps) = plan(ctx.quick);
    let other = ctx.db.connect_as("bench lock filler").await;
    let asker = ctx.db.connect_as("bench asker").await;
    let hold_months = format!(
        "SELECT count(*) FROM generate_series(1, 12) m WHERE pg_try_advisory_lock({NS}, {} + m)",
        YEAR * 100
    );
    assert_eq!(
        query_u64(&other, &hold_months).await,
        12,
        "the probed months"
    );
    let mut figures: Vec<Lookup> = Vec::new();
    let (mut other_held, mut own_held) = (0u64, 0u64);
    for state in State::all(ctx.quick) {
        match state {
            State::Other(n) => {
                fill(&other, other_held, n).await;
                other_held = n;
            }
            State::Own(n) => {
                if other_held > 0 {
                    // The shared table holds both sessions' locks: keep it to one of them.
                    value(&other, "SELECT pg_advisory_unlock_all()").await;
                    assert_eq!(query_u64(&other, &hold_months).await, 12);
                    other_held = 0;
                }
                fill(&asker, own_held, n).await;
                own_held = n;
            }
            State::OwnMonths(n) => {
                if own_held > 0 {
                    value(&asker, "SELECT pg_advisory_unlock_all()").await;
                    own_held = 0;
                }
                let sql = format!(
                    "SELECT count(*) FROM generate_series(0, {}) g \
                     WHERE month_lock_try(1 + g / 12, 1 + g % 12)",
                    n - 1
                );
                assert_eq!(query_u64(&asker, &sql).await, n, "months held");
            }
        }
        let none = figures
            .first()
            .map(|f| [f.in_server_ns[0], f.in_server_ns[1]]);
        let mut figure = measure_state(&asker, state, calls, rounds, reps).await;
        figure.over_none =
            none.map(|[a, b]| [figure.in_server_ns[0] / a, figure.in_server_ns[1] / b]);
        eprintln!(
            "lookup, {:<60} in the server month_is_locked {:.0} ns, month_lock_held {:.0} ns, built-in {:.0} ns; \
             round trip {} / {} µs{}",
            state.text(),
            figure.in_server_ns[0],
            figure.in_server_ns[1],
            figure.in_server_ns[2],
            fus(figure.round_trip_us[0].p50),
            fus(figure.round_trip_us[1].p50),
            figure
                .pg_locks_us
                .as_ref()
                .map_or(String::new(), |d| format!(", pg_locks {} µs", fus(d.p50)))
        );
        figures.push(figure);
    }
    value(&asker, "SELECT month_lock_release_all()").await;
    value(&asker, "SELECT pg_advisory_unlock_all()").await;
    value(&other, "SELECT pg_advisory_unlock_all()").await;
    figures
}

/// Takes single-key advisory locks from..=to (another key space than the months') in `client`.
async fn fill(client: &Client, from: u64, to: u64) {
    if to > from {
        let sql = format!(
            "SELECT count(*) FROM generate_series({}, {to}) g WHERE pg_try_advisory_lock(g)",
            from + 1
        );
        assert_eq!(query_u64(client, &sql).await, to - from, "filler locks");
    }
}

async fn measure_state(
    asker: &Client,
    state: State,
    calls: u64,
    rounds: usize,
    reps: usize,
) -> Lookup {
    // In the server: every statement once untimed, then interleaved rounds (the order rotates).
    let quals = quals();
    let pid = backend_pid(asker).await;
    let run = |qual: String| async move {
        let sql = statement(&qual, calls);
        let start = cpu_ns(pid);
        let count = query_u64(asker, &sql).await;
        let ns = cpu_ns(pid).saturating_sub(start) as f64 / calls as f64;
        assert_eq!(count, calls, "not every answer as expected: {sql}");
        ns
    };
    run(BARE.into()).await;
    for q in &quals {
        run(q.clone()).await;
    }
    let mut bare = Vec::new();
    let mut net: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        let b = run(BARE.into()).await;
        bare.push(b);
        for k in 0..3 {
            let i = (round + k) % 3;
            net[i].push(run(quals[i].clone()).await - b);
        }
    }
    let in_server_ns = net.map(|v| Dist::of(&v).p50);

    // One round trip per call.
    let probes = [
        format!("SELECT month_is_locked({YEAR}, 7)"),
        format!(
            "SELECT NOT pg_try_advisory_lock_shared({NS}, {})",
            YEAR * 100 + 7
        ),
    ];
    for probe in &probes {
        assert_eq!(value(asker, probe).await.as_deref(), Some("t"), "{probe}");
    }
    let mut times = [Vec::new(), Vec::new()];
    for rep in 0..reps {
        for k in 0..2 {
            let i = (rep + k) % 2;
            let (us, v) = timed(asker, &probes[i]).await;
            assert_eq!(v.as_deref(), Some("t"), "{}", probes[i]);
            times[i].push(us);
        }
    }
    let round_trip_us = times.map(|t| Dist::of(&t));
    let pg_locks_us = match state {
        State::Other(_) => {
            let probe = format!(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid = {NS} AND objid = {} AND objsubid = 2)",
                YEAR * 100 + 7
            );
            assert_eq!(value(asker, &probe).await.as_deref(), Some("t"), "{probe}");
            let mut t = Vec::new();
            for _ in 0..reps {
                let (us, v) = timed(asker, &probe).await;
                assert_eq!(v.as_deref(), Some("t"), "{probe}");
                t.push(us);
            }
            Some(Dist::of(&t))
        }
        _ => None,
    };
    Lookup {
        state,
        calls,
        rounds,
        in_server_ns,
        bare_ns: Dist::of(&bare).p50,
        round_trip_us,
        pg_locks_us,
        over_none: None,
    }
}
