//! The one error type of this crate.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::{InvalidYearMonth, YearMonth};

/// `Result` with this crate's [`Error`].
///
/// ```
/// fn parse(s: &str) -> month_lock_client::Result<month_lock_client::YearMonth> {
///     Ok(s.parse()?)
/// }
/// assert!(parse("2024-03").is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong; match on the variant to decide what to do.
///
/// ```
/// use month_lock_client::Error;
///
/// fn exit_code(e: &Error) -> i32 {
///     match e {
///         Error::Timeout { .. } => 75,
///         Error::LockLost { .. } => 70,
///         Error::ExtensionMissing { .. } => 69,
///         Error::InvalidMonth(_) => 64,
///         _ => 1,
///     }
/// }
/// let e: Error = "2024-13".parse::<month_lock_client::YearMonth>().unwrap_err().into();
/// assert_eq!(exit_code(&e), 64);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value that is not a month in `0001-01..=9999-12`.
    #[error(transparent)]
    InvalidMonth(#[from] InvalidYearMonth),

    /// The month could not be had within the timeout (another session holds it).
    #[error("month {ym} is held by another session; not acquired within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The month asked for.
        ym: YearMonth,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The lock was lost while it was believed held: the session is gone or no longer holds it.
    #[error("lost the lock on month {ym}: {reason}")]
    LockLost {
        /// The month that was held.
        ym: YearMonth,
        /// How it was lost.
        reason: LostReason,
    },

    /// This session already holds the month. Month locks do not stack, so a second guard would
    /// release the first guard's lock; taking it again is refused instead.
    #[error("month {ym} is already held by this session (month locks do not stack)")]
    AlreadyHeld {
        /// The month asked for.
        ym: YearMonth,
    },

    /// The `month_lock` extension is not installed in the connected database.
    #[error("the month_lock extension is not installed in this database; run CREATE EXTENSION month_lock (as a user allowed to), then retry")]
    ExtensionMissing {
        /// The server's error (SQLSTATE 42883 or 42P01).
        #[source]
        source: tokio_postgres::Error,
    },

    /// Any other error from the server or the connection; [`Error::sqlstate`] tells which.
    #[error("{}", describe_db(.0))]
    Database(#[source] tokio_postgres::Error),
}

fn describe_db(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("database error {} (SQLSTATE {}): {}", db.severity(), db.code().code(), db.message()),
        None if e.is_closed() => "the database connection is closed".to_string(),
        None => format!("database connection error: {e}"),
    }
}

impl Error {
    /// The SQLSTATE of a database error, if this is one (also for [`Error::ExtensionMissing`]).
    ///
    /// ```no_run
    /// # async fn demo(client: &tokio_postgres::Client) {
    /// use month_lock_client::{MonthLockExt, YearMonth};
    /// use tokio_postgres::error::SqlState;
    ///
    /// let ym: YearMonth = "2024-03".parse().unwrap();
    /// if let Err(e) = client.lock(ym).await {
    ///     if e.sqlstate() == Some(&SqlState::T_R_DEADLOCK_DETECTED) {
    ///         eprintln!("deadlock; retrying later");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Error::Database(e) | Error::ExtensionMissing { source: e } => e.code(),
            _ => None,
        }
    }

    /// The underlying driver error, for [`Error::Database`] and [`Error::ExtensionMissing`].
    ///
    /// ```
    /// let e = month_lock_client::Error::AlreadyHeld { ym: "2024-03".parse().unwrap() };
    /// assert!(e.as_postgres().is_none());
    /// ```
    pub fn as_postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Database(e) | Error::ExtensionMissing { source: e } => Some(e),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    /// Maps "function/relation month_lock… does not exist" to [`Error::ExtensionMissing`] and
    /// everything else to [`Error::Database`].
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            let missing = *db.code() == SqlState::UNDEFINED_FUNCTION || *db.code() == SqlState::UNDEFINED_TABLE;
            if missing && db.message().contains("month_") {
                return Error::ExtensionMissing { source: e };
            }
        }
        Error::Database(e)
    }
}

/// How a held lock was lost; carried by [`Error::LockLost`] and returned by
/// [`MonthLockGuard::lost`](crate::MonthLockGuard::lost).
///
/// ```
/// use month_lock_client::LostReason;
/// assert_eq!(LostReason::ConnectionClosed.to_string(), "the database connection is closed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LostReason {
    /// The connection holding the lock is closed (backend terminated, server restarted or
    /// stopped, network failure noticed by the driver). The server released the lock.
    ConnectionClosed,
    /// The session is alive but no longer holds the month (released behind the guard's back,
    /// e.g. `month_lock_release_all()` or `DISCARD ALL` on the same connection).
    NotHeld,
    /// The server did not answer a heartbeat within this time. The lock may still be held by a
    /// session the server has not yet noticed is dead, but this client can no longer know.
    Unresponsive {
        /// The heartbeat timeout that expired.
        after: Duration,
    },
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::ConnectionClosed => f.write_str("the database connection is closed"),
            LostReason::NotHeld => f.write_str("the session no longer holds it"),
            LostReason::Unresponsive { after } => {
                write!(f, "the server did not answer a heartbeat within {}", humantime::format_duration(*after))
            }
        }
    }
}
