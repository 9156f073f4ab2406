//! [`Heartbeat`]: how a held lock is watched, and the watch itself.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::error::{Error, LostReason};
use crate::{sql, YearMonth};

/// How [`MonthLockGuard::lost`](crate::MonthLockGuard::lost) watches the lock.
///
/// Every `interval` it checks, without a round trip, whether the driver has seen the connection
/// close (so a terminated backend or a restarted server is noticed within about `interval`,
/// at most 100 ms), and sends a heartbeat `SELECT month_lock_held(y, m)` on the guard's
/// connection (for a guard holding a set: one statement checking every month of it). A heartbeat that answers `false` means the lock is gone
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
        Heartbeat {
            interval: Duration::from_secs(1),
            timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Resolves when `client`'s session is seen not to hold every month of `months` any more; the
/// verdict is kept in `seen` so that later calls answer at once.
pub(crate) async fn watch(
    client: &Client,
    months: &[YearMonth],
    heartbeat: Heartbeat,
    seen: &OnceLock<LostReason>,
) -> LostReason {
    let lost = |reason| *seen.get_or_init(|| reason);
    if let Some(reason) = seen.get() {
        return *reason;
    }
    let one = match months {
        [ym] => Some(sql::month_args(*ym)),
        _ => None,
    };
    let step = heartbeat
        .interval
        .clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut next_beat = Instant::now();
    loop {
        if client.is_closed() {
            return lost(LostReason::ConnectionClosed);
        }
        if Instant::now() >= next_beat {
            let beat = async {
                match one {
                    Some((y, m)) => sql::value::<_, bool>(client, sql::HELD, &[y, m]).await,
                    None => sql::set_row(client, sql::HELD_SET, months, None)
                        .await
                        .and_then(|row| Ok(row.try_get::<_, bool>(0)?)),
                }
            };
            let answer = match heartbeat.timeout {
                Some(t) => match tokio::time::timeout(t, beat).await {
                    Ok(answer) => answer,
                    Err(_) => return lost(LostReason::Unresponsive { after: t }),
                },
                None => beat.await,
            };
            match answer {
                Ok(true) => {}
                Ok(false) => return lost(LostReason::NotHeld),
                Err(Error::Database(e)) if sql::connection_gone(&e) || client.is_closed() => {
                    return lost(LostReason::ConnectionClosed);
                }
                // E.g. 25P02 in a failed transaction block on the same connection: no verdict.
                Err(_) => {}
            }
            next_beat = Instant::now() + heartbeat.interval;
        }
        tokio::time::sleep(step).await;
    }
}
