//! [`Pooled`]: a guard that owns a pooled connection, and how a guard knows it does (it may
//! then roll back or end the session before the connection goes back to its pool).

use std::ops::Deref;

use tokio_postgres::Client;

/// True when `C` is [`Pooled`]: the guard owns a connection that goes back to a pool when it
/// is done, so it must leave no transaction block and no month behind.
pub(crate) fn owns_pooled<C>() -> bool {
    let name = std::any::type_name::<C>();
    let pooled = std::any::type_name::<Pooled<()>>();
    let prefix = pooled.strip_suffix("<()>").unwrap_or(pooled);
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('<'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_handles_are_recognised() {
        assert!(owns_pooled::<Pooled<Box<std::sync::Arc<Client>>>>());
        assert!(!owns_pooled::<std::sync::Arc<Client>>());
        assert!(!owns_pooled::<&Client>());
        assert!(!owns_pooled::<Box<Pooled<Box<std::sync::Arc<Client>>>>>());
    }
}

/// Adapter for connection handles that reach a [`Client`] through two derefs, such as
/// `deadpool_postgres::Object` (which derefs to `ClientWrapper`, which derefs to `Client`):
/// `Pooled(object)` derefs to the `Client` directly, so a guard can own the pooled connection
/// and releases the lock before the object goes back to the pool.
///
/// ```no_run
/// use month_lock_client::{MonthLock, Pooled};
/// use std::ops::Deref;
///
/// // Stands in for a pool's object type: Object -> Wrapper -> Client.
/// struct Wrapper(tokio_postgres::Client);
/// impl Deref for Wrapper {
///     type Target = tokio_postgres::Client;
///     fn deref(&self) -> &tokio_postgres::Client { &self.0 }
/// }
///
/// # async fn demo(object: Box<Wrapper>) -> month_lock_client::Result<()> {
/// let guard = MonthLock::new("2024-03".parse()?).acquire(Pooled(object)).await?;
/// drop(guard); // queues the release, then drops the object
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pooled<C>(pub C);

impl<C> Deref for Pooled<C>
where
    C: Deref,
    C::Target: Deref<Target = Client>,
{
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.0
    }
}
