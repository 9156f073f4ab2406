//! The text of a session-scope acquisition and of the clean-up a dropped one queues.
//!
//! An acquisition goes out as one simple-protocol query string (its future resolves to a stream
//! on the first poll, and that stream can outlive the future: see `pending`). Only integers,
//! ISO dates and this crate's own request ids are spliced into the text, never user input.
//!
//! Request-scoped markers: when the acquisition takes a month it records, in the same
//! statement, its request id in the session setting `month_lock_client.mYYYYMM` of that month;
//! when it completes at all it records the id in `month_lock_client.done`. A request that
//! fails rolls both back, together with its grant (the extension undoes a session lock granted
//! in a failed request). So the clean-up of a dropped acquisition releases a month only if
//! that very request took it: never a month another guard on the same session holds, never a
//! month a later request took.

use std::sync::atomic::{AtomicU64, Ordering};

use super::kind::Form;
use super::statement::Take;
use crate::{LockMode, YearMonth};

/// Prefix of the session settings used as markers (a prefix no extension reserves).
const PREFIX: &str = "month_lock_client";

/// A request id unique within this process (a session belongs to one process).
pub(crate) fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The marker setting of one month.
fn marker(ym: YearMonth) -> String {
    format!("{PREFIX}.m{:04}{:02}", ym.year(), ym.month())
}

/// The months as an SQL `date[]` literal of first days.
fn date_array(months: &[YearMonth]) -> String {
    let dates: Vec<String> = months.iter().map(|m| m.first_day().to_string()).collect();
    format!("'{{{}}}'::pg_catalog.date[]", dates.join(","))
}

/// The setting name of each month of a `date[]` element `d`, in SQL.
fn marker_of_date(d: &str) -> String {
    format!("'{PREFIX}.m' || pg_catalog.to_char({d}, 'YYYYMM')")
}

/// The acquiring statement of `take` (see `statement`) for `months`: one row. One month:
/// `took` (`t`, `f`, or NULL when the session holds the month already). A set: the earliest
/// month already held (`YYYY-MM`, NULL if none) and `took`. `any_of`: the month already held,
/// and the month claimed (`YYYY-MM` or NULL). The last column is the extension's schema.
pub(crate) fn acquire(form: Form, months: &[YearMonth], take: Take, id: &str) -> String {
    // The last column: the extension's schema, for the guard's later statements.
    let done = format!(
        "pg_catalog.set_config('{PREFIX}.done', '{id}', false), {}",
        crate::sql::EXTENSION_SCHEMA
    );
    let held_of = |arr: &str| {
        format!(
            "h AS MATERIALIZED (SELECT min(d) AS held FROM pg_catalog.unnest({arr}) AS d \
             WHERE month_lock_held(extract(year FROM d)::int4, extract(month FROM d)::int4))"
        )
    };
    let f = take.function;
    let ms = take
        .timeout_ms
        .map(|ms| format!(", {ms}"))
        .unwrap_or_default();
    match form {
        Form::One => {
            let ym = months[0];
            let (y, m) = (ym.year(), ym.month());
            // The unbounded forms return void.
            let take = match take.timeout_ms {
                Some(_) => format!("{f}({y}, {m}{ms})"),
                None => format!("(SELECT true FROM {f}({y}, {m}))"),
            };
            format!(
                "WITH r AS MATERIALIZED (SELECT CASE WHEN month_lock_held({y}, {m}) THEN NULL \
                 ELSE {take} END AS took) \
                 SELECT r.took, CASE WHEN r.took THEN pg_catalog.set_config('{}', '{id}', false) END, \
                 {done} FROM r",
                marker(ym)
            )
        }
        Form::All => {
            let arr = date_array(months);
            format!(
                "WITH {}, \
                 r AS MATERIALIZED (SELECT h.held, CASE WHEN h.held IS NULL THEN \
                   {f}({arr}{ms}) END AS took FROM h), \
                 k AS MATERIALIZED (SELECT count(pg_catalog.set_config({}, '{id}', false)) \
                   FROM r, pg_catalog.unnest({arr}) AS d WHERE r.took) \
                 SELECT pg_catalog.to_char(r.held, 'YYYY-MM'), r.took, {done} FROM r, k",
                held_of(&arr),
                marker_of_date("d")
            )
        }
        Form::Any => {
            let arr = date_array(months);
            format!(
                "WITH {}, \
                 r AS MATERIALIZED (SELECT h.held, CASE WHEN h.held IS NULL THEN \
                   {f}({arr}{ms}) END AS took FROM h) \
                 SELECT pg_catalog.to_char(r.held, 'YYYY-MM'), pg_catalog.to_char(r.took, 'YYYY-MM'), \
                 CASE WHEN r.took IS NOT NULL THEN pg_catalog.set_config({}, '{id}', false) END, \
                 {done} FROM r",
                held_of(&arr),
                marker_of_date("r.took")
            )
        }
    }
}

