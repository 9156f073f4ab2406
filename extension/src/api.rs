//! The SQL-callable functions. Safe Rust: argument checks come from `keys`, lock-manager calls
//! from `lockmgr`. Every function is VOLATILE and PARALLEL UNSAFE (locks belong to one backend).
//!
//! Re-entry: taking a month that this session already holds in the same mode returns true and
//! does not stack a second reference, so one release always frees it (unlike
//! `pg_advisory_lock`, which counts). Transaction-scope locks are never released early, so for
//! them re-entry is simply true.

use crate::keys::{checked_month, checked_timeout, month_of, month_text, raise, require_session_locks};
use crate::lockmgr::{self, Mode, Scope};
use pgrx::prelude::*;
use std::num::NonZeroU32;

/// How long an acquisition may wait in the lock queue.
#[derive(Clone, Copy)]
enum Wait {
    /// One attempt, no queueing.
    No,
    UpTo(NonZeroU32),
    Forever,
}

impl Wait {
    fn from_ms(timeout_ms: Option<i32>) -> Wait {
        NonZeroU32::new(checked_timeout(timeout_ms)).map_or(Wait::No, Wait::UpTo)
    }
}

/// Validates the arguments and the scope's preconditions, then acquires.
fn acquire(year: Option<i32>, month: Option<i32>, mode: Mode, scope: Scope, wait: Wait) -> bool {
    let tag = checked_month(year, month);
    if scope == Scope::Session {
        require_session_locks();
    }
    // Already ours (any scope): true at once, without a second session reference.
    if lockmgr::try_now(tag, mode, scope) {
        return true;
    }
    match wait {
        Wait::No => false,
        Wait::UpTo(ms) => lockmgr::wait(tag, mode, scope, Some(ms)),
        Wait::Forever => lockmgr::wait(tag, mode, scope, None),
    }
}

/// The raising forms: return only with the month held; 55P03 when it was not had in time.
fn acquire_or_raise(year: Option<i32>, month: Option<i32>, mode: Mode, scope: Scope, wait: Wait) {
    if !acquire(year, month, mode, scope, wait) {
        let tag = checked_month(year, month);
        let how = match wait {
            Wait::No => "at once (timeout_ms = 0)".to_string(),
            Wait::UpTo(ms) => format!("within {ms} ms"),
            Wait::Forever => "(the wait ended without it)".to_string(),
        };
        raise(
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            format!("month_lock: month {} not available {how}", month_text(tag)),
            "Another session holds the month or waits for it ahead of this one: see the month_locks view."
                .into(),
        );
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try(year: Option<i32>, month: Option<i32>, timeout_ms: default!(Option<i32>, 0)) -> bool {
    acquire(year, month, Mode::Exclusive, Scope::Session, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Session, Wait::Forever);
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock")]
fn month_lock_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Session, Wait::from_ms(timeout_ms));
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_shared(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    acquire(year, month, Mode::Shared, Scope::Session, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Session, Wait::Forever);
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock_shared")]
fn month_lock_shared_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Session, Wait::from_ms(timeout_ms));
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_xact(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    acquire(year, month, Mode::Exclusive, Scope::Transaction, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_xact_shared(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    acquire(year, month, Mode::Shared, Scope::Transaction, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_xact(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Transaction, Wait::Forever);
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock_xact")]
fn month_lock_xact_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Transaction, Wait::from_ms(timeout_ms));
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_xact_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Transaction, Wait::Forever);
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock_xact_shared")]
fn month_lock_xact_shared_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Transaction, Wait::from_ms(timeout_ms));
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release(year: Option<i32>, month: Option<i32>) -> bool {
    crate::held::release(checked_month(year, month), Mode::Exclusive)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_shared(year: Option<i32>, month: Option<i32>) -> bool {
    crate::held::release(checked_month(year, month), Mode::Shared)
}

/// Releases every session-scope month lock (both modes) that this session took through
/// month_lock in the current key space; counts (month, mode) pairs released. O(months held).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_all() -> i32 {
    crate::keys::key_space(); // raises on an unusable setting, also when nothing is held
    crate::held::release_all(|tag| month_of(tag).is_some()) as i32
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_is_locked(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    lockmgr::granted_in_database(tag)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_held(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    Mode::ALL.into_iter().any(|mode| lockmgr::held_by_me(tag, mode))
}

/// `pg_locks.classid` of month locks under the current settings (used by the view).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_key_classid() -> i64 {
    // bigint, not oid: pgrx maps oid 0 (legacy keys) to NULL.
    i64::from(crate::keys::key_space().0)
}

/// `pg_locks.objsubid` of month locks under the current settings (used by the view).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_key_objsubid() -> i32 {
    i32::from(crate::keys::key_space().1)
}
