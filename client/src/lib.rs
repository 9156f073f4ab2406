//! Rust client for the `month_lock` PostgreSQL extension: lock one calendar month at a time,
//! with waits in PostgreSQL's own lock queue.
//!
//! **One way to take a month:** describe it with [`MonthLock`] (month, mode, timeout), then
//! [`acquire`](MonthLock::acquire) it on a connection for a [`MonthLockGuard`], or
//! [`acquire_xact`](MonthLock::acquire_xact) it inside a transaction. [`with_month_lock`]
//! wraps acquire-run-release for the common case.
//!
//! * [`YearMonth`]: a validated month (`2024-03`), with ranges ([`YearMonth::through`]).
//! * [`MonthLock`]: a request for a month; [`LockMode`]: exclusive or shared.
//! * [`MonthLockGuard`]: a held session lock; [`release`](MonthLockGuard::release) it, drop
//!   it (the release is queued on its connection, also when the future holding it is
//!   cancelled), or [`leak`](MonthLockGuard::leak) it to release it yourself;
//!   [`lost`](MonthLockGuard::lost) tells when the lock is gone ([`Heartbeat`]).
//! * [`with_month_lock`] / [`MonthLockGuard::run`]: run a closure with the month held; stop it
//!   if the lock is lost.
//! * [`MonthLockExt`]: questions on a [`tokio_postgres::Client`]: `is_locked`, `held`, `locks`
//!   (the `month_locks` view as [`MonthLockInfo`] rows), and `release_all`.
//! * [`Error`]: one error type; match [`Error::Timeout`], [`Error::LockLost`],
//!   [`Error::AlreadyHeld`], [`Error::ExtensionMissing`], [`Error::InvalidMonth`],
//!   [`Error::Database`]. A failed [`MonthLock::acquire`] hands the connection back in an
//!   [`AcquireError`], which converts into [`Error`] with `?`.
//!
//! Every statement is sent typed (`INT4` parameters, typed answers), except the release a
//! dropped guard queues without waiting.
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

mod acquire;
mod error;
mod guard;
mod heartbeat;
mod inspect;
mod mode;
mod run;
mod sql;
mod year_month;

pub use crate::acquire::{AcquireError, MonthLock};
pub use crate::error::{error_chain, Error, LostReason, Result};
pub use crate::guard::{MonthLockGuard, Pooled};
pub use crate::heartbeat::Heartbeat;
pub use crate::inspect::{MonthLockExt, MonthLockInfo};
pub use crate::mode::{InvalidLockMode, LockMode};
pub use crate::run::with_month_lock;
pub use crate::year_month::{InvalidReason, InvalidYearMonth, YearMonth, YearMonthRange};
/// The driver this crate is built on, re-exported so versions match.
///
/// ```
/// let _config: month_lock_client::tokio_postgres::Config = "host=localhost".parse().unwrap();
/// ```
pub use tokio_postgres;
