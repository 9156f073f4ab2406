//! Rust client for the `month_lock` PostgreSQL extension: lock one calendar month at a time,
//! with waits in PostgreSQL's own lock queue.
//!
//! * [`YearMonth`]: a validated month (`2024-03`), with ranges ([`YearMonth::through`]).
//! * [`MonthLockExt`]: the SQL API as methods on a [`tokio_postgres::Client`] (and, by auto-deref,
//!   on anything that derefs to one, such as a pooled connection).
//! * [`MonthLockGuard`]: a held session lock; [`release`](MonthLockGuard::release) it, or drop
//!   it (the release is queued on its connection, also when the future holding it is
//!   cancelled); [`lost`](MonthLockGuard::lost) tells when the lock is gone.
//! * [`with_month_lock`]: run a closure with the month held; stop it if the lock is lost.
//! * [`Error`]: one error type; match [`Error::Timeout`], [`Error::LockLost`],
//!   [`Error::ExtensionMissing`], [`Error::InvalidMonth`], [`Error::Database`].
//!
//! ```no_run
//! use month_lock_client::{with_month_lock, Error, MonthLockExt, YearMonth};
//! use std::time::Duration;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let (client, connection) =
//!         tokio_postgres::connect("host=localhost user=app dbname=app application_name=backfill", tokio_postgres::NoTls)
//!             .await
//!             .map_err(Error::from)?;
//!     tokio::spawn(connection);
//!
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

#![warn(missing_docs)]

mod error;
mod guard;
mod year_month;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

pub use crate::error::{Error, LostReason, Result};
pub use crate::guard::{with_month_lock, Heartbeat, LockMode, MonthLockGuard, Pooled};
pub use crate::year_month::{InvalidReason, InvalidYearMonth, YearMonth, YearMonthRange};
/// The driver this crate is built on, re-exported so versions match.
///
/// ```
/// let _config: month_lock_client::tokio_postgres::Config = "host=localhost".parse().unwrap();
/// ```
pub use tokio_postgres;

use crate::guard::{first_value, timeout_ms};

/// One row of the `month_locks` view: a holder or a waiter of a month lock in the current
/// database. Field names and meanings are the view's columns.
///
/// ```
/// use month_lock_client::{LockMode, MonthLockInfo};
///
/// let row: MonthLockInfo = serde_json::from_str(r#"{
///     "year": 2024, "month": 3, "month_start": "2024-03-01", "mode": "exclusive",
///     "granted": true, "pid": 4242, "waiting_since": null, "application_name": "month-lock",
///     "usename": "app", "client_addr": "127.0.0.1", "backend_start": "2024-04-01T02:15:00Z"
/// }"#).unwrap();
/// assert_eq!(row.year_month().unwrap().to_string(), "2024-03");
/// assert_eq!(row.mode, LockMode::Exclusive);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthLockInfo {
    /// Year of the month.
    pub year: i32,
    /// Month of the year, 1..=12.
    pub month: i32,
    /// First day of the month.
    pub month_start: NaiveDate,
    /// `exclusive` or `shared`.
    pub mode: LockMode,
    /// True for a holder, false for a waiter.
    pub granted: bool,
    /// Backend process id of the holder or waiter (None for a prepared transaction).
    pub pid: Option<i32>,
    /// Since when a waiter waits; None for holders.
    pub waiting_since: Option<DateTime<Utc>>,
    /// `application_name` of that session (None if the viewer may not see it).
    pub application_name: Option<String>,
    /// Role name of that session.
    pub usename: Option<String>,
    /// Client address of that session (None for Unix sockets or if hidden).
    pub client_addr: Option<IpAddr>,
    /// When that session started.
    pub backend_start: Option<DateTime<Utc>>,
}

impl MonthLockInfo {
    /// The month as a [`YearMonth`] (None only if the view returned an impossible month).
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// for row in client.locks().await? {
    ///     println!("{}", row.year_month().unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn year_month(&self) -> Option<YearMonth> {
        YearMonth::new(self.year, u32::try_from(self.month).ok()?).ok()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tokio_postgres::Client {}
}

