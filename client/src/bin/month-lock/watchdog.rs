//! CMD's process group and the watchdog that kills it when `month-lock` is gone.
//!
//! `run` starts a watchdog first: this same program with the argument [`ARG`], as the leader
//! of a new process group, reading a pipe from `month-lock`. CMD then joins that group, and
//! everything CMD starts stays in it unless it moves itself out. When the pipe closes, because
//! `month-lock` closed it (CMD ended) or because `month-lock` died in any way (SIGKILL, OOM
//! killer, a crash), the watchdog kills the whole group with SIGKILL, itself included: no
//! process of CMD runs on once the lock can be gone.
//!
//! CMD itself also dies with `month-lock` (`PR_SET_PDEATHSIG`, see [`die_with_parent`]), and
//! `month-lock` kills the group itself when the watchdog has gone first. What no process can
//! cover: `month-lock` and the watchdog killed at the same instant (e.g. `kill -9` of both):
//! CMD dies with `month-lock`, but processes CMD started run on.
//!
//! A CMD may leave the group and lead one of its own (GNU `timeout` makes a group, `setsid` a
//! session). Both processes keep track of CMD's groups: CMD writes its process id into the
//! watchdog's pipe before it runs (see [`die_with_parent`]), the watchdog looks up CMD's group
//! every [`GROUP_POLL`] and remembers each group CMD was in, and `month-lock` looks it up at
//! every signal and once more when CMD has ended but is not yet reaped (a group id cannot be
//! reused while its leader's process id is taken). Every stop (a lost lock, CMD's end, the
//! death of `month-lock`) kills those groups as well as the watchdog's own. A process that
//! makes a group or session of its own *below* CMD (a `setsid` grandchild, a daemon) is in
//! none of them: `month-lock` finds it as its descendant (see `tree`), the watchdog does not
//! (after `month-lock`'s death it runs on; see docs/cli.md).
//!
//! The watchdog outlives signals sent to the group (it ignores every signal but SIGKILL and
//! SIGSTOP, which cannot be ignored), so a forwarded SIGTERM, or any signal a process of the
//! group sends to it (`kill -ALRM 0` from a CMD that ignores SIGALRM), leaves the watchdog in
//! place. Being in its own group, CMD does not get the terminal's SIGINT (Ctrl-C) directly:
//! `month-lock` forwards it once.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Stdio;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::signal::unix::SignalKind;

use crate::tree;

/// The argument that makes this program a watchdog.
pub const ARG: &str = "__month-lock-watchdog";

/// The signals `month-lock` forwards to CMD's group (the watchdog ignores them, as all others).
pub const FORWARDED: [SignalKind; 6] = [
    SignalKind::interrupt(),
    SignalKind::terminate(),
    SignalKind::hangup(),
    SignalKind::quit(),
    SignalKind::user_defined1(),
    SignalKind::user_defined2(),
];

/// How long the watchdog gets to give the terminal back and kill the group when CMD ended.
const FINISH_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times `finish` walks CMD's descendants (one may fork while it kills, a killed one
/// takes a moment to end), 2 ms apart: about a second at most.
const KILL_ROUNDS: usize = 500;

/// How often the watchdog looks up CMD's process group (a getpgid call).
pub const GROUP_POLL: Duration = Duration::from_millis(50);

/// A running watchdog: its group is CMD's group.
pub struct Watchdog {
    child: Child,
    /// Closing it tells the watchdog to kill the group; CMD writes its process id into it.
    pipe: Option<ChildStdin>,
    group: Pid,
    /// The groups other than `group` CMD was seen in (it made a group or session of its own).
    cmd_groups: Vec<Pid>,
    /// The watchdog was reaped: its process id, `group`, may be free for reuse.
    reaped: bool,
}

impl Watchdog {
    /// Start the watchdog as the leader of a new process group; returns once it ignores
    /// signals (until then a forwarded one would kill it, and month-lock would take CMD
    /// for unguarded).
    pub async fn start() -> std::io::Result<Watchdog> {
        // /proc/self/exe: this very program, also if its file was replaced since it started.
        let mut child = Command::new("/proc/self/exe")
            .arg(ARG)
            // Whom to give the terminal back to (see `Foreground`).
            // (0: a group outside this pid namespace, none to give it back to.)
            .arg(
                tree::group_of(None)
                    .map_or(0, |g| g.as_raw_nonzero().get())
                    .to_string(),
            )
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(false)
            .spawn()?;
        let pipe = child.stdin.take();
        let group = child
            .id()
            .and_then(|id| tree::to_pid(id as i32))
            .ok_or_else(|| std::io::Error::other("the watchdog exited at once"))?;
        // The watchdog writes one byte once its signal handlers are in place. (If it fails,
        // dropping `pipe` makes it kill its group, which is itself alone.)
        let mut ready = [0u8; 1];
        let mut out = child.stdout.take().expect("piped");
        if out.read(&mut ready).await? != 1 {
            return Err(std::io::Error::other("the watchdog exited at once"));
        }
        Ok(Watchdog {
            child,
            pipe,
            group,
            cmd_groups: Vec::new(),
            reaped: false,
        })
    }

