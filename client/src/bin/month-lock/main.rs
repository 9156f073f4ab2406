//! `month-lock`: hold a calendar month while a command runs, show and check month locks.
//! Built with the `cli` feature: `cargo install --path client --features cli`.

#![forbid(unsafe_code)]

mod conn;
mod tls;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitStatus;
use std::time::Duration;

use clap::{Parser, Subcommand};
use month_lock_client::tokio_postgres::Client;
use month_lock_client::{
    error_chain, Error, Heartbeat, LockMode, MonthLock, MonthLockExt, MonthLockGuard,
    MonthLockInfo, YearMonth,
};
use rustix::process::{kill_process, Pid, Signal};
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
          75  the month was not acquired within --timeout (EX_TEMPFAIL); CMD did not run
          70  the lock was lost while CMD ran: CMD got SIGTERM, then SIGKILL after --grace
              (also when the lock is found lost as CMD ends)
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
    /// Hold MONTH while CMD runs: stdin/stdout/stderr pass through, SIGINT/SIGTERM/SIGHUP are
    /// forwarded to CMD, and month-lock exits with CMD's exit code.
    #[command(after_help = HELP_FOOTER)]
    Run {
        /// The month, as YYYY-MM.
        month: YearMonth,
        /// Wait at most this long for the month (e.g. 500ms, 5s, 10m); 0 = one attempt.
        /// Without it, wait without limit.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
        /// Take the month in shared mode (many shared holders at once, no exclusive holder).
        #[arg(long)]
        shared: bool,
        /// After a lost lock: time between SIGTERM and SIGKILL to CMD.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10s", value_name = "DURATION")]
        grace: Duration,
        /// How often to check that the lock is still held while CMD runs.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", value_name = "DURATION")]
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
            month,
            timeout,
            shared,
            grace,
            heartbeat,
            command,
        } => return run(&client, month, timeout, shared, grace, heartbeat, command).await,
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

