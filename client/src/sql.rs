//! The statements this crate sends, how it sends them, and how it reads their errors.
//!
//! Every statement goes out as a typed statement (`query_typed`: one round trip, parameters
//! declared `INT4`, answers read as typed columns), except the releases queued without waiting
//! from `Drop` (see [`send_without_waiting`]).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

use crate::error::{Error, Result};
use crate::{LockMode, YearMonth};

/// One statement: its text and the SQL objects it names, so that a "does not exist" error
/// can be told apart from a user's missing object ([`Error::ExtensionMissing`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Statement {
    pub sql: &'static str,
    /// The extension's objects it names (checked by a unit test: a statement names only these
    /// and `pg_catalog`, which is what lets 42883/42P01 mean "extension missing").
    #[allow(dead_code)]
    pub objects: &'static [&'static str],
}

macro_rules! statement {
    ($name:ident, $sql:literal, [$($object:literal),+]) => {
        pub(crate) const $name: Statement = Statement { sql: $sql, objects: &[$($object),+] };
    };
}

// Acquisitions are chosen by the table in `request::statement`.
statement!(
    RELEASE,
    "SELECT month_lock_release($1, $2)",
    ["month_lock_release"]
);
statement!(
    RELEASE_SHARED,
    "SELECT month_lock_release_shared($1, $2)",
    ["month_lock_release_shared"]
);
statement!(
    RELEASE_ALL,
    "SELECT month_lock_release_all()",
    ["month_lock_release_all"]
);
statement!(HELD, "SELECT month_lock_held($1, $2)", ["month_lock_held"]);

// Sets of months (`DATE[]` parameters, each date the first day of its month).
// A guard's release of its set: the earliest month the session no longer held (NULL if it
// held them all), then the release.
statement!(
    RELEASE_SET_LOST,
    "WITH h AS MATERIALIZED (SELECT pg_catalog.min(d) AS lost FROM pg_catalog.unnest($1) AS d \
     WHERE NOT month_lock_held(extract(year FROM d)::pg_catalog.int4, \
     extract(month FROM d)::pg_catalog.int4)) \
     SELECT h.lost, month_lock_release($1) FROM h",
    ["month_lock_held", "month_lock_release"]
);
statement!(
    TOKEN,
    "SELECT month_lock_token($1, $2)",
    ["month_lock_token"]
);
statement!(
    TOKENS,
    "SELECT month_lock_token(extract(year FROM d)::pg_catalog.int4, \
     extract(month FROM d)::pg_catalog.int4) \
     FROM pg_catalog.unnest($1) WITH ORDINALITY AS u(d, i) ORDER BY i",
    ["month_lock_token"]
);
statement!(
    IS_LOCKED,
    "SELECT month_is_locked($1, $2)",
    ["month_is_locked"]
);
statement!(
    LOCKS,
    "SELECT year, month, month_start, mode, granted, pid, waiting_since, application_name, \
                          usename::pg_catalog.text, client_addr, backend_start FROM month_locks",
    ["month_locks"]
);

/// The release statement for a mode.
/// Ends this session (and with it every lock it holds): the last resort of a release that keeps
/// failing on a pooled connection.
pub(crate) const TERMINATE_SELF: &str =
    "SELECT pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid())";

pub(crate) fn release(mode: LockMode) -> Statement {
    match mode {
        LockMode::Exclusive => RELEASE,
        LockMode::Shared => RELEASE_SHARED,
    }
}

/// The release as plain text, for [`send_without_waiting`] (the one place that cannot use a
/// typed statement, see there).
pub(crate) fn release_text(ym: YearMonth, mode: LockMode) -> String {
    let f = match mode {
        LockMode::Exclusive => "month_lock_release",
        LockMode::Shared => "month_lock_release_shared",
    };
    format!("SELECT {f}({}, {})", ym.year(), ym.month())
}

/// The release of a set of months as plain text, for [`send_without_waiting`].
pub(crate) fn release_set_text(months: &[YearMonth]) -> String {
    let dates: Vec<String> = months.iter().map(|m| m.first_day().to_string()).collect();
    format!(
        "SELECT month_lock_release('{{{}}}'::pg_catalog.date[])",
        dates.join(",")
    )
}

