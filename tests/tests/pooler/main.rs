//! month_lock behind a real PgBouncer in transaction-pooling mode (docs/poolers.md), one behaviour
//! a file. Clients log in to PgBouncer as the ordinary role pooled_app (month_lock.session_locks =
//! off in the test database) or pooled_legacy and use the simple query protocol; observers and
//! holders that need a session of their own connect to the server directly, as postgres or the
//! ordinary role direct_app (`month_lock_tests::pooled`).

#[path = "../common/mod.rs"]
mod common;
mod mutual_exclusion;
mod one_query_script;
mod session_locks;
mod waiters;
