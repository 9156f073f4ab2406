//! Transaction and subtransaction callbacks (the failed-request rule, transaction ends) and the
//! identity of the client request a grant is made in.

use super::unguarded;
use pgrx::pg_sys;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// What month_lock does at transaction events (see [`on_transaction_events`]).
pub struct TransactionHooks {
    /// A client request of this backend is failing (see below).
    pub failed_request: fn(),
    /// The top-level transaction ended (commit, abort or prepare).
    pub transaction_ended: fn(),
}

static HOOKS: std::sync::OnceLock<TransactionHooks> = std::sync::OnceLock::new();

/// True while [`super::wait()`] rolls back its own internal subtransaction.
pub(super) static IN_OWN_ROLLBACK: AtomicBool = AtomicBool::new(false);

/// Registers `hooks` (once per process) with PostgreSQL's transaction and subtransaction
/// callbacks.
///
/// How a failed client request is told apart from other aborts: only PostgreSQL's top-level
/// error handler (PostgresMain) aborts with both of these true:
/// - `debug_query_string` is NULL: the handler clears it before `AbortCurrentTransaction`,
///   while an abort *during* a request — an EXCEPTION block catching an error, an internal
///   subtransaction rolled back by its owner (as [`super::wait()`] does), `ROLLBACK` or `ROLLBACK TO
///   SAVEPOINT` — runs with the request's text still set;
/// - interrupts are held twice: the handler holds them before it aborts, and the abort
///   (`AbortTransaction`, `AbortSubTransaction`) holds them again. An error that reaches any
///   other handler resets the count to zero when it is raised, so an abort there holds them
///   once. This is what tells the handler apart from the aborts that run while
///   `debug_query_string` is NULL for other reasons: between an extended-protocol Execute and
///   the Sync that commits (deferred triggers, `WITH HOLD` cursors materialised at commit,
///   both of which can catch errors in EXCEPTION blocks) and during fast-path function calls.
///
/// Only client connections have requests (ordinary backends, and walsenders of
/// `replication=database` connections, which run SQL too): in background workers
/// `failed_request` is never called.
pub fn on_transaction_events(hooks: TransactionHooks) {
    if HOOKS.set(hooks).is_ok() {
        // SAFETY: registering callbacks once per process, from _PG_init; the functions are
        // 'static and never unregistered.
        unsafe {
            pg_sys::RegisterXactCallback(Some(after_xact_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(after_subxact_event), std::ptr::null_mut());
        }
    }
}

unsafe extern "C-unwind" fn after_xact_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    let Some(hooks) = HOOKS.get() else { return };
    if event == XACT_EVENT_ABORT && request_failed() {
        call(hooks.failed_request);
    }
    if matches!(
        event,
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE
    ) {
        call(hooks.transaction_ended);
    }
}

unsafe extern "C-unwind" fn after_subxact_event(
    event: pg_sys::SubXactEvent::Type,
    _my_subid: pg_sys::SubTransactionId,
    _parent_subid: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    let Some(hooks) = HOOKS.get() else { return };
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB || IN_OWN_ROLLBACK.load(Relaxed) {
        return;
    }
    if request_failed() {
        call(hooks.failed_request);
    }
}

fn request_failed() -> bool {
    // SAFETY: plain backend-local globals, read on the backend's own thread.
    unsafe {
        matches!(
            pg_sys::MyBackendType,
            pg_sys::BackendType::B_BACKEND | pg_sys::BackendType::B_WAL_SENDER
        ) && pg_sys::debug_query_string.is_null()
            && std::ptr::read_volatile(std::ptr::addr_of!(pg_sys::InterruptHoldoffCount)) >= 2
    }
}

/// Runs a hook from inside PostgreSQL's transaction processing: nothing may unwind into it.
fn call(hook: fn()) {
    let _ = std::panic::catch_unwind(hook);
}

/// Identity of the client request this backend is executing: its statement start time, which
/// PostgreSQL sets when a Query, Parse, Bind or Execute message arrives (`statement_timestamp()`).
pub fn current_request() -> i64 {
    // SAFETY: returns a backend-local static; it cannot raise, so it needs no error guard.
    unsafe { unguarded::GetCurrentStatementStartTimestamp() }
}
