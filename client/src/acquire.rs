//! [`MonthLock`]: the one way to take a month (or a set of months).

use std::fmt;
use std::ops::Deref;
use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use crate::cancel::CancelTls;
use crate::error::{Error, Result};
use crate::pending::Pending;
use crate::{request_sql, sql, LockMode, MonthLockGuard, YearMonth};

/// The longest wait the SQL functions take (`i32::MAX` ms, 24.8 days): "without limit" for the
/// forms that have no unbounded wait.
const LONGEST_WAIT: Duration = Duration::from_millis(i32::MAX as u64);

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// One month (`MonthLock::new`).
    One,
    /// Every month of a set, all or nothing (`MonthLock::set` / `range`).
    All,
    /// The first free month of a list (`MonthLock::any_of`).
    Any,
}

/// A request for months: which month (or which set), in which mode, how long to wait. Build
/// it, then [`acquire`](Self::acquire) it for a [`MonthLockGuard`] (session scope), or
/// [`acquire_xact`](Self::acquire_xact) it inside a transaction.
///
/// Three kinds of request, one guard type:
///
/// * [`MonthLock::new(ym)`](Self::new): one month, exclusive or [`shared`](Self::shared).
/// * [`MonthLock::range(a, b)`](Self::range) / [`MonthLock::set(months)`](Self::set): every
///   month of the set, exclusive, **all or nothing** (`month_lock_all`): each month waits in
///   PostgreSQL's queue, in ascending order, all within one overall timeout, so two such
///   requests over overlapping sets cannot deadlock with each other. If the set was not had in
///   time, nothing is held and the error is [`Error::NotAllFree`].
/// * [`MonthLock::any_of(months)`](Self::any_of): the **first free month** of the list, in the
///   given order, exclusive, without waiting and without jumping a queue (`month_lock_claim`);
///   the guard tells which ([`MonthLockGuard::year_month`]). If none is free, nothing is held
///   and the error is [`Error::NoneFree`].
///
/// Defaults: exclusive mode, waiting without limit (ended by `statement_timeout`, a deadlock
/// gives SQLSTATE 40P01; dropping the future does not end the wait in the server, see
/// "Cancelling an acquisition" in [`MonthLockGuard`]). Set requests wait at most 24.8 days
/// (`i32::MAX` ms) "without limit". An `any_of` request never waits.
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
///
/// // The whole first quarter or nothing, within 10 s.
/// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)
///     .timeout(Duration::from_secs(10))
///     .acquire(client)
///     .await?;
/// assert_eq!(q1.months().len(), 3);
///
/// // Any free month of 2024.
/// let year = "2024-01".parse::<YearMonth>()?.through("2024-12".parse()?);
/// match MonthLock::any_of(year).acquire(client).await {
///     Ok(guard) => println!("working on {}", guard.year_month()),
///     Err(e) if e.is_timeout() => println!("every month of 2024 is taken"),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use = "a request does nothing until acquired"]
pub struct MonthLock {
    /// One month for `new`; ascending and distinct for a set; distinct in the given order for
    /// `any_of`.
    months: Vec<YearMonth>,
    kind: Kind,
    mode: LockMode,
    timeout: Option<Duration>,
    /// Given with the deprecated `cancel_tls`; unused.
    cancel: Option<CancelTls>,
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
    pub fn new(ym: YearMonth) -> Self {
        MonthLock {
            months: vec![ym],
            kind: Kind::One,
            mode: LockMode::Exclusive,
            timeout: None,
            cancel: None,
        }
    }

