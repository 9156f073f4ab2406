//! `make bench`: month_lock against PostgreSQL's own advisory locks (and the polling loop it
//! replaces) on a throwaway cluster on loopback; writes bench/results.md and
//! bench/handoff_latency.png and prints the report. See bench/README.md.
//!
//! `MONTH_LOCK_BENCH_QUICK=1` shortens every figure (a check of the benchmark itself);
//! `MONTH_LOCK_BENCH_ONLY=name,...` takes only those figures ([`figures::NAMES`]); either
//! writes to a temporary directory unless `MONTH_LOCK_BENCH_OUT=dir` names one. With
//! `--readme` the program only renders the targets section of bench/README.md.

mod chart;
mod figures;
mod machine;
mod methods;
mod per_method;
mod report;
mod sql;
mod stats;
mod target;

use figures::{Ctx, Figures, NAMES};
use month_lock_tests::sql::one;
use report::RunInfo;
use std::path::{Path, PathBuf};
use std::time::Instant;

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let readme = Path::new(CRATE_DIR).join("README.md");
    if std::env::args().any(|a| a == "--readme") {
        report::update_readme(&readme);
        return;
    }
    let quick = std::env::var("MONTH_LOCK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let only: Option<Vec<String>> = std::env::var("MONTH_LOCK_BENCH_ONLY")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    for name in only.iter().flatten() {
        assert!(
            NAMES.contains(&name.as_str()),
            "unknown figure {name}; figures: {NAMES:?}"
        );
    }
    let out_dir = match std::env::var_os("MONTH_LOCK_BENCH_OUT") {
        Some(dir) => PathBuf::from(dir),
        None if quick || only.is_some() => std::env::temp_dir().join("month_lock_bench_out"),
        None => PathBuf::from(CRATE_DIR),
    };
    // A missing font should fail in the first second, not after minutes.
    chart::load_font().unwrap_or_else(|e| panic!("{e}"));
    let (info, figures) = run(quick, only).await;
    report::write(&info, &figures, &out_dir);
    report::update_readme(&readme);
}

/// Starts the cluster and takes the figures, in the order of [`NAMES`].
async fn run(quick: bool, only: Option<Vec<String>>) -> (RunInfo, Figures) {
    let started = Instant::now();
    let mut meter = machine::Meter::new();
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    eprintln!(
        "month_lock bench: starting a throwaway cluster{}",
        if quick { " (quick mode)" } else { "" }
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
        "the benchmark expects the default namespace"
    );
    let pkglibdir: String = one(
        &admin,
        "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
    )
    .await;
    let library = machine::LibraryWatch::new(&pkglibdir);
    let work_dir = std::env::temp_dir().join(format!("month_lock_bench.{}", std::process::id()));
    std::fs::create_dir_all(&work_dir).expect("create work dir");
    let ctx = Ctx {
        db,
        quick,
        work_dir,
    };
    meter.start(server.dir.as_deref());

    let mut f = Figures::default();
    if wanted("pair_instructions") {
        f.pair_instructions = Some(tokio::task::block_in_place(|| {
            figures::pair_instructions::measure(quick)
        }));
    }
    if wanted("pair_time") {
        f.pair_time = Some(figures::pair_time::measure(&ctx).await);
    }
    if wanted("handoff") {
        f.handoff = figures::handoff::measure(&ctx).await;
    }
    if wanted("timeout") {
        f.timeout = figures::timeout::measure(&ctx).await;
    }
    if wanted("pgbench") {
        f.pgbench = tokio::task::block_in_place(|| figures::pgbench::measure(&ctx));
    }
    if wanted("waiting") {
        f.waiting = Some(figures::waiting::measure(&ctx).await);
    }
    if wanted("throughput") {
        f.throughput = Some(figures::throughput::measure(&ctx).await);
    }
    if wanted("chain") {
        f.chain = figures::chain::measure(&ctx).await;
    }
    if wanted("lookup") {
        f.lookup = figures::lookup::measure(&ctx).await;
    }
    if wanted("lookup_instructions") {
        f.lookup_instructions = Some(tokio::task::block_in_place(|| {
            figures::lookup_instructions::measure(quick)
        }));
    }
    if wanted("release_all") {
        f.release_all = figures::release_all::measure(&ctx).await;
    }
    if wanted("backfill") {
        f.backfill = Some(figures::backfill::measure(&ctx).await);
    }
    if wanted("token") {
        f.token = Some(figures::token::measure(&ctx).await);
    }

    let machine = meter.finish(server.dir.as_deref());
    drop(admin);
    let _ = std::fs::remove_dir_all(&ctx.work_dir);
    let info = RunInfo {
        date: utc_now(),
        quick,
        only,
        cpu_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        postgres,
        month_lock_version,
        run_seconds: started.elapsed().as_secs_f64(),
        machine,
        library: library.finish(),
    };
    (info, f)
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
