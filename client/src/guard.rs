//! [`MonthLockGuard`]: a session-level month lock held by a connection, released on drop.

use std::future::Future;
use std::ops::Deref;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, LostReason, Result};
use crate::YearMonth;

/// Waits longer than this get a cancel request when their future is dropped (see the module
/// docs of [`MonthLockGuard`]).
const CANCEL_WAITS_LONGER_THAN: Duration = Duration::from_secs(1);

/// Exclusive or shared.
///
/// Any number of sessions may hold a month in shared mode at once; an exclusive holder excludes
/// all others. Serialized as `"exclusive"` / `"shared"`, as in the `month_locks` view.
///
/// ```
/// use month_lock_client::LockMode;
/// assert_eq!(LockMode::Shared.to_string(), "shared");
/// assert_eq!(serde_json::to_string(&LockMode::Exclusive).unwrap(), "\"exclusive\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// One holder at a time.
    Exclusive,
    /// Many shared holders at a time, no exclusive holder meanwhile.
    Shared,
}

impl std::fmt::Display for LockMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockMode::Exclusive => "exclusive",
            LockMode::Shared => "shared",
        })
    }
}

/// How [`MonthLockGuard::lost`] watches the lock.
///
/// Every `interval` it checks, without a round trip, whether the driver has seen the connection
/// close (so a terminated backend or a restarted server is noticed within about `interval`,
/// at most 100 ms), and sends a heartbeat `SELECT month_lock_held(y, m)` on the guard's
/// connection. A heartbeat that answers `false` means the lock is gone
/// ([`LostReason::NotHeld`]); one that gets no answer within `timeout` means the server or the
/// network is unresponsive ([`LostReason::Unresponsive`]). `timeout: None` never gives up on a
/// heartbeat (use it when you run long statements on the guard's own connection: a heartbeat
/// queues behind them). A silently dead network is otherwise only noticed by TCP keepalives.
///
/// ```
/// use month_lock_client::Heartbeat;
/// use std::time::Duration;
///
/// let hb = Heartbeat { interval: Duration::from_millis(250), ..Heartbeat::default() };
/// assert_eq!(hb.timeout, Some(Duration::from_secs(10)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between checks. Default: 1 s.
    pub interval: Duration,
    /// Longest wait for a heartbeat's answer. Default: 10 s.
    pub timeout: Option<Duration>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat { interval: Duration::from_secs(1), timeout: Some(Duration::from_secs(10)) }
    }
}

