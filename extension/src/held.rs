//! The session-scope month locks this backend took through month_lock, and which of them the
//! running client request took. Safe Rust; lock-manager calls come from `lockmgr`.
//!
//! Two rules rest on this record:
//!
//! - **A session lock never outlives a failed request that took it.** A client that saw its
//!   statement fail (cancel, `statement_timeout`, `SELECT month_lock_try(2024, 3), 1/0`, an
//!   error in a later statement of the same query string) must not be left holding a month
//!   it does not know about. Grants made by the running request are listed in `in_request`;
//!   when the request fails, [`undo_failed_request`] releases them as the error is raised
//!   (`lockmgr::on_transaction_events` says how a failed request is recognised). A request that
//!   completes keeps its locks with the usual session semantics: they survive a later
//!   `ROLLBACK`, a later failed request and an EXCEPTION block that caught an error.
//! - **`month_lock_release_all()` costs O(months held)**, not a copy of the shared lock table,
//!   and releases only what month_lock took: never another library's advisory lock that
//!   merely reads as a month (legacy keys), nor a raw `pg_advisory_lock(namespace, yyyymm)`.
//!
//! - **Fencing tokens**: a hold's token (`month_lock_token`) is kept with the hold, so the same
//!   hold always answers the same token; a transaction-scope hold's token is kept until the
//!   transaction ends (or, conservatively, until a subtransaction rolls back).
//!
//! The record can claim a lock that is gone (a raw `pg_advisory_unlock` released it): every
//! use goes through `lockmgr::release_session`, which reports what it really released.

use crate::keys::{month_text, raise};
use crate::lockmgr::{self, Mode, MonthTag};
use pgrx::prelude::*;
use std::sync::Mutex;

struct Held {
    /// Session-scope (month, mode) pairs month_lock took and has not released.
    all: Vec<(MonthTag, Mode)>,
    /// Tokens of session-scope exclusive holds in `all`.
    session_tokens: Vec<(MonthTag, i64)>,
    /// Tokens of transaction-scope exclusive holds of the current transaction.
    xact_tokens: Vec<(MonthTag, i64)>,
    /// The client request `in_request` belongs to (`lockmgr::current_request`).
    request: i64,
    /// Pairs newly granted during that request.
    in_request: Vec<(MonthTag, Mode)>,
}

/// One per backend process (PostgreSQL backends run SQL on one thread; the lock is never
/// contended — a plain static, where a thread_local would cost a TLS lookup per call in a
/// shared library).
static HELD: Mutex<Held> = Mutex::new(Held {
    all: Vec::new(),
    session_tokens: Vec::new(),
    xact_tokens: Vec::new(),
    request: 0,
    in_request: Vec::new(),
});

/// Runs `f` on the record (never re-entered: nothing inside calls back into it).
fn with_held<T>(f: impl FnOnce(&mut Held) -> T) -> T {
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut held)
}

/// Records a session-scope grant; `new` is false for a re-entry on a hold that already had a
/// session reference. Called by `lockmgr` right after the lock manager granted it, before
/// anything else can raise.
pub fn granted(tag: MonthTag, mode: Mode, new: bool) {
    let request = lockmgr::current_request();
    with_held(|held| {
        if !held.all.contains(&(tag, mode)) {
            held.all.push((tag, mode));
        }
        if new {
            if held.request != request {
                held.request = request;
                held.in_request.clear();
            }
            if !held.in_request.contains(&(tag, mode)) {
                held.in_request.push((tag, mode));
            }
        }
    });
}

/// Releases this session's session-scope hold of (tag, mode); true if there was one.
pub fn release(tag: MonthTag, mode: Mode) -> bool {
    forget(tag, mode);
    lockmgr::release_session(tag, mode)
}

