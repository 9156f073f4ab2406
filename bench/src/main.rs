//! `make bench`: month_lock against PostgreSQL's own queued wait and the polling loop it
//! replaces, on a throwaway cluster on loopback. Writes bench/results.md, bench/results.json
//! and bench/handoff_latency.png, and prints the table. See bench/README.md.
//!
//! Plan → run → report: [`plan::Plan`] says what to measure, [`run`] measures it into one typed
//! result per figure ([`figures`]), [`report`] renders the table and the JSON from those.
//!
//! `MONTH_LOCK_BENCH_QUICK=1` shortens every run (a smoke test of the benchmark itself; its
//! figures mean little). `MONTH_LOCK_BENCH_OUT=dir` writes the outputs elsewhere.

mod backfill;
mod chart;
mod experiments;
mod figures;
mod machine;
mod methods;
mod plan;
mod report;
mod scaling;
mod token_cost;

use figures::Figures;
use month_lock_tests::sql::one;
use plan::Plan;
use report::{Results, RunInfo};
use std::path::PathBuf;
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let plan = Plan::from_env();
    let out_dir = std::env::var_os("MONTH_LOCK_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    // Load the font first: a missing font should fail in the first second, not after minutes.
    chart::load_font().unwrap_or_else(|e| panic!("{e}"));

    let results = run(&plan).await;

    report::write(&results, &out_dir);
}

/// Starts the cluster and takes every figure of the plan, in the order of the table.
async fn run(plan: &Plan) -> Results {
    let started = Instant::now();
    let mut meter = machine::Meter::new();
    eprintln!(
        "month_lock bench: starting a throwaway cluster{}",
        if plan.quick { " (quick mode)" } else { "" }
    );
    let server = month_lock_tests::start_cluster(&[
        ("max_connections", "600"),
        ("max_locks_per_transaction", "256"),
    ])
    .await;
    let db = server.fresh_db("bench").await;
    let admin = db.connect().await;
    let postgres: String = one(&admin, "SELECT version()").await;
    let month_lock_version: String = one(
        &admin,
        "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'",
    )
    .await;
    let classid: i64 = one(&admin, "SELECT month_lock_key_classid()::bigint").await;
    assert_eq!(
        classid,
        i64::from(methods::NS),
        "the benchmark expects the default month_lock.namespace"
    );
    let pkglibdir: String = one(
        &admin,
        "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
    )
    .await;
    let library = machine::LibraryWatch::new(&pkglibdir);
    let work_dir = std::env::temp_dir().join(format!("month_lock_bench.{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).expect("create work dir");
    meter.start(server.dir.as_deref());

    // 1. Handoff latency.
    let mut handoff = Vec::new();
    for (i, case) in plan.handoff.iter().enumerate() {
        handoff.push(experiments::handoff(&db, case, i).await);
    }
    // 2. Timeout precision.
    let timeout = experiments::timeouts(&db, &plan.timeouts).await;
    // 3a. In-server cost.
    let in_server = experiments::in_server(&db, plan.in_server_pairs, plan.in_server_reps).await;
    // 3b. pgbench.
    let mut pgbench = Vec::new();
    for &mode in &plan.pgbench_modes {
        for &clients in &plan.pgbench_clients {
            let (db, dir) = (db.clone(), work_dir.clone());
            let (secs, reps) = (plan.pgbench_secs, plan.pgbench_reps);
            pgbench.push(
                tokio::task::spawn_blocking(move || {
                    experiments::pgbench(&db, mode, clients, secs, reps, &dir)
                })
                .await
                .expect("pgbench task"),
            );
        }
    }
    // 4. Cost of waiting.
    let waiting_cost = experiments::waiting(&db, plan.waiters, plan.wait_secs).await;
    // 5. Throughput under contention.
    let throughput = experiments::throughput(&db, plan.workers, plan.throughput_secs, 77).await;
    // 6. Handoff chains.
    let handoff_chain = scaling::handoff_chains(&db, &plan.chain_waiters, plan.chain_runs).await;
    // 7. Lookups against the lock table's size.
    let lookup = scaling::lookups(&db, &plan.lookup_table_sizes, plan.lookup_reps).await;
    // 8. Release all against months held.
    let release_all =
        scaling::release_all(&db, &plan.release_all_held, plan.release_all_reps).await;
    // 9. Backfill.
    let backfill = backfill::backfill(&db, plan.backfill_runs).await;
    // 10. Fencing token cost.
    let token_cost = token_cost::measure(&db, plan.token_statements).await;

    let machine = meter.finish(server.dir.as_deref());
    let library = library.finish();
    drop(admin);
    let _ = std::fs::remove_dir_all(&work_dir);
    let info = RunInfo {
        date: utc_now(),
        quick_mode: plan.quick,
        cpu_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        postgres,
        month_lock_version,
        run_seconds: started.elapsed().as_secs_f64(),
        machine,
        library,
    };
    let figures = Figures {
        handoff,
        timeout,
        in_server,
        pgbench,
        waiting_cost,
        throughput,
        handoff_chain,
        lookup,
        release_all,
        backfill,
        token_cost,
    };
    Results::new(info, figures)
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
