//! Month keys: argument validation, the key layout and the settings that shape it.
//!
//! A month is `year * 100 + month` (March 2024 is 202403), so raw `pg_locks` stays readable.
//! By default it is the second key of the two-int advisory form, whose first key is a
//! namespace (`month_lock.namespace`, default 1835821824 = 0x6D6C6B00, the ASCII bytes "mlk\0"): `pg_locks` shows
//! classid = namespace, objid = 202403, objsubid = 2, and the lock is the one
//! `pg_advisory_lock(namespace, 202403)` takes. With `month_lock.legacy_keys = on` it is the
//! single bigint key of the original application instead: classid = 0, objid = 202403,
//! objsubid = 1, the lock `pg_advisory_lock(202403)` takes. Legacy keys are always six digits
//! (years 1000..9999), so that a bigint lock such as `pg_advisory_lock(4207)` is never read as
//! a month.
//!
//! Settings fail closed. PostgreSQL keeps `SET month_lock.namespace = 'seven'` made before the
//! library is loaded as an untyped placeholder, and when the library defines the setting it
//! would only warn about such a value and use the default: two applications that meant to be
//! separate would share months. So every setting here is defined as text with a check hook
//! (see [`CheckedSetting`]): a value that cannot be used is refused at `SET` / `ALTER ROLE ...
//! SET` time when the library is loaded, and otherwise (placeholder, role or database
//! default, configuration file) it is kept and every month_lock call raises 22023 naming the
//! setting until a usable value is set.

use crate::lockmgr::{CheckedSetting, MonthTag, SettingParser};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Index of each setting in [`SETTINGS`].
const NAMESPACE: usize = 0;
const LEGACY_KEYS: usize = 1;
const SESSION_LOCKS: usize = 2;

/// Every month_lock setting. The hooks in `lockmgr` address them by index.
pub static SETTINGS: [CheckedSetting; 3] = [
    CheckedSetting::new(
        c"month_lock.namespace",
        c"First key of the two-int advisory lock that month_lock uses for every month (an integer).",
        c"Two applications in one database keep separate month locks by using different values. \
          Ignored when month_lock.legacy_keys is on.",
        c"1835821824",
        SettingParser::Int,
    ),
    CheckedSetting::new(
        c"month_lock.legacy_keys",
        c"Use the single bigint advisory key year*100+month instead of (namespace, year*100+month).",
        c"Lets month_lock interoperate with workers that still call pg_try_advisory_lock(yyyymm). \
          Years are then limited to 1000..9999.",
        c"off",
        SettingParser::Bool,
    ),
    CheckedSetting::new(
        c"month_lock.session_locks",
        c"Allow session-scope month locks (month_lock_try, month_lock and their shared forms).",
        c"Set it to off for roles that connect through a transaction-pooling proxy: session-scope \
          acquisitions then raise an error, and only the transaction-scope forms \
          (month_lock_try_xact, month_lock_xact) can be used.",
        c"on",
        SettingParser::Bool,
    ),
];

pub fn register_settings() {
    crate::lockmgr::define_settings(&SETTINGS, c"month_lock");
}

/// The three settings folded into one word, so that a hot call reads one static instead of
/// re-reading and re-validating each setting: `classid` in bits 0..32, `objsubid` in bits 32..48,
/// [`USABLE`] and [`SESSION_LOCKS_ON`]. The settings' assign hooks recompute it
/// ([`settings_changed`]) for every value that becomes current, including values restored at
/// transaction or subtransaction end, so it always describes the current values. Zero (not
/// usable) until the settings are defined and whenever one of them holds unusable text: every
/// reader then takes the slow path, which raises naming the setting.
static KEY_WORD: AtomicU64 = AtomicU64::new(0);
const USABLE: u64 = 1 << 63;
const SESSION_LOCKS_ON: u64 = 1 << 62;

