//! The only module that calls PostgreSQL's C API directly. Everything unsafe in the extension
//! lives in this folder; each `unsafe` block states the invariant it relies on. This file is the
//! lock manager and the timed wait; `entry` the hottest SQL functions as hand-written C entry
//! points (one attempt, release), `events` the transaction callbacks (the failed-request
//! rule), `settings` the setting hooks, `backend_local` the per-process cell. The rest of the
//! crate sees a small safe surface: [`try_now`], [`wait`], [`release_session`],
//! [`release_transaction`], [`held_by_me`], [`exclusive_hold`], [`requested_in_database`],
//! [`commit_covers_wal_so_far`], [`current_request`], [`BackendLocal`],
//! [`on_transaction_events`] and [`define_settings`].
//!
//! All functions must be called from a backend inside a transaction (any SQL-callable function
//! is), on the backend's main thread (pgrx enforces that).

mod backend_local;
mod entry;
mod events;
mod settings;

pub use backend_local::BackendLocal;
pub use events::{on_transaction_events, TransactionHooks};
pub use settings::{define_settings, CheckedSetting, SettingParser};

use events::IN_OWN_ROLLBACK;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::PgSqlErrorCode;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;

/// Lock strength: the same modes `pg_advisory_lock` (exclusive) and `pg_advisory_lock_shared`
/// (shared) use, so a month lock and a raw advisory lock on the same key conflict as expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exclusive,
    Shared,
}

impl Mode {
    fn lockmode(self) -> pg_sys::LOCKMODE {
        match self {
            Mode::Exclusive => pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
            Mode::Shared => pg_sys::ShareLock as pg_sys::LOCKMODE,
        }
    }

    pub const ALL: [Mode; 2] = [Mode::Exclusive, Mode::Shared];
}

/// How long a lock lasts: until released or the session ends, or until the transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Session,
    Transaction,
}

/// The database-independent part of an advisory lock tag (fields 2, 3 and 4 of `LOCKTAG`).
/// `pg_locks` shows them as `classid`, `objid` and `objsubid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MonthTag {
    pub classid: u32,
    pub objid: u32,
    pub objsubid: u16,
}

impl MonthTag {
    /// The full advisory lock tag in the current database: what `SET_LOCKTAG_ADVISORY` builds.
    fn locktag(self) -> pg_sys::LOCKTAG {
        pg_sys::LOCKTAG {
            // SAFETY: MyDatabaseId is a plain global set once at backend start-up, before any
            // SQL function can run; reading it from the backend's own thread is race-free.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
            locktag_field2: self.classid,
            locktag_field3: self.objid,
            locktag_field4: self.objsubid,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        }
    }
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
    /// As `AlreadyHeld`, and the hold was the raw functions' only: month_lock's record took it
    /// over (`crate::held::granted`); undoing the call gives it back (`crate::held::disown`).
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
/// scope grants are recorded in [`crate::held`] at once, before anything that could raise.
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
unsafe fn attempt_made(
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
            unsafe { lock_release(&tag.locktag(), mode.lockmode(), true) };
            return if crate::held::granted(tag, mode, false) {
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
        crate::held::granted(tag, mode, true);
    }
    Attempt::Added
}

/// `LockAcquireExtended`, whose signature grew a parameter in PostgreSQL 18.
///
/// # Safety
/// `locktag` must be a valid tag; `locallock` a writable pointer slot. See `LockAcquireExtended`.
unsafe fn acquire_extended(
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
/// backend held no reference to (tag, mode) on entry (they call [`try_now`] first, which
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
                // Recorded before anything else can raise: see held::granted.
                crate::held::granted(tag, mode, true);
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
                        crate::held::granted(tag, mode, true);
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

fn held_by_me_locktag(locktag: &pg_sys::LOCKTAG, lockmode: pg_sys::LOCKMODE) -> bool {
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

/// Makes the running transaction's commit durable for everything logged so far: when it
/// commits, PostgreSQL flushes the WAL up to its commit record before the commit returns and,
/// when `synchronous_commit` asks for it, waits until the synchronous standbys confirm it.
/// WAL is one sequence, so that covers every record inserted before this call, whichever
/// backend wrote it — such as the sequence record behind a token drawn from the sequence's
/// cached range, which the transaction that wrote it may have rolled back.
///
/// PostgreSQL commits synchronously only a transaction that has a transaction id *and* wrote
/// WAL itself (`RecordTransactionCommit` reads `XactLastRecEnd`); a transaction that only read a
/// sequence value from the cached range has neither, and its commit neither flushes nor waits.
/// So the transaction gets an id, and its end of WAL is moved to the current insert position.
/// Raises on a standby (no transaction ids during recovery).
pub fn commit_covers_wal_so_far() {
    // SAFETY: GetTopTransactionId is pgrx-guarded: an ERROR (recovery, xid wraparound limits)
    // comes back as the same ERROR. GetXLogInsertRecPtr reads the insert position under its
    // spinlock and cannot raise. XactLastRecEnd is this backend's own variable, which
    // PostgreSQL advances after each WAL insert of this backend and resets when the transaction
    // ends: moving it forward to a position already inserted only makes the commit flush (and
    // wait for) more; it is never moved backwards.
    unsafe {
        pg_sys::GetTopTransactionId();
        let inserted = pg_sys::GetXLogInsertRecPtr();
        if pg_sys::XactLastRecEnd < inserted {
            pg_sys::XactLastRecEnd = inserted;
        }
    }
}

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

/// Identity of the client request this backend is executing: its statement start time, which
/// PostgreSQL sets when a Query, Parse, Bind or Execute message arrives (`statement_timestamp()`).
pub fn current_request() -> i64 {
    // SAFETY: returns a backend-local static; it cannot raise, so it needs no error guard.
    unsafe { unguarded::GetCurrentStatementStartTimestamp() }
}

/// `LockRelease` without pgrx's per-call error guard (a sigsetjmp, about a third of the cost of
/// an uncontended release).
///
/// # Safety
/// `locktag` must be a valid advisory tag and `lockmode` one of [`Mode`]'s. No PostgreSQL ERROR
/// can cross this call, so no Rust frame is skipped by a longjmp: `LockRelease` raises only
/// for an unrecognized lock method or mode (ours are the user lock method's constants) and
/// otherwise reports a lock it does not hold with a WARNING, below ERROR, which returns. Its
/// lock-manager LWLock is one of a handful a backend holds, far below the limit that raises.
unsafe fn lock_release(
    locktag: &pg_sys::LOCKTAG,
    lockmode: pg_sys::LOCKMODE,
    session: bool,
) -> bool {
    unsafe { unguarded::LockRelease(locktag, lockmode, session) }
}

/// Declarations of PostgreSQL functions called without pgrx's error guard. Each use states why
/// no PostgreSQL ERROR can longjmp across the Rust frames that call it.
mod unguarded {
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
}
