//! The only module that talks to PostgreSQL's lock manager, subtransactions and GUC nesting
//! directly. Everything unsafe in the extension lives here; each `unsafe` block states the
//! invariant it relies on. The rest of the crate sees a small safe surface:
//! [`try_now`], [`wait`], [`session_refs`], [`release_session`], [`held_by_me`] and
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
pub fn try_now(tag: MonthTag, mode: Mode, scope: Scope) -> bool {
    let locktag = tag.locktag();
    // SAFETY: `locktag` is a fully initialised advisory tag on our stack; LockAcquire copies it.
    // With dontWait it never sleeps; an ERROR (out of shared memory) propagates as a panic that
    // pgrx turns back into the same ERROR, and the transaction abort cleans up as for any lock.
    let result = unsafe {
        pg_sys::LockAcquire(&locktag, mode.lockmode(), scope == Scope::Session, true)
    };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
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
/// (otherwise [`try_now`] would have succeeded), so "held after the rollback" means "granted
/// during this wait".
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
        let outcome: Result<(), CaughtError> = PgTryBuilder::new(|| {
            pg_sys::LockAcquire(&locktag, lockmode, session, false);
            Ok(())
        })
        .catch_others(Err)
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
                error.rethrow()
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

/// How many session-scope references this backend holds on (tag, mode). PostgreSQL counts
/// references per owner; session references have no resource owner.
///
/// There is no public read-only accessor for the local lock table, so this takes one more
/// session reference with `LockAcquireExtended` (which hands back the LOCALLOCK entry), reads
/// the per-owner counts and gives the probe back. It does so only when the lock is already
/// held, which makes both steps purely local: no shared memory is touched and no one waits.
pub fn session_refs(tag: MonthTag, mode: Mode) -> i64 {
    let locktag = tag.locktag();
    let lockmode = mode.lockmode();
    if !held_by_me_locktag(&locktag, lockmode) {
        return 0;
    }
    // SAFETY: the lock is held (nLocks > 0), so LockAcquireExtended takes its
    // "already held" branch: it stores the entry in `locallock`, adds one session reference
    // and returns without sleeping. The LOCALLOCK lives in TopMemoryContext and stays valid
    // until the last reference is released, which cannot happen before our LockRelease below
    // (that one drops only the probe reference: the count stays >= 1).
    unsafe {
        let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
        #[cfg(not(feature = "pg18"))]
        pg_sys::LockAcquireExtended(&locktag, lockmode, true, true, true, &mut locallock);
        #[cfg(feature = "pg18")]
        pg_sys::LockAcquireExtended(&locktag, lockmode, true, true, true, &mut locallock, false);
        assert!(!locallock.is_null(), "LockAcquireExtended returned no local lock entry");
        let entry = &*locallock;
        let owners = std::slice::from_raw_parts(entry.lockOwners, entry.numLockOwners as usize);
        let with_probe: i64 = owners.iter().filter(|o| o.owner.is_null()).map(|o| o.nLocks).sum();
        pg_sys::LockRelease(&locktag, lockmode, true);
        with_probe - 1
    }
}

/// Drops one session reference. Callers check [`session_refs`] first: LockRelease warns
/// ("you don't own a lock of type ...") when there is no session reference, and month_lock's
/// release functions are documented to be quiet.
pub fn release_session(tag: MonthTag, mode: Mode) {
    let locktag = tag.locktag();
    // SAFETY: the caller has verified that a session reference exists, so this only
    // decrements counts (and, for the last reference, wakes the next waiter).
    unsafe {
        pg_sys::LockRelease(&locktag, mode.lockmode(), true);
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