    /// The process group CMD joins (`Command::process_group`).
    pub fn group(&self) -> i32 {
        self.group.as_raw_nonzero().get()
    }

    /// The pipe CMD writes its process id into (see [`die_with_parent`]).
    pub fn pipe_fd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(|p| p.as_raw_fd())
    }

    /// Remember CMD's current group if it is not the watchdog's. `cmd` must be this process's
    /// unreaped child (its process id, and so a group it leads, cannot have been reused).
    pub fn note(&mut self, cmd: Option<u32>) {
        let Some(cmd) = cmd.and_then(|id| tree::to_pid(id as i32)) else {
            return;
        };
        if let Some(g) = tree::group_of(Some(cmd)) {
            // Never month-lock's own group (a CMD may join it: same session).
            if g != self.group && Some(g) != tree::group_of(None) && !self.cmd_groups.contains(&g) {
                self.cmd_groups.push(g);
            }
        }
    }

    /// The watchdog's process id (its group's id).
    fn pid(&self) -> Option<Pid> {
        Some(self.group)
    }

    /// Forward `sig` to every process of CMD's group (the watchdog ignores it), and to CMD
    /// itself (process id `cmd`) if CMD has left the group: once, either way. Not to the group
    /// CMD made: a CMD that makes one (`timeout`) passes signals on to it, so that would
    /// deliver them twice. A terminating signal is followed by SIGCONT, so that a stopped CMD
    /// acts on it (as `timeout` and shells do).
    pub fn forward(&mut self, sig: Signal, cmd: Option<u32>) {
        self.note(cmd);
        let cmd = cmd.and_then(|id| tree::to_pid(id as i32));
        let left = cmd.filter(|&c| tree::group_of(Some(c)) != Some(self.group));
        let group = self.held_groups().contains(&self.group);
        if group {
            let _ = kill_process_group(self.group, sig);
        }
        if let Some(cmd) = left {
            let _ = kill_process(cmd, sig);
        }
        if continues(sig) {
            if group {
                let _ = kill_process_group(self.group, Signal::CONT);
            }
            if let Some(cmd) = left {
                let _ = kill_process(cmd, Signal::CONT);
            }
        }
    }

    /// Stop CMD and everything it started: `sig` to CMD's group, to every group CMD was seen
    /// in and every group a descendant of `month-lock` leads (a lost lock, a watchdog gone),
    /// and to each other descendant by its process id (one that joined a group it does not
    /// lead), once each. SIGTERM and the like are followed by SIGCONT, so that a stopped
    /// process acts on them.
    pub fn stop(&mut self, sig: Signal, cmd: Option<u32>) {
        self.note(cmd);
        let tree: Vec<tree::Proc> = tree::descendants(self.pid())
            .into_iter()
            .filter(|p| !p.ended)
            .collect();
        let mut groups = self.held_groups();
        for p in &tree {
            if p.group == Some(p.pid) && !groups.contains(&p.pid) {
                groups.push(p.pid);
            }
        }
        let others: Vec<Pid> = tree
            .iter()
            .filter(|p| !p.group.is_some_and(|g| groups.contains(&g)))
            .map(|p| p.pid)
            .collect();
        let send = |sig: Signal| {
            for &g in &groups {
                let _ = kill_process_group(g, sig);
            }
            for &p in &others {
                let _ = kill_process(p, sig);
            }
        };
        send(sig);
        if continues(sig) {
            send(Signal::CONT);
        }
    }

    /// The watchdog's group and CMD's groups that are still held: a group id is signalled only
    /// while a process this one has not reaped is in it (the unreaped watchdog, or a descendant
    /// of `month-lock`, zombies included). An id whose last member was reaped may belong to
    /// an unrelated group by now.
    fn held_groups(&self) -> Vec<Pid> {
        let scan = tree::descendants(self.pid());
        let held =
            |g: Pid| (g == self.group && !self.reaped) || scan.iter().any(|p| p.group == Some(g));
        let mut all = vec![self.group];
        all.extend(&self.cmd_groups);
        all.retain(|&g| held(g));
        all
    }

    /// Reap processes re-parented to `month-lock` that ended (see `tree`); CMD (`cmd`) and the
    /// watchdog are tokio's to reap.
    pub fn reap_orphans(&self, cmd: Option<u32>) {
        tree::reap_orphans(&[self.pid(), cmd.and_then(|id| tree::to_pid(id as i32))]);
    }

    /// Resolves if the watchdog exits while it should be watching (someone killed it).
    pub async fn exited(&mut self) {
        let _ = self.child.wait().await;
        self.reaped = true;
    }

    /// Kill whatever is left of CMD's group, of every group CMD was seen in, and of everything
    /// CMD started (the descendants of `month-lock`), and wait until the watchdog is gone
    /// (bounded: a stopped group is continued first, and a watchdog that does not end in time
    /// is killed). Called before CMD (`cmd`) is reaped. Returns whether nothing CMD started is
    /// left (false: one outlived SIGKILL, or /proc no longer shows them).
    pub async fn finish(mut self, cmd: Option<u32>) -> bool {
        // EOF: the watchdog kills the group, itself included.
        self.pipe = None;
        // A stopped group (`kill -STOP -PGID`, Ctrl-Z) holds a stopped watchdog: continue it.
        let _ = kill_process_group(self.group, Signal::CONT);
        for g in self.held_groups() {
            if g != self.group {
                let _ = kill_process_group(g, Signal::KILL);
            }
        }
        if tokio::time::timeout(FINISH_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        self.reaped = true;
        // Once more from here: a watchdog that was killed before it could do it leaves the
        // rest of the group running — only while a descendant is still in it (the watchdog
        // is reaped: an empty group's id may be an unrelated group's by now).
        if self.held_groups().contains(&self.group) {
            let _ = kill_process_group(self.group, Signal::KILL);
        }
        let cmd = cmd.and_then(|id| tree::to_pid(id as i32));
        // Nothing to skip: the watchdog is reaped, and its process id may be one of CMD's
        // processes' by now (skipping the number let such a process run on).
        let gone = tree::kill_all(None, &[cmd], KILL_ROUNDS);
        if !gone {
            eprintln!(
                "month-lock: a process CMD started is still running after SIGKILL (uninterruptible, \
                 traced, another user's), or /proc no longer shows them; exit status 70"
            );
        }
        gone
    }
}

