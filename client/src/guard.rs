//! [`MonthLockGuard`]: session-level month locks (one month, or a set) held by a connection,
//! released on drop.

use std::ops::Deref;
use std::sync::{Mutex, OnceLock};

use tokio_postgres::Client;

use crate::error::{Error, LostReason, Result};
use crate::heartbeat::{self, Heartbeat};
use crate::pooled::owns_pooled;
use crate::request::Claim;
use crate::{sql, LockMode, YearMonth};

/// A session-level month lock (one month, or every month of a set), held by the connection `C`
/// derefs to, until the guard is released, dropped or leaked. Get one from
/// [`MonthLock::acquire`](crate::MonthLock::acquire).
///
/// A guard from [`MonthLock::new`](crate::MonthLock::new) or
/// [`any_of`](crate::MonthLock::any_of) holds one month ([`year_month`](Self::year_month));
/// one from [`MonthLock::set`](crate::MonthLock::set) / [`range`](crate::MonthLock::range)
/// holds all of [`months`](Self::months), and releases, drops, heartbeats and reports them
/// together. Exclusive guards have fencing [`token`](Self::token)s.
///
/// `C` is anything that derefs to a [`Client`]: `&Client` (the guard borrows the connection),
/// `Arc<Client>`, or a pooled connection wrapped in [`Pooled`](crate::Pooled) (the guard owns it).
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
/// * A guard holding a set releases all of it at once, with `month_lock_release(date[])`.
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
/// refused by the server (SQLSTATE 25P02). A guard that owns a [`Pooled`](crate::Pooled) connection therefore
/// queues a `ROLLBACK` before its release (the connection goes back to the pool with no
/// transaction block and no month). A guard that borrows or shares the connection does not
/// (it would roll back another task's work): end transactions before dropping such guards, or
/// hold locks on a connection of their own.
///
/// # Cancelling an acquisition
///
/// Dropping a future that is acquiring (e.g. under `tokio::time::timeout` or `select!`) never
/// releases anything the acquisition did not take, never leaves behind what it took, and never
/// sends a cancel request:
///
/// * The acquisition records, in the same statement that takes the month, a marker naming
///   this very request (a session setting `month_lock_client.mYYYYMM`). When the future is
///   dropped before the answer arrived, a release is queued on the connection behind the
///   acquisition that releases a month only if the marker names this request. A month another
///   guard on the same session holds (the server answered "already held") stays held; a month
///   the request took is released before anything sent on the connection after the drop.
/// * A marker is a session setting, and a `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`) of a
///   transaction block the acquisition ran in undoes it while the month stays held. So the
///   clean-up also releases a month the session holds that no live guard (and no other
///   acquisition in flight) *of this connection* claims; the client keeps that list per
///   connection, known by its session's backend key data (not by where the `Client` sits: a
///   handle that stores the `Client` inline may move it). Claiming and sending a request are
///   one step, and so are deciding what a clean-up releases and queueing it, so the order of
///   claims is the order on the wire. Consequence: on a connection where acquisitions are dropped, do not hold the
///   same months outside guards (by SQL, or after [`leak`](Self::leak)): such a month has no
///   claim and would be released with the dropped request. When another acquisition in flight
///   claims the month at the time of the clean-up (two acquisitions of one month at once on one
///   connection, the first one dropped after taking it inside a block that another task rolls
///   back), the clean-up leaves it to that one: when it ends without the month (answered
///   "already held", busy, failed), a release of the month goes out in the same step if no
///   other claim names it.
/// * The clean-up is one plain SQL statement (no `DO` block: no procedural language needed)
///   naming the extension's functions in the schema the acquisition named them with (see
///   "Where the extension's functions are" in [`MonthLock`](crate::MonthLock)), so another
///   task's `SET search_path` queued behind the acquisition does not make it fail.
/// * A clean-up that the server refuses is queued again ahead of the next acquisition on that
///   connection: because the connection sits in a *failed* transaction block (SQLSTATE 25P02:
///   another task's statement failed inside the block the acquisition ran in; a session
///   unlock is not undone by a later `ROLLBACK`), or for any other error but a closed session
///   (which holds nothing) or the extension's functions gone (e.g. a stray cancel, 57014). It
///   is never answered with a `ROLLBACK` of someone else's block. Until then the month stays
///   held by the session: the crate has no handle to the connection of its own to send it
///   earlier (watching the refusal needs a tokio runtime). End transaction blocks before
///   dropping acquisitions on a shared connection, or release with `month_lock_release_all()`
///   after the block.
/// * An acquisition of a month that an earlier acquisition on the same connection, still in
///   flight, has taken is answered [`Error::AlreadyHeld`](crate::Error::AlreadyHeld), also if
///   that earlier one is dropped afterwards: its clean-up then frees the month, and a retry
///   gets it.
/// * The dropped wait is not cancelled: it runs on in the server until the month is granted
///   (and then released by the queued clean-up) or until its [`timeout`](crate::MonthLock::timeout)
///   ends, and the connection runs nothing else meanwhile. PostgreSQL's cancel request ends
///   whatever statement the backend runs when the signal arrives, and on a connection that
///   other tasks share, the wait can be granted while the cancel is on its way, so the cancel
///   would end one of *their* statements; no timing on the client makes that impossible, so
///   this crate sends none. The same holds over TLS and plain connections alike.
///
/// So: give waits a timeout you can afford to have the connection busy for, or wait on a
/// connection of their own, drop that `Client` and abort the task that drives its
/// `Connection` (tokio-postgres keeps the socket open while a request is unanswered). Closing
/// the connection frees everything the session held, but PostgreSQL notices a closed client
/// socket during a lock wait only if `client_connection_check_interval` is set (PostgreSQL 14 and later, off by default, any
/// user may set it, e.g. `options=-c client_connection_check_interval=1s` in the connection
/// string): without it the abandoned wait stays in the lock queue until it is granted (then the
/// session ends) or times out. The `month-lock` command sets it to one second.
///
/// # An acquisition that fails
///
/// When the acquiring statement itself fails (cancel or `statement_timeout` 57014, deadlock
/// 40P01, any other server error), nothing is held: the extension undoes a session lock
/// granted in a request that fails, and the marker is rolled back with it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MonthLockGuard<C: Deref<Target = Client>> {
    /// `None` once [`release`](Self::release) or [`leak`](Self::leak) took it: `Drop` then
    /// sends nothing.
    client: Option<C>,
    /// Ascending, at least one.
    months: Vec<YearMonth>,
    mode: LockMode,
    heartbeat: Heartbeat,
    lost: OnceLock<LostReason>,
    /// The heartbeat in flight and when the next one is due.
    watch: Mutex<heartbeat::WatchState>,
    /// The fencing tokens of `months`, once asked for.
    tokens: OnceLock<Vec<i64>>,
    /// The extension's schema (a quoted identifier), as the acquisition named it.
    /// Looked up again when a statement naming it fails with 3F000, 42883 or 42P01.
    schema: Mutex<String>,
    /// Tells the clean-up of a dropped acquisition on this connection that these months are
    /// this guard's (see "Cancelling an acquisition"). Taken by `Drop` when it gives it up.
    claim: Option<Claim>,
    /// [`release`](Self::release) has sent a release whose outcome it has not seen yet: if its
    /// future is dropped now, `Drop` releases again only what no other claim of the
    /// connection names (another request may have taken the month since).
    release_sent: bool,
}

