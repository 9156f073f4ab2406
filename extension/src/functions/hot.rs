//! The hottest SQL functions — `month_lock_try(year, month)`, its shared and transaction-scope
//! forms, `month_lock_release` and `month_lock_release_shared` — are version-1 C functions
//! written by hand in the FFI layer, without pgrx's per-call wrapper (`pg::EntryHooks` lists
//! their frozen C symbols). This file declares them in SQL and tells the FFI layer what they do
//! (`pg::EntryHooks` for `pg::Extension`): the fast checks, the ledger's release, and the slow
//! paths that validate and raise as every other function does.
//!
//! The one-attempt forms are functions of their own rather than a `DEFAULT 0` argument, which
//! PostgreSQL would re-read from the catalogue every time it plans a call.
//!
//! Public surface: none (the `pg::EntryHooks` implementation, and SQL).

use super::acquire::{acquire, Wait};
use crate::keys::{checked_month, fast_month};
use crate::pg::{EntryHooks, Extension, Mode, MonthTag, Scope};
use pgrx::prelude::*;

impl EntryHooks for Extension {
    #[inline]
    fn fast_tag(year: i32, month: i32, session: bool) -> Option<MonthTag> {
        fast_month(year, month, session)
    }

    #[inline]
    fn release(tag: MonthTag, mode: Mode) -> bool {
        crate::ledger::release(tag, mode)
    }

    /// Validates and raises, or attempts, as the pgrx-wrapped forms do.
    fn slow_attempt(year: Option<i32>, month: Option<i32>, mode: Mode, scope: Scope) -> bool {
        acquire(year, month, mode, scope, Wait::No)
    }

    /// Validates and raises, or releases.
    fn slow_release(year: Option<i32>, month: Option<i32>, mode: Mode) -> bool {
        crate::ledger::release(checked_month(year, month), mode)
    }
}

// Each declaration sits where pgrx put the function before (after `requires`, and the next
// function requires it), so a fresh install creates the functions in the same order.
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_release"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_release_wrapper';
"#,
    name = "hot_release",
    requires = [month_lock_key_objsubid]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_release_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_release_shared_wrapper';
"#,
    name = "hot_release_shared",
    requires = [month_lock_release_all]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_now_wrapper';
"#,
    name = "hot_try",
    requires = [month_lock_try]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_shared_now_wrapper';
"#,
    name = "hot_try_shared",
    requires = [month_lock_try_shared]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_xact"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_xact_now_wrapper';
"#,
    name = "hot_try_xact",
    requires = [month_lock_try_xact]
);
extension_sql!(
    r#"
CREATE FUNCTION @extschema@."month_lock_try_xact_shared"("year" INT, "month" INT) RETURNS bool
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'month_lock_try_xact_shared_now_wrapper';
"#,
    name = "hot_try_xact_shared",
    requires = [month_lock_try_xact_shared]
);
