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
//!   (`lockmgr::on_failed_request` says how a failed request is recognised). A request that
//!   completes keeps its locks with the usual session semantics: they survive a later
//!   `ROLLBACK`, a later failed request and an EXCEPTION block that caught an error.
//! - **`month_lock_release_all()` costs O(months held)**, not a copy of the shared lock table,
//!   and releases only what month_lock took: never another library's advisory lock that
//!   merely reads as a month (legacy keys), nor a raw `pg_advisory_lock(namespace, yyyymm)`.
//!
//! The record can claim a lock that is gone (a raw `pg_advisory_unlock` released it): every
//! use goes through `lockmgr::release_session`, which reports what it really released.

use crate::lockmgr::{self, Mode, MonthTag};
use std::cell::RefCell;

#[derive(Default)]
struct Held {
    /// Session-scope (month, mode) pairs month_lock took and has not released.
    all: Vec<(MonthTag, Mode)>,
    /// The client request `in_request` belongs to (`lockmgr::current_request`).
    request: i64,
    /// Pairs newly granted during that request.
    in_request: Vec<(MonthTag, Mode)>,
}

thread_local! {
    static HELD: RefCell<Held> = RefCell::new(Held::default());
}

/// Records a session-scope grant; `new` is false for a re-entry on a hold that already had a
/// session reference. Called by `lockmgr` right after the lock manager granted it, before
/// anything else can raise.
pub fn granted(tag: MonthTag, mode: Mode, new: bool) {
    let request = lockmgr::current_request();
    HELD.with_borrow_mut(|held| {
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
    let chosen: Vec<(MonthTag, Mode)> = HELD.with_borrow_mut(|held| {
        let (chosen, rest) = held.all.drain(..).partition(|(tag, _)| select(*tag));
        held.all = rest;
        held.in_request.retain(|(tag, _)| !select(*tag));
        chosen
    });
    chosen.into_iter().filter(|(tag, mode)| lockmgr::release_session(*tag, *mode)).count()
}

/// Undoes the session-scope grants of the request that is failing. Registered with
/// `lockmgr::on_failed_request`.
pub fn undo_failed_request() {
    let request = lockmgr::current_request();
    let undo = HELD.with_borrow_mut(|held| {
        if held.request != request || held.in_request.is_empty() {
            return Vec::new();
        }
        let undo = std::mem::take(&mut held.in_request);
        held.all.retain(|pair| !undo.contains(pair));
        undo
    });
    for (tag, mode) in undo {
        lockmgr::release_session(tag, mode);
    }
}

fn forget(tag: MonthTag, mode: Mode) {
    HELD.with_borrow_mut(|held| {
        held.all.retain(|pair| *pair != (tag, mode));
        held.in_request.retain(|pair| *pair != (tag, mode));
    });
}
