//! One typed result per figure. Each holds the measurements, the ratios and the target verdict
//! computed once from them; `results.json` is these structs serialised, and each one's [`Row`]
//! is its line of the table in `results.md`. The targets are those of bench/README.md.

use crate::methods::PerMethod;
use serde::{Serialize, Serializer};

/// One line of the table: the figure, one cell per method, the target and whether it is met.
pub struct Row {
    pub figure: String,
    pub cells: PerMethod<String>,
    pub target: String,
    /// `None`: the figure has no target.
    pub met: Option<bool>,
    /// The ratios behind the verdict.
    pub note: String,
}

/// Distribution summary, ms.
#[derive(Clone, Debug, Serialize)]
pub struct Dist {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    /// Nearest-rank percentiles.
    pub fn of(samples: &[f64]) -> Dist {
        assert!(!samples.is_empty());
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Dist {
            n: s.len(),
            min: s[0],
            p50: rank(0.50),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }
}

/// A duration in ms with sensible precision.
pub fn fms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

pub fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

fn ok_or_missed(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "missed"
    }
}

fn plural(n: impl Into<u64>, word: &str) -> String {
    let n = n.into();
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Raw samples in results.json: µs resolution is plenty and keeps the file small.
fn samples_rounded<S: Serializer>(v: &PerMethod<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
    v.map(|samples| {
        samples
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect::<Vec<_>>()
    })
    .serialize(s)
}

/// Figure 1, one queue length: handoff latencies, ms.
#[derive(Serialize)]
pub struct Handoff {
    pub queued_waiters: usize,
    pub rounds: PerMethod<usize>,
    pub ms: PerMethod<Dist>,
    #[serde(serialize_with = "samples_rounded")]
    pub samples_ms: PerMethod<Vec<f64>>,
    pub month_lock_p99_over_builtin_p99: f64,
    pub polling_p50_over_month_lock_p50: f64,
    pub target_met: bool,
}

impl Handoff {
    pub const P99_OVER_BUILTIN_MAX: f64 = 1.1;
    pub const POLLING_P50_SPEEDUP_MIN: f64 = 50.0;

    pub fn new(
        queued_waiters: usize,
        rounds: PerMethod<usize>,
        samples: PerMethod<Vec<f64>>,
    ) -> Self {
        let ms = samples.map(|s| Dist::of(s));
        let p99_ratio = ms.month_lock.p99 / ms.builtin_queued_wait.p99;
        let speedup = ms.polling.p50 / ms.month_lock.p50;
        Handoff {
            queued_waiters,
            rounds,
            target_met: p99_ratio <= Self::P99_OVER_BUILTIN_MAX
                && speedup >= Self::POLLING_P50_SPEEDUP_MIN,
            ms,
            samples_ms: samples,
            month_lock_p99_over_builtin_p99: p99_ratio,
            polling_p50_over_month_lock_p50: speedup,
        }
    }

    pub fn row(&self) -> Row {
        let (p99_ratio, speedup) = (
            self.month_lock_p99_over_builtin_p99,
            self.polling_p50_over_month_lock_p50,
        );
        Row {
            figure: format!(
                "1. Handoff, {}: p50 / p99 / max (ms); {} / {} / {} handoffs",
                plural(self.queued_waiters as u64, "queued waiter"),
                self.ms.month_lock.n,
                self.ms.builtin_queued_wait.n,
                self.ms.polling.n
            ),
            cells: self
                .ms
                .map(|d| format!("{} / {} / {}", fms(d.p50), fms(d.p99), fms(d.max))),
            target: "p99 ≤ 1.1× built-in; p50 ≥ 50× faster than polling".into(),
            met: Some(self.target_met),
            note: format!(
                "p99 {} built-in ({}), p50 {} faster than polling ({})",
                ratio(p99_ratio),
                ok_or_missed(p99_ratio <= Self::P99_OVER_BUILTIN_MAX),
                ratio(speedup),
                ok_or_missed(speedup >= Self::POLLING_P50_SPEEDUP_MIN)
            ),
        }
    }
}

/// Figure 2, one timeout: overshoot (return time minus the timeout), ms.
#[derive(Serialize)]
pub struct Timeout {
    pub timeout_ms: u32,
    pub repetitions: usize,
    pub overshoot_ms: PerMethod<Dist>,
    pub target_met: bool,
}

impl Timeout {
    pub const OVERSHOOT_MAX_MS: f64 = 5.0;

    pub fn new(timeout_ms: u32, repetitions: usize, overshoots: PerMethod<Vec<f64>>) -> Self {
        let overshoot_ms = overshoots.map(|s| Dist::of(s));
        Timeout {
            timeout_ms,
            repetitions,
            target_met: overshoot_ms.month_lock.max <= Self::OVERSHOOT_MAX_MS,
            overshoot_ms,
        }
    }

    pub fn row(&self) -> Row {
        let max = self.overshoot_ms.month_lock.max;
        Row {
            figure: format!(
                "2. Timeout {} ms on a held month: overshoot p50 / max (ms), {} attempts each",
                self.timeout_ms, self.repetitions
            ),
            cells: self
                .overshoot_ms
                .map(|d| format!("{} / {}", fms(d.p50), fms(d.max))),
            target: "overshoot max ≤ 5 ms".into(),
            met: Some(self.target_met),
            note: format!(
                "max {} ms ({} of the limit)",
                fms(max),
                ratio(max / Self::OVERSHOOT_MAX_MS)
            ),
        }
    }
}

/// Figure 3a: ns per try+release pair inside one statement (fastest repetition).
#[derive(Serialize)]
pub struct InServer {
    pub pairs_per_statement: u64,
    pub repetitions: usize,
    pub bare_loop_ns: f64,
    pub ns_per_pair_raw: PerMethod<f64>,
    pub ns_per_pair_net: PerMethod<f64>,
    /// Every repetition, raw ns per pair (the spread); the figures above take the fastest.
    pub bare_loop_runs_ns: Vec<f64>,
    pub raw_runs_ns: PerMethod<Vec<f64>>,
    /// Net of the loop, against the `pg_try_advisory_lock` pair (the polling column): the target.
    pub month_lock_over_try_pair: f64,
    pub month_lock_over_try_pair_raw: f64,
    /// Net of the loop, against the `pg_advisory_lock` pair (the built-in column).
    pub month_lock_over_lock_pair: f64,
    pub target_met: bool,
}

impl InServer {
    pub const OVER_TRY_PAIR_MAX: f64 = 1.10;

    /// From every repetition's raw ns per pair (the bare loop's and each method's).
    pub fn new(pairs: u64, bare_loop_runs_ns: Vec<f64>, raw_runs_ns: PerMethod<Vec<f64>>) -> Self {
        let fastest = |v: &Vec<f64>| v.iter().copied().fold(f64::MAX, f64::min);
        let repetitions = bare_loop_runs_ns.len();
        let bare_loop_ns = fastest(&bare_loop_runs_ns);
        let raw = raw_runs_ns.map(fastest);
        let net = raw.map(|r| r - bare_loop_ns);
        let over_try = net.month_lock / net.polling;
        InServer {
            pairs_per_statement: pairs,
            repetitions,
            bare_loop_ns,
            month_lock_over_try_pair: over_try,
            month_lock_over_try_pair_raw: raw.month_lock / raw.polling,
            month_lock_over_lock_pair: net.month_lock / net.builtin_queued_wait,
            target_met: over_try <= Self::OVER_TRY_PAIR_MAX,
            ns_per_pair_raw: raw,
            ns_per_pair_net: net,
            bare_loop_runs_ns,
            raw_runs_ns,
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "3. In-server ns per try+release pair, net of the bare loop ({:.0} ns): fastest of {} interleaved runs (raw fastest–slowest)",
                self.bare_loop_ns, self.repetitions
            ),
            cells: PerMethod::from_fn(|m| {
                let runs = &self.raw_runs_ns[m];
                let slowest = runs.iter().copied().fold(f64::MIN, f64::max);
                format!(
                    "{:.0} ({:.0}–{slowest:.0})",
                    self.ns_per_pair_net[m], self.ns_per_pair_raw[m]
                )
            }),
            target: "≤ 1.10× the built-in (ns, key) pair pg_try_advisory_lock + pg_advisory_unlock (polling column)".into(),
            met: Some(self.target_met),
            note: format!(
                "{} (raw {}; {} the pg_advisory_lock pair)",
                ratio(self.month_lock_over_try_pair),
                ratio(self.month_lock_over_try_pair_raw),
                ratio(self.month_lock_over_lock_pair)
            ),
        }
    }
}

