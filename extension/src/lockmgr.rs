//! The only module that talks to PostgreSQL's lock manager, subtransactions and GUC nesting
//! directly. Everything unsafe in the extension lives here; each `unsafe` block states the
//! invariant it relies on. The rest of the crate sees a small safe surface:
//! [`try_now`], [`wait`], [`release_session`], [`held_by_me`] and
//! [`granted_in_database`].
//!
//! All functions must be called from a backend inside a transaction (any SQL-callable function
//! is), on the backend's main thread (pgrx enforces that).

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::pg_sys::PgTryBuilder;
use pgrx::PgSqlErrorCode;
use std::ffi::CString;
use std::num::NonZeroU32;

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

    fn from_locktag(tag: &pg_sys::LOCKTAG) -> Option<MonthTag> {
        // SAFETY: as in `locktag`.
        let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
        (tag.locktag_type == pg_sys::LockTagType::LOCKTAG_ADVISORY as u8
            && tag.locktag_field1 == db)
            .then_some(MonthTag {
                classid: tag.locktag_field2,
                objid: tag.locktag_field3,
                objsubid: tag.locktag_field4,
            })
    }
}

/// One attempt without waiting. Respects the queue: PostgreSQL refuses a new request that
/// conflicts with an already queued waiter, so this never jumps ahead of one.
/// If this backend already holds the lock in any scope, the grant is local and immediate.
///
/// Re-entry does not stack: a session lock this backend already holds in session scope keeps a
/// single session reference (the extra one this call took is given back at once), so one
/// release always frees it. Transaction-scope references are left to stack: they all end
/// together with the transaction.
pub fn try_now(tag: MonthTag, mode: Mode, scope: Scope) -> bool {
    let locktag = tag.locktag();
    let lockmode = mode.lockmode();
    let session = scope == Scope::Session;
    let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // SAFETY: `locktag` is a fully initialised advisory tag on our stack; LockAcquireExtended
    // copies it. With dontWait it never sleeps; an ERROR (out of shared memory) propagates as a
    // panic that pgrx turns back into the same ERROR, and the transaction abort cleans up as
    // for any lock. On success `locallock` points at the backend's LOCALLOCK entry, which stays
    // valid while the lock is held (we hold it).
    unsafe {
        let result = acquire_extended(&locktag, lockmode, session, true, &mut locallock);
        match result {
            pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => false,
            pg_sys::LockAcquireResult::LOCKACQUIRE_OK => true,
            _ => {
                // Already held, in some scope: only a second *session* reference is undone.
                if session && session_count(locallock) > 1 {
                    pg_sys::LockRelease(&locktag, lockmode, true);
                }
                true
            }
        }
    }
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
    return pg_sys::LockAcquireExtended(locktag, lockmode, session, dont_wait, true, locallock, false);
}

/// Session-scope references recorded in a LOCALLOCK: PostgreSQL counts references per owner,
/// and session references have no resource owner.
///
/// # Safety
/// `locallock` must point at a live LOCALLOCK entry (one whose lock this backend holds).
unsafe fn session_count(locallock: *const pg_sys::LOCALLOCK) -> i64 {
    assert!(!locallock.is_null(), "LockAcquireExtended returned no local lock entry");
    let entry = &*locallock;
    let owners = std::slice::from_raw_parts(entry.lockOwners, entry.numLockOwners as usize);
    owners.iter().filter(|o| o.owner.is_null()).map(|o| o.nLocks).sum()
}

