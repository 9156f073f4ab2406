//! The SQL-callable functions. Safe Rust: argument checks come from `keys`, lock-manager calls
//! from `lockmgr`. Every function is VOLATILE and PARALLEL UNSAFE (locks belong to one backend).
//!
//! Re-entry: taking a month that this session already holds in the same mode returns true and
//! does not stack a second reference, so one release always frees it (unlike
//! `pg_advisory_lock`, which counts). Transaction-scope locks are never released early, so for
//! them re-entry is simply true.

use crate::keys::{checked_month, checked_timeout, month_of};
use crate::lockmgr::{self, Mode, MonthTag, Scope};
use pgrx::prelude::*;
use std::num::NonZeroU32;

/// How long an acquisition may wait in the lock queue.
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

fn acquire(tag: MonthTag, mode: Mode, scope: Scope, wait: Wait) -> bool {
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

/// The waiting forms without a limit return only once the month is held (or raise).
fn wait_forever(tag: MonthTag, mode: Mode) {
    if !acquire(tag, mode, Scope::Session, Wait::Forever) {
        // Unreachable: the wait runs with lock_timeout = 0. Never return as if the month were held.
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            "month_lock: the wait ended without the month"
        );
    }
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try(year: Option<i32>, month: Option<i32>, timeout_ms: default!(Option<i32>, 0)) -> bool {
    let tag = checked_month(year, month);
    acquire(tag, Mode::Exclusive, Scope::Session, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock(year: Option<i32>, month: Option<i32>) {
    wait_forever(checked_month(year, month), Mode::Exclusive);
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_shared(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    let tag = checked_month(year, month);
    acquire(tag, Mode::Shared, Scope::Session, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_shared(year: Option<i32>, month: Option<i32>) {
    wait_forever(checked_month(year, month), Mode::Shared);
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_xact(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    let tag = checked_month(year, month);
    acquire(tag, Mode::Exclusive, Scope::Transaction, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try_xact_shared(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: default!(Option<i32>, 0),
) -> bool {
    let tag = checked_month(year, month);
    acquire(tag, Mode::Shared, Scope::Transaction, Wait::from_ms(timeout_ms))
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release(year: Option<i32>, month: Option<i32>) -> bool {
    lockmgr::release_session(checked_month(year, month), Mode::Exclusive)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_shared(year: Option<i32>, month: Option<i32>) -> bool {
    lockmgr::release_session(checked_month(year, month), Mode::Shared)
}

/// Releases every session-scope month lock (both modes) of this session in the current key
/// space, whichever way it was taken; counts (month, mode) pairs released.
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_all() -> i32 {
    let me = lockmgr::my_pid();
    // One lock-table entry per (backend, lock), each mode a bit in it: the pairs are distinct.
    let mine: Vec<(MonthTag, Mode)> = lockmgr::granted_in_database()
        .into_iter()
        .filter(|inst| inst.pid == me && month_of(inst.tag).is_some())
        .flat_map(|inst| Mode::ALL.into_iter().filter(move |m| inst.holds(*m)).map(move |m| (inst.tag, m)))
        .collect();
    mine.into_iter().filter(|(tag, mode)| lockmgr::release_session(*tag, *mode)).count() as i32
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_is_locked(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    lockmgr::granted_in_database().iter().any(|inst| inst.tag == tag)
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
