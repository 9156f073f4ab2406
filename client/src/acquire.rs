//! [`MonthLock`]: the one way to take a month.

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use crate::error::{Error, Result};
use crate::{sql, LockMode, MonthLockGuard, YearMonth};

/// Waits longer than this get a cancel request when their future is dropped (see "Cancelling
/// an acquisition" in [`MonthLockGuard`]).
const CANCEL_WAITS_LONGER_THAN: Duration = Duration::from_secs(1);

/// A request for a month: which month, in which mode, how long to wait. Build it, then
/// [`acquire`](Self::acquire) it for a [`MonthLockGuard`] (session scope), or
/// [`acquire_xact`](Self::acquire_xact) it inside a transaction.
///
/// Defaults: exclusive mode, waiting without limit (cancellable: drop the future, or
/// `statement_timeout`; a deadlock gives SQLSTATE 40P01).
///
/// ```no_run
/// use month_lock_client::{Error, MonthLock, YearMonth};
/// use std::time::Duration;
///
/// # async fn demo(client: &tokio_postgres::Client) -> Result<(), Error> {
/// let ym: YearMonth = "2024-03".parse()?;
///
/// // Exclusive, wait up to 5 s in PostgreSQL's lock queue.
/// match MonthLock::new(ym).timeout(Duration::from_secs(5)).acquire(client).await {
///     Ok(guard) => {
///         // ... process March 2024 ...
///         guard.release().await?;
///     }
///     Err(e) if e.is_timeout() => println!("{ym} is busy"),
///     Err(e) => return Err(e.into()),
/// }
///
/// // Shared, one attempt without waiting.
/// let reader = MonthLock::new(ym).shared().timeout(Duration::ZERO).acquire(client).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use = "a request does nothing until acquired"]
pub struct MonthLock {
    ym: YearMonth,
    mode: LockMode,
    timeout: Option<Duration>,
}

impl MonthLock {
    /// Exclusive `ym`, waiting without limit.
    ///
    /// ```
    /// use month_lock_client::{LockMode, MonthLock};
    /// let request = MonthLock::new("2024-03".parse()?);
    /// assert_eq!(request.lock_mode(), LockMode::Exclusive);
    /// assert_eq!(request.wait_limit(), None);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn new(ym: YearMonth) -> Self {
        MonthLock {
            ym,
            mode: LockMode::Exclusive,
            timeout: None,
        }
    }

    /// In shared mode (many shared holders at once, no exclusive holder meanwhile).
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).shared().lock_mode(), LockMode::Shared);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn shared(self) -> Self {
        self.mode(LockMode::Shared)
    }

    /// In the given mode.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// let mode: LockMode = "shared".parse().unwrap();
    /// assert_eq!(MonthLock::new("2024-03".parse()?).mode(mode).lock_mode(), LockMode::Shared);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn mode(mut self, mode: LockMode) -> Self {
        self.mode = mode;
        self
    }

    /// Wait at most `timeout` in PostgreSQL's lock queue (`Duration::ZERO`: a single attempt);
    /// the acquisition then fails with [`Error::Timeout`]. Rounded up to whole milliseconds,
    /// capped at `i32::MAX` ms (24.8 days).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// let request = MonthLock::new("2024-03".parse()?).timeout(Duration::from_secs(5));
    /// assert_eq!(request.wait_limit(), Some(Duration::from_secs(5)));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Wait with or without limit (`None`, the default).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).wait(None).wait_limit(), None);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn wait(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// The month asked for.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).year_month().to_string(), "2024-03");
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn year_month(&self) -> YearMonth {
        self.ym
    }

    /// The mode asked for.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).lock_mode(), LockMode::Exclusive);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn lock_mode(&self) -> LockMode {
        self.mode
    }

    /// The longest wait, `None` for none.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).timeout(Duration::ZERO).wait_limit(), Some(Duration::ZERO));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn wait_limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// Take the month for the session of `client` (`month_lock_try*` / `month_lock*`, session
    /// scope) and return the guard that holds it.
    ///
    /// `client` is anything that derefs to a [`Client`]: `&Client` (auto-deref also reaches a
    /// `Client` inside an `Arc` or a pool object: `&*object`), or a handle the guard then owns,
    /// such as `Arc<Client>` or [`Pooled`](crate::Pooled)`(object)`. On failure the handle comes
    /// back inside the [`AcquireError`].
    ///
    /// Errors ([`AcquireError::error`]): [`Error::Timeout`] if another session kept the month
    /// for the whole timeout; [`Error::AlreadyHeld`] if this session holds it already (in any
    /// mode: month locks do not stack, so a second guard would free the first one's lock);
    /// [`Error::ExtensionMissing`]; [`Error::Database`] (e.g. 40P01 deadlock, 57014 cancel or
    /// `statement_timeout`), after which a release is queued on the connection in case the
    /// server granted the month as the error struck (see [`MonthLockGuard`]).
    ///
    /// ```no_run
    /// use month_lock_client::{MonthLock, Pooled};
    /// # use std::{ops::Deref, time::Duration};
    /// # struct Object(tokio_postgres::Client);
    /// # impl Deref for Object { type Target = tokio_postgres::Client; fn deref(&self) -> &tokio_postgres::Client { &self.0 } }
    ///
    /// # async fn demo(object: Box<Object>) -> month_lock_client::Result<()> {
    /// // The guard owns a pooled connection; a busy month hands it back.
    /// match MonthLock::new("2024-03".parse()?).timeout(Duration::ZERO).acquire(Pooled(object)).await {
    ///     Ok(guard) => guard.release().await?,
    ///     Err(e) if e.is_timeout() => {
    ///         let Pooled(object) = e.into_client();
    ///         object.batch_execute("SELECT 1").await?;
    ///     }
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn acquire<C: Deref<Target = Client>>(
        self,
        client: C,
    ) -> Result<MonthLockGuard<C>, AcquireError<C>> {
        match acquire_session(&client, self).await {
            Ok(()) => Ok(MonthLockGuard::held(client, self.ym, self.mode)),
            Err(error) => Err(AcquireError { error, client }),
        }
    }

    /// Take the month until the current transaction ends (`month_lock_try_xact*`): call it on
    /// a [`Transaction`](tokio_postgres::Transaction) and commit or roll back to release. No
    /// guard, no release call. The form to use behind transaction-pooling proxies. On a plain
    /// `Client` outside `BEGIN … COMMIT` the lock ends with the statement itself.
    ///
    /// Without a timeout it waits up to `i32::MAX` ms (24.8 days). Errors: [`Error::Timeout`]
    /// if the month was not had in time, [`Error::ExtensionMissing`], [`Error::Database`].
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// # async fn demo(client: &mut tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let tx = client.transaction().await?;
    /// MonthLock::new("2024-03".parse()?).timeout(Duration::from_secs(5)).acquire_xact(&tx).await?;
    /// tx.execute("UPDATE totals SET done = true WHERE month = '2024-03-01'", &[]).await?;
    /// tx.commit().await?; // releases
    /// # Ok(()) }
    /// ```
    pub async fn acquire_xact<G: GenericClient + ?Sized>(self, client: &G) -> Result<()> {
        let (y, m) = sql::month_args(self.ym);
        let stmt = match self.mode {
            LockMode::Exclusive => sql::TRY_XACT,
            LockMode::Shared => sql::TRY_XACT_SHARED,
        };
        let ms = self.timeout.map_or(i32::MAX, sql::timeout_ms);
        if sql::value::<_, bool>(client, stmt, &[y, m, ms]).await? {
            Ok(())
        } else {
            Err(self.timeout_error())
        }
    }

    fn timeout_error(self) -> Error {
        Error::Timeout {
            ym: self.ym,
            timeout: self
                .timeout
                .unwrap_or(Duration::from_millis(i32::MAX as u64)),
        }
    }
}

