//! The one table from what is asked (kind and mode, scope, wait) to the SQL function that takes
//! the months and the timeout argument it is given. The session protocol splices the call into
//! its text, the transaction protocol sends it as a typed statement; neither chooses a function
//! of its own.

use std::time::Duration;

use super::kind::Form;
use crate::{sql, LockMode};

/// Until when the months are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Until released (a guard).
    Session,
    /// Until the transaction ends.
    Xact,
}

/// The call that takes the months: the function, then the month (`INT4` year and month) or the
/// months (`DATE[]`), then the timeout in milliseconds if it takes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Take {
    pub function: &'static str,
    pub timeout_ms: Option<i32>,
}

/// The table. `timeout`: `None` waits without limit where a function offers that (one month in
/// session scope), else as long as the functions allow (`i32::MAX` ms, 24.8 days).
pub(crate) fn take(form: Form, mode: LockMode, scope: Scope, timeout: Option<Duration>) -> Take {
    use Form::{All, Any, One};
    use LockMode::{Exclusive, Shared};
    use Scope::{Session, Xact};
    let bounded = Some(timeout.map_or(i32::MAX, sql::timeout_ms));
    let (function, timeout_ms) = match (form, mode, scope, timeout) {
        (One, Exclusive, Session, None) => ("month_lock", None),
        (One, Shared, Session, None) => ("month_lock_shared", None),
        (One, Exclusive, Session, Some(_)) => ("month_lock_try", bounded),
        (One, Shared, Session, Some(_)) => ("month_lock_try_shared", bounded),
        (One, Exclusive, Xact, _) => ("month_lock_try_xact", bounded),
        (One, Shared, Xact, _) => ("month_lock_try_xact_shared", bounded),
        // Sets and any_of are exclusive: their types offer no mode.
        (All, _, Session, _) => ("month_lock_all", bounded),
        (All, _, Xact, _) => ("month_lock_all_xact", bounded),
        // any_of never waits: its type offers no timeout.
        (Any, _, Session, _) => ("month_lock_claim", None),
        (Any, _, Xact, _) => ("month_lock_claim_xact", None),
    };
    Take {
        function,
        timeout_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_month_waits_without_limit_only_in_session_scope() {
        let five = Some(Duration::from_secs(5));
        let t = |form, mode, scope, timeout| {
            let t = take(form, mode, scope, timeout);
            (t.function, t.timeout_ms)
        };
        use LockMode::{Exclusive, Shared};
        use Scope::{Session, Xact};
        assert_eq!(t(Form::One, Exclusive, Session, None), ("month_lock", None));
        assert_eq!(
            t(Form::One, Shared, Session, None),
            ("month_lock_shared", None)
        );
        assert_eq!(
            t(Form::One, Exclusive, Session, five),
            ("month_lock_try", Some(5000))
        );
        assert_eq!(
            t(Form::One, Shared, Xact, None),
            ("month_lock_try_xact_shared", Some(i32::MAX))
        );
        assert_eq!(
            t(Form::All, Exclusive, Session, None),
            ("month_lock_all", Some(i32::MAX))
        );
        assert_eq!(
            t(Form::All, Exclusive, Xact, five),
            ("month_lock_all_xact", Some(5000))
        );
        assert_eq!(
            t(Form::Any, Exclusive, Xact, None),
            ("month_lock_claim_xact", None)
        );
    }
}
