//! The timed wait: queueing in PostgreSQL's own lock manager for up to a timeout, with month_lock's
//! own lock timeout and no lock left behind by a timeout or cancel that races with the grant.

use super::events::IN_OWN_ROLLBACK;
use super::inspect::held_by_me_locktag;
use super::lock::report_grant;
use super::release::lock_release;
use super::{unguarded, Mode, MonthTag, Scope};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::PgSqlErrorCode;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;

/// Queue for the lock in PostgreSQL's own lock manager, like any lock wait, for up to `timeout`
/// milliseconds (`None`: without limit). Returns `true` once granted, `false` at the timeout.
///
/// The wait runs inside an internal subtransaction, so that a lock timeout can be caught and
/// turned into `false`, with the lock-timeout variable set for the wait alone (see
/// [`LockTimeoutFor`]): the caller's `lock_timeout` is neither used nor changed. Any other
/// ERROR raised while waiting (cancel, `statement_timeout`, deadlock 40P01) is re-raised
/// unchanged after the cleanup below; `pg_terminate_backend` ends the process (FATAL) as usual.
///
/// Inside the subtransaction the lock is requested in the caller's memory context and under
/// the caller's resource owner. The memory context: nothing is left in the subtransaction's
/// own context, so committing it frees it (otherwise every waited grant would keep 8 kB until
/// the transaction ends). The resource owner: a transaction-scope lock then belongs exactly
/// where a lock taken without waiting would (e.g. a cursor's portal), so it has the built-in
/// lock's lifetime under savepoints instead of the internal subtransaction's parent's.
///
/// Never a lock left behind: PostgreSQL can report a timeout or a cancel in the same instant
/// the lock is granted (`LockErrorCleanup` then records the grant). Such a grant survives the
/// subtransaction rollback (a session lock has no owner; a transaction lock belongs to the
/// caller's owner), so it is kept when the error was our own timeout (the lock *was* granted:
/// return `true`) and released before re-raising any other error. Callers guarantee this
/// backend held no reference to (tag, mode) on entry (they call [`super::try_now`] first, which
/// succeeds for any held lock), so "held after the rollback" means "granted during this wait".
pub fn wait(tag: MonthTag, mode: Mode, scope: Scope, timeout: Option<NonZeroU32>) -> bool {
    let locktag = tag.locktag();
    let lockmode = mode.lockmode();
    let session = scope == Scope::Session;
    let _timeout = LockTimeoutFor::new(timeout);

    // SAFETY (whole block): the sequence below is the one PL/pgSQL uses for an EXCEPTION block
    // (pl_exec.c): remember the caller's memory context and resource owner, start an internal
    // subtransaction, switch back to the caller's context, run the guarded call, then either
    // release (commit) or roll back the subtransaction and restore context and owner. Running
    // LockAcquire under the caller's resource owner is what PortalRun does for a portal's
    // owner; the subtransaction's own owner then simply has nothing to release. pgrx has
    // already copied and flushed the error state when it hands us a CaughtError, exactly as
    // PG_CATCH + FlushErrorState would.
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let caller_owner = pg_sys::CurrentResourceOwner;

        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(caller_context);
        pg_sys::CurrentResourceOwner = caller_owner;
        let outcome: Result<(), Box<CaughtError>> = PgTryBuilder::new(|| {
            pg_sys::LockAcquire(&locktag, lockmode, session, false);
            consume_own_lock_timeout();
            if session {
                // Reported before anything else can raise: see GrantHooks::granted.
                report_grant(tag, mode, true);
            }
            Ok(())
        })
        .catch_others(|error| Err(Box::new(error)))
        .execute();

        match outcome {
            Ok(()) => {
                pg_sys::ReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(caller_context);
                pg_sys::CurrentResourceOwner = caller_owner;
                true
            }
            Err(error) => {
                // Roll back: LockErrorCleanup leaves the wait queue, or records a grant that
                // raced with the error in the local lock table.
                IN_OWN_ROLLBACK.store(true, Relaxed);
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                IN_OWN_ROLLBACK.store(false, Relaxed);
                pg_sys::MemoryContextSwitchTo(caller_context);
                pg_sys::CurrentResourceOwner = caller_owner;

                let granted_anyway = held_by_me_locktag(&locktag, lockmode);
                if is_lock_timeout(&error) {
                    if granted_anyway && session {
                        report_grant(tag, mode, true);
                    }
                    return granted_anyway;
                }
                if granted_anyway {
                    lock_release(&locktag, lockmode, session);
                }
                (*error).rethrow()
            }
        }
    }
}

/// The lock was granted: if month_lock's own lock timeout fired in the same instant, take back
/// the cancel it left pending.
///
/// When the lock-timeout timer fires while the lock is being granted, PostgreSQL's `ProcSleep`
/// returns with the grant but keeps the timer's indicator set, and the timer has already
/// signalled this backend (`QueryCancelPending`). The next `CHECK_FOR_INTERRUPTS` — in the next
/// month's wait, or in the executor after month_lock returned `true` — would then report
/// "canceling statement due to lock timeout" for a wait that succeeded. The timer is ours (the
/// caller's `lock_timeout` is not in force during the wait, see [`LockTimeoutFor`]), so its
/// indicator is cleared, and with it the pending cancel — unless `statement_timeout` fired too:
/// then the cancel stays and is reported as the statement timeout it is. A `pg_cancel_backend`
/// that lands in the very same instant sends the same signal as the timer and cannot be told
/// apart from it; it is taken as the timer's, as if it had arrived just after the statement.
fn consume_own_lock_timeout() {
    // SAFETY: get_timeout_indicator reads (and with reset = true clears) a flag in the
    // backend-local timeout table; QueryCancelPending is a backend-local flag written by signal
    // handlers, which only ever set it: clearing it after the indicators were read loses no
    // statement timeout (its indicator keeps the cancel).
    unsafe {
        if unguarded::get_timeout_indicator(unguarded::LOCK_TIMEOUT, true)
            && !unguarded::get_timeout_indicator(unguarded::STATEMENT_TIMEOUT, false)
        {
            std::ptr::write_volatile(std::ptr::addr_of_mut!(pg_sys::QueryCancelPending), 0);
        }
    }
}

/// While alive, PostgreSQL's lock-timeout variable (the one behind `lock_timeout`, read when a
/// lock wait starts) holds month_lock's own timeout (0 = no limit); the caller's value comes
/// back in `drop`, which also runs when an ERROR unwinds through it. No GUC machinery is
/// involved, so nothing is allocated and the caller's `SHOW lock_timeout` never changes.
struct LockTimeoutFor {
    saved: i32,
}

impl LockTimeoutFor {
    fn new(timeout: Option<NonZeroU32>) -> Self {
        let ms = timeout.map_or(0, |ms| ms.get().min(i32::MAX as u32) as i32);
        // SAFETY: a plain int global read by ProcSleep when a wait starts, written on the
        // backend's only thread; no setting can change while this backend runs our function
        // (configuration reloads are processed only between client requests), and `drop`
        // restores the exact value.
        unsafe {
            let saved = LockTimeoutFor {
                saved: pg_sys::LockTimeout,
            };
            pg_sys::LockTimeout = ms;
            saved
        }
    }
}

impl Drop for LockTimeoutFor {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { pg_sys::LockTimeout = self.saved }
    }
}

fn is_lock_timeout(error: &CaughtError) -> bool {
    match error {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
            report.sql_error_code() == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
        }
        CaughtError::RustPanic { .. } => false,
    }
}
