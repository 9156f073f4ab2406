//! Dropping one reference to a month lock, without the WARNING PostgreSQL gives for a reference
//! that is not there.

use super::{unguarded, Mode, MonthTag};
use pgrx::pg_sys;

/// Drops one session-scope reference this backend holds on (tag, mode) and tells whether
/// there was one. Transaction-scope references stay.
///
/// `LockRelease` is the only way to drop a session reference, and it returns false with a
/// WARNING ("you don't own a lock of type ...") when there is none, e.g. when the month is not
/// held or held only by the transaction. month_lock's release is documented to be quiet, and
/// there is no public read-only way to ask the local lock table for the session count first
/// (a probe costs another lookup on the hot path), so that one expected WARNING is silenced
/// while LockRelease runs: see [`WarningsSilenced`].
///
/// month_lock never stacks session references (re-entry gives the extra one back), so one
/// reference is the whole hold. Only raw `pg_advisory_lock` calls on the same key stack more;
/// those are released by the raw functions (`pg_advisory_unlock`, `pg_advisory_unlock_all`).
pub fn release_session(tag: MonthTag, mode: Mode) -> bool {
    let locktag = tag.locktag();
    let _quiet = WarningsSilenced::new();
    // SAFETY: see `lock_release`.
    unsafe { lock_release(&locktag, mode.lockmode(), true) }
}

/// Drops one transaction-scope reference this backend holds on (tag, mode) under the current
/// resource owner (where month_lock's waits and attempts put them); true if there was one.
pub fn release_transaction(tag: MonthTag, mode: Mode) -> bool {
    let locktag = tag.locktag();
    let _quiet = WarningsSilenced::new();
    // SAFETY: see `lock_release`; a transaction-scope release drops the reference of the
    // current resource owner or finds none and returns false.
    unsafe { lock_release(&locktag, mode.lockmode(), false) }
}

/// While alive, messages below ERROR are neither sent to the client nor logged. Used around
/// `LockRelease` only, whose sole message below ERROR is the "you don't own a lock" WARNING.
/// The previous levels come back in `drop`, which also runs when an ERROR unwinds through it.
struct WarningsSilenced {
    client: i32,
    log: i32,
}

impl WarningsSilenced {
    fn new() -> Self {
        // SAFETY: plain int globals behind the client_min_messages / log_min_messages settings,
        // read and written on the backend's only thread; no GUC machinery runs while they are
        // changed (LockRelease reads no settings), and `drop` restores the exact values.
        unsafe {
            let saved = WarningsSilenced {
                client: pg_sys::client_min_messages,
                log: pg_sys::log_min_messages,
            };
            pg_sys::client_min_messages = pgrx::PgLogLevel::ERROR as i32;
            pg_sys::log_min_messages = pgrx::PgLogLevel::ERROR as i32;
            saved
        }
    }
}

impl Drop for WarningsSilenced {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe {
            pg_sys::client_min_messages = self.client;
            pg_sys::log_min_messages = self.log;
        }
    }
}

/// `LockRelease` without pgrx's per-call error guard (a sigsetjmp, a large part of the cost of
/// an uncontended release).
///
/// # Safety
/// `locktag` must be a valid advisory tag and `lockmode` one of [`Mode`]'s. No PostgreSQL ERROR
/// can cross this call, so no Rust frame is skipped by a longjmp: `LockRelease` raises only
/// for an unrecognized lock method or mode (ours are the user lock method's constants) and
/// otherwise reports a lock it does not hold with a WARNING, below ERROR, which returns. Its
/// lock-manager LWLock is one of a handful a backend holds, far below the limit that raises.
pub(super) unsafe fn lock_release(
    locktag: &pg_sys::LOCKTAG,
    lockmode: pg_sys::LOCKMODE,
    session: bool,
) -> bool {
    unsafe { unguarded::LockRelease(locktag, lockmode, session) }
}