/// `sql` with every call of one of the extension's functions (`month_…(`) and its view
/// `month_locks` qualified with `schema` (a quoted identifier), so that it runs whatever the
/// session's `search_path` is by then. Names inside quotes (setting names) and names already
/// qualified are left alone.
pub(crate) fn qualify(sql: &str, schema: &str) -> String {
    let bytes = sql.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = String::with_capacity(sql.len() + 32);
    let mut copied = 0;
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            in_quote = !in_quote;
        }
        let starts = !in_quote
            && sql[i..].starts_with("month_")
            && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b'.' || bytes[i - 1] == b'"'));
        if starts {
            let end = i + sql[i..].bytes().take_while(|b| ident(*b)).count();
            if bytes.get(end) == Some(&b'(') || &sql[i..end] == "month_locks" {
                out.push_str(&sql[copied..i]);
                out.push_str(schema);
                out.push('.');
                copied = i;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    out
}

/// `stmt` with the extension's objects qualified with their schema on `client`'s session (found
/// in `pg_catalog`, once per session: see `request::schema`).
pub(crate) async fn in_schema<G: GenericClient + ?Sized>(
    client: &G,
    stmt: Statement,
) -> Result<String> {
    let schema = crate::request::schema::of(client).await?;
    Ok(qualify(stmt.sql, &schema))
}

/// The months as one `DATE[]` argument (first days).
pub(crate) fn dates(months: &[YearMonth]) -> Vec<chrono::NaiveDate> {
    months.iter().map(|m| m.first_day()).collect()
}

/// Timeout in whole milliseconds for the SQL functions: rounded up, capped at `i32::MAX`.
pub(crate) fn timeout_ms(t: Duration) -> i32 {
    let ms = t.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// The month as the two `INT4` arguments every function takes.
pub(crate) fn month_args(ym: YearMonth) -> (i32, i32) {
    (ym.year(), ym.month() as i32)
}

/// Run `stmt` with `INT4` parameters and return its rows; errors are classified by
/// [`classify`].
pub(crate) async fn query<G: GenericClient + ?Sized>(
    client: &G,
    sql: &str,
    args: &[i32],
) -> Result<Vec<Row>> {
    let params: Vec<(&(dyn ToSql + Sync), Type)> = args
        .iter()
        .map(|a| (a as &(dyn ToSql + Sync), Type::INT4))
        .collect();
    query_params(client, sql, &params).await
}

/// Run `sql` (naming only the extension's objects and `pg_catalog`) with typed parameters and
/// return its rows; errors are classified by [`classify`].
pub(crate) async fn query_params<G: GenericClient + ?Sized>(
    client: &G,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>> {
    match client.query_typed(sql, params).await {
        Ok(rows) => Ok(rows),
        Err(e) => Err(classify(client, e, sql).await),
    }
}

/// Run `stmt` with a `DATE[]` parameter (the months) and optionally an `INT4` one, and return
/// its one row.
pub(crate) async fn set_row<G: GenericClient + ?Sized>(
    client: &G,
    sql: &str,
    months: &[YearMonth],
    int: Option<i32>,
) -> Result<Row> {
    let dates = dates(months);
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&dates, Type::DATE_ARRAY)];
    if let Some(int) = &int {
        params.push((int, Type::INT4));
    }
    query_params(client, sql, &params)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::UnexpectedAnswer(format!("no row from `{sql}`")))
}

/// Run `stmt` and read the first column of its one row.
pub(crate) async fn value<G, T>(client: &G, sql: &str, args: &[i32]) -> Result<T>
where
    G: GenericClient + ?Sized,
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    let rows = query(client, sql, args).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::UnexpectedAnswer(format!("no row from `{sql}`")))?;
    Ok(row.try_get(0)?)
}

/// The error of one of this crate's own statements (`sql`, its text). They name only the
/// extension's objects (qualified with its schema, see `request::schema`) and `pg_catalog`, so
/// SQLSTATE 42883 (undefined function), 42P01 (undefined table) or 3F000 (no such schema) means
/// the extension is not there as the statement named it. The catalog, read now, tells which:
/// neither edition found ([`Error::ExtensionMissing`]); found in the schema the statement named
/// but without the object ([`Error::ExtensionOutdated`]: an older native version, or a
/// SQL-only edition missing a function); found in another schema (moved or recreated since:
/// [`Error::Database`] with the server's error; the session's next statement names the new
/// schema). Decided by SQLSTATE and catalog, never by message text (which follows
/// `lc_messages`), nor by what the session was told before. A user's own statements are never
/// classified so.
pub(crate) async fn classify<G: GenericClient + ?Sized>(
    client: &G,
    e: tokio_postgres::Error,
    sql: &str,
) -> Error {
    if !undefined(&e) {
        return Error::Database(e);
    }
    let schema = match crate::request::schema::look_up(client).await {
        Ok(Some(schema)) => schema,
        Ok(None) => return Error::ExtensionMissing { source: e },
        // The catalog cannot be read now (e.g. a failed transaction block): the likelier case.
        Err(_) => return Error::ExtensionMissing { source: e },
    };
    if !sql.contains(&format!("{schema}.")) {
        return Error::Database(e); // moved: the next statement names the new schema
    }
    let version = client
        .query_typed(
            "SELECT e.extversion::pg_catalog.text FROM pg_catalog.pg_extension e \
             WHERE e.extname OPERATOR(pg_catalog.=) 'month_lock'",
            &[],
        )
        .await;
    let installed = match version.as_deref().map(|rows| rows.first()) {
        Ok(Some(row)) => row.try_get(0).unwrap_or_default(),
        _ => "SQL-only edition".to_string(),
    };
    Error::ExtensionOutdated {
        installed,
        source: e,
    }
}

