//! How busy the machine was with other work during the run. The project machine is shared (other
//! test suites may run at the same time), and the benchmark's figures are only comparable when
//! it had the cores to itself: the run records the load average before it starts, and the CPU
//! time that processes other than the benchmark and its cluster used while it ran
//! (all CPU time in `/proc/stat` minus the benchmark's own, its children's such as pgbench,
//! and the cluster's: the postmaster, its live children and the children it has reaped).

use std::path::Path;
use std::time::Instant;

/// CPU time so far, in clock ticks.
struct Snapshot {
    at: Instant,
    machine_busy: u64,
    ours: u64,
    cluster: Option<u64>,
}

/// The machine's load over the run, as results.md reports it.
pub struct MachineLoad {
    /// `/proc/loadavg` (1, 5, 15 min) before the cluster starts.
    pub loadavg_before: Option<[f64; 3]>,
    /// The same at the end of the measurements (the run's own load included).
    pub loadavg_after: Option<[f64; 3]>,
    /// CPU time of everything else over the measurements, as a share of all cores' time.
    pub other_work_share_of_cores: Option<f64>,
    /// The benchmark and its cluster, the same way.
    pub bench_share_of_cores: Option<f64>,
}

pub fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        v if v > 0 => v as f64,
        _ => 100.0,
    }
}

/// Busy ticks of all cores: everything in the `cpu` line except idle and iowait.
fn machine_busy() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    Some(v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?)
}

/// (ppid, utime+stime, cutime+cstime) of a process, in ticks.
fn proc_times(pid: i32) -> Option<(i32, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    // Fields from 3 (state) on: ppid is 4, utime 14, stime 15, cutime 16, cstime 17.
    let n = |i: usize| f.get(i - 3)?.parse::<i64>().ok();
    Some((
        n(4)? as i32,
        (n(14)? + n(15)?) as u64,
        (n(16)? + n(17)?) as u64,
    ))
}

/// This process and the children it has waited for (pgbench), in ticks.
fn ours() -> u64 {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct it is given.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut r) };
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        us(r.ru_utime) + us(r.ru_stime)
    };
    let us = usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN);
    (us / 1e6 * clk_tck()) as u64
}

/// The postmaster (from `data/postmaster.pid` in the cluster directory) with its reaped
/// children, plus its live children, in ticks.
fn cluster(dir: &Path) -> Option<u64> {
    let pid_file = std::fs::read_to_string(dir.join("data").join("postmaster.pid")).ok()?;
    let pm: i32 = pid_file.lines().next()?.trim().parse().ok()?;
    let (_, own, reaped) = proc_times(pm)?;
    let mut total = own + reaped;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some((ppid, t, _)) = proc_times(pid) {
            if ppid == pm {
                total += t;
            }
        }
    }
    Some(total)
}

/// The CPU-time counters at the start of the measurements.
pub struct Meter {
    loadavg_before: Option<[f64; 3]>,
    start: Option<Snapshot>,
}

fn snapshot(cluster_dir: Option<&Path>) -> Option<Snapshot> {
    Some(Snapshot {
        at: Instant::now(),
        machine_busy: machine_busy()?,
        ours: ours(),
        cluster: cluster_dir.and_then(cluster),
    })
}

impl Meter {
    /// Call before the cluster starts: the load average of the machine before the run.
    pub fn new() -> Meter {
        Meter {
            loadavg_before: loadavg(),
            start: None,
        }
    }

    /// Call when the cluster is up, before the first measurement.
    pub fn start(&mut self, cluster_dir: Option<&Path>) {
        self.start = snapshot(cluster_dir);
    }

    /// Call after the last measurement, before the cluster stops.
    pub fn finish(self, cluster_dir: Option<&Path>) -> MachineLoad {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let shares = self.start.zip(snapshot(cluster_dir)).and_then(|(a, b)| {
            let all = (b.at - a.at).as_secs_f64() * clk_tck() * cores;
            let bench = b.ours.saturating_sub(a.ours) + b.cluster?.saturating_sub(a.cluster?);
            let busy = b.machine_busy.saturating_sub(a.machine_busy);
            Some((busy.saturating_sub(bench) as f64 / all, bench as f64 / all))
        });
        MachineLoad {
            loadavg_before: self.loadavg_before,
            loadavg_after: loadavg(),
            other_work_share_of_cores: shares.map(|s| s.0),
            bench_share_of_cores: shares.map(|s| s.1),
        }
    }
}

/// The extension's library file as the run found it: a `make` in another shell can reinstall it
/// (another build profile) while the benchmark runs, and new backends would load that one.
pub struct Library {
    pub path: String,
    /// Size or modification time differ between the start and the end of the measurements.
    pub replaced_during_run: bool,
}

pub struct LibraryWatch {
    path: std::path::PathBuf,
    start: Option<(u64, std::time::SystemTime)>,
}

fn file_id(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

impl LibraryWatch {
    /// `pkglibdir`: the server's `PKGLIBDIR`.
    pub fn new(pkglibdir: &str) -> LibraryWatch {
        let path = Path::new(pkglibdir).join("month_lock.so");
        LibraryWatch {
            start: file_id(&path),
            path,
        }
    }

    pub fn finish(self) -> Library {
        let end = file_id(&self.path);
        Library {
            path: self.path.display().to_string(),
            replaced_during_run: self.start.is_none() || end != self.start,
        }
    }
}

/// On-CPU time of a process so far, ns, from `/proc/<pid>/schedstat` (finer than the 10 ms
/// ticks of `/proc/<pid>/stat`, which read 0 for backends that mostly sleep).
pub fn cpu_ns(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!("no /proc/{pid}/schedstat: the server must run on this machine, with schedstats")
        })
}
