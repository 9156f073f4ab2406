//! The transaction protocol: one typed statement (`INT4` month or `DATE[]` months, then the
//! timeout if the function takes one) that holds the months until the transaction ends.

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::GenericClient;

use super::kind::{form, Form, Kind};
use super::statement::Scope;
use super::{schema, MonthLock};
use crate::error::{Error, Result};
use crate::{sql, YearMonth};

/// The month taken: the one month, the earliest of a set, the month claimed by `any_of`.
pub(super) async fn acquire<G: GenericClient + ?Sized, K: Kind>(
    client: &G,
    request: &MonthLock<K>,
) -> Result<YearMonth> {
    // Found in pg_catalog (once per session), never through the search_path: see `schema`.
    let schema = schema::of(client).await?;
    let take = request.take(Scope::Xact);
    let first = request.months[0];
    let (y, m) = sql::month_args(first);
    let dates = sql::dates(&request.months);
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = match form::<K>() {
        Form::One => vec![(&y, Type::INT4), (&m, Type::INT4)],
        Form::All | Form::Any => vec![(&dates, Type::DATE_ARRAY)],
    };
    if let Some(ms) = &take.timeout_ms {
        params.push((ms, Type::INT4));
    }
    let placeholders: Vec<String> = (1..=params.len()).map(|i| format!("${i}")).collect();
    let text = format!(
        "SELECT {schema}.{}({})",
        take.function,
        placeholders.join(", ")
    );
    let row = sql::query_params(client, &text, &params)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::UnexpectedAnswer(format!("no row from `{text}`")))?;
    match form::<K>() {
        Form::One | Form::All => {
            if row.try_get::<_, bool>(0)? {
                Ok(first)
            } else {
                Err(request.busy_error())
            }
        }
        Form::Any => match row.try_get::<_, Option<chrono::NaiveDate>>(0)? {
            Some(d) => month_of(d),
            None => Err(request.busy_error()),
        },
    }
}

/// A month the server returned as a date.
fn month_of(d: chrono::NaiveDate) -> Result<YearMonth> {
    use chrono::Datelike;
    YearMonth::new(d.year(), d.month())
        .map_err(|e| Error::UnexpectedAnswer(format!("month_lock_claim returned {d}: {e}")))
}
