//! The single-month SQL functions: the acquisition forms (one attempt with a timeout, the
//! raising forms that wait), release of everything, what is held, the key space the view
//! reads, and the fencing token. (The one-attempt forms without a timeout and the releases of
//! one month are C entry points: see `hot`.)
//!
//! Public surface: none (SQL only).

use super::acquire::{acquire, acquire_or_raise, Wait};
use crate::keys::{checked_month, month_of};
use crate::pg::{self, Mode, Scope};
use crate::settings::key_space;
use pgrx::prelude::*;

/// Frozen C symbol `month_lock_try_wrapper` (created by 0.1.0, redefined by 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_try(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) -> bool {
    acquire(
        year,
        month,
        Mode::Exclusive,
        Scope::Session,
        Wait::from_ms(timeout_ms),
    )
}

/// Frozen C symbol `month_lock_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Session, Wait::Forever);
}

/// Frozen C symbol `month_lock_within_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock")]
fn month_lock_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(
        year,
        month,
        Mode::Exclusive,
        Scope::Session,
        Wait::from_ms(timeout_ms),
    );
}

/// Frozen C symbol `month_lock_try_shared_wrapper` (created by 0.1.0, redefined by 0.2.0).
#[pg_extern(volatile, parallel_unsafe, requires = ["hot_try"])]
fn month_lock_try_shared(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) -> bool {
    acquire(
        year,
        month,
        Mode::Shared,
        Scope::Session,
        Wait::from_ms(timeout_ms),
    )
}

/// Frozen C symbol `month_lock_shared_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe, requires = ["hot_release_shared"])]
fn month_lock_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Session, Wait::Forever);
}

/// Frozen C symbol `month_lock_shared_within_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_shared")]
fn month_lock_shared_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(
        year,
        month,
        Mode::Shared,
        Scope::Session,
        Wait::from_ms(timeout_ms),
    );
}

/// Frozen C symbol `month_lock_try_xact_wrapper` (created by 0.1.0, redefined by 0.2.0).
#[pg_extern(volatile, parallel_unsafe, requires = ["hot_try_shared"])]
fn month_lock_try_xact(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) -> bool {
    acquire(
        year,
        month,
        Mode::Exclusive,
        Scope::Transaction,
        Wait::from_ms(timeout_ms),
    )
}

/// Frozen C symbol `month_lock_try_xact_shared_wrapper` (created by 0.1.0, redefined by 0.2.0).
#[pg_extern(volatile, parallel_unsafe, requires = ["hot_try_xact"])]
fn month_lock_try_xact_shared(
    year: Option<i32>,
    month: Option<i32>,
    timeout_ms: Option<i32>,
) -> bool {
    acquire(
        year,
        month,
        Mode::Shared,
        Scope::Transaction,
        Wait::from_ms(timeout_ms),
    )
}

/// Frozen C symbol `month_lock_xact_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, requires = ["hot_try_xact_shared"])]
fn month_lock_xact(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(
        year,
        month,
        Mode::Exclusive,
        Scope::Transaction,
        Wait::Forever,
    );
}

/// Frozen C symbol `month_lock_xact_within_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_xact")]
fn month_lock_xact_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(
        year,
        month,
        Mode::Exclusive,
        Scope::Transaction,
        Wait::from_ms(timeout_ms),
    );
}

/// Frozen C symbol `month_lock_xact_shared_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_xact_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Transaction, Wait::Forever);
}

/// Frozen C symbol `month_lock_xact_shared_within_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_xact_shared")]
fn month_lock_xact_shared_within(year: Option<i32>, month: Option<i32>, timeout_ms: Option<i32>) {
    acquire_or_raise(
        year,
        month,
        Mode::Shared,
        Scope::Transaction,
        Wait::from_ms(timeout_ms),
    );
}

/// Releases every session-scope month lock (both modes) that this session took through
/// month_lock in the current key space; counts (month, mode) pairs released. O(months held).
///
/// Frozen C symbol `month_lock_release_all_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_all() -> i32 {
    key_space(); // raises on an unusable setting, also when nothing is held
    crate::ledger::release_all(|tag| month_of(tag).is_some()) as i32
}

/// Frozen C symbol `month_is_locked_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_is_locked(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    pg::requested_in_database(tag)
}

/// Frozen C symbol `month_lock_held_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_held(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    Mode::ALL.into_iter().any(|mode| pg::held_by_me(tag, mode))
}

/// `pg_locks.classid` of month locks under the current settings (used by the view).
///
/// Frozen C symbol `month_lock_key_classid_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_key_classid() -> i64 {
    // bigint, not oid: pgrx maps oid 0 (legacy keys) to NULL.
    i64::from(key_space().0)
}

/// `pg_locks.objsubid` of month locks under the current settings (used by the view).
///
/// Frozen C symbol `month_lock_key_objsubid_wrapper` (since 0.1.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_key_objsubid() -> i32 {
    i32::from(key_space().1)
}

/// The fencing token of this session's exclusive hold of the month (see `crate::tokens::token`).
///
/// Frozen C symbol `month_lock_token_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_token(year: Option<i32>, month: Option<i32>) -> i64 {
    crate::tokens::token(checked_month(year, month))
}
