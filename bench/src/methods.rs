//! The three ways of taking a month that every figure compares, each as the application would
//! send it (simple query protocol, one round trip per call unless said otherwise).
//!
//! * `month_lock`: `SELECT month_lock_try(year, month, timeout_ms)`.
//! * built-in queued wait: `SET LOCAL lock_timeout = timeout_ms; SELECT pg_advisory_lock(ns, key)`
//!   sent as one query string. PostgreSQL runs a multi-statement query string as one implicit
//!   transaction, so `SET LOCAL` ends with it (on success and on the timeout error alike): the
//!   setting never leaks into the session. The advisory lock is session-scoped and survives.
//! * polling: `SELECT pg_try_advisory_lock(ns, key)`, and after a refusal sleep 100 ms and try
//!   again until the deadline has passed (the original application's loop).
//!
//! Every method releases with its own function (`month_lock_release` or `pg_advisory_unlock`).

pub use crate::per_method::{Method, PerMethod};
use crate::sql::query_bool;
use month_lock_tests::sql::{ym, DEFAULT_NAMESPACE};
use month_lock_tests::TestDb;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// key2 of a month's advisory lock is the test kit's [`ym`], year*100 + month.
///
/// Advisory-lock namespace of month locks (key1 of the two-int form): the test kit's
/// [`DEFAULT_NAMESPACE`], 0x6D6C6B00 ("mlk"), 1835821824, the default of
/// `month_lock.namespace`; checked against the server at start.
pub const NS: i32 = DEFAULT_NAMESPACE;
/// The polling loop's sleep between two refused attempts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Long enough that no waiter of the handoff and throughput figures ever times out.
pub const LONG_WAIT_MS: u32 = 60_000;

/// A connection whose backend has already run the method's calls once (uncontended, on a
/// month no figure uses), so that no figure includes a new backend's first-call costs
/// (loading the extension's library, catalog cache misses).
pub async fn connect_warm(db: &TestDb, method: Method, app: &str) -> Client {
    let client = db.connect_as(app).await;
    let queries = AtomicU64::new(0);
    assert!(acquire(&client, method, 1999, 1, 1000, &queries, None).await);
    assert!(release(&client, method, 1999, 1).await, "warm-up release");
    assert!(lock_now(&client, method, 1999, 1).await, "warm-up lock");
    assert!(release(&client, method, 1999, 1).await, "warm-up release");
    client
}

pub async fn connect_many(db: &TestDb, method: Method, n: usize, app: &str) -> Vec<Arc<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Arc::new(connect_warm(db, method, app).await));
    }
    clients
}

/// One attempt without waiting (the holder's way in), with the method's own function.
pub async fn lock_now(client: &Client, method: Method, year: i32, month: i32) -> bool {
    match method {
        Method::MonthLock => {
            query_bool(client, &format!("SELECT month_lock_try({year}, {month})")).await
        }
        Method::Queued | Method::Polling => {
            query_bool(
                client,
                &format!("SELECT pg_try_advisory_lock({NS}, {})", ym(year, month)),
            )
            .await
        }
    }
}

/// Takes the month, waiting up to `timeout_ms` (> 0); returns whether it was obtained.
/// Every query sent is counted in `queries`. `first_refusal`, when given, is incremented once
/// when a polling loop has been refused for the first time (the waiter is then "queued").
pub async fn acquire(
    client: &Client,
    method: Method,
    year: i32,
    month: i32,
    timeout_ms: u32,
    queries: &AtomicU64,
    first_refusal: Option<&AtomicUsize>,
) -> bool {
    assert!(
        timeout_ms > 0,
        "timeout 0 means something different for each method"
    );
    match method {
        Method::MonthLock => {
            queries.fetch_add(1, Ordering::Relaxed);
            query_bool(
                client,
                &format!("SELECT month_lock_try({year}, {month}, {timeout_ms})"),
            )
            .await
        }
        Method::Queued => {
            queries.fetch_add(1, Ordering::Relaxed);
            let sql = format!(
                "SET LOCAL lock_timeout = {timeout_ms}; SELECT pg_advisory_lock({NS}, {})",
                ym(year, month)
            );
            match client.batch_execute(&sql).await {
                Ok(()) => true,
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => false,
                Err(e) => panic!("{sql}: {e}"),
            }
        }
        Method::Polling => {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms.into());
            let sql = format!("SELECT pg_try_advisory_lock({NS}, {})", ym(year, month));
            let mut refused = false;
            loop {
                queries.fetch_add(1, Ordering::Relaxed);
                if query_bool(client, &sql).await {
                    return true;
                }
                if !refused {
                    refused = true;
                    if let Some(counter) = first_refusal {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }
}

/// Releases the month with the method's own function; returns what the server said.
pub async fn release(client: &Client, method: Method, year: i32, month: i32) -> bool {
    match method {
        Method::MonthLock => {
            query_bool(
                client,
                &format!("SELECT month_lock_release({year}, {month})"),
            )
            .await
        }
        Method::Queued | Method::Polling => {
            query_bool(
                client,
                &format!("SELECT pg_advisory_unlock({NS}, {})", ym(year, month)),
            )
            .await
        }
    }
}

/// A small xorshift generator: phases and month choices need no more.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-enough in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
