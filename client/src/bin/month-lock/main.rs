//! `month-lock`: hold a calendar month while a command runs, show and check month locks.
//! Built with the `cli` feature: `cargo install --path client --features cli`.

// Exceptions, each with a SAFETY note: watchdog::die_with_parent, watchdog::ignore_signals,
// watchdog::inherited_as_ignored and tree::group_of.
#![deny(unsafe_code)]

mod conn;
mod months;
mod status;
// The library's message helpers, compiled in here too (public in neither).
#[path = "../../text.rs"]
mod text;
mod tls;
mod tree;
mod watchdog;

use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::Duration;

use clap::{Parser, Subcommand};
use month_lock_client::kind::{AllOf, AnyOf, Kind};
use month_lock_client::tokio_postgres::Client;
use month_lock_client::{
    Error, Heartbeat, LockMode, LostReason, MonthLock, MonthLockExt, MonthLockGuard, NoMonths,
    YearMonth,
};
use rustix::process::Signal;
#[cfg(test)]
use status::table;
use status::{month_of, status};
use text::error_chain;
use tokio::signal::unix::{signal, SignalKind};

/// Exit codes of `run`.
const EX_UNAVAILABLE: i32 = 69;
const EX_SOFTWARE_LOCK_LOST: i32 = 70;
const EX_TEMPFAIL: i32 = 75;
const EX_CANNOT_EXECUTE: i32 = 126;
const EX_NOT_FOUND: i32 = 127;

/// Shown at the end of every `--help`: exit codes, then where the connection comes from.
const HELP_FOOTER: &str = "\
Exit codes:
  run     CMD's exit code when CMD ends on its own (128+N if CMD was killed by signal N)
          75  the month (every month of a range) was not acquired within --timeout, or with
              --any no month was free (EX_TEMPFAIL); CMD did not run
          70  the lock was lost while CMD ran: CMD's process group (and everything CMD started)
              got SIGTERM, then SIGKILL after --grace (also when the lock is found lost as CMD
              ends, or the release is not answered within 10 s)
          69  cannot connect, database error, or the extension is missing; CMD did not run
          126 CMD cannot be executed, 127 CMD not found
  status  0 ok, 2 error
  check   0 the month is free, 1 it is locked (holders printed), 2 error
  all     2 usage error

