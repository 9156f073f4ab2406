//! Month keys and argument checks: how a month becomes an advisory lock tag, and the checks
//! (with their errors) of the arguments that name months and timeouts.
//!
//! A month is `year * 100 + month` (March 2024 is 202403), so raw `pg_locks` stays readable.
//! By default it is the second key of the two-int advisory form, whose first key is a
//! namespace (`month_lock.namespace`, default 1835821824 = 0x6D6C6B00, the ASCII bytes
//! "mlk\0"): `pg_locks` shows classid = namespace, objid = 202403, objsubid = 2, and the lock is
//! the one `pg_advisory_lock(namespace, 202403)` takes. With `month_lock.legacy_keys = on` it
//! is the single bigint key of the original application instead: classid = 0, objid = 202403,
//! objsubid = 1, the lock `pg_advisory_lock(202403)` takes. Legacy keys are always six digits
//! (years 1000..9999), so that a bigint lock such as `pg_advisory_lock(4207)` is never read as
//! a month. Which of the two is in force, `crate::settings` says.
//!
//! Public surface: [`fast_month`], [`checked_month`], [`checked_months`], [`checked_timeout`],
//! [`month_of`], [`first_day`], [`month_text`].

use crate::errors::raise;
use crate::pg::MonthTag;
use crate::settings::{key_space, usable_key_space};
use pgrx::prelude::*;

/// The tag of (year, month) when every check passes — settings usable, the month in range and,
/// for `session`, session-scope locks allowed — else `None`; the caller then takes the path
/// that raises the right error ([`checked_month`], [`crate::settings::require_session_locks`]).
/// Never raises: the C entry points call it before anything is guarded.
#[inline]
pub fn fast_month(year: i32, month: i32, session: bool) -> Option<MonthTag> {
    let (classid, objsubid) = usable_key_space(session)?;
    let first_year = if objsubid == 1 { 1000 } else { 1 };
    // `then`, not `then_some`: the key is computed only for a year and month in range (an
    // overflowing `year * 100` panics in a debug build, and a panic here aborts the backend).
    ((first_year..=9999).contains(&year) && (1..=12).contains(&month)).then(|| MonthTag {
        classid,
        objid: (year * 100 + month) as u32,
        objsubid,
    })
}

/// The month of a tag that [`checked_month`] could have made under the current settings;
/// `None` for any other tag.
pub fn month_of(tag: MonthTag) -> Option<(i32, i32)> {
    let (classid, objsubid) = key_space();
    if (tag.classid, tag.objsubid) != (classid, objsubid) {
        return None;
    }
    let (year, month) = ((tag.objid / 100) as i32, (tag.objid % 100) as i32);
    let first_year = if objsubid == 1 { 1000 } else { 1 };
    ((first_year..=9999).contains(&year) && (1..=12).contains(&month)).then_some((year, month))
}

/// Validates `year` and `month` and returns the month's tag. Raises 22004 for NULL and 22023
/// for a value out of range, naming the argument and the value. With legacy keys, years start
/// at 1000 (six-digit keys).
#[inline]
pub fn checked_month(year: Option<i32>, month: Option<i32>) -> MonthTag {
    if let (Some(y), Some(m)) = (year, month) {
        if let Some(tag) = fast_month(y, m, false) {
            return tag;
        }
    }
    let (classid, objsubid) = key_space();
    let year = if objsubid == 1 {
        in_range("year", year, 1000, 9999, " (month_lock.legacy_keys = on)")
    } else {
        in_range("year", year, 1, 9999, "")
    };
    let month = in_range("month", month, 1, 12, "");
    MonthTag {
        classid,
        objid: (year * 100 + month) as u32,
        objsubid,
    }
}

/// Validates the months of a `date[]` argument (any day names its month) and returns their tags
/// in the array's order. Raises 22004 for a NULL array or element and 22023 for a date outside
/// the years month_lock accepts, naming the argument.
pub fn checked_months(
    name: &str,
    months: Option<pgrx::Array<'_, pgrx::datum::Date>>,
) -> Vec<MonthTag> {
    let Some(months) = months else {
        null_argument(name)
    };
    let (classid, objsubid) = key_space();
    let first_year = if objsubid == 1 { 1000 } else { 1 };
    months
        .iter()
        .map(|date| {
            let Some(date) = date else { null_element(name) };
            let (year, month) =
                if date.is_finite() { (date.year(), i32::from(date.month())) } else { (i32::MAX, 1) };
            if !(first_year..=9999).contains(&year) {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "month_lock: argument \"{name}\" contains {date}, outside the years {first_year}..9999"
                    ),
                    "Months are dates between 0001-01-01 and 9999-12-31 (1000-01-01 with legacy keys).".into(),
                );
            }
            MonthTag { classid, objid: (year * 100 + month) as u32, objsubid }
        })
        .collect()
}

/// The first day of a tag's month, as a date.
pub fn first_day(tag: MonthTag) -> pgrx::datum::Date {
    pgrx::datum::Date::new((tag.objid / 100) as i32, (tag.objid % 100) as u8, 1)
        .expect("a month month_lock made has a first day")
}

/// Validates `timeout_ms`: zero or more milliseconds.
#[inline]
pub fn checked_timeout(timeout_ms: Option<i32>) -> u32 {
    in_range("timeout_ms", timeout_ms, 0, i32::MAX, "") as u32
}

#[inline]
fn in_range(name: &str, value: Option<i32>, low: i32, high: i32, why: &str) -> i32 {
    match value {
        Some(value) if (low..=high).contains(&value) => value,
        Some(value) => out_of_range(name, value, low, high, why),
        None => null_argument(name),
    }
}

#[cold]
fn null_argument(name: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("month_lock: argument \"{name}\" must not be NULL")
    );
}

#[cold]
fn null_element(name: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("month_lock: argument \"{name}\" must not contain NULL")
    );
}

#[cold]
fn out_of_range(name: &str, value: i32, low: i32, high: i32, why: &str) -> ! {
    let expected = if high == i32::MAX {
        format!("at least {low}")
    } else {
        format!("between {low} and {high}")
    };
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("month_lock: argument \"{name}\" must be {expected}{why}, got {value}")
    );
}

/// `YYYY-MM` of a tag in the current key space (for messages).
pub fn month_text(tag: MonthTag) -> String {
    format!("{:04}-{:02}", tag.objid / 100, tag.objid % 100)
}
