//! All or nothing: `month_lock_all(date[], timeout_ms)`, `month_lock_all_xact` and
//! `month_lock_release(date[])` against the real server (docs/semantics.md, "Fencing tokens, claim
//! any, all or nothing": "All or nothing"), one behaviour a file. What a failed call leaves is in
//! set_failure.rs.

#[path = "../common/mod.rs"]
mod common;
mod set_holds;
mod set_order;
mod set_timeout;
