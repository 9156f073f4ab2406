//! Months and how other sessions see them.

use std::time::{Duration, Instant};

use month_lock_client::{MonthLockExt, YearMonth};
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