/// SQLSTATE 42883, 42P01 or 3F000: a statement of this crate named an object of the extension
/// that is not there (not installed, outdated, or in another schema by now).
pub(crate) fn undefined(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNDEFINED_FUNCTION
            || *c == SqlState::UNDEFINED_TABLE
            || *c == SqlState::INVALID_SCHEMA_NAME
    )
}

/// The driver error means the connection is gone (closed, I/O failure, or the server ended
/// the session: SQLSTATE class 57P, e.g. 57P01 after `pg_terminate_backend`).
pub(crate) fn connection_gone(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.as_db_error()
            .is_none_or(|db| db.code().code().starts_with("57P"))
}

/// Queue `sql` on the connection without waiting for (or even reading) its answer.
///
/// Relies on tokio-postgres 0.7 handing a simple-query request to the connection task when its
/// future is first polled, and on the connection task executing requests in order and sending
/// them even when their response receiver is gone (tested by `dropped_guard_releases_*`).
/// A plain-text simple query, because it is built and sent inside `Drop`, where nothing can
/// be awaited.
pub(crate) fn send_without_waiting(client: &tokio_postgres::Client, sql: &str) {
    let request = pin!(client.batch_execute(sql));
    let mut cx = Context::from_waker(Waker::noop());
    // Ready(Err) only if the connection is closed already, in which case nothing is held.
    let _: Poll<_> = request.poll(&mut cx);
}

/// Queue `sql` on the connection now (as [`send_without_waiting`]) and return a future of its
/// outcome that does not borrow the connection; `None` if the connection is closed.
pub(crate) fn send_for_answer(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Option<impl Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send + 'static> {
    let request = pin!(client.simple_query_raw(sql));
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(stream)) = request.poll(&mut cx) else {
        return None;
    };
    Some(async move {
        let mut stream = Box::pin(stream);
        let mut outcome = Ok(());
        while let Some(item) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(stream.as_mut(), cx)).await
        {
            if let Err(e) = item {
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_to_milliseconds_and_cap() {
        assert_eq!(timeout_ms(Duration::ZERO), 0);
        assert_eq!(timeout_ms(Duration::from_nanos(1)), 1);
        assert_eq!(timeout_ms(Duration::from_micros(1500)), 2);
        assert_eq!(timeout_ms(Duration::from_secs(5)), 5000);
        assert_eq!(timeout_ms(Duration::from_secs(100 * 86_400)), i32::MAX);
    }

    #[test]
    fn qualified_calls() {
        assert_eq!(
            qualify("SELECT month_lock_release($1, $2)", "\"my s\""),
            "SELECT \"my s\".month_lock_release($1, $2)"
        );
        assert_eq!(
            qualify(
                "SELECT pg_catalog.current_setting('month_lock_client.m202403', true), \
                 month_lock_held(1, 2), x.month_lock(1, 2) FROM month_locks",
                "s"
            ),
            "SELECT pg_catalog.current_setting('month_lock_client.m202403', true), \
             s.month_lock_held(1, 2), x.month_lock(1, 2) FROM s.month_locks"
        );
    }

    #[test]
    fn release_statements() {
        let ym = YearMonth::new(2024, 3).unwrap();
        assert_eq!(
            release_text(ym, LockMode::Exclusive),
            "SELECT month_lock_release(2024, 3)"
        );
        assert_eq!(
            release_text(ym, LockMode::Shared),
            "SELECT month_lock_release_shared(2024, 3)"
        );
        assert_eq!(
            release(LockMode::Exclusive).sql,
            "SELECT month_lock_release($1, $2)"
        );
        assert_eq!(
            release(LockMode::Shared).sql,
            "SELECT month_lock_release_shared($1, $2)"
        );
    }

    #[test]
    fn set_release_text_names_first_days() {
        let months = [
            YearMonth::new(2024, 1).unwrap(),
            YearMonth::new(2024, 12).unwrap(),
        ];
        assert_eq!(
            release_set_text(&months),
            "SELECT month_lock_release('{2024-01-01,2024-12-01}'::pg_catalog.date[])"
        );
    }

    #[test]
    fn every_statement_names_the_objects_it_uses() {
        for stmt in [
            RELEASE,
            RELEASE_SHARED,
            RELEASE_ALL,
            HELD,
            IS_LOCKED,
            LOCKS,
            RELEASE_SET_LOST,
            TOKEN,
            TOKENS,
        ] {
            for object in stmt.objects {
                assert!(stmt.sql.contains(object), "{} lacks {object}", stmt.sql);
            }
        }
    }
}