impl<C: Deref<Target = Client>> std::fmt::Debug for MonthLockGuard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonthLockGuard")
            .field("months", &self.months)
            .field("mode", &self.mode)
            .field("lost", &self.lost.get())
            .finish_non_exhaustive()
    }
}

impl<C: Deref<Target = Client>> MonthLockGuard<C> {
    /// A guard for locks the session of `client` was just granted (`months`: ascending, not
    /// empty).
    pub(crate) fn held(
        client: C,
        months: Vec<YearMonth>,
        mode: LockMode,
        claim: Claim,
        schema: String,
    ) -> Self {
        debug_assert!(!months.is_empty());
        MonthLockGuard {
            client: Some(client),
            months,
            mode,
            heartbeat: Heartbeat::default(),
            lost: OnceLock::new(),
            watch: Mutex::new(heartbeat::WatchState::default()),
            tokens: OnceLock::new(),
            claim: Some(claim),
            release_sent: false,
            schema: Mutex::new(schema),
        }
    }

    /// The month held (for a set: its earliest month; see [`months`](Self::months)). For an
    /// [`any_of`](crate::MonthLock::any_of) request, the month it got.
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// assert_eq!(guard.year_month().to_string(), "2024-03");
    /// # Ok(()) }
    /// ```
    pub fn year_month(&self) -> YearMonth {
        self.months[0]
    }

    /// Every month held, ascending (one, unless the guard came from a set request).
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::range("2024-01".parse()?, "2024-03".parse()?)?.acquire(client).await?;
    /// assert_eq!(guard.months().len(), 3);
    /// # Ok(()) }
    /// ```
    pub fn months(&self) -> &[YearMonth] {
        &self.months
    }

