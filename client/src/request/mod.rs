//! [`MonthLock`]: the one way to take a month (or a set of months). What a request of each kind
//! may be given is in its type ([`kind`]); how it is taken is the session protocol (`session`)
//! or the transaction protocol (`xact`), both choosing their SQL from one table (`statement`).

use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use crate::cancel::CancelTls;
use crate::error::{Error, Result};
use crate::{LockMode, MonthLockGuard, YearMonth};

mod acquire_error;
mod claims;
mod conn_key;
pub mod kind;
mod pending;
pub(crate) mod schema;
mod session;
mod session_sql;
mod statement;
mod xact;

pub use acquire_error::AcquireError;
pub(crate) use claims::{send_release, Claim, CleanUp};
use kind::{form, AllOf, AnyOf, Form, Kind, NoMonths, One};
pub(crate) use session_sql::release_if_taken;

/// The longest wait the SQL functions take (`i32::MAX` ms, 24.8 days): "without limit" for the
/// forms that have no unbounded wait.
const LONGEST_WAIT: Duration = Duration::from_millis(i32::MAX as u64);

/// A request for months: which month (or which set), in which mode, how long to wait. Build
/// it, then [`acquire`](Self::acquire) it for a [`MonthLockGuard`] (session scope), or
/// [`acquire_xact`](Self::acquire_xact) it inside a transaction.
///
/// Three kinds of request, told apart by the marker type `K` ([`kind`]), one guard type:
///
/// * [`MonthLock::new(ym)`](MonthLock::new) → `MonthLock<One>`: one month, exclusive or
///   [`shared`](MonthLock::shared), waiting without limit or up to a timeout.
/// * [`MonthLock::range(a, b)`](MonthLock::range) / [`MonthLock::set(months)`](MonthLock::set)
///   → `MonthLock<AllOf>`: every month of the set, exclusive, **all or nothing**
///   (`month_lock_all`): each month waits in PostgreSQL's queue, in ascending order, all within
///   one overall timeout, so two such requests over overlapping
///   sets cannot deadlock with each other. If the set was not had in time, nothing is held and
///   the error is [`Error::NotAllFree`].
/// * [`MonthLock::any_of(months)`](MonthLock::any_of) → `MonthLock<AnyOf>`: the **first free
///   month** of the list, in the given order, exclusive, without waiting and without jumping a
///   queue (`month_lock_claim`); the guard tells which ([`MonthLockGuard::year_month`]). If
///   none is free, nothing is held and the error is [`Error::NoneFree`].
///
/// What the server does not offer does not compile: a set or `any_of` request has no
/// `shared`/`mode`, an `any_of` request no `timeout`; a set or `any_of` request without a
/// month is refused when it is made ([`NoMonths`]).
///
/// Defaults: exclusive mode, waiting without limit (ended by `statement_timeout`, a deadlock
/// gives SQLSTATE 40P01; dropping the future does not end the wait in the server, see
/// "Cancelling an acquisition" in [`MonthLockGuard`]). Set requests wait at most 24.8 days
/// (`i32::MAX` ms) "without limit". An `any_of` request never waits.
///
/// # Where the extension's functions are
///
/// Every statement this crate sends names the extension's functions with their schema, found in
/// `pg_catalog`, never through the session's `search_path`: a role that may create objects in a
/// schema earlier on the `search_path` cannot plant a look-alike `month_lock_try` that hands two
/// clients one month. The native extension (also the SQL-only edition registered through
/// pg_tle) is found by its `pg_extension` row, so it works in any schema, on the `search_path`
/// or not. The SQL-only edition installed with `psql -f` has no such row: it is the schema
/// holding `month_lock_try(integer, integer, integer)` whose owner is a superuser, else the
/// database owner, else the first such schema on the `search_path` (a look-alike never wins
/// over an edition a superuser or the database owner installed, as docs/editions.md has it; an
/// edition installed by another role is only as safe as the `search_path`, and another role's
/// functions off the `search_path` are never taken: [`Error::ExtensionMissing`]). The schema is
/// looked up once per session (one extra round trip on its first acquisition, `acquire_xact` or
/// [`MonthLockExt`](crate::MonthLockExt) call; none after; on every call through a proxy that
/// sends no backend key data, or when the functions found are another role's) and again after a
/// statement failed with 42883, 42P01 or 3F000 (the extension dropped, moved or recreated
/// elsewhere: that one call fails, the next uses the new schema). A guard's release, tokens and
/// heartbeat look again and retry at once; a dropped guard's release and a dropped
/// acquisition's clean-up that fail so are sent again, naming the new schema, ahead of the next
/// acquisition on the connection.
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
/// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?
///     .timeout(Duration::from_secs(10))
///     .acquire(client)
///     .await?;
/// assert_eq!(q1.months().len(), 3);
///
/// // Any free month of 2024.
/// let year = "2024-01".parse::<YearMonth>()?.through("2024-12".parse()?);
/// match MonthLock::any_of(year)?.acquire(client).await {
///     Ok(guard) => println!("working on {}", guard.year_month()),
///     Err(e) if e.is_timeout() => println!("every month of 2024 is taken"),
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(()) }
/// ```
///
/// A set in shared mode does not compile:
///
/// ```compile_fail,E0599
/// # use month_lock_client::MonthLock;
/// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?.shared();
/// # Ok::<(), month_lock_client::Error>(())
/// ```
///
/// Nor an `any_of` request with a timeout, or in shared mode:
///
/// ```compile_fail,E0599
/// # use month_lock_client::MonthLock;
/// let any = MonthLock::any_of(["2024-01".parse()?])?.timeout(std::time::Duration::ZERO);
/// # Ok::<(), month_lock_client::Error>(())
/// ```
///
/// ```compile_fail,E0599
/// # use month_lock_client::{LockMode, MonthLock};
/// let any = MonthLock::any_of(["2024-01".parse()?])?.mode(LockMode::Shared);
/// # Ok::<(), month_lock_client::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[must_use = "a request does nothing until acquired"]
pub struct MonthLock<K: Kind = One> {
    /// One month for `new`; ascending and distinct for a set; distinct in the given order for
    /// `any_of`. Never empty.
    months: Vec<YearMonth>,
    /// Exclusive unless `K` is `One`.
    mode: LockMode,
    /// `None` for `AnyOf`.
    timeout: Option<Duration>,
    kind: PhantomData<K>,
}

