//! Declarations of PostgreSQL functions called without pgrx's error guard. Each use states why
//! no PostgreSQL ERROR can longjmp across the Rust frames that call it.

use pgrx::pg_sys::{LockAcquireResult, LOCALLOCK, LOCKMODE, LOCKTAG};

/// `TimeoutId` of utils/timeout.h, which pgrx does not bind. The predefined reasons up to
/// `STATEMENT_TIMEOUT` have had these values in every major since 9.3, 14..18 included
/// (later releases add reasons after them).
pub type TimeoutId = std::ffi::c_int;
pub const LOCK_TIMEOUT: TimeoutId = 2;
pub const STATEMENT_TIMEOUT: TimeoutId = 3;

extern "C-unwind" {
    pub fn GetCurrentStatementStartTimestamp() -> i64;
    pub fn get_timeout_indicator(id: TimeoutId, reset: bool) -> bool;
    pub fn LockRelease(locktag: *const LOCKTAG, lockmode: LOCKMODE, sessionLock: bool) -> bool;
    #[cfg(not(feature = "pg18"))]
    pub fn LockAcquireExtended(
        locktag: *const LOCKTAG,
        lockmode: LOCKMODE,
        sessionLock: bool,
        dontWait: bool,
        reportMemoryError: bool,
        locallockp: *mut *mut LOCALLOCK,
    ) -> LockAcquireResult::Type;
    #[cfg(feature = "pg18")]
    pub fn LockAcquireExtended(
        locktag: *const LOCKTAG,
        lockmode: LOCKMODE,
        sessionLock: bool,
        dontWait: bool,
        reportMemoryError: bool,
        locallockp: *mut *mut LOCALLOCK,
        logLockFailure: bool,
    ) -> LockAcquireResult::Type;
}
