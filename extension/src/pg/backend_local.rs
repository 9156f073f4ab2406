//! A value per backend process, reached without a lock.

/// State of this backend process, for the safe modules: a PostgreSQL backend runs SQL on one
/// thread (pgrx refuses calls from any other), so one value per process needs no lock. Access
/// goes through [`BackendLocal::with`], which panics instead of handing out a second `&mut` if
/// it is ever re-entered.
pub struct BackendLocal<T> {
    value: std::cell::UnsafeCell<T>,
    busy: std::cell::Cell<bool>,
}

// SAFETY: only the backend's main thread runs month_lock's code (SQL functions, transaction
// callbacks and setting hooks are all called on it), so the value is never reached from two
// threads.
unsafe impl<T> Sync for BackendLocal<T> {}

impl<T> BackendLocal<T> {
    pub const fn new(value: T) -> Self {
        BackendLocal {
            value: std::cell::UnsafeCell::new(value),
            busy: std::cell::Cell::new(false),
        }
    }

    /// Runs `f` on the value.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(!self.busy.replace(true), "BackendLocal re-entered");
        struct Done<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        let _done = Done(&self.busy);
        // SAFETY: one thread (see the Sync impl), and `busy` rules out a second live borrow.
        f(unsafe { &mut *self.value.get() })
    }
}