/// Releases every pair month_lock took whose tag `select` accepts; counts real releases.
pub fn release_all(select: impl Fn(MonthTag) -> bool) -> usize {
    // One pass over each list (forgetting pair by pair would be quadratic in months held).
    let chosen: Vec<(MonthTag, Mode)> = with_held(|held| {
        let (chosen, rest) = held.all.drain(..).partition(|(tag, _)| select(*tag));
        held.all = rest;
        held.in_request.retain(|(tag, _)| !select(*tag));
        held.session_tokens.retain(|(tag, _)| !select(*tag));
        chosen
    });
    chosen
        .into_iter()
        .filter(|(tag, mode)| lockmgr::release_session(*tag, *mode))
        .count()
}

/// Undoes the session-scope grants of the request that is failing. Registered with
/// `lockmgr::on_transaction_events`.
pub fn undo_failed_request() {
    let request = lockmgr::current_request();
    let undo = with_held(|held| {
        if held.request != request || held.in_request.is_empty() {
            return Vec::new();
        }
        let undo = std::mem::take(&mut held.in_request);
        for (tag, mode) in &undo {
            held.forget(*tag, *mode);
        }
        undo
    });
    for (tag, mode) in undo {
        lockmgr::release_session(tag, mode);
    }
}

fn forget(tag: MonthTag, mode: Mode) {
    with_held(|held| held.forget(tag, mode));
}

impl Held {
    fn forget(&mut self, tag: MonthTag, mode: Mode) {
        self.all.retain(|pair| *pair != (tag, mode));
        self.in_request.retain(|pair| *pair != (tag, mode));
        if mode == Mode::Exclusive {
            self.session_tokens.retain(|(t, _)| *t != tag);
        }
    }
}

/// The fencing token of this session's exclusive hold of `tag`: the same for the whole hold,
/// larger than any token handed out before it (by any session, for any month). Raises 55000
/// unless the month is held exclusively, in either scope.
pub fn token(tag: MonthTag) -> i64 {
    if !lockmgr::held_by_me(tag, Mode::Exclusive) {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "month_lock: month {} is not held exclusively by this session",
                month_text(tag)
            ),
            "Take the month first (month_lock_try, month_lock, month_lock_try_xact, ...): a token \
             belongs to a hold."
                .into(),
        );
    }
    let session = with_held(|held| held.all.contains(&(tag, Mode::Exclusive)));
    let known = with_held(|held| {
        let tokens = if session {
            &held.session_tokens
        } else {
            &held.xact_tokens
        };
        tokens
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, token)| *token)
    });
    if let Some(token) = known {
        return token;
    }
    let token = next_token();
    with_held(|held| {
        let tokens = if session {
            &mut held.session_tokens
        } else {
            &mut held.xact_tokens
        };
        tokens.push((tag, token));
    });
    token
}

/// The next value of the extension's token sequence. Durable once the transaction that took it
/// commits (the sequence's WAL record is flushed at that commit), and it never goes backwards
/// on a server, across crashes, or on a synchronous standby.
fn next_token() -> i64 {
    const NEXT: &str = "SELECT pg_catalog.nextval(c.oid::pg_catalog.regclass) \
          FROM pg_catalog.pg_class c, pg_catalog.pg_extension e \
         WHERE e.extname OPERATOR(pg_catalog.=) 'month_lock' \
           AND c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace \
           AND c.relname OPERATOR(pg_catalog.=) 'month_lock_token_seq'";
    match Spi::get_one::<i64>(NEXT) {
        Ok(Some(token)) => token,
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "month_lock: the sequence month_lock_token_seq of the extension is missing".into(),
            "Run ALTER EXTENSION month_lock UPDATE.".into(),
        ),
    }
}

/// The transaction ended: transaction-scope holds and their tokens are gone.
pub fn transaction_ended() {
    with_held(|held| held.xact_tokens.clear());
}

/// A subtransaction rolled back: it may have released transaction-scope holds, so their tokens
/// are forgotten (a hold that survived gets a new, larger token when asked again).
pub fn subtransaction_aborted() {
    with_held(|held| held.xact_tokens.clear());
}