    /// Every month of `first..=last`, exclusive, all or nothing: see [`set`](Self::set).
    ///
    /// ```
    /// use month_lock_client::MonthLock;
    /// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?);
    /// assert_eq!(q1.months().len(), 3);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn range(first: YearMonth, last: YearMonth) -> Self {
        Self::set(first.through(last))
    }

    /// Every month of `months` (any order, duplicates ignored), exclusive, all or nothing
    /// (`month_lock_all`): the months are taken in ascending order, each waiting in
    /// PostgreSQL's queue, within one overall [`timeout`](Self::timeout) (`Duration::ZERO`:
    /// one attempt per month). The guard holds them all; if the set was not had in time,
    /// nothing is held and the acquisition fails with [`Error::NotAllFree`]. Session scope
    /// releases with one `month_lock_release(date[])`. Shared mode is not offered for sets.
    ///
    /// ```
    /// use month_lock_client::{MonthLock, YearMonth};
    /// let months: Vec<YearMonth> = vec!["2024-06".parse()?, "2024-01".parse()?, "2024-06".parse()?];
    /// let request = MonthLock::set(months);
    /// assert_eq!(request.months(), ["2024-01".parse()?, "2024-06".parse()?]);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn set(months: impl IntoIterator<Item = YearMonth>) -> Self {
        let mut months: Vec<YearMonth> = months.into_iter().collect();
        months.sort_unstable();
        months.dedup();
        MonthLock {
            months,
            kind: Kind::All,
            mode: LockMode::Exclusive,
            timeout: None,
            cancel: None,
        }
    }

    /// The first free month of `months`, in the given order (duplicates ignored), exclusive
    /// (`month_lock_claim`): a month is free when nobody holds it and nobody is queued for it.
    /// Never waits and never takes more than one month; the guard's
    /// [`year_month`](MonthLockGuard::year_month) is the month taken. If none is free,
    /// nothing is taken and the acquisition fails with [`Error::NoneFree`]
    /// ([`AcquireError::is_timeout`] is true). Only exclusive mode, and no timeout (a request
    /// with one is refused with [`Error::InvalidRequest`]).
    ///
    /// ```no_run
    /// use month_lock_client::{Error, MonthLock, YearMonth};
    /// # async fn backfill(ym: YearMonth) {}
    /// # async fn demo(client: &tokio_postgres::Client) -> Result<(), Error> {
    /// let todo: Vec<YearMonth> = vec!["2024-01".parse()?, "2024-02".parse()?];
    /// loop {
    ///     let guard = match MonthLock::any_of(todo.iter().copied()).acquire(client).await {
    ///         Ok(guard) => guard,
    ///         Err(e) if e.is_timeout() => break, // every month is taken by someone else
    ///         Err(e) => return Err(e.into()),
    ///     };
    ///     backfill(guard.year_month()).await;
    ///     guard.release().await?;
    ///     # break;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn any_of(months: impl IntoIterator<Item = YearMonth>) -> Self {
        let mut distinct: Vec<YearMonth> = Vec::new();
        for m in months {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
        }
        MonthLock {
            months: distinct,
            kind: Kind::Any,
            mode: LockMode::Exclusive,
            timeout: None,
            cancel: None,
        }
    }

    /// In shared mode (many shared holders at once, no exclusive holder meanwhile). One-month
    /// requests only: a set or `any_of` request in shared mode is refused with
    /// [`Error::InvalidRequest`].
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).shared().lock_mode(), LockMode::Shared);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn shared(self) -> Self {
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
    pub fn mode(mut self, mode: LockMode) -> Self {
        self.mode = mode;
        self
    }

    /// Wait at most `timeout` in PostgreSQL's lock queue (`Duration::ZERO`: a single attempt);
    /// the acquisition then fails with [`Error::Timeout`] ([`Error::NotAllFree`] for a set).
    /// Rounded up to whole milliseconds, capped at `i32::MAX` ms (24.8 days).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// let request = MonthLock::new("2024-03".parse()?).timeout(Duration::from_secs(5));
    /// assert_eq!(request.wait_limit(), Some(Duration::from_secs(5)));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
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
    pub fn wait(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// No effect, kept for compatibility: a dropped acquisition is never cancelled (a cancel
    /// request hits whatever the backend runs when it arrives, which on a shared connection can
    /// be another task's statement); see "Cancelling an acquisition" in [`MonthLockGuard`].
    #[deprecated(
        note = "no effect: dropped acquisitions are not cancelled; give the wait a timeout"
    )]
    pub fn cancel_tls(mut self, tls: CancelTls) -> Self {
        self.cancel = Some(tls);
        self
    }

    /// The month asked for by [`new`](Self::new); for a set or `any_of` request the first of
    /// [`months`](Self::months) (0001-01 for an empty one, which `acquire` refuses).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).year_month().to_string(), "2024-03");
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn year_month(&self) -> YearMonth {
        self.months
            .first()
            .copied()
            .unwrap_or(YearMonth::new(1, 1).expect("0001-01 is a month"))
    }

    /// Every month asked for: one for [`new`](Self::new), ascending for a set, in the given
    /// order for [`any_of`](Self::any_of) (duplicates removed).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// let q = MonthLock::any_of(["2024-03".parse()?, "2024-01".parse()?]);
    /// assert_eq!(q.months()[0].to_string(), "2024-03");
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn months(&self) -> &[YearMonth] {
        &self.months
    }

    /// The mode asked for.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).lock_mode(), LockMode::Exclusive);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn lock_mode(&self) -> LockMode {
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
    pub fn wait_limit(&self) -> Option<Duration> {
        self.timeout
    }

    /// Take the month (or the set, or one month of an `any_of` list) for the session of
    /// `client` (session scope) and return the guard that holds it.
    ///
    /// `client` is anything that derefs to a [`Client`]: `&Client` (auto-deref also reaches a
    /// `Client` inside an `Arc` or a pool object: `&*object`), or a handle the guard then owns,
    /// such as `Arc<Client>` or [`Pooled`](crate::Pooled)`(object)`. On failure the handle comes
    /// back inside the [`AcquireError`].
    ///
    /// Errors ([`AcquireError::error`]): [`Error::Timeout`] if another session kept the month
    /// for the whole timeout ([`Error::NotAllFree`] for a set, [`Error::NoneFree`] for
    /// `any_of`); [`Error::AlreadyHeld`] if this session holds the month (for a set or
    /// `any_of`: any of the months) already, in any mode: month locks do not stack, so a second
    /// guard would free the first one's lock; [`Error::InvalidRequest`];
    /// [`Error::ExtensionMissing`]; [`Error::Database`] (e.g. 40P01 deadlock, 57014 cancel or
    /// `statement_timeout`), after which nothing is held: the extension undoes a grant made in
    /// a request that fails. Dropping this future before it completes releases only what this
    /// request took, once the wait ends by itself (no cancel request is sent; see "Cancelling
    /// an acquisition" in [`MonthLockGuard`]).
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
        let mode = self.mode;
        match acquire_session(&client, self).await {
            Ok(months) => Ok(MonthLockGuard::held(client, months, mode)),
            Err(error) => Err(AcquireError { error, client }),
        }
    }

    /// Take the month (or the set, or one month of an `any_of` list) until the current
    /// transaction ends (`month_lock_try_xact*`, `month_lock_all_xact`,
    /// `month_lock_claim_xact`): call it on a [`Transaction`](tokio_postgres::Transaction) and
    /// commit or roll back to release. No guard, no release call. The form to use behind
    /// transaction-pooling proxies. On a plain `Client` outside `BEGIN … COMMIT` the lock ends
    /// with the statement itself.
    ///
    /// Returns the month taken: the month of [`new`](Self::new), the month claimed by
    /// [`any_of`](Self::any_of), the earliest month of a set. Without a timeout it waits up to
    /// `i32::MAX` ms (24.8 days). Errors: [`Error::Timeout`] / [`Error::NotAllFree`] /
    /// [`Error::NoneFree`] if nothing was had in time, [`Error::InvalidRequest`],
    /// [`Error::ExtensionMissing`], [`Error::Database`].
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
    pub async fn acquire_xact<G: GenericClient + ?Sized>(self, client: &G) -> Result<YearMonth> {
        self.check()?;
        let ms = self.timeout.map_or(i32::MAX, sql::timeout_ms);
        match self.kind {
            Kind::One => {
                let (y, m) = sql::month_args(self.year_month());
                let stmt = match self.mode {
                    LockMode::Exclusive => sql::TRY_XACT,
                    LockMode::Shared => sql::TRY_XACT_SHARED,
                };
                if sql::value::<_, bool>(client, stmt, &[y, m, ms]).await? {
                    Ok(self.year_month())
                } else {
                    Err(self.busy_error())
                }
            }
            Kind::All => {
                let row = sql::set_row(client, sql::ALL_XACT, &self.months, Some(ms)).await?;
                if row.try_get::<_, bool>(0)? {
                    Ok(self.year_month())
                } else {
                    Err(self.busy_error())
                }
            }
            Kind::Any => {
                let row = sql::set_row(client, sql::CLAIM_XACT, &self.months, None).await?;
                match row.try_get::<_, Option<chrono::NaiveDate>>(0)? {
                    Some(d) => month_of(d),
                    None => Err(self.busy_error()),
                }
            }
        }
    }

    /// Refuse what the server does not offer, before sending anything.
    fn check(&self) -> Result<()> {
        let refuse = |why: &str| Err(Error::InvalidRequest(why.to_string()));
        if self.months.is_empty() {
            return refuse("no months given");
        }
        if self.kind != Kind::One && self.mode == LockMode::Shared {
            return refuse("shared mode is offered for one month only, not for a set or any_of");
        }
        if self.kind == Kind::Any && self.timeout.is_some() {
            return refuse("any_of never waits; leave the timeout out");
        }
        Ok(())
    }

    /// The error for "not had": by kind.
    fn busy_error(&self) -> Error {
        let timeout = self.timeout.unwrap_or(LONGEST_WAIT);
        match self.kind {
            Kind::One => Error::Timeout {
                ym: self.year_month(),
                timeout,
            },
            Kind::All => Error::NotAllFree {
                months: self.months.clone(),
                timeout,
            },
            Kind::Any => Error::NoneFree {
                months: self.months.clone(),
            },
        }
    }
}