/// A session-level month lock, held by the connection `C` derefs to, until the guard is
/// released or dropped.
///
/// Get one from [`MonthLockExt`](crate::MonthLockExt) methods (borrowing a `Client`) or from
/// the associated functions here (any `C: Deref<Target = Client>`, e.g. an `Arc<Client>` or a
/// [`Pooled`] connection that the guard then owns).
///
/// ```no_run
/// use month_lock_client::{MonthLockGuard, YearMonth};
/// use std::{sync::Arc, time::Duration};
///
/// # async fn demo(client: Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
/// let ym: YearMonth = "2024-03".parse()?;
/// if let Some(guard) = MonthLockGuard::try_lock(client.clone(), ym, Duration::from_secs(5)).await? {
///     // ... work on 2024-03 ...
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
///
/// # Dropping: how a guard releases, what it costs, why it cannot leak into a pool
///
/// A guard *owns* (or borrows) the thing that gives access to the connection holding the lock:
/// any `C: Deref<Target = tokio_postgres::Client>`, e.g. `&Client`, `Arc<Client>`, or a pooled
/// connection wrapped in [`Pooled`]. The release therefore always goes out on the very
/// connection that holds the lock, and never after that connection has been handed on:
///
/// * [`MonthLockGuard::release`] sends `month_lock_release(y, m)` and awaits the answer.
/// * Dropping the guard (also when the future that held it is cancelled, or while a panic
///   unwinds) *queues* the release without waiting for it: `Drop` builds the driver's request
///   future and polls it once with a no-op waker. `tokio-postgres` hands a simple-query request
///   to its connection task during that first poll (the request sits in the connection's
///   ordered channel from then on), and the connection task sends a request even when nobody
///   awaits its response any more. Requests on one connection are executed in the order they
///   were queued. So the release runs before any statement issued on that connection after the
///   drop. When the guard owns a pooled connection, the drop queues the release first and only
///   then drops the connection object (returning it to the pool): the next borrower's first
///   statement runs after the release. When the guard borrows the connection, the borrow
///   checker guarantees the guard is dropped before the connection can be returned.
///
/// The cost of a drop is the encoding of one short query into the driver's buffer and one
/// channel send: no round trip, no task, no allocation beyond the query text, no runtime
/// needed. The lock is released about one network round trip later (measured on loopback by
/// the test `dropped_guard_releases_promptly`: well under 10 ms), and *before* anything else
/// that later runs on the connection. If the connection is already closed the send fails
/// quietly, and the server has released the lock anyway.
///
/// Limits: `std::mem::forget` on a guard leaks the lock until the session ends (leaking is safe
/// Rust). A release queued while the connection sits in a *failed* transaction block (after an
/// error between `BEGIN` and `ROLLBACK`) is refused by the server (SQLSTATE 25P02) and the lock
/// stays with the session; end transactions before dropping guards on the same connection, or
/// hold locks on a connection of their own.
///
/// # Cancelling an acquisition
///
/// If a future that is *waiting* for a month is dropped, the server-side wait goes on. The
/// acquisition then queues `month_lock_release` twice behind the wait (so whatever the wait's
/// outcome, the session ends up not holding the month) and, when the wait could last longer
/// than a second (no timeout, or a longer one), also sends a cancel request on a side
/// connection (spawned on the current tokio runtime, if there is one) so that the connection
/// does not stay blocked. A cancel request hits whatever the connection runs when it arrives:
/// in the unlucky case that the month was granted during those few milliseconds, it may cancel
/// the first queued release (the second one then releases), or, rarely, the first statement the
/// next user of the connection sends, which then fails with SQLSTATE 57014 and can be retried.
/// It never leaves the month held.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MonthLockGuard<C: Deref<Target = Client>> {
    client: C,
    ym: YearMonth,
    mode: LockMode,
    heartbeat: Heartbeat,
    lost: OnceLock<LostReason>,
    /// The release has been sent (by `release`); `Drop` must not send another.
    released: bool,
}

impl<C: Deref<Target = Client>> std::fmt::Debug for MonthLockGuard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonthLockGuard")
            .field("ym", &self.ym)
            .field("mode", &self.mode)
            .field("lost", &self.lost.get())
            .finish_non_exhaustive()
    }
}

