//! The report: the table (printed and written as results.md), results.json and the chart, all
//! from one [`Results`].

use crate::chart;
use crate::figures::{Figures, Row};
use crate::machine::{Library, MachineLoad};
use crate::methods::{Method, PerMethod};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// The run's circumstances.
#[derive(Serialize)]
pub struct RunInfo {
    pub date: String,
    pub quick_mode: bool,
    pub cpu_cores: usize,
    pub postgres: String,
    pub month_lock_version: String,
    pub run_seconds: f64,
    pub machine: MachineLoad,
    pub library: Library,
}

/// Everything a run produced; `results.json` is this, serialised.
#[derive(Serialize)]
pub struct Results {
    #[serde(flatten)]
    pub info: RunInfo,
    pub all_targets_met: bool,
    pub methods: Vec<MethodName>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Serialize)]
pub struct MethodName {
    key: &'static str,
    label: &'static str,
}

impl Results {
    pub fn new(info: RunInfo, figures: Figures) -> Results {
        Results {
            info,
            all_targets_met: figures.all_targets_met(),
            methods: Method::ALL
                .iter()
                .map(|m| MethodName {
                    key: m.key(),
                    label: m.label(),
                })
                .collect(),
            figures,
        }
    }
}

/// Other work above this share of the cores during the run earns a warning in results.md.
const OTHER_WORK_WARN: f64 = 0.05;

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes: ",
        Some(false) => "**NO**: ",
        None => "",
    }
}

fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    let labels = PerMethod::from_fn(Method::label);
    let _ = writeln!(
        t,
        "| Figure | {} | {} | {} | Target | Met? (ratio) |",
        labels.month_lock, labels.builtin_queued_wait, labels.polling
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {}{} |",
            row.figure,
            row.cells.month_lock,
            row.cells.builtin_queued_wait,
            row.cells.polling,
            row.target,
            verdict(row.met),
            row.note
        );
    }
    t
}

fn loadavg(l: Option<[f64; 3]>) -> String {
    l.map_or("n/a".into(), |[a, b, c]| {
        format!("{a:.2} / {b:.2} / {c:.2}")
    })
}

/// The machine-load paragraph of results.md.
fn machine_note(info: &RunInfo) -> String {
    let m = &info.machine;
    let mut s = format!(
        "Machine load: load average (1 / 5 / 15 min) {} before the run, {} at its end (its own \
         load included)",
        loadavg(m.loadavg_before),
        loadavg(m.loadavg_after)
    );
    match (m.other_work_share_of_cores, m.bench_share_of_cores) {
        (Some(other), Some(bench)) => {
            let _ = write!(
                s,
                "; while it measured, processes other than the benchmark and its cluster used \
                 {:.0}% of the {} cores' time (the benchmark and its cluster {:.0}%; from \
                 /proc/stat).",
                other * 100.0,
                info.cpu_cores,
                bench * 100.0
            );
            if other > OTHER_WORK_WARN {
                s.push_str(
                    " **Caveat: the machine was shared with other work during this run; \
                     sub-millisecond figures and TPS are disturbed by it (rerun on an idle \
                     machine for clean figures).**",
                );
            }
        }
        _ => s.push_str("; the CPU time of other work could not be measured."),
    }
    s
}

pub fn markdown(r: &Results) -> String {
    let info = &r.info;
    let mut md = String::new();
    let _ = writeln!(md, "# month_lock benchmark results\n");
    let _ = writeln!(
        md,
        "Run {}{}, {} CPU cores, {}, month_lock {}; \
         throwaway cluster on 127.0.0.1 (fsync=off), client on the same machine. \
         Whole run {:.0} s. How each figure is measured: [README.md](README.md). \
         Raw samples and every run: [results.json](results.json).\n",
        info.date,
        if info.quick_mode {
            " (QUICK MODE: shortened runs, figures not meaningful)"
        } else {
            ""
        },
        info.cpu_cores,
        info.postgres,
        info.month_lock_version,
        info.run_seconds
    );
    let _ = writeln!(md, "{}\n", machine_note(info));
    if info.library.replaced_during_run {
        let _ = writeln!(
            md,
            "**The extension's library ({}) was replaced while the benchmark ran (a `make` in \
             another shell?): backends started after that ran another build. Rerun.**\n",
            info.library.path
        );
    }
    md.push_str(&table(&r.figures.rows()));
    let _ = writeln!(md);
    md.push_str(&r.figures.backfill.table());
    let _ = writeln!(
        md,
        "\nAll targets met: {}.\n",
        if r.all_targets_met {
            "yes"
        } else {
            "no (see the rows marked NO)"
        }
    );
    let _ = writeln!(md, "![handoff latency](handoff_latency.png)");
    md
}

/// Writes results.md, results.json and handoff_latency.png into `out_dir` and prints the table.
pub fn write(r: &Results, out_dir: &Path) {
    std::fs::create_dir_all(out_dir).expect("create output dir");
    let png = out_dir.join("handoff_latency.png");
    chart::handoff_chart(&png, &r.figures.handoff).unwrap_or_else(|e| panic!("chart: {e}"));
    let md = markdown(r);
    let md_path = out_dir.join("results.md");
    let json_path = out_dir.join("results.json");
    std::fs::write(&md_path, &md).expect("write results.md");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(r).expect("json") + "\n",
    )
    .expect("write results.json");
    println!("\n{md}");
    println!(
        "Wrote {}, {} and {}.",
        md_path.display(),
        json_path.display(),
        png.display()
    );
}
