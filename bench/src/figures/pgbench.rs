//! pgbench: TPS of a transaction that takes and releases one month of the client's own year
//! (uncontended, two statements, `-n`), simple and prepared protocol, 1, 4 and 16 clients,
//! interleaved runs of each script. Unlike the pair figures, each call here is a statement of
//! its own: parse, plan (or bind), execute and a round trip per call.

use super::Ctx;
use crate::methods::{Method, PerMethod, NS};
use crate::report::Row;
use crate::stats::{plural, ratio};
use crate::target::{Bound, Target};
use month_lock_tests::sql::{host_of, pg_bindir};
use month_lock_tests::TestDb;
use std::path::Path;
use std::process::Command;

pub const TPS: Target = Target {
    measure: "TPS",
    bound: Bound::AtLeast(0.97),
    unit: "× the built-in (ns, key) pair (polling column)",
};

/// (modes, client counts, seconds per run, interleaved runs of each script).
fn plan(quick: bool) -> ([&'static str; 2], [u32; 3], u32, usize) {
    if quick {
        (["simple", "prepared"], [1, 4, 16], 1, 1)
    } else {
        (["simple", "prepared"], [1, 4, 16], 2, 4)
    }
}

/// `PGOPTIONS` of the built-in queued wait's sessions: its lock timeout, set for the session
/// rather than by a `SET LOCAL` in the script (a statement more, and not preparable).
const QUEUED_OPTIONS: &str = "-c lock_timeout=1000";

/// Every number comes from `\set`, so every statement has the same shape, `SELECT f(:a, :b)`
/// (`SELECT f($1, $2)` prepared).
fn scripts() -> PerMethod<String> {
    let vars = format!(
        "\\set y 2000 + :client_id\n\\set m random(1, 12)\n\\set k :y * 100 + :m\n\\set ns {NS}\n"
    );
    let script = |take: &str, release: &str| format!("{vars}SELECT {take};\nSELECT {release};\n");
    PerMethod {
        month_lock: script("month_lock_try(:y, :m)", "month_lock_release(:y, :m)"),
        builtin_queued_wait: script("pg_advisory_lock(:ns, :k)", "pg_advisory_unlock(:ns, :k)"),
        polling: script(
            "pg_try_advisory_lock(:ns, :k)",
            "pg_advisory_unlock(:ns, :k)",
        ),
    }
}

/// One mode and client count.
pub struct Pgbench {
    pub mode: &'static str,
    pub clients: u32,
    pub seconds_per_run: u32,
    pub tps_runs: PerMethod<Vec<f64>>,
}

impl Pgbench {
    fn mean(&self, m: Method) -> f64 {
        let r = &self.tps_runs[m];
        r.iter().sum::<f64>() / r.len() as f64
    }

    pub fn row(&self) -> Row {
        let over = self.mean(Method::MonthLock) / self.mean(Method::Polling);
        Row {
            figure: format!(
                "pgbench TPS of the pair, {}, {}: mean of {} interleaved {} s runs (min–max)",
                self.mode,
                plural(self.clients, "client"),
                self.tps_runs.month_lock.len(),
                self.seconds_per_run
            ),
            cells: PerMethod::from_fn(|m| {
                let runs = &self.tps_runs[m];
                let lo = runs.iter().copied().fold(f64::MAX, f64::min);
                let hi = runs.iter().copied().fold(f64::MIN, f64::max);
                format!("{:.0} ({lo:.0}–{hi:.0})", self.mean(m))
            }),
            target: TPS.text(),
            met: Some(TPS.met(over)),
            note: ratio(over),
        }
    }
}

/// Blocking (runs pgbench).
pub fn measure(ctx: &Ctx) -> Vec<Pgbench> {
    let (modes, clients, secs, reps) = plan(ctx.quick);
    let mut figures = Vec::new();
    for mode in modes {
        for clients in clients {
            let mut tps_runs = PerMethod::from_fn(|_| Vec::new());
            for _ in 0..reps {
                for (method, text) in scripts().iter() {
                    let script = ctx.work_dir.join(format!("pgbench_{}.sql", method.key()));
                    std::fs::write(&script, text).expect("write pgbench script");
                    let tps = run(&ctx.db, mode, clients, secs, &script, method);
                    tps_runs[method].push(tps);
                }
            }
            let figure = Pgbench {
                mode,
                clients,
                seconds_per_run: secs,
                tps_runs,
            };
            for m in Method::ALL {
                eprintln!(
                    "pgbench {mode:<8} {clients:>2} clients  {:<22} {:.0} TPS",
                    m.label(),
                    figure.mean(m)
                );
            }
            figures.push(figure);
        }
    }
    figures
}

/// One pgbench run; its TPS.
fn run(db: &TestDb, mode: &str, clients: u32, secs: u32, script: &Path, method: Method) -> f64 {
    let pgbench = pg_bindir().join("pgbench");
    let port = db.config.get_ports().first().copied().unwrap_or(5432);
    let out = Command::new(&pgbench)
        .args([
            "-n",
            "-M",
            mode,
            "-h",
            &host_of(&db.config),
            "-p",
            &port.to_string(),
        ])
        .args(["-U", &db.user(), "-c", &clients.to_string()])
        .args([
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(script)
        .arg(&db.name)
        .env("PGAPPNAME", "bench pgbench")
        .env(
            "PGOPTIONS",
            if method == Method::Queued {
                QUEUED_OPTIONS
            } else {
                ""
            },
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", pgbench.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed for {}:\n{stdout}\n{}",
        method.key(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"))
}
