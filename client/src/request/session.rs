//! The session protocol: one simple-protocol query string takes the months and records the
//! request id (see `session_sql`); its answer is read even after the caller's future is dropped
//! (see `pending`).

use tokio_postgres::Client;

use super::claims::Claim;
use super::kind::{form, Form, Kind};
use super::pending::Pending;
use super::statement::Scope;
use super::{schema, session_sql, MonthLock};
use crate::error::{Error, Result};
use crate::{sql, YearMonth};

/// The answer of an acquiring statement: the months now held, or why not.
enum Answer {
    /// The months.
    Held(Vec<YearMonth>),
    Busy,
    AlreadyHeld(YearMonth),
}

/// The months now held by the session (and the claim on them the guard keeps, and the
/// extension's schema, quoted), or why not.
pub(super) async fn acquire<K: Kind>(
    client: &Client,
    request: &MonthLock<K>,
) -> Result<(Vec<YearMonth>, Claim, String)> {
    // Found in pg_catalog (once per session), never through the search_path: see `schema`.
    let schema = schema::of(client).await?;
    let (answer, claim) = ask(client, request, &schema).await?;
    // The claim keeps what was taken; what it gives up may need a release (see `settle`).
    let kept: &[YearMonth] = match &answer {
        Ok(Answer::Held(months)) => months,
        _ => &[],
    };
    let claim = claim.settle(client, kept, &schema);
    match answer? {
        Answer::Held(months) => Ok((months, claim, schema)),
        Answer::Busy => Err(request.busy_error()),
        Answer::AlreadyHeld(ym) => Err(Error::AlreadyHeld { ym }),
    }
}

/// Send the acquiring query string of `request` and read its answer. If this future is dropped
/// before the answer, `Pending` cleans up (see there). A request that fails needs no clean-up:
/// the server undoes a grant made in a failed request.
async fn ask<K: Kind>(
    client: &Client,
    request: &MonthLock<K>,
    schema: &str,
) -> Result<(Result<Answer>, Claim)> {
    let months = &request.months;
    let id = session_sql::new_request_id();
    let take = request.take(Scope::Session);
    let text = session_sql::acquire(form::<K>(), months, take, &id, schema);
    let (answer, claim) = match Pending::send(client, &text, id, months, request.mode, schema) {
        Ok(pending) => pending.answer().await,
        Err(e) => return Err(sql::classify(client, e, &text).await),
    };
    Ok((read(client, request, answer, &text).await, claim))
}

/// What the acquiring statement's answer says.
async fn read<K: Kind>(
    client: &Client,
    request: &MonthLock<K>,
    answer: std::result::Result<Option<tokio_postgres::SimpleQueryRow>, tokio_postgres::Error>,
    text: &str,
) -> Result<Answer> {
    let months = &request.months;
    let row = match answer {
        Ok(row) => row,
        Err(e) => return Err(sql::classify(client, e, text).await),
    }
    .ok_or_else(|| Error::UnexpectedAnswer("no row from the acquisition".into()))?;
    let text = |i: usize| row.try_get(i).map_err(Error::from);
    match form::<K>() {
        Form::One => Ok(match text(0)? {
            Some("t") => Answer::Held(vec![months[0]]),
            Some("f") => Answer::Busy,
            None => Answer::AlreadyHeld(months[0]),
            Some(other) => {
                return Err(Error::UnexpectedAnswer(format!(
                    "the acquisition answered {other:?}"
                )))
            }
        }),
        Form::All => {
            if let Some(held) = text(0)? {
                return Ok(Answer::AlreadyHeld(month_text(held)?));
            }
            Ok(match text(1)? {
                Some("t") => Answer::Held(months.clone()),
                Some("f") => Answer::Busy,
                other => {
                    return Err(Error::UnexpectedAnswer(format!(
                        "month_lock_all answered {other:?}"
                    )))
                }
            })
        }
        Form::Any => {
            if let Some(held) = text(0)? {
                return Ok(Answer::AlreadyHeld(month_text(held)?));
            }
            Ok(match text(1)? {
                Some(d) => Answer::Held(vec![month_text(d)?]),
                None => Answer::Busy,
            })
        }
    }
}

/// A month the server returned as `YYYY-MM`.
fn month_text(text: &str) -> Result<YearMonth> {
    session_sql::parse_month(text)
        .ok_or_else(|| Error::UnexpectedAnswer(format!("the acquisition answered month {text:?}")))
}
