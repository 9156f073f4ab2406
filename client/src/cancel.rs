//! [`CancelTls`]: kept for compatibility; this crate sends no cancel requests.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{CancelToken, Socket};

type CancelFuture = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// A TLS connector for cancel requests. No effect since dropped acquisitions are no longer
/// cancelled (see "Cancelling an acquisition" in [`MonthLockGuard`](crate::MonthLockGuard));
/// kept so that code written for earlier versions still builds.
#[derive(Clone)]
pub struct CancelTls(#[allow(dead_code)] Arc<dyn Fn(CancelToken) -> CancelFuture + Send + Sync>);

impl CancelTls {
    /// Cancel requests through `tls`, a connector of the kind passed to `Config::connect`.
    pub fn new<T>(tls: T) -> Self
    where
        T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
        T::Stream: Send,
        T::TlsConnect: Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        CancelTls(Arc::new(move |token: CancelToken| {
            let tls = tls.clone();
            Box::pin(async move { token.cancel_query(tls).await }) as CancelFuture
        }))
    }

    /// Cancel requests without TLS (for connections made with `NoTls`).
    pub fn no_tls() -> Self {
        Self::new(tokio_postgres::NoTls)
    }
}

impl Default for CancelTls {
    fn default() -> Self {
        Self::no_tls()
    }
}

impl fmt::Debug for CancelTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CancelTls")
    }
}

/// Requests compare and hash by what they ask for, not by how they cancel.
impl PartialEq for CancelTls {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for CancelTls {}

impl Hash for CancelTls {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}
