//! What the lock manager knows: whether this backend holds a month, whether anyone in the
//! database holds or awaits it, and the mark of an exclusive hold (for fencing tokens).

use super::lock::acquire_extended;
use super::release::lock_release;
use super::{Mode, MonthTag};
use pgrx::pg_sys;

pub(super) fn held_by_me_locktag(locktag: &pg_sys::LOCKTAG, lockmode: pg_sys::LOCKMODE) -> bool {
    // SAFETY: LockHeldByMe only reads this backend's local lock table.
    unsafe {
        #[cfg(any(feature = "pg14", feature = "pg15", feature = "pg16"))]
        {
            pg_sys::LockHeldByMe(locktag, lockmode)
        }
        #[cfg(not(any(feature = "pg14", feature = "pg15", feature = "pg16")))]
        {
            pg_sys::LockHeldByMe(locktag, lockmode, false)
        }
    }
}

/// Whether this backend holds (tag, mode) in any scope (session or transaction).
pub fn held_by_me(tag: MonthTag, mode: Mode) -> bool {
    held_by_me_locktag(&tag.locktag(), mode.lockmode())
}

/// This backend's exclusive hold of a month, as the lock manager sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusiveHold {
    NotHeld,
    /// Held; `marked` tells whether [`exclusive_hold`] marked it since it began.
    Held {
        marked: bool,
    },
}

/// Looks at this backend's exclusive hold of `tag` and, with `mark`, marks it.
///
/// A hold is one uninterrupted period in which this backend holds the month exclusively, in
/// either scope or both (session then transaction, or the reverse, is one hold: no other
/// session can take the month in between). The mark lives in the hold's entry of the local lock
/// table, in the `lockCleared` flag that PostgreSQL uses only for relation locks (advisory
/// locks never set it): PostgreSQL resets it and drops the entry when the last reference goes,
/// by whatever path — month_lock's release, `pg_advisory_unlock`, `pg_advisory_unlock_all`,
/// `DISCARD ALL`, the end of a transaction or a subtransaction rollback — and a new entry starts
/// unmarked. So a marked hold is exactly the hold that was marked.
pub fn exclusive_hold(tag: MonthTag, mark: bool) -> ExclusiveHold {
    if !held_by_me(tag, Mode::Exclusive) {
        return ExclusiveHold::NotHeld;
    }
    let locktag = tag.locktag();
    let lockmode = Mode::Exclusive.lockmode();
    let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // SAFETY: the lock is held (checked above), so LockAcquireExtended only adds a local
    // transaction reference under the current resource owner (no shared memory, no wait) and
    // reports through its result whether the entry's lockCleared flag is set; it can raise only
    // out of memory, before anything changed. `locallock` then points at the live entry, which
    // MarkLockClear marks (it requires a held lock: it is). The reference is given back at once
    // under the same owner, so the hold's counts end as they began.
    unsafe {
        let result = acquire_extended(&locktag, lockmode, false, true, &mut locallock);
        let marked = result == pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_CLEAR;
        if mark && !marked {
            pg_sys::MarkLockClear(locallock);
        }
        lock_release(&locktag, lockmode, false);
        ExclusiveHold::Held { marked }
    }
}

/// Whether any backend holds an advisory lock with this tag in the current database, in any
/// mode, or waits for it: one lookup in one partition of the shared lock table.
///
/// `LockWaiterCount` returns the lock object's number of requests, granted and awaited, read
/// under its partition lock. An awaited request implies a granted one at that instant: a
/// release grants every waiter that no longer conflicts while it holds the same partition
/// lock, so a queue never stands without a holder (a waiter that gave up leaves it under that
/// lock too). So "any request" is "held by someone", including this backend.
pub fn requested_in_database(tag: MonthTag) -> bool {
    let locktag = tag.locktag();
    // SAFETY: `locktag` is a valid advisory tag of the user lock method; LockWaiterCount takes
    // and releases one partition LWLock around a hash lookup and raises only for an
    // unrecognized lock method (ours is USER_LOCKMETHOD).
    unsafe { pg_sys::LockWaiterCount(&locktag) > 0 }
}