/// Figure 3b, one client count: pgbench TPS of each method's take+release transaction.
#[derive(Serialize)]
pub struct Pgbench {
    /// pgbench's `-M`: `simple` or `prepared`.
    pub mode: &'static str,
    pub clients: u32,
    pub seconds_per_run: u32,
    pub runs: usize,
    pub scripts: PerMethod<String>,
    pub tps_mean: PerMethod<f64>,
    pub tps_runs: PerMethod<Vec<f64>>,
    pub month_lock_over_try_pair: f64,
    pub target_met: bool,
}

impl Pgbench {
    pub const OVER_TRY_PAIR_MIN: f64 = 0.97;

    pub fn new(
        mode: &'static str,
        clients: u32,
        seconds_per_run: u32,
        scripts: PerMethod<String>,
        tps_runs: PerMethod<Vec<f64>>,
    ) -> Self {
        let tps_mean = tps_runs.map(|r| r.iter().sum::<f64>() / r.len() as f64);
        let over_try = tps_mean.month_lock / tps_mean.polling;
        Pgbench {
            mode,
            clients,
            seconds_per_run,
            runs: tps_runs.month_lock.len(),
            scripts,
            target_met: over_try >= Self::OVER_TRY_PAIR_MIN,
            month_lock_over_try_pair: over_try,
            tps_mean,
            tps_runs,
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "3. pgbench TPS of the pair, {}, {}: mean of {} interleaved {} s runs (min–max)",
                self.mode,
                plural(self.clients, "client"),
                self.runs,
                self.seconds_per_run
            ),
            cells: PerMethod::from_fn(|m| {
                let runs = &self.tps_runs[m];
                let lo = runs.iter().copied().fold(f64::MAX, f64::min);
                let hi = runs.iter().copied().fold(f64::MIN, f64::max);
                format!("{:.0} ({lo:.0}–{hi:.0})", self.tps_mean[m])
            }),
            target: "≥ 0.97× the built-in (ns, key) pair (polling column)".into(),
            met: Some(self.target_met),
            note: ratio(self.month_lock_over_try_pair),
        }
    }
}

