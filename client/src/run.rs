//! Running work while a month is held: [`MonthLockGuard::run`] and [`with_month_lock`].

use std::future::Future;
use std::ops::Deref;
use std::pin::pin;
use std::time::Duration;

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::{Heartbeat, MonthLock, MonthLockGuard, YearMonth};

impl<C: Deref<Target = Client>> MonthLockGuard<C> {
    /// Run `f` while holding this lock: stop it (drop its future) if the lock is lost, release
    /// the lock when it ends. What [`with_month_lock`] does after acquiring; use it directly for
    /// shared mode or custom [`Heartbeat`](crate::Heartbeat) settings.
    ///
    /// * `f` returns `Ok(v)`: the lock is released and awaited; `Ok(v)` if the session still
    ///   held it, else [`Error::LockLost`] (exclusivity cannot be vouched for).
    /// * `f` returns `Err(e)`: the lock is released, `Err(e)` is returned.
    /// * `f` panics, or this future is dropped: the guard's `Drop` queues the release; the panic
    ///   continues.
    /// * the lock is lost while `f` runs: `f` is dropped, [`Error::LockLost`] is returned.
    ///
    /// ```no_run
    /// # use month_lock_client::{Heartbeat, MonthLock};
    /// # use std::time::Duration;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let rows = MonthLock::new("2024-03".parse()?)
    ///     .shared()
    ///     .acquire(client)
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
        let ym = self.year_month();
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
}

/// Run `f` with `ym` held exclusively by the session of `client`, then release it: shorthand
/// for `MonthLock::new(ym).timeout(timeout).acquire(client)` followed by [`MonthLockGuard::run`].
///
/// `timeout`: `None` waits without limit, `Some(d)` waits up to `d` (`Duration::ZERO`: one
/// attempt) and returns [`Error::Timeout`] if the month could not be had. `f` runs only with
/// the month held. The lock is released when `f` returns `Ok` or `Err`, when it panics (the
/// panic continues afterwards) and when the returned future is dropped. If the lock is lost
/// while `f` runs (connection closed, backend terminated, server restarted), `f` is stopped
/// (its future dropped) within the [`Heartbeat`](crate::Heartbeat) interval (default 1 s) and
/// [`Error::LockLost`] is returned.
///
/// The lock is watched with the default [`Heartbeat`](crate::Heartbeat); statements `f` runs
/// on `client` itself never make it look lost (the heartbeat's timeout counts only once the
/// server runs it). Other settings: [`with_month_lock_heartbeat`].
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
pub async fn with_month_lock<C, F, Fut, T, E>(
    client: C,
    ym: YearMonth,
    timeout: Option<Duration>,
    f: F,
) -> Result<T, E>
where
    C: Deref<Target = Client>,
    F: FnOnce(YearMonth) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error>,
{
    with_month_lock_heartbeat(client, ym, timeout, Heartbeat::default(), f).await
}

/// [`with_month_lock`] with the lock watched by `heartbeat` (how often, how long a heartbeat
/// may take once the server runs it).
///
/// ```no_run
/// use month_lock_client::{with_month_lock_heartbeat, Error, Heartbeat};
/// use std::time::Duration;
///
/// # async fn demo(client: &tokio_postgres::Client) -> Result<(), Error> {
/// let heartbeat = Heartbeat { interval: Duration::from_millis(250), timeout: Some(Duration::from_secs(2)) };
/// with_month_lock_heartbeat(client, "2024-03".parse()?, None, heartbeat, |ym| async move {
///     client.execute("SELECT pg_sleep(30)", &[]).await?; // long work on the same connection
///     Ok::<_, Error>(ym)
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn with_month_lock_heartbeat<C, F, Fut, T, E>(
    client: C,
    ym: YearMonth,
    timeout: Option<Duration>,
    heartbeat: Heartbeat,
    f: F,
) -> Result<T, E>
where
    C: Deref<Target = Client>,
    F: FnOnce(YearMonth) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error>,
{
    let guard = MonthLock::new(ym)
        .timeout(timeout)
        .acquire(client)
        .await
        .map_err(Error::from)?;
    guard.with_heartbeat(heartbeat).run(f).await
}