impl MonthLock<One> {
    /// Exclusive `ym`, waiting without limit.
    ///
    /// ```
    /// use month_lock_client::{LockMode, MonthLock};
    /// let request = MonthLock::new("2024-03".parse()?);
    /// assert_eq!(request.get_mode(), LockMode::Exclusive);
    /// assert_eq!(request.get_timeout(), None);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn new(ym: YearMonth) -> Self {
        MonthLock::made(vec![ym])
    }

    /// In shared mode (many shared holders at once, no exclusive holder meanwhile): the same as
    /// [`mode(LockMode::Shared)`](Self::mode). One-month requests only.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).shared().get_mode(), LockMode::Shared);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn shared(self) -> Self {
        self.mode(LockMode::Shared)
    }

    /// In the given mode ([`get_mode`](Self::get_mode) reads it back). One-month requests only.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// let mode: LockMode = "shared".parse().unwrap();
    /// assert_eq!(MonthLock::new("2024-03".parse()?).mode(mode).get_mode(), LockMode::Shared);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn mode(mut self, mode: LockMode) -> Self {
        self.mode = mode;
        self
    }

    /// Wait at most `timeout` in PostgreSQL's lock queue (`Duration::ZERO`: a single attempt);
    /// the acquisition then fails with [`Error::Timeout`]. `None` waits without limit (the
    /// default). [`get_timeout`](Self::get_timeout) reads it back.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// let request = MonthLock::new("2024-03".parse()?).timeout(Duration::from_secs(5));
    /// assert_eq!(request.get_timeout(), Some(Duration::from_secs(5)));
    /// assert_eq!(request.timeout(None).get_timeout(), None);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// The month asked for.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).year_month().to_string(), "2024-03");
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn year_month(&self) -> YearMonth {
        self.months[0]
    }
}

