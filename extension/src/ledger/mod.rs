//! The grant ledger: the session-scope month locks this backend took through month_lock, each
//! with the client request that took it. Two rules rest on it:
//!
//! - **A session lock never outlives a failed request that took it.** A client that saw its
//!   request fail (cancel, `statement_timeout`, `SELECT month_lock_try(2024, 3), 1 / (random() *
//!   0)::int`, an error in a later statement of the same query string, a commit that fails at
//!   Sync) must not be left holding a month it does not know about. Grants made by the running
//!   request are marked with it in the ledger; when the request fails, [`undo_failed_request`]
//!   releases them as the error is raised ([`pg::on_transaction_events`] says how a failed
//!   request is recognised). A request is one query string, or one extended-protocol Execute
//!   with the Sync that commits it. A request that completes keeps its locks with the usual
//!   session semantics: they survive a later `ROLLBACK`, a later failed request and an
//!   EXCEPTION block that caught an error.
//! - **`month_lock_release_all()` costs O(months held)**, not a copy of the shared lock table,
//!   and releases only what month_lock took: never another library's advisory lock that
//!   merely reads as a month (legacy keys), nor a raw `pg_advisory_lock(namespace, yyyymm)`.
//!   `month_lock_release` likewise releases only a hold month_lock took (or took over by
//!   taking a month the session already held).
//!
//! The ledger can claim a lock that is gone (a raw `pg_advisory_unlock` released it): every
//! use goes through [`pg::release_session`], which reports what it really released.
//!
//! Public surface: [`disown`], [`release`], [`release_all`], [`undo_failed_request`], and the
//! grant record as `pg::GrantHooks` for `pg::Extension`.

mod store;

use crate::pg::{self, BackendLocal, Mode, MonthTag};
use store::Store;

/// A client request (see [`request_key`]).
type Request = i64;

/// A session-scope hold in the record.
#[derive(Clone, Copy)]
struct Entry {
    tag: MonthTag,
    mode: Mode,
    /// The request that granted it, or took it over.
    request: Request,
    /// Taken over: the session held it already (raw `pg_advisory_lock`) when a month_lock
    /// function asked for it. Undoing that request gives the hold back to the raw caller
    /// instead of releasing it.
    adopted: bool,
}

struct Held {
    /// Session-scope holds month_lock took (or took over) and has not released.
    all: Store,
}

/// One per backend process: PostgreSQL runs SQL on one thread per backend.
static HELD: BackendLocal<Held> = BackendLocal::new(Held { all: Store::new() });

/// The request a grant is made in: the statement start time of the query string or
/// extended-protocol message that made it ([`pg::current_request`]), which transaction
/// control inside the request — a procedure's COMMIT, a COMMIT in a query string — and the
/// Sync that commits an Execute leave alone.
fn request_key() -> Request {
    pg::current_request()
}

/// Whether a grant made in `request` belongs to the request that is failing now: the query
/// string, or the extended-protocol Execute with the Sync that commits it. In a pipeline of
/// several Executes each is a request of its own, in every PostgreSQL version (17 and later
/// run such a pipeline in an implicit transaction block, earlier ones do not).
fn failed_request_made(request: Request) -> bool {
    request == request_key()
}

/// Runs `f` on the record (never re-entered: nothing inside calls back into it).
#[inline(always)]
fn with_held<T>(f: impl FnOnce(&mut Held) -> T) -> T {
    HELD.with(f)
}

/// Records a session-scope grant; `new` is false for a re-entry on a hold that already had a
/// session reference. Called through [`pg::GrantHooks`] right after the lock manager granted
/// it, before anything else can raise. True when a re-entry took over a hold
/// the ledger did not have (the raw functions took it): see [`disown`].
#[inline(always)]
fn granted(tag: MonthTag, mode: Mode, new: bool) -> bool {
    HELD.borrow().record(tag, mode, new)
}

impl pg::GrantHooks for pg::Extension {
    #[inline(always)]
    fn granted(tag: MonthTag, mode: Mode, new: bool) -> bool {
        granted(tag, mode, new)
    }
}

/// Gives a hold that [`granted`] took over back to the raw functions (forgets it, keeps it).
pub fn disown(tag: MonthTag, mode: Mode) {
    with_held(|held| held.forget(tag, mode));
}

/// Releases this session's session-scope hold of (tag, mode) if month_lock took it; true if
/// there was one. A hold only ever taken with the raw advisory functions is theirs to release.
#[inline(always)]
pub fn release(tag: MonthTag, mode: Mode) -> bool {
    // The record is let go before the lock manager is called.
    let recorded = HELD.borrow().forget(tag, mode);
    recorded && pg::release_session(tag, mode)
}

/// Releases every pair month_lock took whose tag `select` accepts; counts real releases.
pub fn release_all(select: impl Fn(MonthTag) -> bool) -> usize {
    // One pass (forgetting pair by pair would be quadratic in months held).
    let chosen: Vec<Entry> = with_held(|held| held.all.take_where(|e| select(e.tag)));
    chosen
        .into_iter()
        .filter(|e| pg::release_session(e.tag, e.mode))
        .count()
}

/// Undoes the session-scope grants of the request that is failing. Registered as
/// [`pg::TransactionHooks::failed_request`].
pub fn undo_failed_request() {
    let undo: Vec<Entry> = with_held(|held| {
        if !held.all.any(|e| failed_request_made(e.request)) {
            return Vec::new();
        }
        held.all.take_where(|e| failed_request_made(e.request))
    });
    // A hold the request only took over stays with the raw caller who had it.
    for e in undo.into_iter().filter(|e| !e.adopted) {
        pg::release_session(e.tag, e.mode);
    }
}

impl Held {
    /// [`granted`]'s work on the record (a named function, so that the hot entry points
    /// inline it wherever they are).
    #[inline(always)]
    fn record(&mut self, tag: MonthTag, mode: Mode, new: bool) -> bool {
        let fresh = Entry {
            tag,
            mode,
            request: request_key(),
            adopted: !new,
        };
        match self.all.get_mut(tag, mode) {
            Some(entry) if new => {
                *entry = fresh;
                false
            }
            Some(_) => false,
            None => {
                self.all.insert(fresh);
                !new
            }
        }
    }

    /// Drops (tag, mode) from the record; true if it was there.
    #[inline(always)]
    fn forget(&mut self, tag: MonthTag, mode: Mode) -> bool {
        self.all.remove(tag, mode)
    }
}
