//! Every process CMD started, wherever it moved. `month-lock` makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`) before CMD starts: a process whose parent ends is re-parented to
//! `month-lock` instead of to init, so each process CMD started, even one that made a session
//! of its own (`setsid`) or double-forked, stays a descendant of `month-lock` while both live.
//! Descendants are found through /proc (each process's parent, group and state); re-parented
//! ones that end are reaped here (tokio reaps only CMD and the watchdog, its own children).
//!
//! `month-lock` may have children it did not start (it was exec'd by a shell that had started
//! them, as container entrypoints do): those, and whatever descends from them, are not CMD's and
//! are never signalled. They are remembered, with their start times, before CMD starts
//! ([`remember_others`]).

use std::sync::OnceLock;

use rustix::process::{getpid, kill_process, waitpid, Pid, Signal, WaitOptions};

/// One process, as /proc/PID/stat tells it.
#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: Pid,
    parent: Option<Pid>,
    pub group: Option<Pid>,
    /// Ended, waiting to be reaped (a zombie): nothing left to signal.
    pub ended: bool,
    /// When it started (clock ticks after boot): a process id with another start time is
    /// another process.
    start: u64,
}

/// The descendants `month-lock` had before CMD started (process id and start time).
static OTHERS: OnceLock<Vec<(Pid, u64)>> = OnceLock::new();

/// Remember the descendants of this process but `skip` (the watchdog) as not CMD's: called
/// once, after [`become_subreaper`] and before CMD starts.
pub fn remember_others(skip: Option<Pid>) {
    let others = walk(&all(), skip, &[])
        .into_iter()
        .map(|p| (p.pid, p.start))
        .collect();
    let _ = OTHERS.set(others);
}

fn is_other(p: &Proc, others: &[(Pid, u64)]) -> bool {
    others.contains(&(p.pid, p.start))
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

/// The process group of process `pid` (`None`: this process), if it has one this process can
/// name: `None` also for a group outside this process's pid namespace (`getpgid` answers 0
/// there, e.g. under `unshare --pid --fork`), where rustix's `getpgid`/`getpgrp` assert.
#[allow(unsafe_code)]
pub fn group_of(pid: Option<Pid>) -> Option<Pid> {
    let raw = pid.map_or(0, |p| p.as_raw_nonzero().get());
    // SAFETY: getpgid takes a number and only returns one (or -1 with errno).
    to_pid(unsafe { libc::getpgid(raw) })
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
        parse(pid, &stat)
    })
    .collect()
}

/// A process from its /proc/PID/stat line.
fn parse(pid: Pid, stat: &str) -> Option<Proc> {
    // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let parent = to_pid(fields.next()?.parse().ok()?);
    let group = to_pid(fields.next()?.parse().ok()?);
    // Field 22, "starttime"; `fields` is at field 6 now.
    let start = fields.nth(16)?.parse().ok()?;
    Some(Proc {
        pid,
        parent,
        group,
        ended: (state == "Z" || state == "X") && no_thread_runs(pid),
        start,
    })
}

/// Whether no thread of process `pid` runs. /proc/PID/stat tells the state of the first thread
/// only: a process whose first thread called `pthread_exit` shows as a zombie while its other
/// threads run on (such a process was left running as ended).
fn no_thread_runs(pid: Pid) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", pid.as_raw_nonzero())) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
        })
    })
}

/// Whether /proc shows this process's pid namespace (false also without a /proc, as in a bare
/// chroot). Under `unshare --pid --fork` without `--mount-proc` it shows the parent namespace's: its numbers name other processes, and
/// nothing CMD starts could be found there (a process CMD left in a session of its own ran on).
pub fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<i32>().ok())
        == Some(getpid().as_raw_nonzero().get())
}

/// The descendants of this process, except `skip` (the watchdog), the processes it had before
/// CMD started (see [`remember_others`]), and what descends from those.
pub fn descendants(skip: Option<Pid>) -> Vec<Proc> {
    walk(&all(), skip, OTHERS.get().map_or(&[], |o| o.as_slice()))
}