impl MonthLock<AllOf> {
    /// Every month of `first..=last`, exclusive, all or nothing: see [`set`](Self::set).
    /// [`NoMonths`] if `last` is before `first`.
    ///
    /// ```
    /// use month_lock_client::MonthLock;
    /// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?;
    /// assert_eq!(q1.months().len(), 3);
    /// assert!(MonthLock::range("2024-03".parse()?, "2024-01".parse()?).is_err());
    /// # Ok::<(), month_lock_client::Error>(())
    /// ```
    pub fn range(first: YearMonth, last: YearMonth) -> Result<Self, NoMonths> {
        Self::set(first.through(last))
    }

    /// Every month of `months` (any order, duplicates ignored), exclusive, all or nothing
    /// (`month_lock_all`): the months are taken in ascending order, each waiting in
    /// PostgreSQL's queue, within one overall [`timeout`](Self::timeout) (`Duration::ZERO`:
    /// one attempt per month). The guard holds them all; if the set was not had in time,
    /// nothing is held and the acquisition fails with [`Error::NotAllFree`]. Session scope
    /// releases with one `month_lock_release(date[])`. Shared mode is not offered for sets.
    /// [`NoMonths`] if `months` is empty.
    ///
    /// ```
    /// use month_lock_client::{MonthLock, YearMonth};
    /// let months: Vec<YearMonth> = vec!["2024-06".parse()?, "2024-01".parse()?, "2024-06".parse()?];
    /// let request = MonthLock::set(months)?;
    /// assert_eq!(request.months(), ["2024-01".parse()?, "2024-06".parse()?]);
    /// # Ok::<(), month_lock_client::Error>(())
    /// ```
    pub fn set(months: impl IntoIterator<Item = YearMonth>) -> Result<Self, NoMonths> {
        let mut months: Vec<YearMonth> = months.into_iter().collect();
        months.sort_unstable();
        months.dedup();
        MonthLock::non_empty(months)
    }

    /// Wait at most `timeout` overall (`Duration::ZERO`: one attempt per month); the
    /// acquisition then fails with [`Error::NotAllFree`]. `None` (the default) waits as long
    /// as the SQL functions allow, 24.8 days.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// let q1 = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?.timeout(Duration::ZERO);
    /// assert_eq!(q1.get_timeout(), Some(Duration::ZERO));
    /// # Ok::<(), month_lock_client::Error>(())
    /// ```
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }
}

impl MonthLock<AnyOf> {
    /// The first free month of `months`, in the given order (duplicates ignored), exclusive
    /// (`month_lock_claim`): a month is free when nobody holds it and nobody is queued for it.
    /// Never waits (there is no timeout to give) and never takes more than one month; the
    /// guard's [`year_month`](MonthLockGuard::year_month) is the month taken. If none is free,
    /// nothing is taken and the acquisition fails with [`Error::NoneFree`]
    /// ([`AcquireError::is_timeout`] is true). [`NoMonths`] if `months` is empty.
    ///
    /// ```no_run
    /// use month_lock_client::{Error, MonthLock, YearMonth};
    /// # async fn backfill(ym: YearMonth) {}
    /// # async fn demo(client: &tokio_postgres::Client) -> Result<(), Error> {
    /// let todo: Vec<YearMonth> = vec!["2024-01".parse()?, "2024-02".parse()?];
    /// loop {
    ///     let guard = match MonthLock::any_of(todo.iter().copied())?.acquire(client).await {
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
    pub fn any_of(months: impl IntoIterator<Item = YearMonth>) -> Result<Self, NoMonths> {
        let mut distinct: Vec<YearMonth> = Vec::new();
        for m in months {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
        }
        MonthLock::non_empty(distinct)
    }
}

impl<K: Kind> MonthLock<K> {
    /// Exclusive, without a timeout.
    fn made(months: Vec<YearMonth>) -> Self {
        MonthLock {
            months,
            mode: LockMode::Exclusive,
            timeout: None,
            kind: PhantomData,
        }
    }

