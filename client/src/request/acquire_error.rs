//! [`AcquireError`]: a failed session-scope acquisition, with the connection handed back.

use std::fmt;

use crate::error::Error;

/// A failed [`MonthLock::acquire`](crate::MonthLock::acquire): the [`Error`], and the
/// connection handle handed back.
///
/// Converts into [`Error`] with `?` (dropping the handle).
///
/// ```no_run
/// # use month_lock_client::{Error, MonthLock};
/// # use std::time::Duration;
/// # async fn demo(client: &tokio_postgres::Client) -> month_lock_client::Result<()> {
/// let err = MonthLock::new("2024-03".parse()?).timeout(Duration::ZERO).acquire(client).await.unwrap_err();
/// assert!(matches!(err.error(), Error::Timeout { .. }));
/// let (error, client) = err.into_parts();
/// # Ok(()) }
/// ```
pub struct AcquireError<C> {
    error: Error,
    client: C,
}

impl<C> AcquireError<C> {
    pub(crate) fn new(error: Error, client: C) -> Self {
        AcquireError { error, client }
    }

    /// What went wrong.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// True when the months were busy: [`Error::Timeout`] (another session kept the month for
    /// the whole timeout), [`Error::NotAllFree`] (a set) or [`Error::NoneFree`] (`any_of`).
    /// Nothing is held then.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.error,
            Error::Timeout { .. } | Error::NotAllFree { .. } | Error::NoneFree { .. }
        )
    }

    /// The error, dropping the connection handle.
    pub fn into_error(self) -> Error {
        self.error
    }

    /// The connection handle, dropping the error.
    pub fn into_client(self) -> C {
        self.client
    }

    /// Both.
    pub fn into_parts(self) -> (Error, C) {
        (self.error, self.client)
    }
}

impl<C> fmt::Debug for AcquireError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<C> fmt::Display for AcquireError<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<C> std::error::Error for AcquireError<C> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<C> From<AcquireError<C>> for Error {
    fn from(e: AcquireError<C>) -> Self {
        e.error
    }
}