/// The signals after which a stopped CMD is continued: those that end a process by default and
/// are sent to make it end (`timeout` and shells continue a stopped job after them too).
fn continues(sig: Signal) -> bool {
    [Signal::TERM, Signal::INT, Signal::HUP, Signal::QUIT].contains(&sig)
}

/// Resolves once CMD (process `cmd`, this process's child) has ended, *without* reaping it:
/// until it is reaped its process id is taken, so its group id cannot be reused, and
/// `getpgid` still answers for it. (tokio reaps the child only when its `wait` is polled.)
pub fn exit_of(cmd: Option<u32>) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let Some(cmd) = cmd.and_then(|id| tree::to_pid(id as i32)) else {
            return;
        };
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        loop {
            match waitid(
                WaitId::Pid(cmd),
                WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
            ) {
                Err(e) if e == rustix::io::Errno::INTR => continue,
                _ => return,
            }
        }
    })
}

/// Make CMD die with `month-lock`: `PR_SET_PDEATHSIG` (SIGKILL) set in the child between fork
/// and exec. The signal follows the death of the parent *thread*: CMD is spawned from the main
/// thread (a current-thread runtime), which lives as long as the process. If `month-lock` died
/// before the setting took effect, the child is no longer its child and does not run CMD.
/// The child then writes its process id into the watchdog's pipe `watchdog` (before it runs
/// anything, so the watchdog knows CMD even if `month-lock` dies at once).
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command, watchdog: RawFd) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe system
    // calls (prctl, getppid, getpid, write); it allocates only on the error path, which ends
    // the child. `watchdog` is the write end of the watchdog's pipe, open in the child until
    // exec (close-on-exec: CMD does not keep it).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("month-lock is gone"));
            }
            let me = rustix::process::getpid()
                .as_raw_nonzero()
                .get()
                .to_le_bytes();
            let fd = std::os::fd::BorrowedFd::borrow_raw(watchdog);
            if rustix::io::write(fd, &me)? != me.len() {
                return Err(std::io::Error::other("the watchdog's pipe is full"));
            }
            Ok(())
        });
    }
}