Connection: --database-url, else DATABASE_URL (a postgres:// URL or key=value string), else the
libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGCONNECT_TIMEOUT (defaults as in
libpq: a Unix socket in /var/run/postgresql or /tmp if present, else localhost; port 5432;
user = OS user; database = user). Settings missing from a URL are taken from those variables too.
Passwords also come from PGPASSFILE or ~/.pgpass (mode 0600). TLS: sslmode / PGSSLMODE = disable,
prefer (default), require, verify-ca, verify-full; sslrootcert / PGSSLROOTCERT (default
~/.postgresql/root.crt). Connections identify themselves with application_name 'month-lock'
(PGAPPNAME overrides it).";

/// Lock calendar months with the month_lock PostgreSQL extension.
#[derive(Parser, Debug)]
#[command(name = "month-lock", version, after_help = HELP_FOOTER)]
struct Cli {
    /// PostgreSQL URL or key=value connection string (postgres://user@host:5432/db).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hold MONTHS while CMD runs: stdin/stdout/stderr pass through, SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to CMD's process group (and to CMD if it made
    /// a group of its own; SIGCONT follows SIGINT, SIGTERM, SIGHUP and SIGQUIT, so a stopped
    /// CMD acts on them), and month-lock exits with CMD's exit code. A signal month-lock
    /// inherited as ignored (SIGINT in a `&` job of a script, SIGHUP under nohup) stays
    /// ignored, in CMD too; before the month is held the others end month-lock.
    ///
    /// CMD runs in a process group of its own, with everything it starts: a lost lock stops
    /// everything CMD started (its group, a group CMD made, as GNU timeout or setsid do, and
    /// any process below CMD, also one in a session of its own), and Ctrl-C reaches CMD once.
    /// Whatever CMD leaves running is killed when CMD ends, before the lock is released. A
    /// watchdog process kills CMD's group and the groups CMD made if month-lock dies in any
    /// way (SIGKILL, OOM); a process below CMD in a group or session of its own then runs on.
    /// The release has 10 s to be answered; a signal then makes month-lock exit at once
    /// (closing the connection ends the session, which releases the lock). When month-lock
    /// runs in the foreground of the terminal that is its stdin, CMD's group becomes the
    /// terminal's foreground group (CMD may read from it) until CMD ends.
    ///
    /// MONTHS is one month (2024-03), a range (2024-01..2024-03) or a comma-separated list of
    /// both (2024-01,2024-04..2024-06). Several months are taken all or nothing (each waits in
    /// the queue, ascending, within one --timeout); with --any, the first free month in the
    /// order given is taken, without waiting, and exit 75 if none is.
    ///
    /// CMD's environment: MONTH_LOCK_MONTH=2024-03 when one month is held (unset when several
    /// are); MONTH_LOCK_MONTHS = the months held, runs written FIRST..LAST, joined by commas
    /// (2024-01..2024-03; for one month the month); MONTH_LOCK_TOKEN = the fencing token of
    /// the hold (for several months the largest of their tokens) and MONTH_LOCK_TOKENS =
    /// MONTH:TOKEN for each month (2024-01:17,2024-02:18,2024-03:19). Tokens grow with every
    /// new hold of a month: store the highest one with the data and write only where
    /// stored_token <= MONTH_LOCK_TOKEN. Not set with --shared, nor when the server's
    /// month_lock has no month_lock_token (a warning says so). Inherited MONTH_LOCK_*
    /// variables are removed first.
    #[command(after_help = HELP_FOOTER, verbatim_doc_comment)]
    Run {
        /// YYYY-MM, FIRST..LAST, or a comma-separated list of both.
        #[arg(value_parser = parse_months, value_name = "MONTHS")]
        months: Months,
        /// Take the first free month of MONTHS (in the order given) instead of all of them;
        /// never waits: exit 75 if none is free.
        #[arg(long, conflicts_with_all = ["timeout", "shared"])]
        any: bool,
        /// Wait at most this long for the month(s) (e.g. 500ms, 5s, 10m); 0 = one attempt.
        /// Without it, wait without limit (for several months: up to 24.8 days).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// Take the month in shared mode (many shared holders at once, no exclusive holder).
        /// One month only.
        #[arg(long)]
        shared: bool,
        /// After a lost lock: time between SIGTERM and SIGKILL to CMD.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s", value_name = "DURATION")]
        grace: Duration,
        /// How often to check that the lock (every month held) is still held while CMD runs.
        /// Between 100ms and 1h.
        #[arg(long, value_parser = parse_heartbeat, default_value = "1s", value_name = "DURATION")]
        heartbeat: Duration,
        /// The command and its arguments (after `--`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<OsString>,
    },
    /// Show the month_locks view (holders and waiters in this database).
    ///
    /// Fencing tokens are not shown: the server keeps a hold's token in the holding session
    /// only (month_lock_token answers only there), and this command's own session holds
    /// nothing, so it knows no tokens. `month-lock run` passes its hold's token to CMD as
    /// MONTH_LOCK_TOKEN.
    #[command(after_help = HELP_FOOTER)]
    Status {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if MONTH is free, 1 if it is locked (printing holders), 2 on error.
    #[command(after_help = HELP_FOOTER)]
    Check {
        /// The month, as YYYY-MM.
        month: YearMonth,
    },
}

fn main() {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == watchdog::ARG)
    {
        watchdog::watch();
    }
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async_main(cli));
    // Do not wait for stray tasks (e.g. a cancel request) on the way out.
    runtime.shutdown_background();
    std::process::exit(code);
}

