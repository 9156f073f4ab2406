//! `make bench`: month_lock against PostgreSQL's own queued wait and the polling loop it
//! replaces, on a throwaway cluster on loopback. Writes bench/results.md, bench/results.json
//! and bench/handoff_latency.png, and prints the table. See bench/README.md.
//!
//! `MONTH_LOCK_BENCH_QUICK=1` shortens every run (a smoke test of the benchmark itself; its
//! figures mean little). `MONTH_LOCK_BENCH_OUT=dir` writes the outputs elsewhere.

#![allow(clippy::type_complexity)]

mod chart;
mod experiments;
mod methods;

use experiments::{Throughput, WaitingCost};
use methods::Method;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// How much of everything to do.
struct Plan {
    /// (queued waiters, rounds of month_lock and built-in, rounds of polling); each round is
    /// `waiters` handoffs. Polling needs fewer: only its median enters a target, and its rounds
    /// take 100 times longer.
    handoff: Vec<(usize, usize, usize)>,
    /// (timeout ms, repetitions).
    timeouts: Vec<(u32, usize)>,
    in_server_pairs: u64,
    in_server_reps: usize,
    pgbench_clients: Vec<u32>,
    pgbench_secs: u32,
    pgbench_reps: usize,
    waiters: usize,
    wait_secs: u32,
    workers: usize,
    throughput_secs: u32,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            handoff: vec![(1, 300, 100), (8, 40, 12), (64, 6, 3)],
            timeouts: vec![(50, 20), (200, 10), (1000, 5)],
            in_server_pairs: 200_000,
            in_server_reps: 7,
            pgbench_clients: vec![1, 16],
            pgbench_secs: 2,
            pgbench_reps: 5,
            waiters: 64,
            wait_secs: 10,
            workers: 64,
            throughput_secs: 10,
        }
    }

    fn quick() -> Plan {
        Plan {
            handoff: vec![(1, 15, 10), (8, 2, 2), (64, 1, 1)],
            timeouts: vec![(50, 3), (200, 2), (1000, 1)],
            in_server_pairs: 50_000,
            in_server_reps: 3,
            pgbench_clients: vec![1, 16],
            pgbench_secs: 1,
            pgbench_reps: 1,
            waiters: 64,
            wait_secs: 2,
            workers: 64,
            throughput_secs: 2,
        }
    }
}

/// Distribution summary, ms.
#[derive(Clone, Debug, Serialize)]
struct Dist {
    n: usize,
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// Nearest-rank percentiles.
fn dist(samples: &[f64]) -> Dist {
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

/// A duration in ms with sensible precision.
fn fms(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{v:.3}")
    } else if v.abs() < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**NO**"
    }
}

