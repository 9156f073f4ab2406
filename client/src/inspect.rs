//! Looking at month locks without taking one: [`MonthLockExt`] and [`MonthLockInfo`].

use std::future::Future;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Row};

use crate::error::{Error, Result};
use crate::{sql, LockMode, YearMonth};

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

impl MonthLockInfo {
    fn from_row(r: &Row) -> Result<Self> {
        let mode: String = r.try_get(3)?;
        Ok(MonthLockInfo {
            year: r.try_get(0)?,
            month: r.try_get(1)?,
            month_start: r.try_get(2)?,
            mode: mode
                .parse()
                .map_err(|e| Error::UnexpectedAnswer(format!("month_locks.mode: {e}")))?,
            granted: r.try_get(4)?,
            pid: r.try_get(5)?,
            waiting_since: r.try_get(6)?,
            application_name: r.try_get(7)?,
            usename: r.try_get(8)?,
            client_addr: r.try_get(9)?,
            backend_start: r.try_get(10)?,
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tokio_postgres::Client {}
}

/// Questions about month locks, and `release_all`, as methods on a [`Client`]. (To *take* a
/// month, use [`MonthLock`](crate::MonthLock).)
///
/// Bring it into scope with `use month_lock_client::MonthLockExt;`. Method calls auto-deref,
/// so they also work on `Arc<Client>`, a `deadpool_postgres::Object` and the like; inside a
/// transaction call them through [`Transaction::client`](tokio_postgres::Transaction::client).
///
/// ```no_run
/// use month_lock_client::{MonthLockExt, YearMonth};
///
/// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
/// let ym: YearMonth = "2024-03".parse()?;
/// if client.is_locked(ym).await? && !client.held(ym).await? {
///     println!("another session works on {ym}");
/// }
/// # Ok(()) }
/// ```
pub trait MonthLockExt: sealed::Sealed {
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
    /// # use month_lock_client::{MonthLock, MonthLockExt};
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let ym = "2024-03".parse()?;
    /// let guard = MonthLock::new(ym).acquire(client).await?;
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
    /// [`LostReason::NotHeld`](crate::LostReason::NotHeld).
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

impl MonthLockExt for Client {
    async fn is_locked(&self, ym: YearMonth) -> Result<bool> {
        let (y, m) = sql::month_args(ym);
        sql::value(self, &sql::in_schema(self, sql::IS_LOCKED).await?, &[y, m]).await
    }

    async fn held(&self, ym: YearMonth) -> Result<bool> {
        let (y, m) = sql::month_args(ym);
        sql::value(self, &sql::in_schema(self, sql::HELD).await?, &[y, m]).await
    }

    async fn locks(&self) -> Result<Vec<MonthLockInfo>> {
        sql::query(self, &sql::in_schema(self, sql::LOCKS).await?, &[])
            .await?
            .iter()
            .map(MonthLockInfo::from_row)
            .collect()
    }

    async fn release_all(&self) -> Result<u32> {
        let n: i32 = sql::value(self, &sql::in_schema(self, sql::RELEASE_ALL).await?, &[]).await?;
        u32::try_from(n)
            .map_err(|_| Error::UnexpectedAnswer(format!("month_lock_release_all() returned {n}")))
    }
}
