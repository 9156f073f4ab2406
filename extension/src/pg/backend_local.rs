//! A value per backend process, reached without a lock.

/// State of this backend process, for the safe modules: a PostgreSQL backend runs SQL on one
/// thread (pgrx refuses calls from any other), so one value per process needs no lock. Access
/// goes through [`BackendLocal::with`] or [`BackendLocal::borrow`], which panic instead of
/// handing out a second `&mut` if it is ever re-entered.
pub struct BackendLocal<T> {
    value: std::cell::UnsafeCell<T>,
    busy: std::cell::Cell<bool>,
}

// SAFETY: only the backend's main thread runs month_lock's code (SQL functions, transaction
// callbacks and setting hooks are all called on it), so the value is never reached from two
// threads.
unsafe impl<T> Sync for BackendLocal<T> {}

/// The value, borrowed from [`BackendLocal::borrow`] until dropped.
pub struct Borrowed<'a, T> {
    local: &'a BackendLocal<T>,
}

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
        f(&mut self.borrow())
    }

    /// The value until the result is dropped. Unlike [`BackendLocal::with`] it takes no
    /// closure, so the hot entry points inline the work done on it wherever they are.
    #[inline(always)]
    pub fn borrow(&self) -> Borrowed<'_, T> {
        assert!(!self.busy.replace(true), "BackendLocal re-entered");
        Borrowed { local: self }
    }
}

impl<T> std::ops::Deref for Borrowed<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: one thread (see the Sync impl), and `busy`, set while this value lives, rules
        // out a second live borrow.
        unsafe { &*self.local.value.get() }
    }
}

impl<T> std::ops::DerefMut for Borrowed<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`.
        unsafe { &mut *self.local.value.get() }
    }
}

impl<T> Drop for Borrowed<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.local.busy.set(false);
    }
}