/// Recomputes [`KEY_WORD`] from the settings' current values. Called by the assign hooks:
/// it never raises or panics.
pub fn settings_changed() {
    let word = match (
        SETTINGS[NAMESPACE].value(),
        SETTINGS[LEGACY_KEYS].value(),
        SETTINGS[SESSION_LOCKS].value(),
    ) {
        (Some(namespace), Some(legacy), Some(session_locks)) => {
            // SET_LOCKTAG_INT64 (legacy): high half 0 (keys are below 2^32), low half, 1.
            // SET_LOCKTAG_INT32: first key (its bit pattern), second key, 2.
            let (classid, objsubid) = if legacy != 0 {
                (0, 1)
            } else {
                (namespace as u32, 2)
            };
            USABLE
                | if session_locks != 0 {
                    SESSION_LOCKS_ON
                } else {
                    0
                }
                | (objsubid as u64) << 32
                | u64::from(classid)
        }
        _ => 0,
    };
    KEY_WORD.store(word, Relaxed);
}

/// The tag of (year, month) when every check passes — settings usable, the month in range and,
/// for `session`, session-scope locks allowed — else `None`; the caller then takes the path
/// that raises the right error ([`checked_month`], [`require_session_locks`]).
#[inline]
pub fn fast_month(year: i32, month: i32, session: bool) -> Option<MonthTag> {
    let word = KEY_WORD.load(Relaxed);
    let needed = if session {
        USABLE | SESSION_LOCKS_ON
    } else {
        USABLE
    };
    let objsubid = (word >> 32) as u16;
    let first_year = if objsubid == 1 { 1000 } else { 1 };
    (word & needed == needed && (first_year..=9999).contains(&year) && (1..=12).contains(&month))
        .then_some(MonthTag {
            classid: word as u32,
            objid: (year * 100 + month) as u32,
            objsubid,
        })
}

/// The value of a setting, or ERROR 22023 naming it when its value cannot be used.
#[inline]
fn setting(index: usize) -> i32 {
    match SETTINGS[index].value() {
        Some(value) => value,
        None => invalid_setting(&SETTINGS[index]),
    }
}

#[cold]
fn invalid_setting(setting: &CheckedSetting) -> ! {
    let name = setting.name();
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!(
            "month_lock: setting {name} has the value \"{}\", which month_lock cannot use",
            setting.text()
        ),
        format!(
            "month_lock does not fall back to the default: SET {name} to {} (or RESET it).",
            setting.expected()
        ),
    )
}

/// ERROR with a hint.
pub fn raise(code: PgSqlErrorCode, message: String, hint: String) -> ! {
    ErrorReport::new(code, message, "month_lock")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR does not return")
}

fn legacy_keys() -> bool {
    setting(LEGACY_KEYS) != 0
}

/// `(classid, objsubid)` of month locks under the current settings: fields 2 and 4 of the tag.
/// Every month_lock function and the view go through here, so an unusable value of *any*
/// month_lock setting makes each of them raise.
#[inline]
pub fn key_space() -> (u32, u16) {
    let word = KEY_WORD.load(Relaxed);
    if word & USABLE != 0 {
        return (word as u32, (word >> 32) as u16);
    }
    if let Some(unusable) = SETTINGS.iter().find(|s| s.value().is_none()) {
        invalid_setting(unusable);
    }
    if legacy_keys() {
        // SET_LOCKTAG_INT64: high half, low half, 1. Keys are below 2^32, so the high half is 0.
        (0, 1)
    } else {
        // SET_LOCKTAG_INT32: first key, second key, 2. The namespace is stored as its bit pattern.
        (setting(NAMESPACE) as u32, 2)
    }
}

/// Raises 55000 unless session-scope month locks are allowed (`month_lock.session_locks`).
pub fn require_session_locks() {
    if KEY_WORD.load(Relaxed) & (USABLE | SESSION_LOCKS_ON) == USABLE | SESSION_LOCKS_ON {
        return;
    }
    if setting(SESSION_LOCKS) == 0 {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "month_lock: session-scope month locks are disabled by month_lock.session_locks = off; \
             use month_lock_try_xact or month_lock_xact inside a transaction"
                .into(),
            "Behind a transaction-pooling proxy only transaction-scope locks are safe: BEGIN; SELECT \
             month_lock_xact(year, month, timeout_ms); ...; COMMIT;"
                .into(),
        );
    }
}

/// The month of a tag that [`checked_month`] could have made, `None` for any other tag of the current key space, `None` for any other tag.
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