async fn async_main(cli: Cli) -> i32 {
    // Usage errors clap cannot see, before connecting.
    if let Command::Run {
        months,
        shared: true,
        ..
    } = &cli.command
    {
        if months.0.len() > 1 {
            eprintln!(
                "month-lock: --shared takes one month, not {}",
                text::describe_months(&months.0)
            );
            return 2;
        }
    }
    let error_code = match cli.command {
        Command::Run { .. } => EX_UNAVAILABLE,
        _ => 2,
    };
    let client = match connect(cli.database_url.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("month-lock: {e}");
            return error_code;
        }
    };
    let outcome = match cli.command {
        Command::Run {
            months,
            any,
            timeout,
            shared,
            grace,
            heartbeat,
            command,
        } => {
            // --shared comes with one month only, --any without --timeout or --shared (checked
            // above and by clap).
            let request = if any {
                Request::Any(MonthLock::any_of(months.0.clone()))
            } else if let [one] = months.0[..] {
                let mode = if shared {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                Request::One(MonthLock::new(one).mode(mode).timeout(timeout))
            } else {
                Request::All(MonthLock::set(months.0.clone()).map(|r| r.timeout(timeout)))
            };
            return match request {
                Request::One(r) => run(&client, r, timeout, grace, heartbeat, command).await,
                Request::All(Ok(r)) => run(&client, r, timeout, grace, heartbeat, command).await,
                Request::Any(Ok(r)) => run(&client, r, timeout, grace, heartbeat, command).await,
                Request::All(Err(e)) | Request::Any(Err(e)) => {
                    eprintln!(
                        "month-lock: cannot lock {}: {}",
                        text::describe_months(&months.0),
                        Error::from(e)
                    );
                    EX_UNAVAILABLE
                }
            };
        }
        Command::Status { json } => status(&client, json).await,
        Command::Check { month } => check(&client, month).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("month-lock: {e}");
            2
        }
    }
}

/// Sets `client_connection_check_interval` to one second where the server has it and the
/// session left it off.
const CHECK_CLOSED_CLIENT: &str =
    "SELECT pg_catalog.set_config('client_connection_check_interval', '1s', false) \
     FROM pg_catalog.pg_settings WHERE name = 'client_connection_check_interval' AND setting = '0'";

/// Connect as libpq would (see `conn`), with TLS by rustls; the message carries the server's
/// or the TLS layer's own words.
async fn connect(url: Option<&str>) -> Result<Client, String> {
    let settings = conn::settings(url, &|name| std::env::var(name).ok())?;
    let tls = settings.tls.connector()?;
    // One host after the other, each with its own password and TLS mode (as libpq).
    let mut last = String::from("no host to connect to");
    for config in settings.attempts()? {
        match config.connect(tls.clone()).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                // A month-lock killed while it waits must leave the lock queue: PostgreSQL
                // notices a closed client socket during a wait only with this set (14+; not
                // overridden if the user set it). Best effort: an older server has no such
                // setting and keeps the wait until the lock is granted.
                let _ = client.batch_execute(CHECK_CLOSED_CLIENT).await;
                return Ok(client);
            }
            Err(e) => last = format!("cannot connect to the database: {}", error_chain(&e)),
        }
    }
    Err(last)
}

/// `--heartbeat`: a check is a statement on the server; more than ten a second is a storm,
/// less than one an hour is no watch.
fn parse_heartbeat(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err("must be between 100ms and 1h".into());
    }
    Ok(d)
}

/// What `run` asks for, by kind (MONTHS is never empty: `months::parse` refuses that).
enum Request {
    One(MonthLock),
    All(Result<MonthLock<AllOf>, NoMonths>),
    Any(Result<MonthLock<AnyOf>, NoMonths>),
}

/// The MONTHS argument of `run`.
#[derive(Clone, Debug)]
struct Months(Vec<YearMonth>);

fn parse_months(s: &str) -> Result<Months, String> {
    months::parse(s).map(Months)
}

/// Who holds any of `months`, for messages: "pid 123 (application 'x', exclusive)", with
/// the month in front when there are several ("2024-02: pid 123 (…)").
async fn holders(client: &Client, months: &[YearMonth]) -> Vec<String> {
    let rows = client.locks().await.unwrap_or_default();
    rows.iter()
        .filter(|r| r.granted && r.year_month().is_some_and(|m| months.contains(&m)))
        .map(|r| {
            let pid = r.pid.map_or("?".to_string(), |p| p.to_string());
            let app = r.application_name.as_deref().unwrap_or("?");
            let month = if months.len() > 1 {
                format!("{}: ", month_of(r))
            } else {
                String::new()
            };
            format!("{month}pid {pid} (application '{app}', {})", r.mode)
        })
        .collect()
}

