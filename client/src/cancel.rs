//! [`CancelTls`]: how a dropped acquisition's cancel request reaches the server.

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{CancelToken, Socket};

type CancelFuture = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// The TLS connector a cancel request uses: the one the connection was made with. A cancel
/// request opens a new connection to the server, so on a connection with `sslmode=require`
/// (or `verify-*`) it must be able to speak TLS, or it is never sent.
///
/// Default: [`CancelTls::no_tls`], right for connections made with `NoTls`. Set it with
/// [`MonthLock::cancel_tls`](crate::MonthLock::cancel_tls) for connections made with a TLS
/// connector.
///
/// ```
/// use month_lock_client::{CancelTls, MonthLock};
/// let request = MonthLock::new("2024-03".parse()?).cancel_tls(CancelTls::new(tokio_postgres::NoTls));
/// # Ok::<(), month_lock_client::InvalidYearMonth>(())
/// ```
#[derive(Clone)]
pub struct CancelTls(Arc<dyn Fn(CancelToken) -> CancelFuture + Send + Sync>);

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

    pub(crate) fn cancel(&self, token: CancelToken) -> CancelFuture {
        (self.0)(token)
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