/// Figure 4, one method: what its waiters cost while they wait.
#[derive(Serialize)]
pub struct WaitingCost {
    /// Queries the waiters sent (counted client-side).
    pub queries: u64,
    /// Sum over the waiters' backends of utime+stime, ms (10 ms ticks).
    #[serde(rename = "cpu_ms_utime_stime")]
    pub cpu_ms_stat: f64,
    /// Sum over the waiters' backends of on-CPU time from schedstat, ms (finer grained).
    #[serde(rename = "cpu_ms_schedstat")]
    pub cpu_ms_sched: Option<f64>,
    pub wall_s: f64,
}

impl WaitingCost {
    /// The CPU figure the table uses: schedstat when the kernel keeps it.
    pub fn cpu_ms(&self) -> f64 {
        self.cpu_ms_sched.unwrap_or(self.cpu_ms_stat)
    }
}

/// Figure 4: `waiters` connections wait `seconds` for a month that stays held.
#[derive(Serialize)]
pub struct Waiting {
    pub waiters: usize,
    pub seconds: u32,
    pub by_method: PerMethod<WaitingCost>,
    pub month_lock_queries_per_waiter: f64,
    /// month_lock waiters' CPU over the wait, as a share of one core.
    pub month_lock_share_of_one_core: f64,
    pub target_met: bool,
}

impl Waiting {
    /// "Negligible CPU": all waiters together below 1% of one core.
    pub const CORE_SHARE_MAX: f64 = 0.01;