/// Connect as libpq would (see `conn`), with TLS by rustls; the message carries the server's
/// or the TLS layer's own words.
async fn connect(url: Option<&str>) -> Result<Client, String> {
    let settings = conn::settings(url, &|name| std::env::var(name).ok())?;
    let tls = settings.tls.connector()?;
    let (client, connection) = settings
        .config
        .connect(tls)
        .await
        .map_err(|e| format!("cannot connect to the database: {}", error_chain(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Who holds `ym`, for messages: "pid 123 (application 'x', exclusive)".
async fn holders(client: &Client, ym: YearMonth) -> Vec<String> {
    let rows = client.locks().await.unwrap_or_default();
    rows.iter()
        .filter(|r| r.granted && r.year_month() == Some(ym))
        .map(|r| {
            let pid = r.pid.map_or("?".to_string(), |p| p.to_string());
            let app = r.application_name.as_deref().unwrap_or("?");
            format!("pid {pid} (application '{app}', {})", r.mode)
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

/// Signal CMD. Its pid cannot have been reused: CMD is not reaped until we wait for it.
fn send_signal(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| Pid::from_raw(p as i32)) {
        let _ = kill_process(pid, sig);
    }
}

async fn run(
    client: &Client,
    ym: YearMonth,
    timeout: Option<Duration>,
    shared: bool,
    grace: Duration,
    heartbeat: Duration,
    command: Vec<OsString>,
) -> i32 {
    let mode = if shared {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let guard = match MonthLock::new(ym)
        .mode(mode)
        .wait(timeout)
        .acquire(client)
        .await
    {
        Ok(guard) => guard,
        Err(e) if e.is_timeout() => {
            let t = timeout.unwrap_or_default();
            let who = holders(client, ym).await;
            let who = if who.is_empty() {
                "another session".to_string()
            } else {
                who.join(", ")
            };
            eprintln!(
                "month-lock: {ym} is held by {who}; not acquired within {}, not running {}",
                humantime::format_duration(t),
                display_command(&command)
            );
            return EX_TEMPFAIL;
        }
        Err(e) => {
            eprintln!("month-lock: cannot lock {ym}: {e}");
            return EX_UNAVAILABLE;
        }
    };
    let guard = guard.with_heartbeat(Heartbeat {
        interval: heartbeat,
        timeout: Some(heartbeat.max(Duration::from_secs(10))),
    });
    run_holding(guard, grace, command).await
}

async fn run_holding(
    guard: MonthLockGuard<&Client>,
    grace: Duration,
    command: Vec<OsString>,
) -> i32 {
    let ym = guard.year_month();
    let shown = display_command(&command);
    // Registered before CMD starts, so that no signal is missed (or kills us instead).
    let (Ok(mut sigint), Ok(mut sigterm), Ok(mut sighup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("month-lock: cannot install signal handlers");
        return EX_UNAVAILABLE;
    };
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("month-lock: cannot run {shown}: {e}");
            let _ = guard.release().await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                EX_NOT_FOUND
            } else {
                EX_CANNOT_EXECUTE
            };
        }
    };
    let pid = child.id();
    let status = {
        let lost = guard.lost();
        tokio::pin!(lost);
        loop {
            tokio::select! {
                biased;
                status = child.wait() => break Ok(status),
                _ = sigint.recv() => send_signal(pid, Signal::INT),
                _ = sigterm.recv() => send_signal(pid, Signal::TERM),
                _ = sighup.recv() => send_signal(pid, Signal::HUP),
                reason = &mut lost => break Err(reason),
            }
        }
    };
    match status {
        Ok(Ok(status)) => {
            let code = exit_code(status);
            match guard.release().await {
                Ok(()) => code,
                Err(Error::LockLost { reason, .. }) => {
                    eprintln!(
                        "month-lock: the lock on {ym} was found lost when {shown} ended ({reason})"
                    );
                    EX_SOFTWARE_LOCK_LOST
                }
                Err(e) => {
                    eprintln!("month-lock: releasing {ym}: {e}");
                    code
                }
            }
        }
        Ok(Err(e)) => {
            eprintln!("month-lock: waiting for {shown}: {e}");
            EX_UNAVAILABLE
        }
        Err(reason) => {
            eprintln!(
                "month-lock: lost the lock on {ym} ({reason}); stopping {shown} (SIGTERM, SIGKILL after {})",
                humantime::format_duration(grace)
            );
            send_signal(pid, Signal::TERM);
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            EX_SOFTWARE_LOCK_LOST
        }
    }
}

async fn status(client: &Client, json: bool) -> Result<i32, Error> {
    let rows = client.locks().await?;
    let mut out = std::io::stdout().lock();
    if json {
        for row in &rows {
            let line = serde_json::to_string(row).expect("serializable");
            let _ = writeln!(out, "{line}");
        }
        return Ok(0);
    }
    let _ = out.write_all(table(&rows).as_bytes());
    Ok(0)
}

fn table(rows: &[MonthLockInfo]) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let time = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    let mut lines: Vec<[String; 9]> = vec![[
        "MONTH",
        "MODE",
        "STATE",
        "PID",
        "APPLICATION",
        "USER",
        "CLIENT",
        "WAITING SINCE",
        "BACKEND START",
    ]
    .map(String::from)];
    for r in rows {
        lines.push([
            format!("{}-{:02}", r.year, r.month),
            r.mode.to_string(),
            if r.granted { "held" } else { "waiting" }.to_string(),
            r.pid.map(|p| p.to_string()).unwrap_or_default(),
            opt(&r.application_name),
            opt(&r.usename),
            r.client_addr.map(|a| a.to_string()).unwrap_or_else(|| {
                if r.pid.is_some() {
                    "local".into()
                } else {
                    String::new()
                }
            }),
            time(&r.waiting_since),
            time(&r.backend_start),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    if rows.is_empty() {
        text.push_str("(no month locks)\n");
    }
    text
}

async fn check(client: &Client, ym: YearMonth) -> Result<i32, Error> {
    if !client.is_locked(ym).await? {
        println!("{ym} is free");
        return Ok(0);
    }
    let who = holders(client, ym).await;
    if who.is_empty() {
        println!("{ym} is locked");
    } else {
        println!("{ym} is locked by {}", who.join(", "));
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_of_a_signalled_child_is_128_plus_n() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
    }
}
