//! The FFI layer: the only code that calls PostgreSQL's C API directly, and the only folder where
//! `unsafe` is allowed (the crate root denies it everywhere else). Each `unsafe` block states the
//! invariant it relies on. It names nothing else of the crate: what month_lock does when a lock
//! is granted, a hot function is called, a transaction ends or a setting changes, the layers
//! above hand in as hooks. The hooks on the hot path are traits that the layers above
//! implement for [`Extension`] (called statically, so they cost what a direct call costs); the
//! others are registered from `_PG_init` ([`on_transaction_events`], [`define_settings`]).
//!
//! Files, one idea each:
//! - `lock`: one attempt without waiting, and the grant hook ([`GrantHooks`]);
//! - `wait`: the timed wait in PostgreSQL's lock queue;
//! - `release`: dropping one reference, quietly;
//! - `inspect`: what this backend and the database hold (and the mark of an exclusive hold);
//! - `commit`: making a commit durable for the WAL written so far;
//! - `read_only`: whether the running transaction may write (recovery, read-only);
//! - `events`: transaction callbacks (the failed-request rule) and the request identity;
//! - `settings`: text settings that fail closed, with their check and assign hooks;
//! - `entry`: the hottest SQL functions as hand-written C entry points ([`EntryHooks`]);
//! - `backend_local`: the per-process cell;
//! - `unguarded`: C functions declared without pgrx's error guard (private).
//!
//! Public surface, exactly: the types [`Mode`], [`Scope`], [`MonthTag`], [`Attempt`],
//! [`ExclusiveHold`], [`ReadOnly`], [`BackendLocal`], [`CheckedSetting`], [`SettingParser`],
//! [`TransactionHooks`] and [`Extension`]; the traits [`GrantHooks`] and [`EntryHooks`]; the
//! functions [`try_now`], [`wait()`], [`release_session`], [`release_transaction`],
//! [`held_by_me`], [`exclusive_hold`], [`requested_in_database`], [`commit_covers_wal_so_far`],
//! [`read_only()`], [`current_request`]; and the registrations, each called once from `_PG_init`:
//! [`on_transaction_events`], [`define_settings`].
//!
//! All functions must be called from a backend inside a transaction (any SQL-callable function
//! is), on the backend's main thread (pgrx enforces that).

mod backend_local;
mod commit;
mod entry;
mod events;
mod inspect;
mod lock;
mod read_only;
mod release;
mod settings;
mod unguarded;
mod wait;

pub use backend_local::BackendLocal;
pub use commit::commit_covers_wal_so_far;
pub use entry::EntryHooks;
pub use events::{current_request, on_transaction_events, TransactionHooks};
pub use inspect::{exclusive_hold, held_by_me, requested_in_database, ExclusiveHold};
pub use lock::{try_now, Attempt, GrantHooks};
pub use read_only::{read_only, ReadOnly};
pub use release::{release_session, release_transaction};
pub use settings::{define_settings, CheckedSetting, SettingParser};
pub use wait::wait;

use pgrx::pg_sys;

/// The extension above this layer, as this layer sees it: the layers above implement
/// [`GrantHooks`] and [`EntryHooks`] for it (a missing implementation does not compile).
pub struct Extension;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
}