impl<C: Deref<Target = Client>> MonthLockGuard<C> {
    /// Take `ym` exclusively, waiting in PostgreSQL's lock queue up to `timeout`
    /// (`Duration::ZERO`: a single attempt). `Ok(None)` if another session kept it that long.
    ///
    /// Timeouts are rounded up to whole milliseconds and capped at `i32::MAX` ms (24.8 days).
    /// Errors: [`Error::AlreadyHeld`] if this session holds the month already (in any mode),
    /// [`Error::ExtensionMissing`], [`Error::Database`].
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLockGuard, YearMonth};
    /// # use std::time::Duration;
    /// # async fn demo(client: std::sync::Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
    /// let guard = MonthLockGuard::try_lock(client, "2024-03".parse()?, Duration::ZERO).await?;
    /// println!("got it: {}", guard.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(client: C, ym: YearMonth, timeout: Duration) -> Result<Option<Self>> {
        acquire(client, ym, LockMode::Exclusive, Some(timeout)).await
    }

    /// Take `ym` exclusively, waiting without limit (the wait can be cancelled by dropping the
    /// future; a deadlock gives [`Error::Database`] with SQLSTATE 40P01).
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLockGuard, YearMonth};
    /// # async fn demo(client: std::sync::Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
    /// let guard = MonthLockGuard::lock(client, "2024-03".parse()?).await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn lock(client: C, ym: YearMonth) -> Result<Self> {
        Ok(acquire(client, ym, LockMode::Exclusive, None).await?.expect("an unbounded wait ends holding the lock"))
    }

    /// Like [`try_lock`](Self::try_lock), in shared mode.
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLockGuard, YearMonth};
    /// # use std::time::Duration;
    /// # async fn demo(client: std::sync::Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
    /// let reader = MonthLockGuard::try_lock_shared(client, "2024-03".parse()?, Duration::from_secs(1)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_lock_shared(client: C, ym: YearMonth, timeout: Duration) -> Result<Option<Self>> {
        acquire(client, ym, LockMode::Shared, Some(timeout)).await
    }

    /// Like [`lock`](Self::lock), in shared mode.
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLockGuard, YearMonth};
    /// # async fn demo(client: std::sync::Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
    /// let reader = MonthLockGuard::lock_shared(client, "2024-03".parse()?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn lock_shared(client: C, ym: YearMonth) -> Result<Self> {
        Ok(acquire(client, ym, LockMode::Shared, None).await?.expect("an unbounded wait ends holding the lock"))
    }

    /// The month held.
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLockExt, YearMonth};
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock("2024-03".parse()?).await?;
    /// assert_eq!(guard.year_month().to_string(), "2024-03");
    /// # Ok(()) }
    /// ```
    pub fn year_month(&self) -> YearMonth {
        self.ym
    }

    /// The mode held.
    ///
    /// ```no_run
    /// # use month_lock_client::{LockMode, MonthLockExt};
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock_shared("2024-03".parse()?).await?;
    /// assert_eq!(guard.mode(), LockMode::Shared);
    /// # Ok(()) }
    /// ```
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The connection holding the lock. Statements sent on it run in the locked session.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock("2024-03".parse()?).await?;
    /// guard.client().batch_execute("DELETE FROM staging WHERE month = '2024-03-01'").await?;
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replace the [`Heartbeat`] settings used by [`lost`](Self::lost).
    ///
    /// ```no_run
    /// # use month_lock_client::{Heartbeat, MonthLockExt};
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client
    ///     .lock("2024-03".parse()?)
    ///     .await?
    ///     .with_heartbeat(Heartbeat { interval: Duration::from_millis(200), timeout: None });
    /// # Ok(()) }
    /// ```
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Resolves when the lock is lost, with the reason; pending for as long as it is held.
    ///
    /// Works while polled (no background task): see [`Heartbeat`] for what it checks and how
    /// quickly. Once a loss is seen it is remembered, and later calls resolve at once.
    /// Cancel-safe. Typical use: `tokio::select!` it against the work.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn work() {}
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock("2024-03".parse()?).await?;
    /// tokio::select! {
    ///     _ = work() => guard.release().await?,
    ///     reason = guard.lost() => eprintln!("stopped: lost the lock ({reason})"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lost(&self) -> LostReason {
        if let Some(reason) = self.lost.get() {
            return *reason;
        }
        let check = format!("SELECT month_lock_held({}, {})", self.ym.year(), self.ym.month());
        let step = self.heartbeat.interval.clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut next_beat = Instant::now();
        loop {
            if self.client.is_closed() {
                return self.mark_lost(LostReason::ConnectionClosed);
            }
            if Instant::now() >= next_beat {
                let beat = self.client.simple_query(&check);
                let answer = match self.heartbeat.timeout {
                    Some(t) => match tokio::time::timeout(t, beat).await {
                        Ok(answer) => answer,
                        Err(_) => return self.mark_lost(LostReason::Unresponsive { after: t }),
                    },
                    None => beat.await,
                };
                match answer {
                    Ok(messages) => {
                        if first_value(&messages) == Some(Some("f")) {
                            return self.mark_lost(LostReason::NotHeld);
                        }
                    }
                    Err(e) if connection_gone(&e) || self.client.is_closed() => {
                        return self.mark_lost(LostReason::ConnectionClosed);
                    }
                    // E.g. 25P02 in a failed transaction block on the same connection: no verdict.
                    Err(_) => {}
                }
                next_beat = Instant::now() + self.heartbeat.interval;
            }
            tokio::time::sleep(step).await;
        }
    }

    fn mark_lost(&self, reason: LostReason) -> LostReason {
        *self.lost.get_or_init(|| reason)
    }

    /// Release the lock now and wait for the server's answer.
    ///
    /// `Ok(())` if the session held the month up to this call. [`Error::LockLost`] if it did
    /// not any more ([`LostReason::NotHeld`]) or the connection is closed
    /// ([`LostReason::ConnectionClosed`]): the lock had been lost at some point before. If this
    /// future is dropped before it completes, the release still happens (it is sent on the
    /// first poll; if it was never polled, the guard's `Drop` sends it).
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLockExt;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = client.lock("2024-03".parse()?).await?;
    /// guard.release().await?;
    /// assert!(!client.held("2024-03".parse()?).await?);
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        let sql = self.release_sql();
        // Flag and send happen in the same poll (no await in between): the request is queued
        // on the connection when `simple_query` is first polled.
        self.released = true;
        let answer = self.client.simple_query(&sql).await;
        let ym = self.ym;
        match answer {
            Ok(messages) => match first_value(&messages) {
                Some(Some("t")) => Ok(()),
                _ => Err(Error::LockLost { ym, reason: LostReason::NotHeld }),
            },
            Err(e) if connection_gone(&e) || self.client.is_closed() => {
                Err(Error::LockLost { ym, reason: LostReason::ConnectionClosed })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Run `f` while holding this lock: stop it (drop its future) if the lock is lost, release
    /// the lock when it ends. What [`with_month_lock`](crate::with_month_lock) does after
    /// acquiring; use it directly for shared mode or custom [`Heartbeat`] settings.
    ///
    /// * `f` returns `Ok(v)`: the lock is released and awaited; `Ok(v)` if the session still
    ///   held it, else [`Error::LockLost`] (exclusivity cannot be vouched for).
    /// * `f` returns `Err(e)`: the lock is released, `Err(e)` is returned.
    /// * `f` panics, or this future is dropped: the guard's `Drop` queues the release; the panic
    ///   continues.
    /// * the lock is lost while `f` runs: `f` is dropped, [`Error::LockLost`] is returned.
    ///
    /// ```no_run
    /// # use month_lock_client::{Heartbeat, MonthLockExt};
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let rows = client
    ///     .lock_shared("2024-03".parse()?)
    ///     .await?
    ///     .with_heartbeat(Heartbeat { interval: Duration::from_millis(500), ..Default::default() })
    ///     .run(|ym| async move { Ok::<_, month_lock_client::Error>(ym.month() * 10) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<F, Fut, T, E>(self, f: F) -> Result<T, E>
    where
        F: FnOnce(YearMonth) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let ym = self.ym;
        let outcome = {
            let work = pin!(f(ym));
            tokio::select! {
                biased;
                result = work => Ok(result),
                reason = self.lost() => Err(reason),
            }
        };
        match outcome {
            Ok(Ok(value)) => {
                self.release().await?;
                Ok(value)
            }
            Ok(Err(e)) => {
                let _ = self.release().await;
                Err(e)
            }
            Err(reason) => {
                drop(self); // queues a release in case the session is alive (NotHeld, Unresponsive)
                Err(Error::LockLost { ym, reason }.into())
            }
        }
    }

    fn release_sql(&self) -> String {
        release_sql(self.ym, self.mode)
    }
}

