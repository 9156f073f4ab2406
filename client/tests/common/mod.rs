//! Helpers shared by the client's test files (each file uses some of them).
#![allow(dead_code)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod months;
