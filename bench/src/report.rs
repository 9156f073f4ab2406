//! results.md (also printed), the chart, and the targets section of bench/README.md, all
//! rendered from one run's [`Figures`] and the targets' constants.

use crate::chart;
use crate::figures::{pairs, Figures, TARGETS};
use crate::machine::{Library, MachineLoad};
use crate::methods::{Method, PerMethod};
use std::fmt::Write as _;
use std::path::Path;

/// One line of the main table: the figure, one cell per method, the target and whether it is met.
pub struct Row {
    pub figure: String,
    pub cells: PerMethod<String>,
    pub target: String,
    /// `None`: the figure has no target.
    pub met: Option<bool>,
    /// The ratios behind the verdict.
    pub note: String,
}

/// The run's circumstances.
pub struct RunInfo {
    pub date: String,
    pub quick: bool,
    /// The figures taken, when not all of them.
    pub only: Option<Vec<String>>,
    pub cpu_cores: usize,
    pub postgres: String,
    pub month_lock_version: String,
    pub run_seconds: f64,
    pub machine: MachineLoad,
    pub library: Library,
}

/// Other work above this share of the cores during the run earns a caveat in results.md.
const OTHER_WORK_WARN: f64 = 0.05;

fn table(rows: &[Row]) -> String {
    let labels = PerMethod::from_fn(Method::label);
    let mut t = format!(
        "| Figure | {} | {} | {} | Target | Met? (ratio) |\n|---|---|---|---|---|---|\n",
        labels.month_lock, labels.builtin_queued_wait, labels.polling
    );
    for r in rows {
        let verdict = match r.met {
            Some(true) => "yes: ",
            Some(false) => "**NO**: ",
            None => "",
        };
        let c = &r.cells;
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {verdict}{} |",
            r.figure, c.month_lock, c.builtin_queued_wait, c.polling, r.target, r.note
        );
    }
    t
}

fn loadavg(l: Option<[f64; 3]>) -> String {
    l.map_or("n/a".into(), |[a, b, c]| {
        format!("{a:.2} / {b:.2} / {c:.2}")
    })
}

/// The machine-load paragraph.
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
                     timings are disturbed by it (instruction counts are not).**",
                );
            }
        }
        _ => s.push_str("; the CPU time of other work could not be measured."),
    }
    s
}

pub fn markdown(info: &RunInfo, f: &Figures) -> String {
    let mut md = String::from("# month_lock benchmark results\n\n");
    let _ = writeln!(
        md,
        "Run {}{}{}, {} CPU cores, {}, month_lock {}; throwaway cluster on 127.0.0.1 \
         (fsync=off), client on the same machine. Whole run {:.0} s. How each figure is \
         measured, and its target: [README.md](README.md).\n",
        info.date,
        if info.quick {
            " (QUICK MODE: shortened runs, figures not meaningful)"
        } else {
            ""
        },
        info.only
            .as_ref()
            .map_or(String::new(), |o| format!(" (only: {})", o.join(", "))),
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
    let pair_rows = f.pair_rows();
    if !pair_rows.is_empty() {
        md.push_str(&pairs::table(
            "Uncontended take+release pair inside the server, net of the bare loop:",
            &pair_rows,
        ));
        md.push('\n');
    }
    let rows = f.rows();
    if !rows.is_empty() {
        md.push_str(&table(&rows));
        md.push('\n');
    }
    if let Some(b) = &f.backfill {
        md.push_str(&b.table());
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "All targets met: {}.\n",
        if f.all_targets_met() {
            "yes"
        } else {
            "no (see the rows marked NO)"
        }
    );
    if !f.handoff.is_empty() {
        let _ = writeln!(md, "![handoff latency](handoff_latency.png)");
    }
    md
}

const README_START: &str = "<!-- targets: rendered from the constants in src/figures/ -->\n";
const README_END: &str = "<!-- /targets -->";

/// The targets section of bench/README.md.
pub fn targets_markdown() -> String {
    let mut s = String::new();
    for (figure, target) in TARGETS {
        let _ = writeln!(s, "* {figure}: {}", target.text());
    }
    s
}

/// `readme` with its targets section rendered afresh.
pub fn with_targets(readme: &str) -> String {
    let (Some(a), Some(b)) = (readme.find(README_START), readme.find(README_END)) else {
        panic!("bench/README.md lacks the targets markers");
    };
    let start = a + README_START.len();
    format!("{}{}{}", &readme[..start], targets_markdown(), &readme[b..])
}

/// Rewrites the targets section of the README at `path` when it differs.
pub fn update_readme(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read bench/README.md");
    let new = with_targets(&text);
    if new != text {
        std::fs::write(path, new).expect("write bench/README.md");
    }
}

/// Writes results.md (and the chart, when the handoff figure ran) into `out_dir`; prints the
/// report.
pub fn write(info: &RunInfo, f: &Figures, out_dir: &Path) {
    std::fs::create_dir_all(out_dir).expect("create output dir");
    if !f.handoff.is_empty() {
        let png = out_dir.join("handoff_latency.png");
        chart::handoff_chart(&png, &f.handoff).unwrap_or_else(|e| panic!("chart: {e}"));
    }
    let md = markdown(info, f);
    let path = out_dir.join("results.md");
    std::fs::write(&path, &md).expect("write results.md");
    println!("\n{md}\nWrote {}.", path.display());
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_targets_are_rendered_from_the_constants() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            super::with_targets(&text) == text,
            "bench/README.md's targets differ from the constants: run \
             `cargo run -p month-lock-bench -- --readme` to render them"
        );
    }
}
