//! What the multi-connection test files share: the test kit's helpers
//! (`month_lock_tests::sql`, `month_lock_tests::locks`) and the original application's eight
//! cases.
#![allow(dead_code, unused_imports)]

pub mod cases;

pub use month_lock_tests::db;
pub use month_lock_tests::locks::*;
pub use month_lock_tests::sql::*;
