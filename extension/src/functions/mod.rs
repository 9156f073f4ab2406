//! The SQL-callable functions. Safe Rust: argument checks come from `keys`, settings from
//! `settings`, the record of session holds from `ledger`, lock-manager calls from `pg`. Every
//! function is VOLATILE and PARALLEL UNSAFE (locks belong to one backend).
//!
//! Re-entry: taking a month that this session already holds in the same mode returns true and
//! does not stack a second reference, so one release always frees it (unlike
//! `pg_advisory_lock`, which counts). Transaction-scope locks are never released early, so for
//! them re-entry is simply true.
//!
//! Frozen C symbols: a SQL function's catalogue entry names its C symbol, which pgrx derives
//! from the Rust name (`<name>_wrapper`), and `sql/month_lock--0.1.0.sql` and the upgrade script
//! `sql/month_lock--0.1.0--0.2.0.sql` create the functions under those symbols. So the Rust
//! names are fixed, including the ones that differ from the SQL name (`_within`, `_now`,
//! `_months`); each function says its symbol and since when ("since 0.1.0": named by
//! `sql/month_lock--0.1.0.sql`; "since 0.2.0": by the upgrade script). Renaming one would leave
//! every upgraded installation pointing at a symbol the library no longer has.
//!
//! Files: `acquire` (the one-month acquisition behind every form), `hot` (the declarations of
//! the C entry points and their slow paths), `month` (the single-month functions), `sets` (the
//! functions over a set of months).
//!
//! Public surface: none (SQL functions, and `pg::EntryHooks` for `pg::Extension` in `hot`).

mod acquire;
mod hot;
mod month;
mod sets;