/// A month the server returned as a date.
fn month_of(d: chrono::NaiveDate) -> Result<YearMonth> {
    use chrono::Datelike;
    YearMonth::new(d.year(), d.month())
        .map_err(|e| Error::UnexpectedAnswer(format!("month_lock_claim returned {d}: {e}")))
}

/// The answer of an acquiring statement: the months now held, or why not.
enum Answer {
    Held(Vec<YearMonth>),
    Busy,
    AlreadyHeld(YearMonth),
}

async fn acquire_session(client: &Client, request: MonthLock) -> Result<Vec<YearMonth>> {
    request.check()?;
    match ask(client, &request).await? {
        Answer::Held(months) => Ok(months),
        Answer::Busy => Err(request.busy_error()),
        Answer::AlreadyHeld(ym) => Err(Error::AlreadyHeld { ym }),
    }
}

/// Send the acquiring query string of `request` and read its answer. If this future is dropped
/// before the answer, `Pending` cleans up (see there). A request that fails needs no clean-up:
/// the server undoes a grant made in a failed request.
async fn ask(client: &Client, request: &MonthLock) -> Result<Answer> {
    let MonthLock {
        ref months,
        kind,
        mode,
        timeout,
        cancel: _,
    } = *request;
    let ask = match kind {
        Kind::One => request_sql::Ask::One {
            ym: months[0],
            mode,
            timeout_ms: timeout.map(sql::timeout_ms),
        },
        Kind::All => request_sql::Ask::All {
            months,
            timeout_ms: timeout.map_or(i32::MAX, sql::timeout_ms),
        },
        Kind::Any => request_sql::Ask::Any { months },
    };
    let id = request_sql::new_request_id();
    let text = request_sql::acquire(&ask, &id);
    let answer = match Pending::send(client, &text, id, months, mode).await {
        Ok(pending) => pending.answer().await,
        Err(e) => Err(e),
    };
    let row = match answer {
        Ok(row) => row,
        Err(e) => return Err(sql::classify(client, e).await),
    }
    .ok_or_else(|| Error::UnexpectedAnswer("no row from the acquisition".into()))?;
    let text = |i: usize| row.try_get(i).map_err(Error::from);
    match kind {
        Kind::One => Ok(match text(0)? {
            Some("t") => Answer::Held(vec![months[0]]),
            Some("f") => Answer::Busy,
            None => Answer::AlreadyHeld(months[0]),
            Some(other) => {
                return Err(Error::UnexpectedAnswer(format!(
                    "the acquisition answered {other:?}"
                )))
            }
        }),
        Kind::All => {
            if let Some(held) = text(0)? {
                return Ok(Answer::AlreadyHeld(month_text(held)?));
            }
            Ok(match text(1)? {
                Some("t") => Answer::Held(months.clone()),
                Some("f") => Answer::Busy,
                other => {
                    return Err(Error::UnexpectedAnswer(format!(
                        "month_lock_all answered {other:?}"
                    )))
                }
            })
        }
        Kind::Any => {
            if let Some(held) = text(0)? {
                return Ok(Answer::AlreadyHeld(month_text(held)?));
            }
            Ok(match text(1)? {
                Some(d) => Answer::Held(vec![month_text(d)?]),
                None => Answer::Busy,
            })
        }
    }
}

/// A month the server returned as `YYYY-MM`.
fn month_text(text: &str) -> Result<YearMonth> {
    request_sql::parse_month(text)
        .ok_or_else(|| Error::UnexpectedAnswer(format!("the acquisition answered month {text:?}")))
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

    /// True when the months were busy: [`Error::Timeout`] (another session kept the month for
    /// the whole timeout), [`Error::NotAllFree`] (a set) or [`Error::NoneFree`] (`any_of`).
    /// Nothing is held then.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.error,
            Error::Timeout { .. } | Error::NotAllFree { .. } | Error::NoneFree { .. }
        )
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