fn display_command(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

async fn run<K: Kind>(
    client: &Client,
    request: MonthLock<K>,
    timeout: Option<Duration>,
    grace: Duration,
    heartbeat: Duration,
    command: Vec<OsString>,
) -> i32 {
    let asked = request.months().to_vec();
    let shown_months = text::describe_months(&asked);
    let guard = match request.acquire(client).await {
        Ok(guard) => guard,
        Err(e) if e.is_timeout() => {
            let who = holders(client, &asked).await;
            let who = if who.is_empty() {
                "another session".to_string()
            } else {
                who.join(", ")
            };
            let what = match e.error() {
                Error::NoneFree { .. } => {
                    format!("no month of {shown_months} is free (held by {who})")
                }
                Error::NotAllFree { .. } => format!(
                    "{shown_months} is not all free (held by {who}); not acquired within {}",
                    humantime::format_duration(timeout.unwrap_or_default())
                ),
                _ => format!(
                    "{shown_months} is held by {who}; not acquired within {}",
                    humantime::format_duration(timeout.unwrap_or_default())
                ),
            };
            eprintln!(
                "month-lock: {what}, not running {}",
                display_command(&command)
            );
            return EX_TEMPFAIL;
        }
        Err(e) => {
            eprintln!("month-lock: cannot lock {shown_months}: {e}");
            return EX_UNAVAILABLE;
        }
    };
    let guard = guard.with_heartbeat(Heartbeat {
        interval: heartbeat,
        timeout: Some(heartbeat.max(Duration::from_secs(10))),
    });
    let env = match environment(&guard).await {
        Ok(env) => env,
        Err(Error::LockLost { reason, .. }) => {
            eprintln!("month-lock: lost the lock on {shown_months} ({reason}) before starting CMD");
            return EX_SOFTWARE_LOCK_LOST;
        }
        Err(e) => {
            eprintln!("month-lock: cannot get the fencing token of {shown_months}: {e}");
            let _ = guard.release().await;
            return EX_UNAVAILABLE;
        }
    };
    run_holding(guard, grace, command, env).await
}

/// The variables CMD gets (see `run --help`).
const ENV_NAMES: [&str; 4] = [
    "MONTH_LOCK_MONTH",
    "MONTH_LOCK_MONTHS",
    "MONTH_LOCK_TOKEN",
    "MONTH_LOCK_TOKENS",
];

/// CMD's MONTH_LOCK_* variables for what `guard` holds.
async fn environment(
    guard: &MonthLockGuard<&Client>,
) -> Result<Vec<(&'static str, String)>, Error> {
    let held = guard.months();
    let mut env = vec![("MONTH_LOCK_MONTHS", text::describe_months(held))];
    if let [one] = held {
        env.push(("MONTH_LOCK_MONTH", one.to_string()));
    }
    if guard.mode() == LockMode::Exclusive {
        match guard.tokens().await {
            Ok(tokens) => {
                let max = tokens.iter().map(|(_, t)| *t).max().unwrap_or_default();
                let each: Vec<String> = tokens.iter().map(|(m, t)| format!("{m}:{t}")).collect();
                env.push(("MONTH_LOCK_TOKEN", max.to_string()));
                env.push(("MONTH_LOCK_TOKENS", each.join(",")));
            }
            Err(Error::ExtensionMissing { .. } | Error::ExtensionOutdated { .. }) => eprintln!(
                "month-lock: warning: this database's month_lock has no fencing tokens \
                 (ALTER EXTENSION month_lock UPDATE); MONTH_LOCK_TOKEN is not set"
            ),
            Err(e) => return Err(e),
        }
    }
    Ok(env)
}

/// The longest wait for the release after CMD ended; then month-lock exits, and closing the
/// connection ends the session (the server releases what it holds).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

async fn run_holding(
    guard: MonthLockGuard<&Client>,
    grace: Duration,
    command: Vec<OsString>,
    env: Vec<(&'static str, String)>,
) -> i32 {
    let ym = text::describe_months(guard.months());
    let shown = display_command(&command);
    // Registered before CMD starts, so that no signal is missed (or kills us instead). A
    // signal this process inherited as ignored stays ignored, in CMD too (as CMD started the
    // same way would have it): no handler, nothing forwarded.
    let mut signals = Vec::new();
    for kind in watchdog::FORWARDED {
        if watchdog::inherited_as_ignored(kind) {
            continue;
        }
        match signal(kind) {
            Ok(s) => signals.push((kind, s)),
            Err(_) => {
                eprintln!("month-lock: cannot install signal handlers");
                return EX_UNAVAILABLE;
            }
        }
    }
    if !tree::proc_is_ours() {
        eprintln!(
            "month-lock: /proc is missing or another pid namespace's (mount this namespace's \
             /proc; `unshare --pid --fork --mount-proc` does): what {shown} starts could not be \
             found; not running it"
        );
        let _ = release_in_time(guard).await;
        return EX_UNAVAILABLE;
    }
    let mut watchdog = match watchdog::Watchdog::start().await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("month-lock: cannot start the watchdog for {shown}: {e}");
            let _ = release_in_time(guard).await;
            return EX_UNAVAILABLE;
        }
    };
    let pipe = watchdog
        .pipe_fd()
        .expect("the watchdog's pipe is open until finish()");
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..]).process_group(watchdog.group());
    watchdog::die_with_parent(&mut cmd, pipe);
    for name in ENV_NAMES {
        cmd.env_remove(name);
    }
    cmd.envs(env);
    // Processes CMD starts stay this process's descendants, wherever they move (see `tree`);
    // the ones re-parented here are reaped on SIGCHLD.
    let mut children = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(_) => {
            eprintln!("month-lock: cannot install signal handlers");
            watchdog.finish(None).await;
            let _ = release_in_time(guard).await;
            return EX_UNAVAILABLE;
        }
    };
    if let Err(e) = tree::become_subreaper() {
        eprintln!("month-lock: warning: processes {shown} starts and leaves are out of reach: {e}");
    }
    // Children this process had before CMD (from the shell that exec'd it) are not CMD's.
    tree::remember_others(tree::to_pid(watchdog.group()));
    // Before CMD starts: a CMD that touched the terminal from the background would be stopped.
    watchdog::hand_terminal_to(watchdog.group());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("month-lock: cannot run {shown}: {e}");
            watchdog.finish(None).await;
            let _ = release_in_time(guard).await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                EX_NOT_FOUND
            } else {
                EX_CANNOT_EXECUTE
            };
        }
    };
    let cmd_pid = child.id();
    // CMD's end, noticed without reaping it: CMD's groups are noted and killed first.
    let mut exited = watchdog::exit_of(cmd_pid);
    let ended = {
        let lost = guard.lost();
        tokio::pin!(lost);
        loop {
            let forwarded = next_signal(&mut signals);
            tokio::select! {
                biased;
                _ = &mut exited => break Ok(()),
                kind = forwarded => watchdog.forward(to_signal(kind), cmd_pid),
                _ = children.recv() => watchdog.reap_orphans(cmd_pid),
                reason = &mut lost => break Err(Some(reason)),
                _ = watchdog.exited() => {
                    // CMD may have ended at the same moment (a signal that reached both, such
                    // as CMD's own `kill -KILL 0`): then CMD's own exit is what happened. Its
                    // end comes once the kernel has it, so wait for it a moment.
                    match tokio::time::timeout(REAP_TIMEOUT, &mut exited).await {
                        Ok(_) => break Ok(()),
                        Err(_) => break Err(None),
                    }
                }
            }
        }
    };
    match ended {
        Ok(()) => {
            // What CMD left running in its group, and in a group it made, goes before the
            // lock does (CMD's last group read while it is not yet reaped).
            watchdog.note(cmd_pid);
            let all_gone = watchdog.finish(cmd_pid).await;
            let status = match child.wait().await {
                Ok(status) => status,
                Err(e) => {
                    eprintln!("month-lock: waiting for {shown}: {e}");
                    return EX_UNAVAILABLE;
                }
            };
            let code = exit_code(status);
            let release = release_in_time(guard);
            tokio::pin!(release);
            let outcome = tokio::select! {
                outcome = &mut release => outcome,
                kind = next_signal(&mut signals) => {
                    eprintln!(
                        "month-lock: interrupted while releasing {ym}; exiting (the server releases it as the connection closes)"
                    );
                    return 128 + to_signal(kind).as_raw();
                }
            };
            match outcome {
                Ok(()) if all_gone => code,
                Ok(()) => EX_SOFTWARE_LOCK_LOST,
                Err(Error::LockLost { reason, .. }) => {
                    eprintln!(
                        "month-lock: the lock on {ym} was found lost when {shown} ended ({reason})"
                    );
                    EX_SOFTWARE_LOCK_LOST
                }
                Err(e) => {
                    eprintln!(
                        "month-lock: releasing {ym}: {e}; exiting (the server releases it as the connection closes)"
                    );
                    code
                }
            }
        }
        Err(reason) => {
            let why = match &reason {
                Some(reason) => format!("lost the lock on {ym} ({reason})"),
                None => format!("the watchdog of {shown} was killed"),
            };
            eprintln!(
                "month-lock: {why}; stopping {shown} and its process group (SIGTERM, SIGKILL after {})",
                humantime::format_duration(grace)
            );
            // CMD's group, any group CMD made (`setsid`, `timeout`) and every process CMD
            // started (see `tree`).
            watchdog.stop(Signal::TERM, cmd_pid);
            if tokio::time::timeout(grace, &mut exited).await.is_err() {
                watchdog.stop(Signal::KILL, cmd_pid);
                // SIGKILL ends CMD unless the kernel holds it (uninterruptible sleep): bounded.
                if tokio::time::timeout(grace.max(REAP_TIMEOUT), &mut exited)
                    .await
                    .is_err()
                {
                    eprintln!("month-lock: {shown} did not end after SIGKILL; exiting");
                }
            }
            watchdog.note(cmd_pid);
            watchdog.finish(cmd_pid).await;
            let _ = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await;
            if reason.is_none() {
                // The lock is still held: release it now that the group is gone, and say
                // what became of it only once the server has answered.
                match release_in_time(guard).await {
                    Ok(()) => eprintln!("month-lock: {ym} is released"),
                    Err(e) => eprintln!(
                        "month-lock: releasing {ym}: {e}; exiting (the server releases it as the connection closes)"
                    ),
                }
            }
            EX_SOFTWARE_LOCK_LOST
        }
    }
}