/// Undoes an acquisition whose future was dropped while the server was still deciding.
struct PendingAcquire<'a> {
    client: &'a Client,
    ym: YearMonth,
    mode: LockMode,
    cancel: bool,
    armed: bool,
}

impl Drop for PendingAcquire<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.cancel {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let token = self.client.cancel_token();
                runtime.spawn(async move {
                    let _ = token.cancel_query(tokio_postgres::NoTls).await;
                });
            }
        }
        // Twice: a late cancel request can hit at most one of them.
        let sql = sql::release_text(self.ym, self.mode);
        sql::send_without_waiting(self.client, &sql);
        sql::send_without_waiting(self.client, &sql);
    }
}

async fn acquire_session(client: &Client, request: MonthLock) -> Result<()> {
    let MonthLock { ym, mode, timeout } = request;
    let (y, m) = sql::month_args(ym);
    let (stmt, args) = match (mode, timeout) {
        (LockMode::Exclusive, Some(t)) => (sql::TRY, vec![y, m, sql::timeout_ms(t)]),
        (LockMode::Shared, Some(t)) => (sql::TRY_SHARED, vec![y, m, sql::timeout_ms(t)]),
        (LockMode::Exclusive, None) => (sql::WAIT, vec![y, m]),
        (LockMode::Shared, None) => (sql::WAIT_SHARED, vec![y, m]),
    };
    let answer = {
        let mut pending = PendingAcquire {
            client,
            ym,
            mode,
            cancel: timeout.is_none_or(|t| t > CANCEL_WAITS_LONGER_THAN),
            armed: true,
        };
        let answer = sql::value::<_, Option<bool>>(client, stmt, &args).await;
        pending.armed = false;
        answer
    };
    match answer {
        Ok(Some(true)) => Ok(()),
        Ok(Some(false)) => Err(request.timeout_error()),
        Ok(None) => Err(Error::AlreadyHeld { ym }),
        Err(e) => {
            // Second line of defence: a grant that raced with the error is not kept.
            if let Error::Database(db) = &e {
                if !sql::connection_gone(db) {
                    sql::send_without_waiting(client, &sql::release_text(ym, mode));
                }
            }
            Err(e)
        }
    }
}

/// A failed [`MonthLock::acquire`]: the [`Error`], and the connection handle handed back.
///
/// Converts into [`Error`] with `?` (dropping the handle).
///
/// ```no_run
/// # use month_lock_client::{Error, MonthLock};
/// # use std::time::Duration;
/// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
/// let err = MonthLock::new("2024-03".parse()?).timeout(Duration::ZERO).acquire(client).await.unwrap_err();
/// assert!(matches!(err.error(), Error::Timeout { .. }));
/// let (error, client) = err.into_parts();
/// # Ok(()) }
/// ```
pub struct AcquireError<C> {
    error: Error,
    client: C,
}

impl<C> AcquireError<C> {
    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// True for [`Error::Timeout`]: another session kept the month for the whole timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self.error, Error::Timeout { .. })
    }

    /// The error, dropping the connection handle.
    pub fn into_error(self) -> Error {
        self.error
    }

    /// The connection handle, dropping the error.
    pub fn into_client(self) -> C {
        self.client
    }

    /// Both.
    pub fn into_parts(self) -> (Error, C) {
        (self.error, self.client)
    }
}

impl<C> fmt::Debug for AcquireError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<C> fmt::Display for AcquireError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<C> std::error::Error for AcquireError<C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<C> From<AcquireError<C>> for Error {
    fn from(e: AcquireError<C>) -> Self {
        e.error
    }
}
