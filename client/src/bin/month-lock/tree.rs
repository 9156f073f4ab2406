//! Every process CMD started, wherever it moved. `month-lock` makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`) before CMD starts: a process whose parent ends is re-parented to
//! `month-lock` instead of to init, so each process CMD started, even one that made a session
//! of its own (`setsid`) or double-forked, stays a descendant of `month-lock` while both live.
//! Descendants are found through /proc (each process's parent, group and state); re-parented
//! ones that end are reaped here (tokio reaps only CMD and the watchdog, its own children).

use rustix::process::{getpid, kill_process, waitpid, Pid, Signal, WaitOptions};

/// One process, as /proc/PID/stat tells it.
#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: Pid,
    parent: Option<Pid>,
    pub group: Option<Pid>,
    /// Ended, waiting to be reaped (a zombie): nothing left to signal.
    pub ended: bool,
}

/// A process or group id from a number read elsewhere (/proc, a pipe, an argument): `None` for
/// zero or a negative number, where `Pid::from_raw` would panic (a month-lock that panics on its
/// stop path leaves CMD's processes running).
pub fn to_pid(raw: i32) -> Option<Pid> {
    if raw > 0 {
        Pid::from_raw(raw)
    } else {
        None
    }
}

/// Make this process the subreaper of its descendants.
pub fn become_subreaper() -> std::io::Result<()> {
    rustix::process::set_child_subreaper(Some(getpid()))?;
    Ok(())
}

/// Every process of the system, as far as it can be read (one that ends while being read is
/// left out).
fn all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let pid = to_pid(e.file_name().to_str()?.parse().ok()?)?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
        let (_, rest) = stat.rsplit_once(") ")?;
        let mut fields = rest.split(' ');
        let state = fields.next()?;
        let parent = to_pid(fields.next()?.parse().ok()?);
        let group = to_pid(fields.next()?.parse().ok()?);
        Some(Proc {
            pid,
            parent,
            group,
            ended: state == "Z" || state == "X",
        })
    })
    .collect()
}

/// The descendants of this process, except `skip` (the watchdog) and what descends from it.
pub fn descendants(skip: Option<Pid>) -> Vec<Proc> {
    let all = all();
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![getpid()];
    while let Some(parent) = parents.pop() {
        for p in &all {
            if p.parent == Some(parent)
                && Some(p.pid) != skip
                && !found.iter().any(|f| f.pid == p.pid)
            {
                found.push(*p);
                parents.push(p.pid);
            }
        }
    }
    found
}

/// Reap the ended children of this process other than `keep` (CMD and the watchdog, which
/// tokio reaps): processes re-parented here whose parent ended before them.
pub fn reap_orphans(keep: &[Option<Pid>]) {
    let me = Some(getpid());
    for p in all() {
        if p.parent == me && p.ended && !keep.contains(&Some(p.pid)) {
            let _ = waitpid(Some(p.pid), WaitOptions::NOHANG);
        }
    }
}

/// SIGKILL every living descendant (but `skip`) until none is left, for at most `rounds`
/// scans (a process may fork while the last scan is read); reaps the re-parented ones.
/// Returns whether none is left.
pub fn kill_all(skip: Option<Pid>, keep: &[Option<Pid>], rounds: usize) -> bool {
    for _ in 0..rounds {
        let living: Vec<Proc> = descendants(skip).into_iter().filter(|p| !p.ended).collect();
        if living.is_empty() {
            reap_orphans(keep);
            return true;
        }
        for p in living {
            let _ = kill_process(p.pid, Signal::KILL);
        }
        reap_orphans(keep);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    reap_orphans(keep);
    descendants(skip).iter().all(|p| p.ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A number read from /proc, a pipe or an argument never panics on the stop path: a
    /// month-lock that panicked there while CMD ended left CMD's other groups running.
    #[test]
    fn to_pid_refuses_zero_and_negative_numbers() {
        assert_eq!(to_pid(-1), None);
        assert_eq!(to_pid(0), None);
        assert_eq!(to_pid(i32::MIN), None);
        assert_eq!(to_pid(7).map(Pid::as_raw_nonzero).map(|n| n.get()), Some(7));
    }

    /// Every process this one can see parses (none makes `all` panic), and this one is there.
    #[test]
    fn all_reads_this_process() {
        let me = getpid();
        assert!(all().iter().any(|p| p.pid == me && !p.ended));
    }
}