/// Queue for the lock in PostgreSQL's own lock manager, like any lock wait, for up to `timeout`
/// milliseconds (`None`: without limit). Returns `true` once granted, `false` at the timeout.
///
/// The wait runs inside an internal subtransaction with `lock_timeout` set at a private GUC
/// nest level, so the caller's `lock_timeout` is neither used nor changed. Any other ERROR
/// raised while waiting (cancel, `statement_timeout`, deadlock 40P01) is re-raised unchanged
/// after the cleanup below; `pg_terminate_backend` ends the process (FATAL) as usual.
///
/// Never a lock left behind: PostgreSQL can report a timeout or a cancel in the same instant
/// the lock is granted. For a transaction lock the subtransaction rollback releases such a
/// grant. For a session lock it survives the rollback, so it is kept when the error was our
/// own timeout (the lock *was* granted: return `true`) and released before re-raising any
/// other error. Callers guarantee this backend held no reference to (tag, mode) on entry
/// (they call [`try_now`] first, which succeeds for any held lock), so "held after the
/// rollback" means "granted during this wait".
pub fn wait(tag: MonthTag, mode: Mode, scope: Scope, timeout: Option<NonZeroU32>) -> bool {
    let locktag = tag.locktag();
    let lockmode = mode.lockmode();
    let session = scope == Scope::Session;
    let timeout_text = CString::new(timeout.map_or(0, NonZeroU32::get).to_string())
        .expect("digits contain no NUL");

    // SAFETY (whole block): the sequence below is the one PL/pgSQL uses for an EXCEPTION block
    // (pl_exec.c): remember the caller's memory context and resource owner, start an internal
    // subtransaction, run the guarded statement, then either release (commit) or roll back the
    // subtransaction and restore context and owner. pgrx has already copied and flushed the
    // error state when it hands us a CaughtError, exactly as PG_CATCH + FlushErrorState would.
    // The GUC nest level is opened before and closed after the subtransaction, so the
    // subtransaction's own GUC level is always nested inside ours.
    unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let caller_owner = pg_sys::CurrentResourceOwner;

        // A private GUC level: AtEOXact_GUC(.., level) puts lock_timeout back to the caller's
        // value (GUC_ACTION_SAVE entries are restored on commit and abort alike).
        let guc_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"lock_timeout".as_ptr(),
            timeout_text.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );

        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        let outcome: Result<(), Box<CaughtError>> = PgTryBuilder::new(|| {
            pg_sys::LockAcquire(&locktag, lockmode, session, false);
            Ok(())
        })
        .catch_others(|error| Err(Box::new(error)))
        .execute();

        match outcome {
            Ok(()) => {
                // Commit the subtransaction: a transaction lock moves to the caller's resource
                // owner; a session lock has no owner and is unaffected.
                pg_sys::ReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(caller_context);
                pg_sys::CurrentResourceOwner = caller_owner;
                pg_sys::AtEOXact_GUC(true, guc_level);
                true
            }
            Err(error) => {
                // Roll back: LockErrorCleanup leaves the wait queue, or records a grant that
                // raced with the error in the local lock table.
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(caller_context);
                pg_sys::CurrentResourceOwner = caller_owner;
                pg_sys::AtEOXact_GUC(false, guc_level);

                let granted_anyway = session && held_by_me_locktag(&locktag, lockmode);
                if is_lock_timeout(&error) {
                    return granted_anyway;
                }
                if granted_anyway {
                    pg_sys::LockRelease(&locktag, lockmode, true);
                }
                (*error).rethrow()
            }
        }
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

/// Drops every session-scope reference this backend holds on (tag, mode) and tells whether
/// there was one. Transaction-scope references stay.
///
/// `LockRelease` is the only way to drop a session reference, and it returns false with a
/// WARNING ("you don't own a lock of type ...") when there is none, e.g. when the month is not
/// held or held only by the transaction. month_lock's release is documented to be quiet, and
/// there is no public read-only way to ask the local lock table for the session count first
/// (a probe costs two more lookups on the hot path), so that one expected WARNING is silenced
/// while LockRelease runs: see [`WarningsSilenced`]. The loop drops references until none is
/// left; month_lock itself never stacks them, so it normally runs once and ends with one quiet
/// `false` (a second raw `pg_advisory_lock` on the same key is the only way to stack).
pub fn release_session(tag: MonthTag, mode: Mode) -> bool {
    let locktag = tag.locktag();
    let lockmode = mode.lockmode();
    let _quiet = WarningsSilenced::new();
    let mut released = false;
    // SAFETY: LockRelease with a valid tag either drops one session reference (waking the next
    // waiter when it was the last) or finds none and returns false without changing anything.
    while unsafe { pg_sys::LockRelease(&locktag, lockmode, true) } {
        released = true;
    }
    released
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
            let saved = WarningsSilenced { client: pg_sys::client_min_messages, log: pg_sys::log_min_messages };
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

/// One granted or awaited advisory lock in the current database, from the shared lock table.
#[derive(Clone, Copy, Debug)]
pub struct LockInstance {
    pub tag: MonthTag,
    pub pid: i32,
    /// Modes this process holds on the tag.
    pub held: [bool; 2],
}

impl LockInstance {
    pub fn holds(&self, mode: Mode) -> bool {
        self.held[mode as usize]
    }
}

/// All advisory locks granted to any backend in the current database (a snapshot of the
/// shared lock table, as `pg_locks` reads it). Waiters are left out.
pub fn granted_in_database() -> Vec<LockInstance> {
    // SAFETY: GetLockStatusData takes every lock-partition LWLock briefly, copies the table into
    // memory palloc'd in CurrentMemoryContext and returns; `nelements` entries are valid.
    unsafe {
        let data = pg_sys::GetLockStatusData();
        let instances = std::slice::from_raw_parts((*data).locks, (*data).nelements as usize);
        let bit = |mode: Mode| 1 << mode.lockmode();
        let found = instances
            .iter()
            .filter_map(|inst| {
                let tag = MonthTag::from_locktag(&inst.locktag)?;
                let held = [
                    inst.holdMask & bit(Mode::Exclusive) != 0,
                    inst.holdMask & bit(Mode::Shared) != 0,
                ];
                (held[0] || held[1]).then_some(LockInstance { tag, pid: inst.pid, held })
            })
            .collect();
        pg_sys::pfree((*data).locks.cast());
        pg_sys::pfree(data.cast());
        found
    }
}

/// This backend's process id.
pub fn my_pid() -> i32 {
    // SAFETY: MyProcPid is set at process start and never changes.
    unsafe { pg_sys::MyProcPid }
}
