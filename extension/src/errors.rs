//! Raising an ERROR with a hint, month_lock's way: every error that is not about one argument
//! goes through [`raise`] (argument errors are raised where the checks are, in `keys`).
//!
//! Public surface: [`raise`].

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// ERROR with a hint; never returns.
pub fn raise(code: PgSqlErrorCode, message: String, hint: String) -> ! {
    ErrorReport::new(code, message, "month_lock")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
}