    pub fn new(waiters: usize, seconds: u32, by_method: PerMethod<WaitingCost>) -> Self {
        let ml = &by_method.month_lock;
        let share = ml.cpu_ms() / (ml.wall_s * 1000.0);
        Waiting {
            waiters,
            seconds,
            month_lock_queries_per_waiter: ml.queries as f64 / waiters as f64,
            month_lock_share_of_one_core: share,
            // One call per waiter (the wait itself) and below 1% of one core for all of them.
            target_met: ml.queries <= waiters as u64 && share < Self::CORE_SHARE_MAX,
            by_method,
        }
    }

    pub fn row(&self) -> Row {
        let (ml, polling) = (&self.by_method.month_lock, &self.by_method.polling);
        Row {
            figure: format!(
                "4. {} waiters for {} s, 1 run: queries sent / CPU of their backends, ms (schedstat; utime+stime in 10 ms ticks)",
                self.waiters, self.seconds
            ),
            cells: self.by_method.map(|w| {
                format!("{} / {:.1} (stat {:.0})", w.queries, w.cpu_ms(), w.cpu_ms_stat)
            }),
            target: "≈ 0 queries (one call per waiter), negligible CPU (< 1% of one core)".into(),
            met: Some(self.target_met),
            note: format!(
                "{} quer{} per waiter, {:.3}% of one core; polling sends {} and burns {}",
                self.month_lock_queries_per_waiter,
                if ml.queries == self.waiters as u64 { "y" } else { "ies" },
                self.month_lock_share_of_one_core * 100.0,
                ratio(polling.queries as f64 / ml.queries.max(1) as f64),
                ratio(polling.cpu_ms() / ml.cpu_ms().max(0.001))
            ),
        }
    }
}

/// Figure 5, one method: cycles completed under contention.
#[derive(Serialize)]
pub struct Contention {
    pub cycles_per_s: f64,
    pub cycles_per_worker_min: u64,
    pub cycles_per_worker_max: u64,
    pub cycles_per_worker: Vec<u64>,
}

impl Contention {
    pub fn new(cycles_per_worker: Vec<u64>, secs: f64) -> Self {
        Contention {
            cycles_per_s: cycles_per_worker.iter().sum::<u64>() as f64 / secs,
            cycles_per_worker_min: cycles_per_worker.iter().copied().min().unwrap_or(0),
            cycles_per_worker_max: cycles_per_worker.iter().copied().max().unwrap_or(0),
            cycles_per_worker,
        }
    }
}

/// Figure 5: `workers` connections over 12 months for `seconds`; no target.
#[derive(Serialize)]
pub struct Throughput {
    pub workers: usize,
    pub months: u32,
    pub seconds: u32,
    pub by_method: PerMethod<Contention>,
    pub month_lock_over_builtin: f64,
    pub month_lock_over_polling: f64,
}

impl Throughput {
    pub fn new(
        workers: usize,
        months: u32,
        seconds: u32,
        by_method: PerMethod<Contention>,
    ) -> Self {
        let rate = by_method.map(|c| c.cycles_per_s);
        Throughput {
            workers,
            months,
            seconds,
            month_lock_over_builtin: rate.month_lock / rate.builtin_queued_wait,
            month_lock_over_polling: rate.month_lock / rate.polling,
            by_method,
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "5. {} workers over {} months, lock → 1 ms → release, 1 run of {} s: cycles/s (min–max cycles per worker)",
                self.workers, self.months, self.seconds
            ),
            cells: self.by_method.map(|c| {
                format!(
                    "{:.0} ({}–{})",
                    c.cycles_per_s, c.cycles_per_worker_min, c.cycles_per_worker_max
                )
            }),
            target: "none set (for comparison)".into(),
            met: None,
            note: format!(
                "{} built-in, {} polling",
                ratio(self.month_lock_over_builtin),
                ratio(self.month_lock_over_polling)
            ),
        }
    }
}

