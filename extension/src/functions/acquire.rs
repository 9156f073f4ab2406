//! The acquisition of one month behind every single-month form: checks, one attempt, then a
//! wait if the form waits, and the raising forms' error.
//!
//! Public surface (to the other function files): [`Wait`], [`acquire`], [`acquire_or_raise`].

use crate::errors::raise;
use crate::keys::{checked_month, checked_timeout, month_text};
use crate::pg::{self, Mode, Scope};
use crate::settings::require_session_locks;
use pgrx::PgSqlErrorCode;
use std::num::NonZeroU32;

/// How long an acquisition may wait in the lock queue.
#[derive(Clone, Copy)]
pub enum Wait {
    /// One attempt, no queueing.
    No,
    UpTo(NonZeroU32),
    Forever,
}

impl Wait {
    pub fn from_ms(timeout_ms: Option<i32>) -> Wait {
        NonZeroU32::new(checked_timeout(timeout_ms)).map_or(Wait::No, Wait::UpTo)
    }
}

/// Validates the arguments and the scope's preconditions, then acquires.
pub fn acquire(
    year: Option<i32>,
    month: Option<i32>,
    mode: Mode,
    scope: Scope,
    wait: Wait,
) -> bool {
    let tag = checked_month(year, month);
    if scope == Scope::Session {
        require_session_locks();
    }
    // Already ours (any scope): true at once, without a second session reference.
    if pg::try_now(tag, mode, scope).granted() {
        return true;
    }
    match wait {
        Wait::No => false,
        Wait::UpTo(ms) => pg::wait(tag, mode, scope, Some(ms)),
        Wait::Forever => pg::wait(tag, mode, scope, None),
    }
}

/// The raising forms: return only with the month held; 55P03 when it was not had in time.
pub fn acquire_or_raise(
    year: Option<i32>,
    month: Option<i32>,
    mode: Mode,
    scope: Scope,
    wait: Wait,
) {
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
