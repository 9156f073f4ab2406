//! The pair in CPU instructions: each statement of [`super::pairs`] in a single-user backend
//! (`postgres --single`, on a data directory of its own) under valgrind's callgrind, which
//! counts the instructions the whole process executed; the bare loop's count is subtracted and
//! the rest divided by the pairs. Independent of the machine's load.

use super::pairs::{statement, Pair, PairRow, BARE, WARM_UP};
use crate::stats::ratio;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn pairs(quick: bool) -> u64 {
    if quick {
        10_000
    } else {
        100_000
    }
}

pub struct PairInstructions {
    pub pairs: u64,
    /// Per pair, net of the bare loop: (pair, [month_lock, built-in]).
    pub per_pair: Vec<(Pair, [f64; 2])>,
}

impl PairInstructions {
    pub fn rows(&self) -> Vec<PairRow> {
        self.per_pair
            .iter()
            .map(|&(pair, [ml, bi])| PairRow {
                pair,
                measure: format!(
                    "instructions per pair (callgrind, {} pairs, net of the bare loop)",
                    self.pairs
                ),
                month_lock: format!("{ml:.0}"),
                builtin: format!("{bi:.0}"),
                ratio: ml / bi,
                extra: Some(format!("{:+.0} per pair", ml - bi)),
            })
            .collect()
    }
}

/// Blocking: runs initdb and seven backends under callgrind.
pub fn measure(quick: bool) -> PairInstructions {
    let n = pairs(quick);
    let bindir = month_lock_tests::sql::pg_bindir();
    let dir = std::env::temp_dir().join(format!("month_lock_callgrind.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the callgrind directory");
    // The backend runs as the server's OS user, who must be able to create the data directory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .expect("chmod the callgrind directory");
    let data = dir.join("data");
    let out = as_server_user(&bindir.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    single(&bindir, &data, &dir, "CREATE EXTENSION month_lock;", None);
    let count = |qual: &str| {
        let script = format!("{WARM_UP};\n{};", statement(qual, n));
        let c = single(&bindir, &data, &dir, &script, Some(n));
        eprintln!("callgrind {c:>12} instructions: {qual}");
        c
    };
    let bare = count(BARE);
    let net = |c: u64| (c as f64 - bare as f64) / n as f64;
    let per_pair: Vec<(Pair, [f64; 2])> = Pair::ALL
        .into_iter()
        .map(|pair| {
            let [ml, bi] = pair.quals();
            (pair, [net(count(&ml)), net(count(&bi))])
        })
        .collect();
    for (pair, [ml, bi]) in &per_pair {
        eprintln!(
            "instructions per pair, {:<17} month_lock {ml:.0}, built-in {bi:.0} ({})",
            pair.label(),
            ratio(ml / bi)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    PairInstructions { pairs: n, per_pair }
}

/// `program`, run as the OS user the test servers run as when we are root (PostgreSQL refuses
/// to run as root).
fn as_server_user(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let user = std::env::var("PG_OS_USER").unwrap_or_else(|_| "postgres".into());
        let mut c = Command::new("runuser");
        c.args(["-u", &user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Runs `script` (one statement per line) in a single-user backend; with `count`, under
/// callgrind, checks that the last statement counted that many rows and returns the
/// instructions callgrind collected (0 without).
fn single(bindir: &Path, data: &Path, dir: &Path, script: &str, count: Option<u64>) -> u64 {
    let callgrind = count.is_some();
    let file: PathBuf = dir.join("script.sql");
    std::fs::write(&file, format!("{script}\n")).expect("write the script");
    let postgres = bindir.join("postgres");
    let mut cmd = if callgrind {
        let mut c = as_server_user(Path::new("valgrind"));
        c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&postgres);
        c
    } else {
        as_server_user(&postgres)
    };
    let out = cmd
        .args(["--single", "-D"])
        .arg(data)
        .arg("postgres")
        .stdin(std::fs::File::open(&file).expect("open the script"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (make bench installs valgrind): {e}",
                postgres.display()
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ERROR"),
        "{script}:\n{stderr}"
    );
    let Some(n) = count else { return 0 };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("count = \"{n}\"")),
        "not every pair succeeded: {script}\n{stdout}"
    );
    stderr
        .lines()
        .find_map(|l| l.split("Collected : ").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no instruction count from callgrind:\n{stderr}"))
}