fn walk(all: &[Proc], skip: Option<Pid>, others: &[(Pid, u64)]) -> Vec<Proc> {
    let mut found: Vec<Proc> = Vec::new();
    let mut parents = vec![getpid()];
    while let Some(parent) = parents.pop() {
        for p in all {
            if p.parent == Some(parent)
                && Some(p.pid) != skip
                && !is_other(p, others)
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
/// tokio reaps): processes re-parented here whose parent ended before them. One `waitpid`
/// without waiting per child, no /proc read: a fork-and-exit chain re-parents a process here
/// per generation, and each one not yet reaped holds a process id of the machine's.
pub fn reap_orphans(keep: &[Option<Pid>]) {
    for child in children_of(getpid()) {
        if !keep.contains(&Some(child)) {
            let _ = waitpid(Some(child), WaitOptions::NOHANG);
        }
    }
}

/// The children of process `pid`: what its threads' /proc/PID/task/TID/children files list
/// (one small read per thread, where a /proc scan reads every process of the system).
fn children_of(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", pid.as_raw_nonzero())) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                list.split_whitespace()
                    .filter_map(|n| to_pid(n.parse().ok()?)),
            );
        }
    }
    found
}

/// Whether `pid` is one of the processes this one had before CMD started.
fn is_other_pid(pid: Pid) -> bool {
    let Some(others) = OTHERS.get() else {
        return false;
    };
    if !others.iter().any(|&(p, _)| p == pid) {
        return false;
    }
    all_of(pid).is_none_or(|p| is_other(&p, others))
}

/// Process `pid` as /proc/PID/stat tells it.
fn all_of(pid: Pid) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).ok()?;
    parse(pid, &stat)
}

/// Kill every descendant but `skip` (the watchdog) and the processes this one had before CMD
/// started: walk the children files of /proc from this process, SIGKILL each process listed
/// the moment it is read (a zombie does not mind), reap the ended ones re-parented here (but
/// `keep`), and walk again, until two walks in a row list no process at all but `keep`'s
/// ended ones; at most `rounds` walks. Returns whether none is left.
///
/// Why that ends a fork-and-exit chain: a process with SIGKILL pending cannot finish a fork
/// (the kernel gives up a fork when a fatal signal arrives before the child is attached), and
/// a process whose parent ends is re-parented to this one, the subreaper, before that parent
/// shows as ended; so while any descendant lives, some process is listed below this one, and a
/// walk that lists none means none is left. A walk is not a snapshot: a listed process may end
/// before its own list is read, its child moving up here after this one's list was read. So a
/// walk that listed any process at all, living or not, does not count as clean. (Counting walks
/// that found no living process let a compiled chain whose generations live for microseconds
/// survive most runs; counting walks that found nothing new, as a freeze-then-kill version
/// did, let a chain that outran the walk survive.)
pub fn kill_all(skip: Option<Pid>, keep: &[Option<Pid>], rounds: usize) -> bool {
    let mut clean = 0;
    for _ in 0..rounds {
        // CMD may have covered /proc (a mount in the namespace both share): a walk that reads
        // nothing there proves nothing.
        if !proc_is_ours() {
            return false;
        }
        let mut listed = false;
        let mut parents = vec![getpid()];
        while let Some(parent) = parents.pop() {
            for child in children_of(parent) {
                if Some(child) == skip || is_other_pid(child) {
                    continue;
                }
                let _ = kill_process(child, Signal::KILL);
                if !(keep.contains(&Some(child)) && all_of(child).is_some_and(|p| p.ended)) {
                    listed = true;
                }
                parents.push(child);
            }
        }
        reap_orphans(keep);
        if listed {
            clean = 0;
        } else {
            clean += 1;
            if clean == 2 {
                return true;
            }
        }
        // A killed process takes a moment to end; a re-parenting may race a read.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
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
    fn group_of_this_process_is_its_group() {
        let raw = |p: Option<Pid>| p.map(|p| p.as_raw_nonzero().get());
        assert_eq!(raw(group_of(None)), raw(group_of(Some(getpid()))));
        assert!(group_of(None).is_some());
    }

    #[test]
    fn all_reads_this_process() {
        let me = getpid();
        assert!(all().iter().any(|p| p.pid == me && !p.ended));
    }
}