    /// The fencing token of this hold (`month_lock_token`); for a set, the largest of its
    /// months' tokens (see [`tokens`](Self::tokens)). Exclusive guards only.
    ///
    /// The same hold always has the same token (asked once, then cached on the guard); every
    /// later hold of the month, by any session, gets a larger one. Store the highest token
    /// seen with the data and write only `WHERE stored_token <= my_token`: once a newer holder
    /// has written, an older holder's writes touch no rows. The token is taken in its own
    /// statement (autocommit), so it is durable across a server crash before it is returned.
    ///
    /// A token is a statement of its own: draw it outside a transaction block on the guard's
    /// connection (inside one, it is only as durable as that transaction).
    ///
    /// Errors: [`Error::InvalidRequest`] for a shared guard (nothing sent);
    /// [`Error::LockLost`] once the guard has seen the lock lost ([`lost`](Self::lost)), also
    /// for a token asked before; [`Error::LockLost`] with [`LostReason::NotHeld`] if the session no longer holds the
    /// month exclusively (SQLSTATE 55000) or [`LostReason::ConnectionClosed`];
    /// [`Error::ExtensionMissing`] if the extension predates tokens; [`Error::Database`].
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::new("2024-03".parse()?).acquire(client).await?;
    /// let token = guard.token().await?;
    /// guard.client().execute(
    ///     "UPDATE totals SET sum = 42, token = $1 WHERE month = '2024-03-01' AND token <= $1",
    ///     &[&token],
    /// ).await?;
    /// # Ok(()) }
    /// ```
    pub async fn token(&self) -> Result<i64> {
        let tokens = self.tokens().await?;
        Ok(tokens.iter().map(|(_, t)| *t).max().unwrap_or_default())
    }