/// Whether `sig` was ignored when this process started (inherited as ignored: SIGINT and
/// SIGQUIT for a `&` job of a non-interactive shell, SIGHUP under `nohup`). Asked before any
/// handler is installed for it.
#[allow(unsafe_code)]
pub fn inherited_as_ignored(sig: SignalKind) -> bool {
    // SAFETY: sigaction with no new action only reads the current one into `old`, a zeroed
    // struct owned here; it installs nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig.as_raw_value(), std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Ignore every signal that can be ignored (SIGKILL and SIGSTOP cannot; the kernel still
/// delivers a real fault's SIGSEGV and the like with its default action).
#[allow(unsafe_code)]
fn ignore_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_IGN installs no handler; signals the C library reserves refuse (EINVAL),
        // which is fine.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

/// The watchdog's own main: ignore signals, learn CMD's process id from the pipe, note every
/// group CMD is in while the pipe is open; when it closes, kill those groups and its own.
/// Never returns.
pub fn watch() -> ! {
    ignore_signals();
    // Its own group: it leads it (see `Watchdog::start`).
    let own = tree::group_of(None);
    // The group to give the terminal back to: month-lock's, never to be killed.
    let owner: Option<Pid> = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .and_then(tree::to_pid);
    // Tell month-lock the handlers are in place (stdout is its pipe).
    {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"1").and_then(|()| out.flush());
    }
    // The pipe, read on a thread of its own: a process id per 4 bytes; EOF ends the thread.
    let (pids, from_pipe) = channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4];
        while stdin.read_exact(&mut buf).is_ok() {
            if pids.send(i32::from_le_bytes(buf)).is_err() {
                break;
            }
        }
    });
    let mut cmd: Option<Pid> = None;
    let mut groups: Vec<Pid> = Vec::new();
    let note = |cmd: Option<Pid>, groups: &mut Vec<Pid>| {
        if let Some(g) = cmd.and_then(|c| tree::group_of(Some(c))) {
            if Some(g) != own && Some(g) != owner && !groups.contains(&g) {
                groups.push(g);
            }
        }
    };
    loop {
        let next = match cmd {
            None => from_pipe.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(_) => from_pipe.recv_timeout(GROUP_POLL),
        };
        match next {
            Ok(pid) => cmd = tree::to_pid(pid),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        note(cmd, &mut groups);
    }
    // Once more: month-lock may have died right after CMD made its group.
    note(cmd, &mut groups);
    if let Some(owner) = owner {
        give_terminal_back(owner);
    }
    for g in groups {
        let _ = kill_process_group(g, Signal::KILL);
    }
    let _ = rustix::process::kill_current_process_group(Signal::KILL);
    std::process::exit(0);
}

/// CMD's group gets the terminal (it becomes the foreground process group) when `month-lock`
/// runs in the foreground of the terminal that is its stdin, as `timeout --foreground` and
/// shells do: CMD may read from and configure the terminal (a background group would be
/// stopped by SIGTTIN/SIGTTOU, holding the lock forever), and Ctrl-C and Ctrl-\ reach CMD's
/// group straight from the terminal (`month-lock`, now in the background, gets none to
/// forward). The watchdog gives the terminal back to `month-lock`'s group when it ends: it is
/// in the foreground group then, so that needs no SIGTTOU handling.
pub fn hand_terminal_to(group: i32) {
    let stdin = std::io::stdin();
    if !rustix::termios::isatty(&stdin) {
        return;
    }
    let Some(ours) = tree::group_of(None) else {
        return; // a group outside this pid namespace: not the terminal's to hand over
    };
    if rustix::termios::tcgetpgrp(&stdin).ok() != Some(ours) {
        return; // run in the background (or by a shell without job control): leave it alone
    }
    if let Some(group) = tree::to_pid(group) {
        let _ = rustix::termios::tcsetpgrp(&stdin, group);
    }
}

/// In the watchdog: if its group has the controlling terminal, hand it to `owner`.
fn give_terminal_back(owner: Pid) {
    let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return;
    };
    if tree::group_of(None).is_some_and(|g| rustix::termios::tcgetpgrp(&tty).ok() == Some(g)) {
        let _ = rustix::termios::tcsetpgrp(&tty, owner);
    }
}