/// The `month_lock` SQL API as methods on a [`Client`].
///
/// Bring it into scope with `use month_lock_client::MonthLockExt;`. Method calls auto-deref,
/// so they also work on `Arc<Client>`, a `deadpool_postgres::Object` and the like; the guards
/// then borrow the underlying `Client`. To have a guard *own* its connection handle, use the
/// associated functions of [`MonthLockGuard`].
///
/// Transaction-scoped forms run on the connection's current transaction: call them through
/// [`Transaction::client`](tokio_postgres::Transaction::client) inside a transaction.
///
/// ```no_run
/// use month_lock_client::{MonthLockExt, YearMonth};
/// use std::time::Duration;
///
/// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
/// let ym: YearMonth = "2024-03".parse()?;
/// match client.try_lock(ym, Duration::from_secs(5)).await? {
///     Some(guard) => {
///         assert!(client.held(ym).await?);
///         guard.release().await?;
///     }
///     None => println!("{ym} is busy"),
/// }
/// # Ok(()) }
/// ```
pub trait MonthLockExt: sealed::Sealed {
    /// Take `ym` exclusively for this session, waiting in the lock queue up to `timeout`
    /// (`Duration::ZERO`: one attempt). `Ok(None)` if it was not had in time.
    /// See [`MonthLockGuard::try_lock`].
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// if let Some(guard) = client.try_lock("2024-03".parse()?, Duration::ZERO).await? {
    ///     // dropped at the end of this block: released
    /// }
    /// # Ok(()) }
    /// ```
    fn try_lock(
        &self,
        ym: YearMonth,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<MonthLockGuard<&Client>>>> + Send;

    /// Take `ym` exclusively, waiting without limit. See [`MonthLockGuard::lock`].
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock("2024-03".parse()?).await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    fn lock(&self, ym: YearMonth) -> impl Future<Output = Result<MonthLockGuard<&Client>>> + Send;

    /// Like [`try_lock`](Self::try_lock), in shared mode.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let reader = client.try_lock_shared("2024-03".parse()?, Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    fn try_lock_shared(
        &self,
        ym: YearMonth,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<MonthLockGuard<&Client>>>> + Send;

    /// Like [`lock`](Self::lock), in shared mode.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let reader = client.lock_shared("2024-03".parse()?).await?;
    /// # Ok(()) }
    /// ```
    fn lock_shared(&self, ym: YearMonth) -> impl Future<Output = Result<MonthLockGuard<&Client>>> + Send;

    /// Take `ym` exclusively until the current transaction ends (`month_lock_try_xact`); true
    /// if taken within `timeout`. No guard: commit or roll back to release. Correct behind
    /// transaction-pooling proxies. Outside `BEGIN … COMMIT` it is released at once.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # use std::time::Duration;
    /// # async fn demo(client: &mut tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let tx = client.transaction().await?;
    /// if tx.client().try_lock_xact("2024-03".parse()?, Duration::from_secs(5)).await? {
    ///     tx.execute("UPDATE totals SET done = true WHERE month = '2024-03-01'", &[]).await?;
    /// }
    /// tx.commit().await?; // releases
    /// # Ok(()) }
    /// ```
    fn try_lock_xact(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<bool>> + Send;

    /// Like [`try_lock_xact`](Self::try_lock_xact), in shared mode.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # use std::time::Duration;
    /// # async fn demo(client: &mut tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let tx = client.transaction().await?;
    /// let got = tx.client().try_lock_xact_shared("2024-03".parse()?, Duration::ZERO).await?;
    /// tx.rollback().await?;
    /// # Ok(()) }
    /// ```
    fn try_lock_xact_shared(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<bool>> + Send;

    /// True if any session in this database holds `ym` (a snapshot).
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// if client.is_locked("2024-03".parse()?).await? {
    ///     println!("someone is working on 2024-03");
    /// }
    /// # Ok(()) }
    /// ```
    fn is_locked(&self, ym: YearMonth) -> impl Future<Output = Result<bool>> + Send;

    /// True if this session holds `ym` in any mode and scope.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let ym = "2024-03".parse()?;
    /// let guard = client.lock(ym).await?;
    /// assert!(client.held(ym).await?);
    /// # Ok(()) }
    /// ```
    fn held(&self, ym: YearMonth) -> impl Future<Output = Result<bool>> + Send;

    /// All rows of the `month_locks` view: holders and waiters in this database.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// for row in client.locks().await? {
    ///     println!("{}", serde_json::to_string(&row).unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    fn locks(&self) -> impl Future<Output = Result<Vec<MonthLockInfo>>> + Send;

    /// Release every session-scope month lock of this session; returns how many
    /// (month, mode) pairs were released. Guards of released months then report
    /// [`LostReason::NotHeld`].
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let n = client.release_all().await?;
    /// println!("released {n}");
    /// # Ok(()) }
    /// ```
    fn release_all(&self) -> impl Future<Output = Result<u32>> + Send;
}

/// One value from a simple query.
async fn scalar(client: &Client, sql: &str) -> Result<Option<String>> {
    let messages = client.simple_query(sql).await?;
    Ok(first_value(&messages).flatten().map(str::to_owned))
}

async fn boolean(client: &Client, sql: &str) -> Result<bool> {
    Ok(scalar(client, sql).await?.as_deref() == Some("t"))
}

impl MonthLockExt for Client {
    fn try_lock(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<Option<MonthLockGuard<&Client>>>> + Send {
        MonthLockGuard::try_lock(self, ym, timeout)
    }

    fn lock(&self, ym: YearMonth) -> impl Future<Output = Result<MonthLockGuard<&Client>>> + Send {
        MonthLockGuard::lock(self, ym)
    }

    fn try_lock_shared(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<Option<MonthLockGuard<&Client>>>> + Send {
        MonthLockGuard::try_lock_shared(self, ym, timeout)
    }

    fn lock_shared(&self, ym: YearMonth) -> impl Future<Output = Result<MonthLockGuard<&Client>>> + Send {
        MonthLockGuard::lock_shared(self, ym)
    }

    fn try_lock_xact(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<bool>> + Send {
        let sql = format!("SELECT month_lock_try_xact({}, {}, {})", ym.year(), ym.month(), timeout_ms(timeout));
        async move { boolean(self, &sql).await }
    }

    fn try_lock_xact_shared(&self, ym: YearMonth, timeout: Duration) -> impl Future<Output = Result<bool>> + Send {
        let sql = format!("SELECT month_lock_try_xact_shared({}, {}, {})", ym.year(), ym.month(), timeout_ms(timeout));
        async move { boolean(self, &sql).await }
    }

    fn is_locked(&self, ym: YearMonth) -> impl Future<Output = Result<bool>> + Send {
        let sql = format!("SELECT month_is_locked({}, {})", ym.year(), ym.month());
        async move { boolean(self, &sql).await }
    }

    fn held(&self, ym: YearMonth) -> impl Future<Output = Result<bool>> + Send {
        let sql = format!("SELECT month_lock_held({}, {})", ym.year(), ym.month());
        async move { boolean(self, &sql).await }
    }

    async fn locks(&self) -> Result<Vec<MonthLockInfo>> {
        {
            let rows = self
                .query(
                    "SELECT year, month, month_start, mode, granted, pid, waiting_since, application_name, \
                            usename::text, client_addr, backend_start FROM month_locks",
                    &[],
                )
                .await?;
            rows.into_iter()
                .map(|r| {
                    let mode: String = r.try_get(3)?;
                    Ok(MonthLockInfo {
                        year: r.try_get(0)?,
                        month: r.try_get(1)?,
                        month_start: r.try_get(2)?,
                        mode: if mode == "shared" { LockMode::Shared } else { LockMode::Exclusive },
                        granted: r.try_get(4)?,
                        pid: r.try_get(5)?,
                        waiting_since: r.try_get(6)?,
                        application_name: r.try_get(7)?,
                        usename: r.try_get(8)?,
                        client_addr: r.try_get(9)?,
                        backend_start: r.try_get(10)?,
                    })
                })
                .collect()
        }
    }

    async fn release_all(&self) -> Result<u32> {
        {
            let n = scalar(self, "SELECT month_lock_release_all()").await?;
            Ok(n.and_then(|n| n.parse().ok()).unwrap_or(0))
        }
    }
}