/// A time in µs with sensible precision.
pub fn fus(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// `median (min–max)` of a spread of runs, in µs.
pub fn median_range_us(d: &Dist) -> String {
    format!("{} ({}–{})", fus(d.p50), fus(d.min), fus(d.max))
}

/// The cell of the polling column in the figures that compare month_lock with the built-in only.
pub const NOT_MEASURED: &str = "—";

/// Figure 6, one method of one queue length: every run's time per handoff and the waiters'
/// backend CPU per handoff, µs.
#[derive(Serialize)]
pub struct ChainMethod {
    pub per_handoff_us: Dist,
    pub cpu_per_handoff_us: Option<Dist>,
    pub runs_per_handoff_us: Vec<f64>,
    pub runs_cpu_per_handoff_us: Vec<f64>,
}

impl ChainMethod {
    pub fn new(runs_per_handoff_us: Vec<f64>, runs_cpu_per_handoff_us: Vec<f64>) -> Self {
        ChainMethod {
            per_handoff_us: Dist::of(&runs_per_handoff_us),
            cpu_per_handoff_us: (!runs_cpu_per_handoff_us.is_empty())
                .then(|| Dist::of(&runs_cpu_per_handoff_us)),
            runs_per_handoff_us,
            runs_cpu_per_handoff_us,
        }
    }
}

/// Figure 6, one queue length: a chain of `waiters` handoffs (month_lock(y, m) against
/// pg_advisory_lock(ns, key)); the verdict uses the medians of the runs.
#[derive(Serialize)]
pub struct Chain {
    pub waiters: usize,
    pub runs: usize,
    pub month_lock: ChainMethod,
    pub builtin: ChainMethod,
    pub month_lock_over_builtin: f64,
    pub month_lock_cpu_over_builtin: Option<f64>,
    /// `None` below [`Chain::TARGET_FROM_WAITERS`]: those lengths are for comparison.
    pub target_met: Option<bool>,
}

impl Chain {
    pub const OVER_BUILTIN_MAX: f64 = 1.05;
    pub const TARGET_FROM_WAITERS: usize = 100;

    pub fn new(waiters: usize, month_lock: ChainMethod, builtin: ChainMethod) -> Self {
        let over = month_lock.per_handoff_us.p50 / builtin.per_handoff_us.p50;
        let cpu_over = match (&month_lock.cpu_per_handoff_us, &builtin.cpu_per_handoff_us) {
            (Some(a), Some(b)) => Some(a.p50 / b.p50),
            _ => None,
        };
        let met =
            over <= Self::OVER_BUILTIN_MAX && cpu_over.is_none_or(|c| c <= Self::OVER_BUILTIN_MAX);
        Chain {
            waiters,
            runs: month_lock.runs_per_handoff_us.len(),
            target_met: (waiters >= Self::TARGET_FROM_WAITERS).then_some(met),
            month_lock_over_builtin: over,
            month_lock_cpu_over_builtin: cpu_over,
            month_lock,
            builtin,
        }
    }

    pub fn row(&self) -> Row {
        let cell = |c: &ChainMethod| {
            format!(
                "{} / CPU {}",
                median_range_us(&c.per_handoff_us),
                c.cpu_per_handoff_us
                    .as_ref()
                    .map_or("n/a".into(), median_range_us)
            )
        };
        let cpu = self.month_lock_cpu_over_builtin.map_or("n/a".into(), ratio);
        Row {
            figure: format!(
                "6. Handoff chain, {} queued on one month, each releasing on its grant: µs per handoff / waiters' backend CPU µs per handoff, median (min–max) of {}",
                plural(self.waiters as u64, "session"),
                plural(self.runs as u64, "interleaved run")
            ),
            cells: PerMethod {
                month_lock: cell(&self.month_lock),
                builtin_queued_wait: cell(&self.builtin),
                polling: NOT_MEASURED.into(),
            },
            target: if self.waiters >= Self::TARGET_FROM_WAITERS {
                "per handoff and waiter CPU ≤ 1.05× built-in".into()
            } else {
                "none at this length (for comparison)".into()
            },
            met: self.target_met,
            note: format!(
                "{} built-in per handoff, CPU {cpu}",
                ratio(self.month_lock_over_builtin)
            ),
        }
    }
}

/// Figure 7, one lock-table size: `month_is_locked(y, m)` against the same question asked of
/// `pg_locks`, µs per call (one round trip each). Target: flat in the lock table's size, within
/// 2× of the first (smallest) size.
#[derive(Serialize)]
pub struct Lookup {
    pub other_advisory_locks: u64,
    pub calls: usize,
    pub month_is_locked_us: Dist,
    pub pg_locks_us: Dist,
    pub month_lock_over_pg_locks: f64,
    /// Median over the median at the first size (`None` for the first size itself).
    pub over_smallest_table: Option<f64>,
}

impl Lookup {
    pub fn new(
        other: u64,
        month_is_locked: &[f64],
        pg_locks: &[f64],
        smallest: Option<f64>,
    ) -> Self {
        let (a, b) = (Dist::of(month_is_locked), Dist::of(pg_locks));
        Lookup {
            other_advisory_locks: other,
            calls: a.n,
            month_lock_over_pg_locks: a.p50 / b.p50,
            over_smallest_table: smallest.map(|s| a.p50 / s),
            month_is_locked_us: a,
            pg_locks_us: b,
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "7. Is the month locked? with {} other advisory locks held by another session: µs per call (one round trip), median (min–max) of {}; built-in: EXISTS over pg_locks",
                self.other_advisory_locks,
                plural(self.calls as u64, "interleaved call")
            ),
            cells: PerMethod {
                month_lock: median_range_us(&self.month_is_locked_us),
                builtin_queued_wait: median_range_us(&self.pg_locks_us),
                polling: NOT_MEASURED.into(),
            },
            target: "flat: ≤ 2× the smallest table's".into(),
            met: self.over_smallest_table.map(|r| r <= 2.0),
            note: match self.over_smallest_table {
                Some(r) => format!(
                    "{} the smallest table's; {} the pg_locks probe",
                    ratio(r),
                    ratio(self.month_lock_over_pg_locks)
                ),
                None => format!("{} the pg_locks probe", ratio(self.month_lock_over_pg_locks)),
            },
        }
    }
}