    /// The fencing token of each month held, ascending by month (one pair unless the guard
    /// holds a set). Same rules and errors as [`token`](Self::token).
    ///
    /// ```no_run
    /// # use month_lock_client::MonthLock;
    /// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
    /// let guard = MonthLock::range("2024-01".parse()?, "2024-02".parse()?)?.acquire(client).await?;
    /// for (ym, token) in guard.tokens().await? {
    ///     println!("{ym}: {token}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn tokens(&self) -> Result<Vec<(YearMonth, i64)>> {
        if self.mode != LockMode::Exclusive {
            return Err(Error::InvalidRequest(
                "fencing tokens exist for exclusive holds only".into(),
            ));
        }
        // A hold seen lost has no token any more, cached or not.
        if let Some(reason) = self.lost.get() {
            return Err(Error::LockLost {
                ym: self.year_month(),
                reason: *reason,
            });
        }
        let tokens = match self.tokens.get() {
            Some(tokens) => tokens.clone(),
            None => {
                let fetched = self.fetch_tokens().await?;
                // Two racing callers fetch the same values: the same hold has the same token.
                self.tokens.get_or_init(|| fetched).clone()
            }
        };
        Ok(self.months.iter().copied().zip(tokens).collect())
    }

    async fn fetch_tokens(&self) -> Result<Vec<i64>> {
        match self.fetch_tokens_once().await {
            Err(e) if self.schema_moved(self.client(), &e).await => self.fetch_tokens_once().await,
            answer => answer,
        }
    }

    async fn fetch_tokens_once(&self) -> Result<Vec<i64>> {
        let client = self.client();
        let answer = if let [ym] = self.months[..] {
            let (y, m) = sql::month_args(ym);
            sql::value::<_, i64>(client, &self.qualified(sql::TOKEN.sql), &[y, m])
                .await
                .map(|t| vec![t])
        } else {
            let dates = sql::dates(&self.months);
            sql::query_params(
                client,
                &self.qualified(sql::TOKENS.sql),
                &[(&dates, tokio_postgres::types::Type::DATE_ARRAY)],
            )
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| r.try_get::<_, i64>(0).map_err(Error::from))
                    .collect()
            })
        };
        match answer {
            Ok(tokens) if tokens.len() == self.months.len() => Ok(tokens),
            Ok(tokens) => Err(Error::UnexpectedAnswer(format!(
                "{} tokens for {} months",
                tokens.len(),
                self.months.len()
            ))),
            Err(Error::Database(e))
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) =>
            {
                Err(Error::LockLost {
                    ym: self.year_month(),
                    reason: LostReason::NotHeld,
                })
            }
            Err(Error::Database(e)) if sql::connection_gone(&e) || client.is_closed() => {
                Err(Error::LockLost {
                    ym: self.year_month(),
                    reason: LostReason::ConnectionClosed,
                })
            }
            Err(e) => Err(e),
        }
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
    /// See [`Heartbeat`] for what it checks and how quickly. The heartbeat in flight belongs to
    /// the guard (a task reads its answer), so a `lost()` future can be dropped and made anew
    /// as often as you like (e.g. in a `select!` loop): a new one goes on with the heartbeat
    /// already sent, and a loss is reported all the same. Once a loss is seen it is remembered:
    /// later calls resolve at once, and [`token`](Self::token) refuses. Needs a tokio runtime.
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
        heartbeat::watch(
            self.client(),
            &self.schema,
            &self.months,
            self.heartbeat,
            &self.lost,
            &self.watch,
        )
        .await
    }

    /// Release the lock now and wait for the server's answer.
    ///
    /// `Ok(())` if the session held the month (for a set: every month) up to this call. [`Error::LockLost`] if it did
    /// not any more ([`LostReason::NotHeld`]) or the connection is closed
    /// ([`LostReason::ConnectionClosed`]): the lock had been lost at some point before; a set
    /// guard's error names the earliest month it no longer held. If this future is dropped
    /// before it completes, the release still happens: the guard keeps the connection until
    /// the outcome is known, and a dropped future drops the guard, whose `Drop` queues the
    /// release once more (only of months the session holds and no other request of the
    /// connection claims; on a [`Pooled`](crate::Pooled) connection after a `ROLLBACK`) before the connection
    /// is let go. The fallbacks below (retry, self-terminate) run only while the future is
    /// polled.
    ///
    /// A release that fails on a live connection is tried once more: after a stray cancel or
    /// `statement_timeout` as it is; in a failed transaction block (SQLSTATE 25P02, which can
    /// only end in a rollback) after a `ROLLBACK` on a [`Pooled`](crate::Pooled) connection only (the guard
    /// owns it). On a borrowed or shared connection the block is another task's, and its
    /// `ROLLBACK TO SAVEPOINT` may still save its work: nothing is rolled back, the 25P02 error
    /// is returned, and the month stays held by the session until you release it yourself
    /// after the block ended (`month_lock_release`, `month_lock_release_all()`) or the session
    /// ends: end transaction blocks before releasing on a shared connection. If the retry
    /// fails too, the error is returned and,
    /// on a [`Pooled`](crate::Pooled) connection, the session is ended (`pg_terminate_backend` of its own
    /// backend, after a `ROLLBACK`): a closed session holds no locks, and a pool discards a
    /// closed connection. On a connection the guard borrows or shares, a release is queued
    /// ahead of whatever the connection runs next instead.
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
        // The connection stays in the guard until the outcome is known: if this future is
        // dropped before, the guard's `Drop` queues the release once more (and on a `Pooled`
        // connection a `ROLLBACK` before it) ahead of whatever the connection runs next, and
        // only then lets the connection go (back to its pool).
        self.release_sent = true;
        let outcome = self.release_or_fall_back().await;
        // Done: nothing left for `Drop` to send.
        self.client.take();
        outcome
    }

    async fn release_or_fall_back(&self) -> Result<()> {
        let client = self.client();
        let gone = |e: &tokio_postgres::Error| sql::connection_gone(e) || client.is_closed();
        let mut all_held = self.release_on(client).await;
        if let Err(Error::Database(e)) = &all_held {
            let aborted =
                e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
            // A failed transaction block belongs to whoever opened it: only a guard that owns
            // its (pooled) connection rolls it back; on a borrowed or shared connection a
            // retry would fail the same way, so the release is queued below instead.
            if !gone(e) && (!aborted || owns_pooled::<C>()) {
                // A failed release (a stray cancel, `statement_timeout`, a failed transaction
                // block) must not leave the month held: end an aborted transaction block
                // (it can only be rolled back), then try once more. A release that failed
                // may have released already: "not held" then is success.
                if aborted {
                    sql::send_without_waiting(client, "ROLLBACK");
                }
                all_held = match self.release_on(client).await {
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                };
            }
        }
        match all_held {
            Ok(None) => Ok(()),
            Ok(Some(ym)) => Err(Error::LockLost {
                ym,
                reason: LostReason::NotHeld,
            }),
            Err(Error::Database(e)) if gone(&e) => Err(Error::LockLost {
                ym: self.year_month(),
                reason: LostReason::ConnectionClosed,
            }),
            Err(e) if owns_pooled::<C>() => {
                // Last resort for a connection about to go back to a pool: end the session,
                // which frees every lock it holds (a pool discards a closed connection). Never
                // hand it back possibly holding the month.
                sql::send_without_waiting(client, "ROLLBACK");
                let _ = client.simple_query(sql::TERMINATE_SELF).await;
                Err(e)
            }
            Err(Error::Database(e))
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION) =>
            {
                // Another task's failed block: nothing but its owner's rollback can run now, and
                // a queued release would be refused too. The month stays held (see above).
                Err(Error::Database(e))
            }
            Err(e) => {
                // Last resort: a release queued ahead of whatever the connection runs next.
                crate::request::send_release(client, &self.release_text(), self.clean_up());
                Err(e)
            }
        }
    }

    /// Send the release and read which month was not held any more (the earliest, `None` if
    /// every month was held).
    async fn release_on(&self, client: &Client) -> Result<Option<YearMonth>> {
        match self.release_once(client).await {
            Err(e) if self.schema_moved(client, &e).await => self.release_once(client).await,
            answer => answer,
        }
    }

    async fn release_once(&self, client: &Client) -> Result<Option<YearMonth>> {
        if let [one] = self.months[..] {
            let (y, m) = sql::month_args(one);
            let text = self.qualified(sql::release(self.mode).sql);
            sql::value::<_, bool>(client, &text, &[y, m])
                .await
                .map(|held| (!held).then_some(one))
        } else {
            let row = sql::set_row(
                client,
                &self.qualified(sql::RELEASE_SET_LOST.sql),
                &self.months,
                None,
            )
            .await?;
            match row.try_get::<_, Option<chrono::NaiveDate>>(0)? {
                None => Ok(None),
                Some(d) => {
                    use chrono::Datelike;
                    Ok(Some(YearMonth::new(d.year(), d.month()).map_err(|e| {
                        Error::UnexpectedAnswer(format!("a release named month {d}: {e}"))
                    })?))
                }
            }
        }
    }

    /// The release as text, for queueing without waiting.
    fn release_text(&self) -> String {
        self.qualified(&match self.months[..] {
            [one] => sql::release_text(one, self.mode),
            _ => sql::release_set_text(&self.months),
        })
    }

    /// `sql` with the extension's objects qualified by the schema the acquisition named:
    /// the guard's statements run whatever `search_path` the session has by then.
    fn qualified(&self, sql: &str) -> String {
        sql::qualify(sql, &self.schema())
    }

    fn schema(&self) -> String {
        self.schema
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After `e` from one of the guard's statements: if it says the schema it named is gone
    /// (3F000, 42883, 42P01; the extension's schema renamed, or the extension recreated
    /// elsewhere while the guard lives), look the schema up again in `pg_catalog`; true if it
    /// is another one now (the statement is worth one more try).
    async fn schema_moved(&self, client: &Client, e: &Error) -> bool {
        if !e.as_postgres().is_some_and(sql::undefined) {
            return false;
        }
        match crate::request::schema::look_up(client).await {
            Ok(Some(now)) if now != self.schema() => {
                *self.schema.lock().unwrap_or_else(|e| e.into_inner()) = now;
                true
            }
            _ => false,
        }
    }

    /// A release of this guard's months as a clean-up (for a retry, see `send_release`).
    fn clean_up(&self) -> crate::request::CleanUp {
        crate::request::CleanUp {
            months: self.months.clone(),
            mode: self.mode,
            id: "-".to_string(),
            schema: self.schema(),
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
        let Some(client) = self.client.take() else {
            return;
        };
        if owns_pooled::<C>() {
            // The connection goes back to a pool: end whatever transaction block it is in
            // first (a release in a failed block would be refused, and the next borrower
            // would get the month and the block).
            sql::send_without_waiting(&client, "ROLLBACK");
        }
        let claim = self.claim.take().expect("present until dropped");
        if !self.release_sent {
            crate::request::send_release(&client, &self.release_text(), self.clean_up());
            drop(claim);
            return;
        }
        // A `release` future dropped before its answer: its release may have freed the months
        // already and another request of the connection may have taken one since. Release
        // only what the session holds and no other claim names, decided and sent in one step.
        let months = self.months.clone();
        let mode = self.mode;
        let clean_up = self.clean_up();
        let schema = clean_up.schema.clone();
        claim.give_up_and_send(&client, &months, |unclaimed| {
            if !unclaimed.is_empty() {
                let text = crate::request::release_if_taken(&months, unclaimed, mode, "-", &schema);
                crate::request::send_release(&client, &text, clean_up);
            }
        });
    }
}
