//! month_lock: calendar-month locks that wait inside PostgreSQL's own lock manager.
//!
//! - `keys`: argument checks, key layout and settings (safe).
//! - `lockmgr`: the one unsafe module (lock tags, the timed wait's subtransaction, GUC nesting).
//! - `api`: the SQL functions (safe).
//! - SQL that is easier written by hand (the view, comments) lives in `sql/month_lock.sql`.

use pgrx::prelude::*;

mod api;
mod keys;
mod lockmgr;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!(name, version);

extension_sql_file!("../../sql/month_lock.sql", name = "month_lock_sql", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    keys::register_settings();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
