//! [`Heartbeat`]: how a held lock is watched, and the watch itself.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryStream};

use crate::error::LostReason;
use crate::{sql, YearMonth};

/// How [`MonthLockGuard::lost`](crate::MonthLockGuard::lost) watches the lock.
///
/// Every `interval` (at most every 100 ms) it checks, without a round trip, whether the driver
/// has seen the connection close: a terminated backend or a restarted server is noticed within
/// about `interval`, also while the connection is busy. And one heartbeat at a time, `interval`
/// after the previous one answered, it checks `month_lock_held(y, m)` on the guard's connection
/// (for a guard holding a set: every month of it, in one statement). A heartbeat that answers
/// `false` means the lock is gone ([`LostReason::NotHeld`]).
///
/// `timeout` is counted from the moment the server is seen running the heartbeat (it starts
/// with a statement whose 16 KiB answer the server sends at once), not from when it was queued:
/// a heartbeat that waits behind long statements of the guard's own connection is not late,
/// and a busy connection is never taken for a dead one. A heartbeat that runs but does not
/// answer within `timeout` means the server is unresponsive ([`LostReason::Unresponsive`]);
/// `None` never gives up. A network that dies silently while the server has not started the
/// heartbeat is noticed by TCP: set `tcp_user_timeout` (and keepalives) on the connection's
/// `Config` (the `month-lock` command does).
///
/// The heartbeat in flight belongs to the guard: [`lost`](crate::MonthLockGuard::lost) can be
/// called (and its future dropped) as often as you like; a new call goes on with the heartbeat
/// already sent.
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
        Heartbeat {
            interval: Duration::from_secs(1),
            timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// The watch's state, kept on the guard so that a `lost()` future dropped and made anew (e.g.
/// in a `select!` loop) goes on with the check in flight instead of sending another.
#[derive(Default)]
pub(crate) struct WatchState {
    /// No check before this.
    next_beat: Option<Instant>,
    check: Option<Check>,
    /// The last check named a schema that is gone: look it up again before the next.
    look_up_schema: bool,
}

/// A check in flight: what has been read of its answer so far. A task reads the answer as it
/// arrives (a response left unread would hold up the connection's other statements).
struct Check {
    progress: Arc<Mutex<Progress>>,
}

#[derive(Default)]
struct Progress {
    /// When the server was seen running the check.
    started: Option<Instant>,
    held: Option<bool>,
    failed: Option<LostReason>,
    /// Failed with 3F000, 42883 or 42P01: the schema it named is gone.
    undefined: bool,
    ended: bool,
}

/// A response larger than the server's 8 KiB send buffer, twice: the server flushes the first
/// row before it runs the next statement, so its arrival tells the client the request is
/// executing (the heartbeat counts its timeout from then).
const START_SIGNAL: &str =
    "SELECT pg_catalog.repeat(' ', 8192) FROM pg_catalog.generate_series(1, 2)";

/// The check's text: the start signal, then whether every month is held.
fn check_text(months: &[YearMonth], schema: &str) -> String {
    let held = match months {
        [ym] => format!("SELECT month_lock_held({}, {})", ym.year(), ym.month()),
        _ => {
            let dates: Vec<String> = months.iter().map(|m| m.first_day().to_string()).collect();
            format!(
                "SELECT COALESCE(pg_catalog.bool_and(month_lock_held(extract(year FROM d)::pg_catalog.int4, \
                 extract(month FROM d)::pg_catalog.int4)), false) \
                 FROM pg_catalog.unnest('{{{}}}'::pg_catalog.date[]) AS d",
                dates.join(",")
            )
        }
    };
    let held = sql::qualify(&held, schema);
    format!("{START_SIGNAL}; {held}")
}

/// Read a check's answer to its end, noting progress.
async fn read_check(mut stream: Pin<Box<SimpleQueryStream>>, progress: Arc<Mutex<Progress>>) {
    let mut statements_done = 0;
    loop {
        let item = poll_fn(|cx| stream.as_mut().poll_next(cx)).await;
        let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
        match item {
            None => {
                p.ended = true;
                return;
            }
            Some(Err(e)) => {
                if sql::connection_gone(&e) {
                    p.failed = Some(LostReason::ConnectionClosed);
                }
                p.undefined |= sql::undefined(&e);
                // Any other error (e.g. 25P02 in a failed transaction block on the same
                // connection): no verdict. The stream ends after it.
                if e.is_closed() {
                    p.ended = true;
                    return;
                }
            }
            Some(Ok(message)) => {
                p.started.get_or_insert_with(Instant::now);
                match message {
                    SimpleQueryMessage::CommandComplete(_) => statements_done += 1,
                    SimpleQueryMessage::Row(row) if statements_done == 1 => {
                        p.held = row.get(0).map(|v| v == "t");
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Resolves when `client`'s session is seen not to hold every month of `months` any more; the
/// verdict is kept in `seen` so that later calls answer at once.
pub(crate) async fn watch(
    client: &Client,
    schema: &Mutex<String>,
    months: &[YearMonth],
    heartbeat: Heartbeat,
    seen: &OnceLock<LostReason>,
    state: &Mutex<WatchState>,
) -> LostReason {
    let lost = |reason| *seen.get_or_init(|| reason);
    let step = heartbeat
        .interval
        .clamp(Duration::from_millis(1), Duration::from_millis(100));
    loop {
        if let Some(reason) = seen.get() {
            return *reason;
        }
        if client.is_closed() {
            return lost(LostReason::ConnectionClosed);
        }
        let (verdict, look_up) = poll_fn(|cx| {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let schema = schema.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let verdict = step_watch(&mut state, cx, client, &schema, months, heartbeat);
            Poll::Ready((verdict, std::mem::take(&mut state.look_up_schema)))
        })
        .await;
        if let Some(reason) = verdict {
            return lost(reason);
        }
        if look_up {
            // The extension's schema was renamed, or the extension recreated elsewhere, while
            // the guard lives: the next check names the schema found now.
            if let Ok(Some(now)) = crate::request::schema::look_up(client).await {
                *schema.lock().unwrap_or_else(|e| e.into_inner()) = now;
            }
            continue;
        }
        tokio::time::sleep(step).await;
    }
}

/// One step: read the check in flight, judge it, or send the next one when due.
fn step_watch(
    state: &mut WatchState,
    cx: &mut Context<'_>,
    client: &Client,
    schema: &str,
    months: &[YearMonth],
    heartbeat: Heartbeat,
) -> Option<LostReason> {
    let now = Instant::now();
    if let Some(check) = state.check.as_ref() {
        let p = check.progress.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = p.failed {
            return Some(reason);
        }
        if p.ended {
            let held = p.held;
            let undefined = p.undefined;
            drop(p);
            state.check = None;
            state.next_beat = Some(now + heartbeat.interval);
            state.look_up_schema = undefined;
            return match held {
                Some(false) => Some(LostReason::NotHeld),
                _ => None,
            };
        }
        // Timed from the moment the server runs the check: a check queued behind the
        // statements of the guard's own connection is not late.
        if let (Some(t), Some(started)) = (heartbeat.timeout, p.started) {
            if now.duration_since(started) > t {
                return Some(LostReason::Unresponsive { after: t });
            }
        }
        return None;
    }
    if state.next_beat.is_none_or(|at| now >= at) {
        let text = check_text(months, schema);
        let request = pin!(client.simple_query_raw(&text));
        match request.poll(cx) {
            Poll::Ready(Ok(stream)) => {
                let progress = Arc::new(Mutex::new(Progress::default()));
                tokio::spawn(read_check(Box::pin(stream), progress.clone()));
                state.check = Some(Check { progress });
            }
            Poll::Ready(Err(e)) if e.is_closed() => return Some(LostReason::ConnectionClosed),
            _ => state.next_beat = Some(now + heartbeat.interval),
        }
    }
    None
}
