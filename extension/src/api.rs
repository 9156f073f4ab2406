//! The SQL-callable functions. Safe Rust: argument checks come from `keys`, lock-manager calls
//! from `lockmgr`. The hottest ones (one attempt, release) have hand-written entry points in
//! `lockmgr::entry` and only their SQL declarations and slow paths here. Every function is
//! VOLATILE and PARALLEL UNSAFE (locks belong to one backend).
//!
//! Re-entry: taking a month that this session already holds in the same mode returns true and
//! does not stack a second reference, so one release always frees it (unlike
//! `pg_advisory_lock`, which counts). Transaction-scope locks are never released early, so for
//! them re-entry is simply true.

use crate::keys::{
    checked_month, checked_months, checked_timeout, first_day, month_of, month_text, raise,
    require_session_locks,
};
use crate::lockmgr::{self, Mode, Scope};
use pgrx::datum::Date;
use pgrx::prelude::*;
use pgrx::Array;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

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
    if lockmgr::try_now(tag, mode, scope).granted() {
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

// ---- the hot functions: one attempt, release ---------------------------------------------------
//
// `month_lock_try(year, month)`, its shared and transaction-scope forms, `month_lock_release`
// and `month_lock_release_shared` are version-1 C functions written by hand in
// `lockmgr::entry` (the hottest calls, without pgrx's per-call wrapper). Their C symbols are the
// ones pgrx gave them before, so these declarations create the same catalogue entries. The
// one-attempt forms are functions of their own rather than a `DEFAULT 0` argument, which
// PostgreSQL would re-read from the catalogue every time it plans a call. Each entry point checks
// the common case itself and hands everything else to the functions below, which validate
// and raise as every other function here does.

// Each declaration sits where pgrx put the function before (after `requires`, and the next
// function requires it), so a fresh install creates the functions in the same order.
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_release"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_release_wrapper';
"#,
    name = "hot_release",
    requires = [month_lock_key_objsubid]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_release_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_release_shared_wrapper';
"#,
    name = "hot_release_shared",
    requires = [month_lock_release_all]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_now_wrapper';
"#,
    name = "hot_try",
    requires = [month_lock_try]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_shared_now_wrapper';
"#,
    name = "hot_try_shared",
    requires = [month_lock_try_shared]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_xact"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_xact_now_wrapper';
"#,
    name = "hot_try_xact",
    requires = [month_lock_try_xact]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_xact_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_xact_shared_now_wrapper';
"#,
    name = "hot_try_xact_shared",
    requires = [month_lock_try_xact_shared]
);

/// `month_lock_try(year, month)` when the entry point's checks did not pass.
pub fn try_session_exclusive(year: Option<i32>, month: Option<i32>) -> bool {
    acquire(year, month, Mode::Exclusive, Scope::Session, Wait::No)
}

/// `month_lock_try_shared(year, month)` when the entry point's checks did not pass.
pub fn try_session_shared(year: Option<i32>, month: Option<i32>) -> bool {
    acquire(year, month, Mode::Shared, Scope::Session, Wait::No)
}

/// `month_lock_try_xact(year, month)` when the entry point's checks did not pass.
pub fn try_xact_exclusive(year: Option<i32>, month: Option<i32>) -> bool {
    acquire(year, month, Mode::Exclusive, Scope::Transaction, Wait::No)
}

/// `month_lock_try_xact_shared(year, month)` when the entry point's checks did not pass.
pub fn try_xact_shared(year: Option<i32>, month: Option<i32>) -> bool {
    acquire(year, month, Mode::Shared, Scope::Transaction, Wait::No)
}

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

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Exclusive, Scope::Session, Wait::Forever);
}

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

