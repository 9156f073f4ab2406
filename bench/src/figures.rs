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
                "1. Handoff, {}: p50 / p99 / max (ms)",
                plural(self.queued_waiters as u64, "queued waiter")
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
                "2. Timeout {} ms on a held month: overshoot p50 / max (ms)",
                self.timeout_ms
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
    /// Net of the loop, against the `pg_try_advisory_lock` pair (the polling column): the target.
    pub month_lock_over_try_pair: f64,
    pub month_lock_over_try_pair_raw: f64,
    /// Net of the loop, against the `pg_advisory_lock` pair (the built-in column).
    pub month_lock_over_lock_pair: f64,
    pub target_met: bool,
}

impl InServer {
    pub const OVER_TRY_PAIR_MAX: f64 = 1.5;

    pub fn new(pairs: u64, repetitions: usize, bare_loop_ns: f64, raw: PerMethod<f64>) -> Self {
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
        }
    }

    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "3. In-server ns per try+release pair, net of the bare loop ({:.0} ns) (raw)",
                self.bare_loop_ns
            ),
            cells: PerMethod::from_fn(|m| {
                format!(
                    "{:.0} ({:.0})",
                    self.ns_per_pair_net[m], self.ns_per_pair_raw[m]
                )
            }),
            target: "≤ 1.5× the pg_try_advisory_lock pair (polling column)".into(),
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
    pub const OVER_TRY_PAIR_MIN: f64 = 0.95;

    pub fn new(
        clients: u32,
        seconds_per_run: u32,
        scripts: PerMethod<String>,
        tps_runs: PerMethod<Vec<f64>>,
    ) -> Self {
        let tps_mean = tps_runs.map(|r| r.iter().sum::<f64>() / r.len() as f64);
        let over_try = tps_mean.month_lock / tps_mean.polling;
        Pgbench {
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
                "3. pgbench TPS of the pair, {}: mean of {} interleaved {} s runs (min–max)",
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
            target: "≥ 0.95× the pg_try_advisory_lock pair (polling column)".into(),
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
                "4. {} waiters for {} s: queries sent / CPU of their backends, ms (schedstat; utime+stime in 10 ms ticks)",
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
                "5. {} workers over {} months, lock → 1 ms → release, {} s: cycles/s (min–max cycles per worker)",
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

/// Every figure of a run, in the order of the table.
#[derive(Serialize)]
pub struct Figures {
    pub handoff: Vec<Handoff>,
    pub timeout: Vec<Timeout>,
    pub in_server: InServer,
    pub pgbench: Vec<Pgbench>,
    pub waiting_cost: Waiting,
    pub throughput: Throughput,
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
        rows
    }

    pub fn all_targets_met(&self) -> bool {
        self.rows().iter().all(|r| r.met != Some(false))
    }
}
