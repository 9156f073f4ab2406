//! Rust client for the `month_lock` PostgreSQL extension: lock calendar months (one, a set all
//! or nothing, or any free one of a list), with waits in PostgreSQL's own lock queue, and
//! fencing tokens for the holds.
//!
//! **One way to take a month:** describe it with [`MonthLock`] (month, mode, timeout), then
//! [`acquire`](MonthLock::acquire) it on a connection for a [`MonthLockGuard`], or
//! [`acquire_xact`](MonthLock::acquire_xact) it inside a transaction. [`with_month_lock`]
//! wraps acquire-run-release for the common case.
//!
//! * [`YearMonth`]: a validated month (`2024-03`), with ranges ([`YearMonth::through`]).
//! * [`MonthLock`]: a request: [`new`](MonthLock::new) (one month),
//!   [`range`](MonthLock::range) / [`set`](MonthLock::set) (every month, all or nothing),
//!   [`any_of`](MonthLock::any_of) (the first free month); [`LockMode`]: exclusive or shared.
//!   Its type says what it may be given ([`kind`]): a shared set or an `any_of` request with a
//!   timeout does not compile, an empty set is refused when it is made ([`NoMonths`]).
//! * [`MonthLockGuard`]: a held session lock; [`release`](MonthLockGuard::release) it, drop
//!   it (the release is queued on its connection, also when the future holding it is
//!   cancelled), or [`leak`](MonthLockGuard::leak) it to release it yourself;
//!   [`lost`](MonthLockGuard::lost) tells when the lock (any month of it) is gone
//!   ([`Heartbeat`]); [`token`](MonthLockGuard::token) is the hold's fencing token.
//! * [`with_month_lock`] / [`MonthLockGuard::run`]: run a closure with the month held; stop it
//!   if the lock is lost.
//! * [`MonthLockExt`]: questions on a [`tokio_postgres::Client`]: `is_locked`, `held`, `locks`
//!   (the `month_locks` view as [`MonthLockInfo`] rows), and `release_all`.
//! * [`Error`]: one error type; match [`Error::Timeout`] (and for sets and `any_of`
//!   [`Error::NotAllFree`], [`Error::NoneFree`]), [`Error::LockLost`],
//!   [`Error::AlreadyHeld`], [`Error::ExtensionMissing`] / [`Error::ExtensionOutdated`],
//!   [`Error::InvalidMonth`], [`Error::InvalidRequest`], [`Error::UnexpectedAnswer`],
//!   [`Error::Database`]. A failed [`MonthLock::acquire`] hands the connection back in an
//!   [`AcquireError`], which converts into [`Error`] with `?`.
//!
//! Every statement is sent typed (`INT4` and `DATE[]` parameters, typed answers), except
//! session-scope acquisitions and the releases queued without waiting: those are simple
//! queries whose text holds only integers, ISO dates, request ids this crate makes and the
//! extension's schema as the server quoted it (an acquisition's answer can then be read after
//! its future is dropped; see "Cancelling an acquisition" in [`MonthLockGuard`]). Every
//! statement names the extension's functions with their schema, found in `pg_catalog` once per
//! session, never through the `search_path` (see "Where the extension's functions are" in
//! [`MonthLock`]).
//!
//! ```no_run
//! use month_lock_client::{with_month_lock, Error, MonthLock, MonthLockExt, YearMonth};
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let (client, connection) =
//!         tokio_postgres::connect("host=localhost user=app dbname=app application_name=backfill", tokio_postgres::NoTls)
//!             .await?;
//!     tokio::spawn(connection);
//!
//!     // Take one month, work, release.
//!     let ym: YearMonth = "2024-03".parse()?;
//!     let guard = MonthLock::new(ym).timeout(Duration::from_secs(5)).acquire(&client).await?;
//!     println!("processing {ym}");
//!     guard.release().await?;
//!
//!     // A fencing token for the hold: write only where the stored token is not newer.
//!     let guard = MonthLock::new(ym).acquire(&client).await?;
//!     let token = guard.token().await?;
//!     guard.client().execute(
//!         "UPDATE totals SET sum = 42, token = $1 WHERE month = '2024-03-01' AND token <= $1",
//!         &[&token],
//!     ).await?;
//!     guard.release().await?;
//!
//!     // The first quarter all or nothing; then any free month of the year.
//!     let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?.acquire(&client).await?;
//!     q1.release().await?;
//!     let year = "2024-01".parse::<YearMonth>()?.through("2024-12".parse()?);
//!     match MonthLock::any_of(year)?.acquire(&client).await {
//!         Ok(guard) => guard.release().await?,
//!         Err(e) if e.is_timeout() => println!("no month of 2024 is free"),
//!         Err(e) => return Err(e.into()),
//!     }
//!
//!     // Walk a range of months; skip months another worker is busy with.
//!     for ym in "2024-01".parse::<YearMonth>()?.through("2024-06".parse()?) {
//!         let outcome = with_month_lock(&client, ym, Some(Duration::ZERO), |ym| async move {
//!             println!("processing {ym}");
//!             Ok::<_, Error>(())
//!         })
//!         .await;
//!         match outcome {
//!             Err(Error::Timeout { .. }) => println!("{ym}: another worker has it"),
//!             other => other?,
//!         }
//!     }
//!     for lock in client.locks().await? {
//!         println!("{}-{:02} {} held by pid {:?}", lock.year, lock.month, lock.mode, lock.pid);
//!     }
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cancel;
mod error;
mod guard;
mod heartbeat;
mod inspect;
mod mode;
mod pooled;
mod request;
mod run;
mod sql;
mod text;
mod year_month;

pub use crate::cancel::CancelTls;
pub use crate::error::{Error, LostReason, Result};
pub use crate::guard::MonthLockGuard;
pub use crate::heartbeat::Heartbeat;
pub use crate::inspect::{MonthLockExt, MonthLockInfo};
pub use crate::mode::{InvalidLockMode, LockMode};
pub use crate::pooled::Pooled;
pub use crate::request::kind::{self, NoMonths};
pub use crate::request::{AcquireError, MonthLock};
pub use crate::run::{with_month_lock, with_month_lock_heartbeat};
pub use crate::year_month::{InvalidReason, InvalidYearMonth, YearMonth, YearMonthRange};
/// The driver this crate is built on, re-exported so versions match.
///
/// ```
/// let _config: month_lock_client::tokio_postgres::Config = "host=localhost".parse().unwrap();
/// ```
pub use tokio_postgres;