#[pg_extern(volatile, parallel_unsafe, requires = ["hot_release_shared"])]
fn month_lock_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Session, Wait::Forever);
}

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

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_xact_shared(year: Option<i32>, month: Option<i32>) {
    acquire_or_raise(year, month, Mode::Shared, Scope::Transaction, Wait::Forever);
}

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
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_release_all() -> i32 {
    crate::keys::key_space(); // raises on an unusable setting, also when nothing is held
    crate::held::release_all(|tag| month_of(tag).is_some()) as i32
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_is_locked(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    lockmgr::requested_in_database(tag)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_held(year: Option<i32>, month: Option<i32>) -> bool {
    let tag = checked_month(year, month);
    Mode::ALL
        .into_iter()
        .any(|mode| lockmgr::held_by_me(tag, mode))
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

// ---- fencing tokens, claim any, all or nothing ------------------------------------------------

/// The fencing token of this session's exclusive hold of the month (see `held::token`).
#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_token(year: Option<i32>, month: Option<i32>) -> i64 {
    crate::held::token(checked_month(year, month))
}

/// Takes the first month of `months` that is free right now (no conflicting holder, nobody
/// queued), skipping months this session already holds; at most one; NULL if none.
fn claim(months: Option<Array<'_, Date>>, scope: Scope) -> Option<Date> {
    let tags = checked_months("months", months);
    if scope == Scope::Session {
        require_session_locks();
    }
    tags.into_iter()
        .filter(|tag| {
            !Mode::ALL
                .into_iter()
                .any(|mode| lockmgr::held_by_me(*tag, mode))
        })
        .find(|tag| lockmgr::try_now(*tag, Mode::Exclusive, scope).granted())
        .map(first_day)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_claim(months: Option<Array<'_, Date>>) -> Option<Date> {
    claim(months, Scope::Session)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_claim_xact(months: Option<Array<'_, Date>>) -> Option<Date> {
    claim(months, Scope::Transaction)
}

/// What one `month_lock_all` call changed so far; undone unless the call succeeds, also when
/// an ERROR unwinds through it: references it added are released, holds it took over from the
/// raw functions are given back to them.
struct TakenByThisCall {
    scope: Scope,
    tags: Vec<lockmgr::MonthTag>,
    adopted: Vec<lockmgr::MonthTag>,
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
            crate::held::disown(tag, Mode::Exclusive);
        }
        for tag in self.tags.drain(..).rev() {
            match self.scope {
                Scope::Session => crate::held::release(tag, Mode::Exclusive),
                Scope::Transaction => lockmgr::release_transaction(tag, Mode::Exclusive),
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
        let added = match lockmgr::try_now(tag, Mode::Exclusive, scope) {
            lockmgr::Attempt::Added => true,
            lockmgr::Attempt::AlreadyHeld => false,
            lockmgr::Attempt::Adopted => {
                taken.adopted.push(tag);
                false
            }
            lockmgr::Attempt::Refused => {
                // Rounded up: a budget with 0.4 ms left still waits (1 ms), as a 1 ms
                // timeout on one month does.
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .as_micros()
                    .div_ceil(1000);
                let got = match NonZeroU32::new(left.min(u128::from(u32::MAX)) as u32) {
                    Some(ms) => lockmgr::wait(tag, Mode::Exclusive, scope, Some(ms)),
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

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_all(months: Option<Array<'_, Date>>, timeout_ms: Option<i32>) -> bool {
    take_all(months, timeout_ms, Scope::Session)
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock_all")]
fn month_lock_all_now(months: Option<Array<'_, Date>>) -> bool {
    take_all(months, Some(0), Scope::Session)
}

#[pg_extern(volatile, parallel_unsafe)]
fn month_lock_all_xact(months: Option<Array<'_, Date>>, timeout_ms: Option<i32>) -> bool {
    take_all(months, timeout_ms, Scope::Transaction)
}

#[pg_extern(volatile, parallel_unsafe, name = "month_lock_all_xact")]
fn month_lock_all_xact_now(months: Option<Array<'_, Date>>) -> bool {
    take_all(months, Some(0), Scope::Transaction)
}

/// Releases this session's session-scope exclusive holds of the months; counts releases.
#[pg_extern(volatile, parallel_unsafe, name = "month_lock_release", requires = ["hot_release"])]
fn month_lock_release_months(months: Option<Array<'_, Date>>) -> i32 {
    let mut tags = checked_months("months", months);
    tags.sort_unstable();
    tags.dedup();
    tags.into_iter()
        .filter(|tag| crate::held::release(*tag, Mode::Exclusive))
        .count() as i32
}
