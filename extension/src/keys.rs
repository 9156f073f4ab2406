//! Month keys: argument validation, the key layout and the two settings that shape it.
//!
//! A month is `year * 100 + month` (March 2024 is 202403), so raw `pg_locks` stays readable.
//! By default it is the second key of the two-int advisory form, whose first key is a
//! namespace (`month_lock.namespace`, default [`DEFAULT_NAMESPACE`]): `pg_locks` shows
//! classid = namespace, objid = 202403, objsubid = 2, and the lock is the one
//! `pg_advisory_lock(namespace, 202403)` takes. With `month_lock.legacy_keys = on` it is the
//! single bigint key of the original application instead: classid = 0, objid = 202403,
//! objsubid = 1, the lock `pg_advisory_lock(202403)` takes.

use crate::lockmgr::MonthTag;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Default first key of the two-int form: 0x6D6C6B00, the ASCII bytes "mlk\0".
pub const DEFAULT_NAMESPACE: i32 = 0x6D6C_6B00;

pub static NAMESPACE: GucSetting<i32> = GucSetting::<i32>::new(DEFAULT_NAMESPACE);
pub static LEGACY_KEYS: GucSetting<bool> = GucSetting::<bool>::new(false);

pub fn register_settings() {
    GucRegistry::define_int_guc(
        c"month_lock.namespace",
        c"First key of the two-int advisory lock that month_lock uses for every month.",
        c"Two applications in one database keep separate month locks by using different values. \
          Ignored when month_lock.legacy_keys is on.",
        &NAMESPACE,
        i32::MIN,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"month_lock.legacy_keys",
        c"Use the single bigint advisory key year*100+month instead of (namespace, year*100+month).",
        c"Lets month_lock interoperate with workers that still call pg_try_advisory_lock(yyyymm).",
        &LEGACY_KEYS,
        GucContext::Userset,
        GucFlags::default(),
    );
}

/// `(classid, objsubid)` of month locks under the current settings: fields 2 and 4 of the tag.
pub fn key_space() -> (u32, u16) {
    if LEGACY_KEYS.get() {
        // SET_LOCKTAG_INT64: high half, low half, 1. Keys are below 2^32, so the high half is 0.
        (0, 1)
    } else {
        // SET_LOCKTAG_INT32: first key, second key, 2. The namespace is stored as its bit pattern.
        (NAMESPACE.get() as u32, 2)
    }
}

/// The advisory tag of a validated month under the current settings.
pub fn month_tag(year: i32, month: i32) -> MonthTag {
    let (classid, objsubid) = key_space();
    MonthTag { classid, objid: (year * 100 + month) as u32, objsubid }
}

/// The inverse of [`month_tag`] for tags of the current key space, `None` for any other tag.
pub fn month_of(tag: MonthTag) -> Option<(i32, i32)> {
    if (tag.classid, tag.objsubid) != key_space() {
        return None;
    }
    let (year, month) = ((tag.objid / 100) as i32, (tag.objid % 100) as i32);
    ((1..=9999).contains(&year) && (1..=12).contains(&month)).then_some((year, month))
}

/// Validates `year` and `month` and returns the month's tag. Raises 22004 for NULL and 22023
/// for a value out of range, naming the argument and the value.
pub fn checked_month(year: Option<i32>, month: Option<i32>) -> MonthTag {
    let year = in_range("year", year, 1, 9999);
    let month = in_range("month", month, 1, 12);
    month_tag(year, month)
}

/// Validates `timeout_ms`: zero or more milliseconds.
pub fn checked_timeout(timeout_ms: Option<i32>) -> u32 {
    in_range("timeout_ms", timeout_ms, 0, i32::MAX) as u32
}

fn in_range(name: &str, value: Option<i32>, low: i32, high: i32) -> i32 {
    let Some(value) = value else {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("month_lock: argument \"{name}\" must not be NULL")
        );
    };
    if value < low || value > high {
        let expected = if high == i32::MAX {
            format!("at least {low}")
        } else {
            format!("between {low} and {high}")
        };
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("month_lock: argument \"{name}\" must be {expected}, got {value}")
        );
    }
    value
}