/// The clean-up of a dropped acquisition: release the months request `id` took, nothing else.
/// A month counts as taken by it if its marker names the request, or if the session holds it
/// and it is one of `unclaimed` (no live guard or other request of this connection claims it,
/// see `claims`): a `ROLLBACK` may have undone the marker, never the lock.
///
/// The extension's functions are qualified with its schema, looked up from `pg_catalog` by the
/// statement itself (a `DO` block that runs the release with `EXECUTE`): the clean-up runs
/// whatever `search_path` the session has by then (another task may have changed it after the
/// acquisition), and the dropped request never read the schema its acquisition reported.
/// The SQL-only edition has no `pg_extension` row: its functions are found through the
/// `search_path`, as its guards' statements are.
pub(crate) fn release_if_taken(
    months: &[YearMonth],
    unclaimed: &[YearMonth],
    mode: LockMode,
    id: &str,
) -> String {
    let release = crate::sql::qualify(&release_text(months, unclaimed, mode, id), SCHEMA_SLOT);
    format!(
        "DO $month_lock_client$DECLARE s text; BEGIN \
         SELECT pg_catalog.quote_ident(n.nspname) INTO s FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'month_lock'; \
         EXECUTE pg_catalog.replace('{}', '{SCHEMA_SLOT}.', COALESCE(s || '.', '')); \
         END$month_lock_client$",
        release.replace('\'', "''")
    )
}

/// Where `release_if_taken` puts the schema (not an identifier: it cannot occur otherwise).
const SCHEMA_SLOT: &str = "@month_lock_schema@";

/// The release of `release_if_taken`, unqualified.
fn release_text(months: &[YearMonth], unclaimed: &[YearMonth], mode: LockMode, id: &str) -> String {
    match months {
        [ym] => {
            let f = match mode {
                LockMode::Exclusive => "month_lock_release",
                LockMode::Shared => "month_lock_release_shared",
            };
            let (y, m) = (ym.year(), ym.month());
            let orphan = if unclaimed.contains(ym) {
                format!(" OR month_lock_held({y}, {m})")
            } else {
                String::new()
            };
            format!(
                "SELECT {f}({y}, {m}) WHERE pg_catalog.current_setting('{}', true) = '{id}'{orphan}",
                marker(*ym)
            )
        }
        _ => {
            let orphan = if unclaimed.is_empty() {
                String::new()
            } else {
                format!(
                    " OR (d = ANY({}) AND month_lock_held(extract(year FROM d)::int4, \
                     extract(month FROM d)::int4))",
                    date_array(unclaimed)
                )
            };
            format!(
                "SELECT month_lock_release(pg_catalog.array_agg(d)) FROM pg_catalog.unnest({}) AS d \
                 WHERE pg_catalog.current_setting({}, true) = '{id}'{orphan} HAVING count(*) > 0",
                date_array(months),
                marker_of_date("d")
            )
        }
    }
}

/// A `YYYY-MM` answer.
pub(crate) fn parse_month(text: &str) -> Option<YearMonth> {
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    #[test]
    fn markers_name_the_month_with_four_digit_years() {
        assert_eq!(marker(ym("0005-03")), "month_lock_client.m000503");
        assert_eq!(marker(ym("2024-12")), "month_lock_client.m202412");
    }

    #[test]
    fn clean_up_is_gated_by_the_request_id() {
        let sql = release_text(&[ym("2024-03")], &[], LockMode::Exclusive, "1-2");
        assert_eq!(
            sql,
            "SELECT month_lock_release(2024, 3) WHERE \
             pg_catalog.current_setting('month_lock_client.m202403', true) = '1-2'"
        );
        let sql = release_text(
            &[ym("2024-03")],
            &[ym("2024-03")],
            LockMode::Exclusive,
            "1-2",
        );
        assert!(
            sql.ends_with("= '1-2' OR month_lock_held(2024, 3)"),
            "{sql}"
        );
        let sql = release_text(
            &[ym("2024-01"), ym("2024-02")],
            &[],
            LockMode::Exclusive,
            "1-2",
        );
        assert!(sql.contains("'{2024-01-01,2024-02-01}'::pg_catalog.date[]"));
        assert!(sql.contains("= '1-2'"));
    }

    #[test]
    fn clean_up_qualifies_the_extensions_functions() {
        let sql = release_if_taken(&[ym("2024-03")], &[ym("2024-03")], LockMode::Shared, "1-2");
        assert!(sql.starts_with("DO $month_lock_client$"), "{sql}");
        assert!(
            sql.contains(
                "'SELECT @month_lock_schema@.month_lock_release_shared(2024, 3) WHERE \
                 pg_catalog.current_setting(''month_lock_client.m202403'', true) = ''1-2'' \
                 OR @month_lock_schema@.month_lock_held(2024, 3)'"
            ),
            "{sql}"
        );
    }

    #[test]
    fn acquisitions_call_the_function_of_the_table() {
        use super::super::statement::{take, Scope};
        use std::time::Duration;
        let five = Some(Duration::from_secs(5));
        let text = |form, months: &[YearMonth], mode, timeout| {
            acquire(
                form,
                months,
                take(form, mode, Scope::Session, timeout),
                "1-2",
            )
        };
        let one = [ym("2024-03")];
        assert!(text(Form::One, &one, LockMode::Exclusive, five)
            .contains("ELSE month_lock_try(2024, 3, 5000) END"));
        assert!(text(Form::One, &one, LockMode::Shared, None)
            .contains("ELSE (SELECT true FROM month_lock_shared(2024, 3)) END"));
        let two = [ym("2024-01"), ym("2024-02")];
        assert!(text(Form::All, &two, LockMode::Exclusive, None).contains(
            "month_lock_all('{2024-01-01,2024-02-01}'::pg_catalog.date[], 2147483647) END"
        ));
        assert!(text(Form::Any, &two, LockMode::Exclusive, None)
            .contains("month_lock_claim('{2024-01-01,2024-02-01}'::pg_catalog.date[]) END"));
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
