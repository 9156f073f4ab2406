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
//! The watchdog outlives signals sent to the group (it ignores every signal but SIGKILL and
//! SIGSTOP, which cannot be ignored), so a forwarded SIGTERM, or any signal a process of the
//! group sends to it (`kill -ALRM 0` from a CMD that ignores SIGALRM), leaves the watchdog in
//! place. A CMD that leaves the group (`setsid`, GNU `timeout`, which makes a group of its own)
//! is signalled by its process id as well; what *it* starts in its new group is out of reach
//! (see docs/cli.md). Being in its own group, CMD does not get the terminal's SIGINT (Ctrl-C)
//! directly: `month-lock` forwards it once.

use std::io::{Read, Write};
use std::process::Stdio;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::signal::unix::SignalKind;

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
const FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A running watchdog: its group is CMD's group.
pub struct Watchdog {
    child: Child,
    /// Closing it tells the watchdog to kill the group.
    pipe: Option<ChildStdin>,
    group: Pid,
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
            .arg(
                rustix::process::getpgrp()
                    .as_raw_nonzero()
                    .get()
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
            .and_then(|id| Pid::from_raw(id as i32))
            .ok_or_else(|| std::io::Error::other("the watchdog exited at once"))?;
        // The watchdog writes one byte once its signal handlers are in place. (If it fails,
        // dropping `pipe` makes it kill its group, which is itself alone.)
        let mut ready = [0u8; 1];
        let mut out = child.stdout.take().expect("piped");
        if out.read(&mut ready).await? != 1 {
            return Err(std::io::Error::other("the watchdog exited at once"));
        }
        Ok(Watchdog { child, pipe, group })
    }

    /// The process group CMD joins (`Command::process_group`).
    pub fn group(&self) -> i32 {
        self.group.as_raw_nonzero().get()
    }

    /// Send `sig` to every process of CMD's group (the watchdog ignores it), and to CMD itself
    /// (process id `cmd`) if CMD has left the group: once, either way.
    pub fn signal(&self, sig: Signal, cmd: Option<u32>) {
        let _ = kill_process_group(self.group, sig);
        let cmd = cmd.and_then(|id| Pid::from_raw(id as i32));
        if let Some(cmd) = cmd {
            if rustix::process::getpgid(Some(cmd)).ok() != Some(self.group) {
                let _ = rustix::process::kill_process(cmd, sig);
            }
        }
    }

    /// Resolves if the watchdog exits while it should be watching (someone killed it).
    pub async fn exited(&mut self) {
        let _ = self.child.wait().await;
    }

    /// Kill whatever is left of CMD's group and wait until the watchdog is gone (bounded: a
    /// stopped group is continued first, and a watchdog that does not end in time is killed).
    pub async fn finish(mut self) {
        self.pipe = None; // EOF: the watchdog kills the group, itself included
                          // A stopped group (`kill -STOP -PGID`, Ctrl-Z) holds a stopped watchdog: continue it.
        let _ = kill_process_group(self.group, Signal::CONT);
        if tokio::time::timeout(FINISH_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        // Once more from here: a watchdog that was killed before it could do it leaves the
        // rest of the group running. (A group id is not reused while the group has members.)
        let _ = kill_process_group(self.group, Signal::KILL);
    }
}

/// Make CMD die with `month-lock`: `PR_SET_PDEATHSIG` (SIGKILL) set in the child between fork
/// and exec. The signal follows the death of the parent *thread*: CMD is spawned from the main
/// thread (a current-thread runtime), which lives as long as the process. If `month-lock` died
/// before the setting took effect, the child is no longer its child and does not run CMD.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe system
    // calls (prctl, getppid); it allocates only on the error path, which ends the child.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("month-lock is gone"));
            }
            Ok(())
        });
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

/// The watchdog's own main: ignore signals, wait for the pipe to close, kill the group. Never
/// returns.
pub fn watch() -> ! {
    ignore_signals();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        // Tell month-lock the handlers are in place (stdout is its pipe).
        {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"1").and_then(|()| out.flush());
        }
        // Blocking read on a thread of its own: returns at EOF (or on any byte).
        let _ = tokio::task::spawn_blocking(|| {
            let mut byte = [0u8; 1];
            let _ = std::io::stdin().read(&mut byte);
        })
        .await;
    });
    if let Some(owner) = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .and_then(Pid::from_raw)
    {
        give_terminal_back(owner);
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
    let ours = rustix::process::getpgrp();
    if rustix::termios::tcgetpgrp(&stdin).ok() != Some(ours) {
        return; // run in the background (or by a shell without job control): leave it alone
    }
    if let Some(group) = Pid::from_raw(group) {
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
    if rustix::termios::tcgetpgrp(&tty).ok() == Some(rustix::process::getpgrp()) {
        let _ = rustix::termios::tcsetpgrp(&tty, owner);
    }
}
