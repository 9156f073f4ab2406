//! The one error type of this crate.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::request::kind::NoMonths;
use crate::text::{describe_months, error_chain};
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

    /// Not every month of a set ([`MonthLock::set`](crate::MonthLock::set) /
    /// [`range`](crate::MonthLock::range)) could be had within the timeout; nothing was taken.
    #[error("months {} are not all free: not acquired within {} (nothing taken)", describe_months(.months), humantime::format_duration(*timeout))]
    NotAllFree {
        /// The months asked for, ascending.
        months: Vec<YearMonth>,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// No month of an [`any_of`](crate::MonthLock::any_of) request was free (each held by
    /// another session or with sessions queued for it); nothing was taken.
    #[error("none of the months {} is free (nothing taken)", describe_months(.months))]
    NoneFree {
        /// The months asked for, in the order asked.
        months: Vec<YearMonth>,
    },

    /// A request this crate refuses before sending anything: a set or `any_of` request without
    /// a month ([`NoMonths`](crate::NoMonths), converted with `?`), a fencing token of a shared
    /// guard.
    #[error("invalid month lock request: {0}")]
    InvalidRequest(String),

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

    /// The `month_lock` extension is not installed in the connected database (neither edition:
    /// no `month_lock` in `pg_extension`, and no SQL-only edition's functions in any schema).
    #[error("the month_lock extension is not installed in this database ({}); run CREATE EXTENSION month_lock (as a user allowed to), then retry", describe_db(.source))]
    ExtensionMissing {
        /// The server's error (SQLSTATE 42883, 42P01 or 3F000 from one of this crate's
        /// statements, and no `month_lock` in `pg_extension`).
        #[source]
        source: tokio_postgres::Error,
    },

    /// The `month_lock` extension is installed, but a function or view this crate uses is not
    /// there: an older version (run `ALTER EXTENSION month_lock UPDATE`, or the SQL-only
    /// edition's install script again). The schema does not matter: every statement names the
    /// extension's functions with the schema found in `pg_catalog`, on the `search_path` or not.
    #[error("the month_lock extension in this database (version {installed}) lacks what this client uses ({}); update it (as a user allowed to): ALTER EXTENSION month_lock UPDATE, or for the SQL-only edition its install script again", describe_db(.source))]
    ExtensionOutdated {
        /// `extversion` of the installed extension; `"SQL-only edition"` for the SQL-only
        /// edition installed with `psql -f` (no version in the catalog: run its script again).
        installed: String,
        /// The server's error (SQLSTATE 42883 or 42P01).
        #[source]
        source: tokio_postgres::Error,
    },

    /// **Deprecated: no longer returned.** Kept so that code matching it still compiles.
    /// Every statement of this crate now names the extension's functions with the schema
    /// found in `pg_catalog` (see "Where the extension's functions are" in
    /// [`MonthLock`](crate::MonthLock)), so an extension installed in a schema off the
    /// session's `search_path` works: acquisitions, `acquire_xact` and
    /// [`MonthLockExt`](crate::MonthLockExt) included. It was: the extension is installed in a
    /// schema off the `search_path`, and a statement that could not be qualified failed.
    #[error("the month_lock extension is installed in schema {schema}, which is not on this session's search_path ({})", describe_db(.source))]
    ExtensionNotOnSearchPath {
        /// The extension's schema.
        schema: String,
        /// The server's error (SQLSTATE 42883 or 42P01).
        #[source]
        source: tokio_postgres::Error,
    },

    /// Any other error from the server or the connection; [`Error::sqlstate`] tells which.
    /// The message carries the server's (or the connection's) own words.
    #[error("{}", describe_db(.0))]
    Database(#[source] tokio_postgres::Error),

    /// The server answered something this crate cannot read (e.g. a lock mode other than
    /// `exclusive`/`shared` in `month_locks`, or a negative count): a version mismatch.
    #[error("unexpected answer from the server: {0}")]
    UnexpectedAnswer(String),
}

fn describe_db(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "database error {} (SQLSTATE {}): {}",
            db.severity(),
            db.code().code(),
            db.message()
        ),
        None if e.is_closed() => "the database connection is closed".to_string(),
        None => format!("database connection error: {}", error_chain(e)),
    }
}

impl Error {
    /// The SQLSTATE of a database error, if this is one (also for [`Error::ExtensionMissing`]).
    ///
    /// ```no_run
    /// # async fn demo(client: &tokio_postgres::Client) {
    /// use month_lock_client::{MonthLock, YearMonth};
    /// use tokio_postgres::error::SqlState;
    ///
    /// let ym: YearMonth = "2024-03".parse().unwrap();
    /// if let Err(e) = MonthLock::new(ym).acquire(client).await {
    ///     if e.error().sqlstate() == Some(&SqlState::T_R_DEADLOCK_DETECTED) {
    ///         eprintln!("deadlock; retrying later");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Error::Database(e)
            | Error::ExtensionMissing { source: e }
            | Error::ExtensionOutdated { source: e, .. }
            | Error::ExtensionNotOnSearchPath { source: e, .. } => e.code(),
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
            Error::Database(e)
            | Error::ExtensionMissing { source: e }
            | Error::ExtensionOutdated { source: e, .. }
            | Error::ExtensionNotOnSearchPath { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<NoMonths> for Error {
    /// [`Error::InvalidRequest`].
    ///
    /// ```
    /// use month_lock_client::{Error, MonthLock, YearMonth};
    /// let e: Error = MonthLock::any_of(Vec::<YearMonth>::new()).unwrap_err().into();
    /// assert_eq!(e.to_string(), "invalid month lock request: no months given");
    /// ```
    fn from(e: NoMonths) -> Self {
        Error::InvalidRequest(e.to_string())
    }
}

impl From<tokio_postgres::Error> for Error {
    /// Always [`Error::Database`], so that `?` works on the driver's own calls. Whether the
    /// extension is missing or outdated is decided only where this crate runs its own
    /// statements, by SQLSTATE and the catalog.
    fn from(e: tokio_postgres::Error) -> Self {
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
                write!(
                    f,
                    "the server did not answer a heartbeat within {}",
                    humantime::format_duration(*after)
                )
            }
        }
    }
}