    fn non_empty(months: Vec<YearMonth>) -> Result<Self, NoMonths> {
        if months.is_empty() {
            Err(NoMonths)
        } else {
            Ok(Self::made(months))
        }
    }

    /// No effect, kept for compatibility: a dropped acquisition is never cancelled (a cancel
    /// request hits whatever the backend runs when it arrives, which on a shared connection can
    /// be another task's statement); see "Cancelling an acquisition" in [`MonthLockGuard`].
    #[deprecated(
        note = "no effect: dropped acquisitions are not cancelled; give the wait a timeout"
    )]
    pub fn cancel_tls(self, tls: CancelTls) -> Self {
        drop(tls);
        self
    }

    /// Every month asked for: one for [`new`](MonthLock::new), ascending for a set, in the
    /// given order for [`any_of`](MonthLock::any_of) (duplicates removed). Never empty.
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// let q = MonthLock::any_of(["2024-03".parse()?, "2024-01".parse()?])?;
    /// assert_eq!(q.months()[0].to_string(), "2024-03");
    /// # Ok::<(), month_lock_client::Error>(())
    /// ```
    pub fn months(&self) -> &[YearMonth] {
        &self.months
    }

    /// The mode asked for: always exclusive for a set or `any_of` request.
    ///
    /// ```
    /// # use month_lock_client::{LockMode, MonthLock};
    /// assert_eq!(MonthLock::new("2024-03".parse()?).get_mode(), LockMode::Exclusive);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn get_mode(&self) -> LockMode {
        self.mode
    }

    /// The longest wait, `None` for none given: always `None` for an `any_of` request (which
    /// never waits).
    ///
    /// ```
    /// # use month_lock_client::MonthLock;
    /// # use std::time::Duration;
    /// assert_eq!(MonthLock::new("2024-03".parse()?).timeout(Duration::ZERO).get_timeout(), Some(Duration::ZERO));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn get_timeout(&self) -> Option<Duration> {
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
    /// guard would free the first one's lock; [`Error::ExtensionMissing`] /
    /// [`Error::ExtensionOutdated`]; [`Error::Database`] (e.g. 40P01 deadlock, 57014 cancel or
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
        match session::acquire(&client, &self).await {
            Ok((months, claim, schema)) => Ok(MonthLockGuard::held(
                client, months, self.mode, claim, schema,
            )),
            Err(error) => Err(AcquireError::new(error, client)),
        }
    }

    /// Take the month (or the set, or one month of an `any_of` list) until the current
    /// transaction ends (`month_lock_try_xact*`, `month_lock_all_xact`,
    /// `month_lock_claim_xact`): call it on a [`Transaction`](tokio_postgres::Transaction) and
    /// commit or roll back to release. No guard, no release call. The form to use behind
    /// transaction-pooling proxies. On a plain `Client` outside `BEGIN … COMMIT` the lock ends
    /// with the statement itself.
    ///
    /// Returns the month taken: the month of [`new`](MonthLock::new), the month claimed by
    /// [`any_of`](MonthLock::any_of), the earliest month of a set. Without a timeout it waits
    /// up to `i32::MAX` ms (24.8 days). Errors: [`Error::Timeout`] / [`Error::NotAllFree`] /
    /// [`Error::NoneFree`] if nothing was had in time, [`Error::ExtensionMissing`] /
    /// [`Error::ExtensionOutdated`], [`Error::Database`].
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
        xact::acquire(client, &self).await
    }

    /// The error for "not had": by kind.
    fn busy_error(&self) -> Error {
        let timeout = self.timeout.unwrap_or(LONGEST_WAIT);
        match form::<K>() {
            Form::One => Error::Timeout {
                ym: self.months[0],
                timeout,
            },
            Form::All => Error::NotAllFree {
                months: self.months.clone(),
                timeout,
            },
            Form::Any => Error::NoneFree {
                months: self.months.clone(),
            },
        }
    }

    /// The row of the table (`statement`) for this request in `scope`.
    fn take(&self, scope: statement::Scope) -> statement::Take {
        statement::take(form::<K>(), self.mode, scope, self.timeout)
    }
}