impl<C: Deref<Target = Client>> Drop for MonthLockGuard<C> {
    /// Queues the release on the guard's connection without waiting; see "Dropping" in the type's docs.
    fn drop(&mut self) {
        if !self.released {
            send_without_waiting(&self.client, &self.release_sql());
        }
    }
}

/// Adapter for connection handles that reach a [`Client`] through two derefs, such as
/// `deadpool_postgres::Object` (which derefs to `ClientWrapper`, which derefs to `Client`):
/// `Pooled(object)` derefs to the `Client` directly, so a guard can own the pooled connection
/// and releases the lock before the object goes back to the pool.
///
/// ```no_run
/// use month_lock_client::{MonthLockGuard, Pooled};
/// use std::ops::Deref;
///
/// // Stands in for a pool's object type: Object -> Wrapper -> Client.
/// struct Wrapper(tokio_postgres::Client);
/// impl Deref for Wrapper {
///     type Target = tokio_postgres::Client;
///     fn deref(&self) -> &tokio_postgres::Client { &self.0 }
/// }
///
/// # async fn demo(object: Box<Wrapper>) -> month_lock_client::Result<()> {
/// let guard = MonthLockGuard::lock(Pooled(object), "2024-03".parse()?).await?;
/// drop(guard); // queues the release, then drops the object
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pooled<C>(pub C);