/// One line of the table.
struct Row {
    figure: String,
    cells: BTreeMap<Method, String>,
    target: String,
    met: String,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let quick = std::env::var("MONTH_LOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let plan = if quick { Plan::quick() } else { Plan::full() };
    let out_dir = std::env::var_os("MONTH_LOCK_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // Load the font first: a missing font should fail in the first second, not after minutes.
    chart::load_font().unwrap_or_else(|e| panic!("{e}"));

    eprintln!(
        "month_lock bench: starting a throwaway cluster{}",
        if quick { " (quick mode)" } else { "" }
    );
    let server = month_lock_tests::start_cluster(&[("max_connections", "300")]).await;
    let db = server.fresh_db("bench").await;
    let admin = db.connect().await;
    let pg_version: String = admin
        .query_one("SELECT version()", &[])
        .await
        .unwrap()
        .get(0);
    let ext_version: String = admin
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let classid: i64 = admin
        .query_one("SELECT month_lock_key_classid()::bigint", &[])
        .await
        .expect("month_lock_key_classid()")
        .get(0);
    assert_eq!(
        classid,
        methods::NS,
        "the benchmark expects the default month_lock.namespace"
    );
    let work_dir = std::env::temp_dir().join(format!("month_lock_bench.{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).expect("create work dir");

    // 1. Handoff latency: the methods' rounds interleaved.
    let mut handoff: Vec<(usize, BTreeMap<Method, usize>, Vec<(Method, Vec<f64>)>)> = Vec::new();
    for (i, &(waiters, queued_rounds, polling_rounds)) in plan.handoff.iter().enumerate() {
        let rounds_of = |m: Method| {
            if m == Method::Polling {
                polling_rounds
            } else {
                queued_rounds
            }
        };
        let rounds: BTreeMap<Method, usize> =
            Method::ALL.iter().map(|m| (*m, rounds_of(*m))).collect();
        let t = Instant::now();
        let mut rigs = Vec::new();
        for (j, method) in Method::ALL.into_iter().enumerate() {
            let seed = 1000 + 10 * i as u64 + j as u64;
            rigs.push(experiments::HandoffRig::new(&db, method, 3 + j as i32, waiters, seed).await);
        }
        let mut per_method: Vec<(Method, Vec<f64>)> =
            Method::ALL.iter().map(|m| (*m, Vec::new())).collect();
        for r in 0..queued_rounds.max(polling_rounds) {
            for (rig, (method, samples)) in rigs.iter_mut().zip(per_method.iter_mut()) {
                if r < rounds_of(*method) {
                    samples.extend(rig.round().await);
                }
            }
        }
        drop(rigs);
        for (method, samples) in &per_method {
            let d = dist(samples);
            eprintln!(
                "handoff {waiters:>2} waiters  {:<22} p50 {} p99 {} max {} ms  ({} handoffs)",
                method.label(),
                fms(d.p50),
                fms(d.p99),
                fms(d.max),
                d.n
            );
        }
        eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
        handoff.push((waiters, rounds, per_method));
    }

    // 2. Timeout precision: the methods' attempts interleaved.
    let mut timeouts: Vec<(u32, usize, Vec<(Method, Vec<f64>)>)> = Vec::new();
    {
        let mut rigs = Vec::new();
        for (j, method) in Method::ALL.into_iter().enumerate() {
            rigs.push(experiments::TimeoutRig::new(&db, method, 1 + j as i32).await);
        }
        for &(timeout_ms, reps) in &plan.timeouts {
            let mut per_method: Vec<(Method, Vec<f64>)> =
                Method::ALL.iter().map(|m| (*m, Vec::new())).collect();
            for _ in 0..reps {
                for (rig, (_, samples)) in rigs.iter().zip(per_method.iter_mut()) {
                    samples.push(rig.attempt(timeout_ms).await);
                }
            }
            for (method, samples) in &per_method {
                let d = dist(samples);
                eprintln!(
                    "timeout {timeout_ms:>4} ms  {:<22} overshoot p50 {} max {} ms",
                    method.label(),
                    fms(d.p50),
                    fms(d.max)
                );
            }
            timeouts.push((timeout_ms, reps, per_method));
        }
        for rig in rigs {
            rig.finish().await;
        }
    }

    // 3a. In-server cost.
    let in_server = experiments::in_server(&db, plan.in_server_pairs, plan.in_server_reps).await;
    let loop_ns = in_server.iter().find(|(m, _)| m.is_none()).unwrap().1;
    let raw_ns = |m: Method| in_server.iter().find(|(x, _)| *x == Some(m)).unwrap().1;
    let net_ns = |m: Method| raw_ns(m) - loop_ns;
    for method in Method::ALL {
        eprintln!(
            "in-server {:<22} {:.0} ns per pair ({:.0} ns raw, loop {:.0} ns)",
            method.label(),
            net_ns(method),
            raw_ns(method),
            loop_ns
        );
    }

    // 3b. pgbench.
    let mut pgbench: Vec<(u32, Vec<(&'static str, f64, Vec<f64>)>)> = Vec::new();
    for &clients in &plan.pgbench_clients {
        let db = db.clone();
        let dir = work_dir.clone();
        let (secs, reps) = (plan.pgbench_secs, plan.pgbench_reps);
        let r = tokio::task::spawn_blocking(move || {
            experiments::pgbench(&db, clients, secs, reps, &dir)
        })
        .await
        .expect("pgbench task");
        for (name, tps, _) in &r {
            eprintln!("pgbench {clients:>2} clients  {name:<27} {tps:.0} TPS");
        }
        pgbench.push((clients, r));
    }

    // 4. Cost of waiting.
    let mut waiting: Vec<(Method, WaitingCost)> = Vec::new();
    for method in Method::ALL {
        let c = experiments::waiting_cost(&db, method, plan.waiters, plan.wait_secs).await;
        eprintln!(
            "waiting {} x {} s  {:<22} {} queries, CPU {:.1} ms (stat) {} (schedstat)",
            plan.waiters,
            plan.wait_secs,
            method.label(),
            c.queries,
            c.cpu_ms_stat,
            c.cpu_ms_sched
                .map_or("n/a".into(), |v| format!("{v:.1} ms"))
        );
        waiting.push((method, c));
    }

    // 5. Throughput under contention.
    let mut throughput: Vec<(Method, Throughput)> = Vec::new();
    for method in Method::ALL {
        let t = experiments::throughput(&db, method, plan.workers, plan.throughput_secs, 77).await;
        let total: u64 = t.per_worker.iter().sum();
        eprintln!(
            "throughput {} workers  {:<22} {:.0} cycles/s, per worker {}..{}",
            plan.workers,
            method.label(),
            total as f64 / t.secs,
            t.per_worker.iter().min().unwrap(),
            t.per_worker.iter().max().unwrap()
        );
        throughput.push((method, t));
    }
    drop(admin);
    let _ = std::fs::remove_dir_all(&work_dir);

    // ---- the table -------------------------------------------------------------------------
    let mut rows: Vec<Row> = Vec::new();
    let mut all_met = true;
    let mut json_handoff = Vec::new();
    for (waiters, rounds, per_method) in &handoff {
        let d: BTreeMap<Method, Dist> = per_method.iter().map(|(m, s)| (*m, dist(s))).collect();
        let p99_ratio = d[&Method::MonthLock].p99 / d[&Method::Queued].p99;
        let speedup = d[&Method::Polling].p50 / d[&Method::MonthLock].p50;
        let ok = p99_ratio <= 1.1 && speedup >= 50.0;
        all_met &= ok;
        rows.push(Row {
            figure: format!(
                "1. Handoff, {waiters} queued waiter{}: p50 / p99 / max (ms)",
                if *waiters == 1 { "" } else { "s" }
            ),
            cells: d
                .iter()
                .map(|(m, d)| {
                    (
                        *m,
                        format!("{} / {} / {}", fms(d.p50), fms(d.p99), fms(d.max)),
                    )
                })
                .collect(),
            target: "p99 ≤ 1.1× built-in; p50 ≥ 50× faster than polling".into(),
            met: format!(
                "{}: p99 {} built-in ({}), p50 {} faster than polling ({})",
                verdict(ok),
                ratio(p99_ratio),
                if p99_ratio <= 1.1 { "ok" } else { "missed" },
                ratio(speedup),
                if speedup >= 50.0 { "ok" } else { "missed" }
            ),
        });
        json_handoff.push(json!({
            "queued_waiters": waiters,
            "rounds": rounds.iter().map(|(m, r)| (m.key(), *r)).collect::<BTreeMap<_, _>>(),
            "ms": d.iter().map(|(m, d)| (m.key(), d.clone())).collect::<BTreeMap<_, _>>(),
            "samples_ms": per_method.iter().map(|(m, s)| (m.key(), s.iter().map(|v| round3(*v)).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
            "month_lock_p99_over_builtin_p99": p99_ratio,
            "polling_p50_over_month_lock_p50": speedup,
            "target_met": ok,
        }));
    }
    let mut json_timeouts = Vec::new();
    for (timeout_ms, reps, per_method) in &timeouts {
        let d: BTreeMap<Method, Dist> = per_method.iter().map(|(m, s)| (*m, dist(s))).collect();
        let max = d[&Method::MonthLock].max;
        let ok = max <= 5.0;
        all_met &= ok;
        rows.push(Row {
            figure: format!("2. Timeout {timeout_ms} ms on a held month: overshoot p50 / max (ms)"),
            cells: d
                .iter()
                .map(|(m, d)| (*m, format!("{} / {}", fms(d.p50), fms(d.max))))
                .collect(),
            target: "overshoot max ≤ 5 ms".into(),
            met: format!(
                "{}: max {} ms ({} of the limit)",
                verdict(ok),
                fms(max),
                ratio(max / 5.0)
            ),
        });
        json_timeouts.push(json!({
            "timeout_ms": timeout_ms,
            "repetitions": reps,
            "overshoot_ms": d.iter().map(|(m, d)| (m.key(), d.clone())).collect::<BTreeMap<_, _>>(),
            "target_met": ok,
        }));
    }
    let pair_ratio = net_ns(Method::MonthLock) / net_ns(Method::Polling);
    let pair_ok = pair_ratio <= 1.5;
    all_met &= pair_ok;
    rows.push(Row {
        figure: format!(
            "3. In-server ns per try+release pair, net of the bare loop ({loop_ns:.0} ns) (raw)"
        ),
        cells: Method::ALL
            .into_iter()
            .map(|m| (m, format!("{:.0} ({:.0})", net_ns(m), raw_ns(m))))
            .collect(),
        target: "≤ 1.5× the pg_try_advisory_lock pair (polling column)".into(),
        met: format!(
            "{}: {} (raw {}; {} the pg_advisory_lock pair)",
            verdict(pair_ok),
            ratio(pair_ratio),
            ratio(raw_ns(Method::MonthLock) / raw_ns(Method::Polling)),
            ratio(net_ns(Method::MonthLock) / net_ns(Method::Queued))
        ),
    });
    let mut json_pgbench = Vec::new();
    for (clients, r) in &pgbench {
        let get = |name: &str| r.iter().find(|x| x.0 == name).unwrap();
        let cell = |name: &str| {
            let (_, mean, runs) = get(name);
            let lo = runs.iter().copied().fold(f64::MAX, f64::min);
            let hi = runs.iter().copied().fold(f64::MIN, f64::max);
            format!("{mean:.0} ({lo:.0}–{hi:.0})")
        };
        let try_pair = get(Method::Polling.key()).1;
        let rt = get(Method::MonthLock.key()).1 / try_pair;
        let ok = rt >= 0.95;
        all_met &= ok;
        let cells: BTreeMap<Method, String> =
            Method::ALL.iter().map(|m| (*m, cell(m.key()))).collect();
        rows.push(Row {
            figure: format!(
                "3. pgbench TPS of the pair, {clients} client{}: mean of {} interleaved {} s runs (min–max)",
                if *clients == 1 { "" } else { "s" },
                plan.pgbench_reps,
                plan.pgbench_secs
            ),
            cells,
            target: "≥ 0.95× the pg_try_advisory_lock pair (polling column)".into(),
            met: format!("{}: {}", verdict(ok), ratio(rt)),
        });
        json_pgbench.push(json!({
            "clients": clients,
            "seconds_per_run": plan.pgbench_secs,
            "runs": plan.pgbench_reps,
            "scripts": experiments::pgbench_scripts().into_iter().collect::<BTreeMap<_, _>>(),
            "tps_mean": r.iter().map(|(n, t, _)| (*n, *t)).collect::<BTreeMap<_, _>>(),
            "tps_runs": r.iter().map(|(n, _, runs)| (*n, runs.clone())).collect::<BTreeMap<_, _>>(),
            "month_lock_over_try_pair": rt,
            "target_met": ok,
        }));
    }
    {
        let c = |m: Method| &waiting.iter().find(|x| x.0 == m).unwrap().1;
        let cpu = |w: &WaitingCost| w.cpu_ms_sched.unwrap_or(w.cpu_ms_stat);
        let ml = c(Method::MonthLock);
        let core_share = cpu(ml) / (ml.wall_s * 1000.0);
        // One call per waiter (the wait itself) and below 1% of one core for all of them.
        let ok = ml.queries <= plan.waiters as u64 && core_share < 0.01;
        all_met &= ok;
        rows.push(Row {
            figure: format!(
                "4. {} waiters for {} s: queries sent / CPU of their backends, ms (schedstat; utime+stime in 10 ms ticks)",
                plan.waiters, plan.wait_secs
            ),
            cells: waiting
                .iter()
                .map(|(m, w)| (*m, format!("{} / {:.1} (stat {:.0})", w.queries, cpu(w), w.cpu_ms_stat)))
                .collect(),
            target: "≈ 0 queries (one call per waiter), negligible CPU (< 1% of one core)".into(),
            met: format!(
                "{}: {} quer{} per waiter, {:.3}% of one core; polling sends {} and burns {}",
                verdict(ok),
                ml.queries as f64 / plan.waiters as f64,
                if ml.queries == plan.waiters as u64 { "y" } else { "ies" },
                core_share * 100.0,
                ratio(c(Method::Polling).queries as f64 / ml.queries.max(1) as f64),
                ratio(cpu(c(Method::Polling)) / cpu(ml).max(0.001))
            ),
        });
    }
    let json_waiting: BTreeMap<_, _> = waiting
        .iter()
        .map(|(m, w)| {
            (
                m.key(),
                json!({
                    "queries": w.queries,
                    "cpu_ms_utime_stime": w.cpu_ms_stat,
                    "cpu_ms_schedstat": w.cpu_ms_sched,
                    "wall_s": w.wall_s,
                }),
            )
        })
        .collect();
    {
        let rate = |t: &Throughput| t.per_worker.iter().sum::<u64>() as f64 / t.secs;
        let get = |m: Method| &throughput.iter().find(|x| x.0 == m).unwrap().1;
        rows.push(Row {
            figure: format!(
                "5. {} workers over 12 months, lock → 1 ms → release, {} s: cycles/s (min–max cycles per worker)",
                plan.workers, plan.throughput_secs
            ),
            cells: throughput
                .iter()
                .map(|(m, t)| {
                    (
                        *m,
                        format!(
                            "{:.0} ({}–{})",
                            rate(t),
                            t.per_worker.iter().min().unwrap(),
                            t.per_worker.iter().max().unwrap()
                        ),
                    )
                })
                .collect(),
            target: "none set (for comparison)".into(),
            met: format!(
                "{} built-in, {} polling",
                ratio(rate(get(Method::MonthLock)) / rate(get(Method::Queued))),
                ratio(rate(get(Method::MonthLock)) / rate(get(Method::Polling)))
            ),
        });
    }
    let json_throughput: BTreeMap<_, _> = throughput
        .iter()
        .map(|(m, t)| {
            (
                m.key(),
                json!({
                    "cycles_per_s": t.per_worker.iter().sum::<u64>() as f64 / t.secs,
                    "cycles_per_worker_min": t.per_worker.iter().min(),
                    "cycles_per_worker_max": t.per_worker.iter().max(),
                    "cycles_per_worker": t.per_worker,
                }),
            )
        })
        .collect();

    let elapsed = started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| Figure | {} | {} | {} | Target | Met? (ratio) |",
        Method::MonthLock.label(),
        Method::Queued.label(),
        Method::Polling.label()
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|");
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            row.figure,
            row.cells[&Method::MonthLock],
            row.cells[&Method::Queued],
            row.cells[&Method::Polling],
            row.target,
            row.met
        );
    }

    let mut md = String::new();
    let _ = writeln!(md, "# month_lock benchmark results\n");
    let _ = writeln!(
        md,
        "Run {date}{}, {cores} CPU cores, {pg_version}, month_lock {ext_version}; \
         throwaway cluster on 127.0.0.1 (fsync=off), client on the same machine. \
         Whole run {elapsed:.0} s. How each figure is measured: bench/README.md. \
         Chart: handoff_latency.png.\n",
        if quick {
            " (QUICK MODE: shortened runs, figures not meaningful)"
        } else {
            ""
        }
    );
    md.push_str(&table);
    let _ = writeln!(
        md,
        "\nAll targets met: {}.",
        if all_met {
            "yes"
        } else {
            "no (see the rows marked NO)"
        }
    );

    let json = json!({
        "date": date,
        "quick_mode": quick,
        "cpu_cores": cores,
        "postgres": pg_version,
        "month_lock_version": ext_version,
        "run_seconds": elapsed,
        "all_targets_met": all_met,
        "methods": Method::ALL.iter().map(|m| json!({"key": m.key(), "label": m.label()})).collect::<Vec<_>>(),
        "handoff": json_handoff,
        "timeout": json_timeouts,
        "in_server": {
            "pairs_per_statement": plan.in_server_pairs,
            "repetitions": plan.in_server_reps,
            "bare_loop_ns": loop_ns,
            "ns_per_pair_raw": Method::ALL.iter().map(|m| (m.key(), raw_ns(*m))).collect::<BTreeMap<_, _>>(),
            "ns_per_pair_net": Method::ALL.iter().map(|m| (m.key(), net_ns(*m))).collect::<BTreeMap<_, _>>(),
            "month_lock_over_try_pair": pair_ratio,
            "target_met": pair_ok,
        },
        "pgbench": json_pgbench,
        "waiting_cost": {
            "waiters": plan.waiters,
            "seconds": plan.wait_secs,
            "by_method": json_waiting,
        },
        "throughput": {
            "workers": plan.workers,
            "months": 12,
            "seconds": plan.throughput_secs,
            "by_method": json_throughput,
        },
    });

    std::fs::create_dir_all(&out_dir).expect("create output dir");
    let png = out_dir.join("handoff_latency.png");
    let chart_cases: Vec<(usize, Vec<(Method, Vec<f64>)>)> =
        handoff.iter().map(|(w, _, s)| (*w, s.clone())).collect();
    chart::handoff_chart(&png, &chart_cases).unwrap_or_else(|e| panic!("chart: {e}"));
    std::fs::write(out_dir.join("results.md"), &md).expect("write results.md");
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("write results.json");

    println!("\n{md}");
    println!(
        "Wrote {}, {} and {}.",
        out_dir.join("results.md").display(),
        out_dir.join("results.json").display(),
        png.display()
    );
}