/// Figure 8, one number of months held: `month_lock_release_all()` against
/// `pg_advisory_unlock_all()`, µs per call (one round trip each).
#[derive(Serialize)]
pub struct ReleaseAll {
    pub months_held: u64,
    pub runs: usize,
    pub month_lock_release_all_us: Dist,
    pub pg_advisory_unlock_all_us: Dist,
    pub month_lock_over_builtin: f64,
}

impl ReleaseAll {
    pub fn new(months_held: u64, month_lock: &[f64], builtin: &[f64]) -> Self {
        let (a, b) = (Dist::of(month_lock), Dist::of(builtin));
        ReleaseAll {
            months_held,
            runs: a.n,
            month_lock_over_builtin: a.p50 / b.p50,
            month_lock_release_all_us: a,
            pg_advisory_unlock_all_us: b,
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "8. Release all, {} held: µs per call (one round trip), median (min–max) of {}; built-in: pg_advisory_unlock_all()",
                plural(self.months_held, "month"),
                plural(self.runs as u64, "interleaved run")
            ),
            cells: PerMethod {
                month_lock: median_range_us(&self.month_lock_release_all_us),
                builtin_queued_wait: median_range_us(&self.pg_advisory_unlock_all_us),
                polling: NOT_MEASURED.into(),
            },
            target: "none set (O(months held), for comparison)".into(),
            met: None,
            note: format!("{} built-in", ratio(self.month_lock_over_builtin)),
        }
    }
}

/// Figure 9, one run of one backfill method.
#[derive(Serialize)]
pub struct BackfillRun {
    pub wall_ms: f64,
    pub round_trips: u64,
    pub months_per_worker: Vec<u64>,
    /// Every month worked on by exactly one worker, and marked done.
    pub exactly_once: bool,
}

/// Figure 9, one backfill method over its runs.
#[derive(Serialize)]
pub struct BackfillMethod {
    pub label: &'static str,
    pub how: &'static str,
    pub wall_ms: Dist,
    pub wall_over_ideal: f64,
    pub round_trips_per_month: f64,
    pub months_per_worker_min: u64,
    pub months_per_worker_max: u64,
    pub exactly_once: bool,
    pub runs: Vec<BackfillRun>,
}