/// How long CMD's status may take to come once CMD was killed (reaped by the kernel's time).
const REAP_TIMEOUT: Duration = Duration::from_secs(1);

/// Release within [`RELEASE_TIMEOUT`]; no answer by then counts as a lost lock (the server
/// is unresponsive, exclusivity cannot be vouched for).
async fn release_in_time(guard: MonthLockGuard<&Client>) -> Result<(), Error> {
    let ym = guard.year_month();
    match tokio::time::timeout(RELEASE_TIMEOUT, guard.release()).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::LockLost {
            ym,
            reason: LostReason::Unresponsive {
                after: RELEASE_TIMEOUT,
            },
        }),
    }
}

/// The next of the forwarded signals to arrive.
async fn next_signal(signals: &mut [(SignalKind, tokio::signal::unix::Signal)]) -> SignalKind {
    std::future::poll_fn(|cx| {
        for (kind, s) in signals.iter_mut() {
            if s.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*kind);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn to_signal(kind: SignalKind) -> Signal {
    Signal::from_named_raw(kind.as_raw_value()).unwrap_or(Signal::TERM)
}

async fn check(client: &Client, ym: YearMonth) -> Result<i32, Error> {
    if !client.is_locked(ym).await? {
        println!("{ym} is free");
        return Ok(0);
    }
    let who = holders(client, &[ym]).await;
    if who.is_empty() {
        println!("{ym} is locked");
    } else {
        println!("{ym} is locked by {}", who.join(", "));
    }
    Ok(1)
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
