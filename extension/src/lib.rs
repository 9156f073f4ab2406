//! month_lock: calendar-month locks that wait inside PostgreSQL's own lock manager.
//!
//! Layers, each depending only on the ones listed before it:
//! - `pg/`: the FFI layer, the only code allowed `unsafe` (this crate root denies it
//!   everywhere else): the lock manager and the timed wait, transaction events, settings
//!   hooks, the per-process cell, the C entry points. It names nothing else of the crate;
//!   what month_lock does on a grant or a hot call, the layers above say by implementing its
//!   hook traits for `pg::Extension` (`ledger`, `functions/hot.rs`), and what it does on a
//!   transaction event or a setting change is registered in `_PG_init` below.
//! - `errors`: raising an ERROR with a hint.
//! - `settings`: the settings table and what it decides (key space, session locks allowed).
//! - `keys`: month keys and argument checks.
//! - `ledger`: the session holds month_lock took, each with the request that took it.
//! - `tokens`: fencing tokens.
//! - `functions/`: the SQL functions (single-month, sets, and the declarations of the C entry
//!   points).
//!
//! SQL that is easier written by hand (the view, grants, comments) lives in
//! `sql/month_lock.sql`; upgrade scripts `sql/month_lock--OLD--NEW.sql` beside it.

#![deny(unsafe_code)]

use pgrx::prelude::*;

mod errors;
mod functions;
mod keys;
mod ledger;
#[allow(unsafe_code)]
mod pg;
mod settings;
#[cfg(any(test, feature = "pg_test"))]
mod tests;
mod tokens;

pgrx::pg_module_magic!(name, version);

extension_sql!(
    "\\echo Use \"CREATE EXTENSION month_lock\" to load this file. \\quit\n",
    name = "psql_guard",
    bootstrap
);
extension_sql_file!(
    "../../sql/month_lock.sql",
    name = "month_lock_sql",
    finalize
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::register_settings();
    pg::on_transaction_events(pg::TransactionHooks {
        failed_request: ledger::undo_failed_request,
        transaction_ended: tokens::transaction_ended,
    });
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
