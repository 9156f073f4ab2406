//! month_lock: calendar-month locks that wait inside PostgreSQL's own lock manager.
//!
//! - `keys`: argument checks, key layout and settings (safe).
//! - `held`: the session holds month_lock took, each with its request, and the fencing tokens
//!   of holds (safe).
//! - `lockmgr/`: the one unsafe layer (lock tags and the timed wait, transaction callbacks,
//!   setting hooks, the per-process cell).
//! - `api`: the SQL functions (safe).
//! - SQL that is easier written by hand (the view, grants, comments) lives in
//!   `sql/month_lock.sql`; upgrade scripts `sql/month_lock--OLD--NEW.sql` beside it.

use pgrx::prelude::*;

mod api;
mod held;
mod keys;
mod lockmgr;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

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
    keys::register_settings();
    lockmgr::on_transaction_events(lockmgr::TransactionHooks {
        failed_request: held::undo_failed_request,
        transaction_ended: held::transaction_ended,
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
