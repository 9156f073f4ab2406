//! One attempt without waiting, and the hook that reports each session-scope grant to the layer
//! above ([`GrantHooks`]).

use super::{Extension, Mode, MonthTag, Scope};
use pgrx::pg_sys;

/// What the layer above does when a session-scope lock is granted: implemented above this
/// layer for [`Extension`], called statically (the one-attempt entry points run it).
pub trait GrantHooks {
    /// A session-scope grant of (tag, mode), reported right after the lock manager made it and
    /// before anything else can raise; `new` is false for a re-entry on a hold that already had
    /// a session reference. Returns true when such a re-entry took over a hold the hook had
    /// not recorded (the raw advisory functions took it): the attempt is then
    /// [`Attempt::Adopted`].
    fn granted(tag: MonthTag, mode: Mode, new: bool) -> bool;
}

/// Reports a session-scope grant through [`GrantHooks`].
#[inline(always)]
pub(super) fn report_grant(tag: MonthTag, mode: Mode, new: bool) -> bool {
    <Extension as GrantHooks>::granted(tag, mode, new)
}

/// What one attempt without waiting did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Not granted: another session holds the month in a conflicting mode, or waits for it.
    Refused,
    /// Granted, and this call added a reference in the requested scope: undoing the call
    /// means releasing one reference in that scope.
    Added,
    /// Granted with nothing added: a session-scope request on a month this backend already
    /// held in session scope (re-entry does not stack).
    AlreadyHeld,
    /// As `AlreadyHeld`, and the hold was the raw functions' only: month_lock took it over
    /// ([`GrantHooks::granted`] said so); undoing the call gives it back to the raw functions.
    Adopted,
}

impl Attempt {
    pub fn granted(self) -> bool {
        self != Attempt::Refused
    }
}

/// One attempt without waiting. Respects the queue: PostgreSQL refuses a new request that
/// conflicts with an already queued waiter, so this never jumps ahead of one.
/// If this backend already holds the lock in any scope, the grant is local and immediate.
///
/// Re-entry does not stack: a session lock this backend already holds in session scope keeps a
/// single session reference (the extra one this call took is given back at once), so one
/// release always frees it. Transaction-scope references are left to stack: they all end
/// together with the transaction, and each one a call added can be given back alone. Session-
/// scope grants are reported through [`GrantHooks::granted`] at once, before anything that could
/// raise.
pub fn try_now(tag: MonthTag, mode: Mode, scope: Scope) -> Attempt {
    let locktag = tag.locktag();
    let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // SAFETY: `locktag` is a fully initialised advisory tag on our stack; LockAcquireExtended
    // copies it. With dontWait it never sleeps; an ERROR (out of shared memory) propagates as a
    // panic that pgrx turns back into the same ERROR, and the transaction abort cleans up as
    // for any lock. On success `locallock` points at the backend's LOCALLOCK entry.
    let result = unsafe {
        acquire_extended(
            &locktag,
            mode.lockmode(),
            scope == Scope::Session,
            true,
            &mut locallock,
        )
    };
    // SAFETY: `result` and `locallock` are what LockAcquireExtended just returned for the tag.
    unsafe { attempt_made(tag, mode, scope, result, locallock) }
}

/// The rest of [`try_now`] once the lock manager answered: undoes a second session reference
/// and records a session-scope grant.
///
/// # Safety
/// `result` and `locallock` must be what `LockAcquireExtended` (dontWait) returned for `tag`
/// and `mode` in `scope` just before, with nothing in between.
pub(super) unsafe fn attempt_made(
    tag: MonthTag,
    mode: Mode,
    scope: Scope,
    result: pg_sys::LockAcquireResult::Type,
    locallock: *mut pg_sys::LOCALLOCK,
) -> Attempt {
    let session = scope == Scope::Session;
    match result {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => return Attempt::Refused,
        pg_sys::LockAcquireResult::LOCKACQUIRE_OK => {}
        // Already held, in some scope: only a second *session* reference is undone.
        // SAFETY: on a grant `locallock` points at the backend's LOCALLOCK entry, which stays
        // valid while the lock is held (we hold it); LockRelease cannot raise (see
        // `lock_release`).
        _ if session && unsafe { session_count(locallock) } > 1 => {
            unsafe { super::release::lock_release(&tag.locktag(), mode.lockmode(), true) };
            return if report_grant(tag, mode, false) {
                Attempt::Adopted
            } else {
                Attempt::AlreadyHeld
            };
        }
        // Held by the transaction only (or a transaction reference stacked): this call
        // added the reference.
        _ => {}
    }
    if session {
        report_grant(tag, mode, true);
    }
    Attempt::Added
}

/// `LockAcquireExtended`, whose signature grew a parameter in PostgreSQL 18.
///
/// # Safety
/// `locktag` must be a valid tag; `locallock` a writable pointer slot. See `LockAcquireExtended`.
pub(super) unsafe fn acquire_extended(
    locktag: &pg_sys::LOCKTAG,
    lockmode: pg_sys::LOCKMODE,
    session: bool,
    dont_wait: bool,
    locallock: &mut *mut pg_sys::LOCALLOCK,
) -> pg_sys::LockAcquireResult::Type {
    #[cfg(not(feature = "pg18"))]
    return pg_sys::LockAcquireExtended(locktag, lockmode, session, dont_wait, true, locallock);
    #[cfg(feature = "pg18")]
    return pg_sys::LockAcquireExtended(
        locktag, lockmode, session, dont_wait, true, locallock, false,
    );
}

/// Session-scope references recorded in a LOCALLOCK: PostgreSQL counts references per owner,
/// and session references have no resource owner.
///
/// # Safety
/// `locallock` must point at a live LOCALLOCK entry (one whose lock this backend holds).
unsafe fn session_count(locallock: *const pg_sys::LOCALLOCK) -> i64 {
    assert!(
        !locallock.is_null(),
        "LockAcquireExtended returned no local lock entry"
    );
    let entry = &*locallock;
    let owners = std::slice::from_raw_parts(entry.lockOwners, entry.numLockOwners as usize);
    owners
        .iter()
        .filter(|o| o.owner.is_null())
        .map(|o| o.nLocks)
        .sum()
}