impl<C> Deref for Pooled<C>
where
    C: Deref,
    C::Target: Deref<Target = Client>,
{
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.0
    }
}

fn release_sql(ym: YearMonth, mode: LockMode) -> String {
    let f = match mode {
        LockMode::Exclusive => "month_lock_release",
        LockMode::Shared => "month_lock_release_shared",
    };
    format!("SELECT {f}({}, {})", ym.year(), ym.month())
}

/// Timeout in whole milliseconds for the SQL functions: rounded up, capped at `i32::MAX`.
pub(crate) fn timeout_ms(t: Duration) -> i32 {
    let ms = t.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// The first column of the first row of a simple-query answer (`Some(None)` for SQL NULL).
pub(crate) fn first_value(messages: &[SimpleQueryMessage]) -> Option<Option<&str>> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0)),
        _ => None,
    })
}

/// The driver error means the connection is gone (closed, I/O failure, or the server ended
/// the session: SQLSTATE class 57P, e.g. 57P01 after `pg_terminate_backend`).
fn connection_gone(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_none_or(|db| db.code().code().starts_with("57P"))
}

/// Queue `sql` on the connection without waiting for (or even reading) its answer.
///
/// Relies on tokio-postgres 0.7 handing a simple-query request to the connection task when its
/// future is first polled, and on the connection task executing requests in order and sending
/// them even when their response receiver is gone (tested by `dropped_guard_releases_*`).
fn send_without_waiting(client: &Client, sql: &str) {
    let request = pin!(client.batch_execute(sql));
    let mut cx = Context::from_waker(Waker::noop());
    // Ready(Err) only if the connection is closed already, in which case nothing is held.
    let _: Poll<_> = request.poll(&mut cx);
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
        let sql = release_sql(self.ym, self.mode);
        send_without_waiting(self.client, &sql);
        send_without_waiting(self.client, &sql);
    }
}

