//! The text of a session-scope acquisition and of the clean-up a dropped one queues.
//!
//! An acquisition goes out as one simple-protocol query string (its future resolves to a stream
//! on the first poll, and that stream can outlive the future: see `pending`). Only integers,
//! ISO dates, this crate's own request ids and the extension's schema as the server quoted it
//! (`quote_ident`, see `schema`) are spliced into the text, never user input.
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
    format!("'{PREFIX}.m' OPERATOR(pg_catalog.||) pg_catalog.to_char({d}, 'YYYYMM')")
}

/// `month_lock_held` of a `date[]` element `d`, in schema `s`.
fn held_of_date(s: &str, d: &str) -> String {
    format!(
        "{s}.month_lock_held(extract(year FROM {d})::pg_catalog.int4, \
         extract(month FROM {d})::pg_catalog.int4)"
    )
}

/// The acquiring statement of `take` (see `statement`) for `months`, naming the extension's
/// functions in `schema` (quoted; see `schema`): one row. One month: `took` (`t`, `f`, or NULL
/// when the session holds the month already). A set: the earliest month already held
/// (`YYYY-MM`, NULL if none) and `took`. `any_of`: the month already held, and the month claimed
/// (`YYYY-MM` or NULL). Every other function, type and operator is `pg_catalog`'s.
pub(crate) fn acquire(
    form: Form,
    months: &[YearMonth],
    take: Take,
    id: &str,
    schema: &str,
) -> String {
    let s = schema;
    let done = format!("pg_catalog.set_config('{PREFIX}.done', '{id}', false)");
    let held_of = |arr: &str| {
        format!(
            "h AS MATERIALIZED (SELECT pg_catalog.min(d) AS held FROM pg_catalog.unnest({arr}) AS d \
             WHERE {})",
            held_of_date(s, "d")
        )
    };
    let f = format!("{s}.{}", take.function);
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
                "WITH r AS MATERIALIZED (SELECT CASE WHEN {s}.month_lock_held({y}, {m}) THEN NULL \
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
                 k AS MATERIALIZED (SELECT pg_catalog.count(pg_catalog.set_config({}, '{id}', false)) \
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
/// One plain statement naming the extension's functions in `schema`, the schema the
/// acquisition named them with (see `schema`): it runs whatever `search_path` the session has
/// by then (another task may have changed it after the acquisition), and needs no procedural
/// language.
pub(crate) fn release_if_taken(
    months: &[YearMonth],
    unclaimed: &[YearMonth],
    mode: LockMode,
    id: &str,
    schema: &str,
) -> String {
    let s = schema;
    match months {
        [ym] => {
            let f = match mode {
                LockMode::Exclusive => "month_lock_release",
                LockMode::Shared => "month_lock_release_shared",
            };
            let (y, m) = (ym.year(), ym.month());
            let orphan = if unclaimed.contains(ym) {
                format!(" OR {s}.month_lock_held({y}, {m})")
            } else {
                String::new()
            };
            format!(
                "SELECT {s}.{f}({y}, {m}) WHERE pg_catalog.current_setting('{}', true) \
                 OPERATOR(pg_catalog.=) '{id}'{orphan}",
                marker(*ym)
            )
        }
        _ => {
            let orphan = if unclaimed.is_empty() {
                String::new()
            } else {
                format!(
                    " OR (d OPERATOR(pg_catalog.=) ANY({}) AND {})",
                    date_array(unclaimed),
                    held_of_date(s, "d")
                )
            };
            format!(
                "SELECT {s}.month_lock_release(pg_catalog.array_agg(d)) \
                 FROM pg_catalog.unnest({}) AS d \
                 WHERE pg_catalog.current_setting({}, true) OPERATOR(pg_catalog.=) '{id}'{orphan} \
                 HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0",
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
        let sql = release_if_taken(&[ym("2024-03")], &[], LockMode::Exclusive, "1-2", "s");
        assert_eq!(
            sql,
            "SELECT s.month_lock_release(2024, 3) WHERE \
             pg_catalog.current_setting('month_lock_client.m202403', true) \
             OPERATOR(pg_catalog.=) '1-2'"
        );
        let sql = release_if_taken(
            &[ym("2024-03")],
            &[ym("2024-03")],
            LockMode::Shared,
            "1-2",
            "\"my s\"",
        );
        assert!(
            sql.starts_with("SELECT \"my s\".month_lock_release_shared(2024, 3) WHERE")
                && sql.ends_with(") '1-2' OR \"my s\".month_lock_held(2024, 3)"),
            "{sql}"
        );
        let sql = release_if_taken(
            &[ym("2024-01"), ym("2024-02")],
            &[ym("2024-02")],
            LockMode::Exclusive,
            "1-2",
            "s",
        );
        assert!(sql.contains("'{2024-01-01,2024-02-01}'::pg_catalog.date[]"));
        assert!(sql.contains("OPERATOR(pg_catalog.=) '1-2'"));
        assert!(
            sql.contains("s.month_lock_held(extract(year FROM d)"),
            "{sql}"
        );
    }

    #[test]
    fn no_statement_calls_an_unqualified_function() {
        use super::super::statement::{take, Scope};
        let months = [ym("2024-01"), ym("2024-02")];
        let mut texts = vec![
            release_if_taken(&months[..1], &months[..1], LockMode::Exclusive, "1-2", "s"),
            release_if_taken(&months, &months, LockMode::Exclusive, "1-2", "s"),
        ];
        for (form, n) in [(Form::One, 1), (Form::All, 2), (Form::Any, 2)] {
            for mode in [LockMode::Exclusive, LockMode::Shared] {
                for timeout in [None, Some(std::time::Duration::ZERO)] {
                    let t = take(form, mode, Scope::Session, timeout);
                    texts.push(acquire(form, &months[..n], t, "1-2", "s"));
                }
            }
        }
        for text in texts {
            // Every call `name(` is preceded by its schema (`extract(` is syntax the parser
            // qualifies itself); every operator is spelled OPERATOR(pg_catalog.…).
            for (i, _) in text.match_indices('(') {
                let start = text[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .map_or(0, |p| p + 1);
                let name = &text[start..i];
                if ["", "extract", "ANY", "OPERATOR", "MATERIALIZED"].contains(&name) {
                    continue;
                }
                assert!(
                    name.starts_with("s.") || name.starts_with("pg_catalog."),
                    "unqualified {name:?} in {text}"
                );
            }
            for op in [" = ", " || ", " > ", " < "] {
                assert!(!text.contains(op), "unqualified operator {op:?} in {text}");
            }
        }
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
                "s",
            )
        };
        let one = [ym("2024-03")];
        assert!(text(Form::One, &one, LockMode::Exclusive, five)
            .contains("ELSE s.month_lock_try(2024, 3, 5000) END"));
        assert!(text(Form::One, &one, LockMode::Shared, None)
            .contains("ELSE (SELECT true FROM s.month_lock_shared(2024, 3)) END"));
        let two = [ym("2024-01"), ym("2024-02")];
        assert!(text(Form::All, &two, LockMode::Exclusive, None).contains(
            "s.month_lock_all('{2024-01-01,2024-02-01}'::pg_catalog.date[], 2147483647) END"
        ));
        assert!(text(Form::Any, &two, LockMode::Exclusive, None)
            .contains("s.month_lock_claim('{2024-01-01,2024-02-01}'::pg_catalog.date[]) END"));
    }

    #[test]
    fn request_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
