//! [`MonthLockGuard`]: a session-level month lock held by a connection, released on drop.

use std::ops::Deref;
use std::sync::OnceLock;

use tokio_postgres::Client;

use crate::error::{Error, LostReason, Result};
use crate::heartbeat::{self, Heartbeat};
use crate::{sql, LockMode, YearMonth};

/// A session-level month lock, held by the connection `C` derefs to, until the guard is
/// released, dropped or leaked. Get one from [`MonthLock::acquire`](crate::MonthLock::acquire).
///
/// `C` is anything that derefs to a [`Client`]: `&Client` (the guard borrows the connection),
/// `Arc<Client>`, or a pooled connection wrapped in [`Pooled`] (the guard owns it).
///
/// ```no_run
/// use month_lock_client::{MonthLock, YearMonth};
/// use std::{sync::Arc, time::Duration};
///
/// # async fn demo(client: Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
/// let ym: YearMonth = "2024-03".parse()?;
/// let guard = MonthLock::new(ym).timeout(Duration::from_secs(5)).acquire(client.clone()).await?;
/// // ... work on 2024-03, on guard.client() or any other connection ...
/// guard.release().await?;
/// # Ok(()) }
/// ```
///
/// # Dropping: how a guard releases, what it costs, why it cannot leak into a pool
///
/// The guard holds the thing that gives access to the connection holding the lock, so the
/// release always goes out on the very connection that holds the lock, and never after that
/// connection has been handed on:
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
/// * [`MonthLockGuard::leak`] gives the connection handle back and releases nothing: the
///   session keeps the month until you release it (`month_lock_release`, or
///   `month_lock_release_all()`) or the session ends.
///
/// The cost of a drop is the encoding of one short query into the driver's buffer and one
/// channel send: no round trip, no task, no runtime needed. The lock is released about one
/// network round trip later (measured on loopback by the test `dropped_guard_releases_promptly`:
/// well under 10 ms), and *before* anything else that later runs on the connection. If the
/// connection is already closed the send fails quietly, and the server has released the lock
/// anyway.
///
/// Limits: `std::mem::forget` on a guard leaks the lock until the session ends (leaking is safe
/// Rust; prefer [`leak`](Self::leak), which says so). A release queued while the connection
/// sits in a *failed* transaction block (after an error between `BEGIN` and `ROLLBACK`) is
/// refused by the server (SQLSTATE 25P02) and the lock stays with the session; end
/// transactions before dropping guards on the same connection, or hold locks on a connection of
/// their own.
///
/// # Cancelling an acquisition
///
/// If a future that is *waiting* for a month is dropped, the server-side wait goes on. The
/// acquisition then queues `month_lock_release` twice behind the wait (so whatever the wait's
/// outcome, the session ends up not holding the month) and, when the wait could last longer
/// than a second (no timeout, or a longer one), also sends a cancel request on a side
/// connection (spawned on the current tokio runtime, if there is one; sent without TLS) so that
/// the connection does not stay blocked. A cancel request hits whatever the connection runs
/// when it arrives: in the unlucky case that the month was granted during those few
/// milliseconds, it may cancel the first queued release (the second one then releases), or,
/// rarely, the first statement the next user of the connection sends, which then fails with
/// SQLSTATE 57014 and can be retried. It never leaves the month held.
///
/// # An acquisition that fails
///
/// When the acquiring statement itself fails on a live connection (cancel or
/// `statement_timeout` 57014, deadlock 40P01, any other server error), the acquisition queues
/// `month_lock_release` on that connection before it returns the error, so a grant that raced
/// with the error is never kept. (Not after connection-level errors: the session is gone.)
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MonthLockGuard<C: Deref<Target = Client>> {
    /// `None` once [`release`](Self::release) or [`leak`](Self::leak) took it: `Drop` then
    /// sends nothing.
    client: Option<C>,
    ym: YearMonth,
    mode: LockMode,
    heartbeat: Heartbeat,
    lost: OnceLock<LostReason>,
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
    /// A guard for a lock the session of `client` was just granted.
    pub(crate) fn held(client: C, ym: YearMonth, mode: LockMode) -> Self {
        MonthLockGuard {
            client: Some(client),
            ym,
            mode,
            heartbeat: Heartbeat::default(),
            lost: OnceLock::new(),
        }
    }

    /// The month held.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// assert_eq!(guard.year_month().to_string(), "2024-03");
    /// # Ok(()) }
    /// ```
    pub fn year_month(&self) -> YearMonth {
        self.ym
    }

    /// The mode held.
    ///
    /// ```no_run
    /// # use month_lock_client::{LockMode, MonthLock};
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).shared().acquire(client).await?;
    /// assert_eq!(guard.mode(), LockMode::Shared);
    /// # Ok(()) }
    /// ```
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// The connection holding the lock. Statements sent on it run in the locked session.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// guard.client().batch_execute("DELETE FROM staging WHERE month = '2024-03-01'").await?;
    /// # Ok(()) }
    /// ```
    pub fn client(&self) -> &Client {
        self.client
            .as_deref()
            .expect("a guard keeps its connection until release or leak consume it")
    }

    /// Replace the [`Heartbeat`] settings used by [`lost`](Self::lost).
    ///
    /// ```no_run
    /// # use month_lock_client::{Heartbeat, MonthLock};
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?)
    ///     .acquire(client)
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
    /// # use month_lock_client::MonthLock;
    /// # async fn work() {}
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// tokio::select! {
    ///     _ = work() => guard.release().await?,
    ///     reason = guard.lost() => eprintln!("stopped: lost the lock ({reason})"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lost(&self) -> LostReason {
        heartbeat::watch(self.client(), self.ym, self.heartbeat, &self.lost).await
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
    /// # use month_lock_client::{MonthLock, MonthLockExt};
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// guard.release().await?;
    /// assert!(!client.held("2024-03".parse()?).await?);
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        let ym = self.ym;
        // Taking the client and sending happen in the same poll (no await in between): the
        // request is queued on the connection when the query future is first polled.
        let client = self.client.take().expect("present until consumed");
        let (y, m) = sql::month_args(ym);
        match sql::value::<_, bool>(&*client, sql::release(self.mode), &[y, m]).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::LockLost {
                ym,
                reason: LostReason::NotHeld,
            }),
            Err(Error::Database(e)) if sql::connection_gone(&e) || client.is_closed() => {
                Err(Error::LockLost {
                    ym,
                    reason: LostReason::ConnectionClosed,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Give the connection handle back *without* releasing: the session keeps the month until
    /// you release it yourself (`SELECT month_lock_release(y, m)`, or `_shared`) or the session
    /// ends. For callers who manage the release themselves.
    ///
    /// ```no_run
    /// # use month_lock_client::{MonthLock, MonthLockExt};
    /// # async fn demo(client: std::sync::Arc<tokio_postgres::Client>) -> month_lock_client::Result<()> {
    /// let client = MonthLock::new("2024-03".parse()?).acquire(client).await?.leak();
    /// assert!(client.held("2024-03".parse()?).await?);
    /// client.execute("SELECT month_lock_release(2024, 3)", &[]).await?;
    /// # Ok(()) }
    /// ```
    pub fn leak(mut self) -> C {
        self.client.take().expect("present until consumed")
    }
}

impl<C: Deref<Target = Client>> Drop for MonthLockGuard<C> {
    /// Queues the release on the guard's connection without waiting; see "Dropping" in the type's docs.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            sql::send_without_waiting(&client, &sql::release_text(self.ym, self.mode));
        }
    }
}

/// Adapter for connection handles that reach a [`Client`] through two derefs, such as
/// `deadpool_postgres::Object` (which derefs to `ClientWrapper`, which derefs to `Client`):
/// `Pooled(object)` derefs to the `Client` directly, so a guard can own the pooled connection
/// and releases the lock before the object goes back to the pool.
///
/// ```no_run
/// use month_lock_client::{MonthLock, Pooled};
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
/// let guard = MonthLock::new("2024-03".parse()?).acquire(Pooled(object)).await?;
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