impl BackfillMethod {
    pub fn new(
        label: &'static str,
        how: &'static str,
        months: u64,
        ideal_ms: f64,
        runs: Vec<BackfillRun>,
    ) -> Self {
        let walls: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
        let wall_ms = Dist::of(&walls);
        let rts: u64 = runs.iter().map(|r| r.round_trips).sum();
        let per_worker = || {
            runs.iter()
                .flat_map(|r| r.months_per_worker.iter().copied())
        };
        BackfillMethod {
            label,
            how,
            wall_over_ideal: wall_ms.p50 / ideal_ms,
            round_trips_per_month: rts as f64 / (months * runs.len() as u64) as f64,
            months_per_worker_min: per_worker().min().unwrap_or(0),
            months_per_worker_max: per_worker().max().unwrap_or(0),
            exactly_once: runs.iter().all(|r| r.exactly_once),
            wall_ms,
            runs,
        }
    }
}

/// Figure 9: a backfill of `months` months by `workers` workers with `work_ms` of work per
/// month, three ways of finding the next month; its own table (the methods differ).
#[derive(Serialize)]
pub struct Backfill {
    pub months: u64,
    pub workers: usize,
    pub work_ms: u64,
    /// months × work / workers.
    pub ideal_ms: f64,
    pub methods: Vec<BackfillMethod>,
}

impl Backfill {
    pub fn all_exactly_once(&self) -> bool {
        self.methods.iter().all(|m| m.exactly_once)
    }

    /// The markdown table of results.md.
    pub fn table(&self) -> String {
        let runs = self.methods.first().map_or(0, |m| m.runs.len());
        let mut t = format!(
            "Backfill: {} months, {} workers, {} ms of work per month (ideal {} ms = total work / workers), {} interleaved {} of each method; wall time median (min–max).\n\n\
             | Method | How a worker finds its next month | Wall ms | vs ideal | Round trips per month | Months per worker (min–max over runs) | Each month exactly once |\n\
             |---|---|---|---|---|---|---|\n",
            self.months,
            self.workers,
            self.work_ms,
            self.ideal_ms,
            runs,
            if runs == 1 { "run" } else { "runs" }
        );
        for m in &self.methods {
            t.push_str(&format!(
                "| {} | {} | {} ({}–{}) | {} | {:.1} | {}–{} | {} |\n",
                m.label,
                m.how,
                fms(m.wall_ms.p50),
                fms(m.wall_ms.min),
                fms(m.wall_ms.max),
                ratio(m.wall_over_ideal),
                m.round_trips_per_month,
                m.months_per_worker_min,
                m.months_per_worker_max,
                if m.exactly_once { "yes" } else { "**NO**" }
            ));
        }
        t
    }
}

/// Every figure of a run, in the order of the table.
#[derive(Serialize)]
pub struct Figures {
    pub handoff: Vec<Handoff>,
    pub timeout: Vec<Timeout>,
    pub in_server: InServer,
    pub pgbench: Vec<Pgbench>,
    pub waiting_cost: Waiting,
    pub throughput: Throughput,
    pub handoff_chain: Vec<Chain>,
    pub lookup: Vec<Lookup>,
    pub release_all: Vec<ReleaseAll>,
    pub backfill: Backfill,
    pub token_cost: crate::token_cost::TokenCost,
}

impl Figures {
    /// The table's rows, one per figure.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self.handoff.iter().map(Handoff::row).collect();
        rows.extend(self.timeout.iter().map(Timeout::row));
        rows.push(self.in_server.row());
        rows.extend(self.pgbench.iter().map(Pgbench::row));
        rows.push(self.waiting_cost.row());
        rows.push(self.throughput.row());
        rows.extend(self.handoff_chain.iter().map(Chain::row));
        rows.extend(self.lookup.iter().map(Lookup::row));
        rows.extend(self.release_all.iter().map(ReleaseAll::row));
        rows.push(self.token_cost.row());
        rows
    }

    /// Every target of the table met, and every backfill did every month exactly once.
    pub fn all_targets_met(&self) -> bool {
        self.rows().iter().all(|r| r.met != Some(false)) && self.backfill.all_exactly_once()
    }
}
