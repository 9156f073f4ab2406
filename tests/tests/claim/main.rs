//! Claim any free month: `month_lock_claim(date[])` and `month_lock_claim_xact(date[])` against the
//! real server (docs/semantics.md, "Fencing tokens, claim any, all or nothing": "Claim any"), one
//! behaviour a file.

#[path = "../common/mod.rs"]
mod common;
mod which_month;
mod workers;
