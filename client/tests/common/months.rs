//! Months and how other sessions see them.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use month_lock_client::{MonthLock, MonthLockExt, YearMonth};
use tokio_postgres::Client;

/// A month from its text (tests only: panics on a bad one).
pub fn ym(s: &str) -> YearMonth {
    s.parse().unwrap()
}

/// Another session (`observer`) sees `m` held.
pub async fn is_locked_elsewhere(observer: &Client, m: YearMonth) -> bool {
    observer.is_locked(m).await.unwrap()
}

/// Polls until `m` is free as `observer` sees it; returns how long that took (panics after 5 s).
pub async fn wait_until_free(observer: &Client, m: YearMonth) -> Duration {
    let start = Instant::now();
    while is_locked_elsewhere(observer, m).await {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{m} still locked after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// An acquisition of `m` in one of three shapes on `c`, boxed so that a test can poll it by
/// hand and drop it: "one" (`m`, waiting up to 1 s), "any_of" or "set" (`m` and `n`); true if
/// it took what it asked for.
pub fn acquisition<'a>(
    shape: &str,
    c: &'a Client,
    m: YearMonth,
    n: YearMonth,
) -> Pin<Box<dyn Future<Output = bool> + 'a>> {
    match shape {
        "one" => Box::pin(async move {
            MonthLock::new(m)
                .timeout(Duration::from_secs(1))
                .acquire(c)
                .await
                .is_ok()
        }),
        "any_of" => {
            Box::pin(async move { MonthLock::any_of([m, n]).unwrap().acquire(c).await.is_ok() })
        }
        _ => Box::pin(async move { MonthLock::set([m, n]).unwrap().acquire(c).await.is_ok() }),
    }
}