async fn acquire<C: Deref<Target = Client>>(
    client: C,
    ym: YearMonth,
    mode: LockMode,
    wait: Option<Duration>,
) -> Result<Option<MonthLockGuard<C>>> {
    let (y, m) = (ym.year(), ym.month());
    let take = match (mode, wait) {
        (LockMode::Exclusive, Some(t)) => format!("month_lock_try({y}, {m}, {})", timeout_ms(t)),
        (LockMode::Shared, Some(t)) => format!("month_lock_try_shared({y}, {m}, {})", timeout_ms(t)),
        (LockMode::Exclusive, None) => format!("(SELECT true FROM month_lock({y}, {m}))"),
        (LockMode::Shared, None) => format!("(SELECT true FROM month_lock_shared({y}, {m}))"),
    };
    // One round trip; NULL when this session holds the month already (locks do not stack, so
    // a second guard would free the first one's lock).
    let sql = format!("SELECT CASE WHEN month_lock_held({y}, {m}) THEN NULL ELSE {take} END");
    let answer = {
        let mut pending = PendingAcquire {
            client: &client,
            ym,
            mode,
            cancel: wait.is_none_or(|t| t > CANCEL_WAITS_LONGER_THAN),
            armed: true,
        };
        let answer = client.simple_query(&sql).await;
        pending.armed = false;
        answer?
    };
    match first_value(&answer) {
        Some(Some("t")) => Ok(Some(MonthLockGuard {
            client,
            ym,
            mode,
            heartbeat: Heartbeat::default(),
            lost: OnceLock::new(),
            released: false,
        })),
        Some(None) => Err(Error::AlreadyHeld { ym }),
        // "f": not had within the timeout. (No row cannot happen for a one-row SELECT.)
        _ => Ok(None),
    }
}

/// Run `f` with `ym` held exclusively by the session of `client`, then release it.
///
/// `timeout`: `None` waits without limit, `Some(d)` waits up to `d` (`Duration::ZERO`: one
/// attempt) and returns [`Error::Timeout`] if the month could not be had. `f` runs only with
/// the month held. The lock is released when `f` returns `Ok` or `Err`, when it panics (the
/// panic continues afterwards) and when the returned future is dropped. If the lock is lost
/// while `f` runs (connection closed, backend terminated, server restarted), `f` is stopped
/// (its future dropped) within the [`Heartbeat`] interval (default 1 s) and
/// [`Error::LockLost`] is returned. See [`MonthLockGuard::run`] for the details.
///
/// `f` receives the month. Its error type `E` must be constructible from [`Error`]: use
/// `month_lock_client::Error` itself, or `anyhow::Error`, or your own error type.
///
/// ```no_run
/// use month_lock_client::{with_month_lock, Error, YearMonth};
/// use std::time::Duration;
///
/// # async fn backfill(ym: YearMonth) -> Result<u64, Error> { Ok(0) }
/// # async fn demo(client: &tokio_postgres::Client) -> Result<(), Error> {
/// let ym: YearMonth = "2024-03".parse()?;
/// match with_month_lock(client, ym, Some(Duration::from_secs(10)), |ym| backfill(ym)).await {
///     Ok(rows) => println!("{ym}: {rows} rows"),
///     Err(Error::Timeout { .. }) => println!("{ym} is busy, skipping"),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
pub async fn with_month_lock<C, F, Fut, T, E>(client: C, ym: YearMonth, timeout: Option<Duration>, f: F) -> Result<T, E>
where
    C: Deref<Target = Client>,
    F: FnOnce(YearMonth) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error>,
{
    let guard = match timeout {
        Some(t) => MonthLockGuard::try_lock(client, ym, t).await?.ok_or(Error::Timeout { ym, timeout: t })?,
        None => MonthLockGuard::lock(client, ym).await?,
    };
    guard.run(f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_milliseconds_and_cap() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_nanos(1)), 1);
        assert_eq!(timeout_ms(Duration::from_micros(1500)), 2);
        assert_eq!(timeout_ms(Duration::from_secs(5)), 5000);
        assert_eq!(timeout_ms(Duration::from_secs(100 * 86_400)), i32::MAX);
    }

    #[test]
    fn release_statements() {
        let ym = YearMonth::new(2024, 3).unwrap();
        assert_eq!(release_sql(ym, LockMode::Exclusive), "SELECT month_lock_release(2024, 3)");
        assert_eq!(release_sql(ym, LockMode::Shared), "SELECT month_lock_release_shared(2024, 3)");
    }
}
