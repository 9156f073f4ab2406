//! The SQL functions over a set of months: claim the first free one (`month_lock_claim`), take
//! all or nothing (`month_lock_all`), release several (`month_lock_release(date[])`).
//!
//! Public surface: none (SQL only).

use crate::keys::{checked_months, checked_timeout, first_day};
use crate::pg::{self, Mode, Scope};
use crate::settings::require_session_locks;
use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::Array;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// Takes the first month of `months` that is free right now (no conflicting holder, nobody
/// queued), skipping months this session already holds; at most one; NULL if none.
fn claim(months: Option<Array<'_, Date>>, scope: Scope) -> Option<Date> {
    let tags = checked_months("months", months);
    if scope == Scope::Session {
        require_session_locks();
    }
    tags.into_iter()
        .filter(|tag| !Mode::ALL.into_iter().any(|mode| pg::held_by_me(*tag, mode)))
        .find(|tag| pg::try_now(*tag, Mode::Exclusive, scope).granted())
        .map(first_day)
}

/// Frozen C symbol `month_lock_claim_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_claim(months: Option<Array<'_, Date>>) -> Option<Date> {
    claim(months, Scope::Session)
}

/// Frozen C symbol `month_lock_claim_xact_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_claim_xact(months: Option<Array<'_, Date>>) -> Option<Date> {
    claim(months, Scope::Transaction)
}

/// What one `month_lock_all` call changed so far; undone unless the call succeeds, also when
/// an ERROR unwinds through it: references it added are released, holds it took over from the
/// raw functions are given back to them.
struct TakenByThisCall {
    scope: Scope,
    tags: Vec<pg::MonthTag>,
    adopted: Vec<pg::MonthTag>,
}

impl TakenByThisCall {
    fn keep(mut self) {
        self.tags.clear();
        self.adopted.clear();
    }
}

impl Drop for TakenByThisCall {
    fn drop(&mut self) {
        for tag in self.adopted.drain(..) {
            crate::ledger::disown(tag, Mode::Exclusive);
        }
        for tag in self.tags.drain(..).rev() {
            match self.scope {
                Scope::Session => crate::ledger::release(tag, Mode::Exclusive),
                Scope::Transaction => pg::release_transaction(tag, Mode::Exclusive),
            };
        }
    }
}

/// Takes every month of the set exclusively, in ascending order (so two such calls over
/// overlapping sets cannot deadlock with each other), within one overall timeout; all or
/// nothing of what this call takes.
fn take_all(months: Option<Array<'_, Date>>, timeout_ms: Option<i32>, scope: Scope) -> bool {
    let mut tags = checked_months("months", months);
    let budget = Duration::from_millis(u64::from(checked_timeout(timeout_ms)));
    if scope == Scope::Session {
        require_session_locks();
    }
    tags.sort_unstable();
    tags.dedup();
    let deadline = Instant::now() + budget;
    let mut taken = TakenByThisCall {
        scope,
        tags: Vec::with_capacity(tags.len()),
        adopted: Vec::new(),
    };
    for tag in tags {
        // What this call adds is given back on failure, and only that: a session reference
        // the session did not have in session scope (it may have held the month in
        // transaction scope only), and every transaction reference (they stack).
        let added = match pg::try_now(tag, Mode::Exclusive, scope) {
            pg::Attempt::Added => true,
            pg::Attempt::AlreadyHeld => false,
            pg::Attempt::Adopted => {
                taken.adopted.push(tag);
                false
            }
            pg::Attempt::Refused => {
                // Rounded up: a budget with 0.4 ms left still waits (1 ms), as a 1 ms
                // timeout on one month does.
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000);
                let got = match NonZeroU32::new(left.min(u128::from(u32::MAX)) as u32) {
                    Some(ms) => pg::wait(tag, Mode::Exclusive, scope, Some(ms)),
                    None => false,
                };
                if !got {
                    return false; // `taken` releases what this call took
                }
                true
            }
        };
        if added {
            taken.tags.push(tag);
        }
    }
    taken.keep();
    true
}

/// Frozen C symbol `month_lock_all_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_all(months: Option<Array<'_, Date>>, timeout_ms: Option<i32>) -> bool {
    take_all(months, timeout_ms, Scope::Session)
}

/// Frozen C symbol `month_lock_all_now_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_all")]
fn month_lock_all_now(months: Option<Array<'_, Date>>) -> bool {
    take_all(months, Some(0), Scope::Session)
}

/// Frozen C symbol `month_lock_all_xact_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_all_xact(months: Option<Array<'_, Date>>, timeout_ms: Option<i32>) -> bool {
    take_all(months, timeout_ms, Scope::Transaction)
}

/// Frozen C symbol `month_lock_all_xact_now_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_all_xact")]
fn month_lock_all_xact_now(months: Option<Array<'_, Date>>) -> bool {
    take_all(months, Some(0), Scope::Transaction)
}

/// Releases this session's session-scope exclusive holds of the months; counts releases.
///
/// Frozen C symbol `month_lock_release_months_wrapper` (since 0.2.0).
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_release", requires = ["hot_release"])]
fn month_lock_release_months(months: Option<Array<'_, Date>>) -> i32 {
    let mut tags = checked_months("months", months);
    tags.sort_unstable();
    tags.dedup();
    tags.into_iter()
        .filter(|tag| crate::ledger::release(*tag, Mode::Exclusive))
        .count() as i32
}
