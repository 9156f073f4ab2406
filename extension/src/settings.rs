//! month_lock's settings (`month_lock.namespace`, `month_lock.legacy_keys`,
//! `month_lock.session_locks`) and what they decide: the key space of month locks and whether
//! session-scope locks are allowed.
//!
//! Settings fail closed. PostgreSQL keeps `SET month_lock.namespace = 'seven'` made before the
//! library is loaded as an untyped placeholder, and when the library defines the setting it
//! would only warn about such a value and use the default: two applications that meant to be
//! separate would share months. So every setting here is defined as text with a check hook
//! (see [`CheckedSetting`]): a value that cannot be used is refused at `SET` / `ALTER ROLE ...
//! SET` time when the library is loaded, and otherwise (placeholder, role or database
//! default, configuration file) it is kept and every month_lock call raises 22023 naming the
//! setting until a usable value is set.
//!
//! Public surface: [`register_settings`], [`usable_key_space`], [`key_space`],
//! [`require_session_locks`].

use crate::errors::raise;
use crate::pg::{define_settings, CheckedSetting, SettingParser};
use pgrx::PgSqlErrorCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Index of each setting in [`SETTINGS`].
const NAMESPACE: usize = 0;
const LEGACY_KEYS: usize = 1;
const SESSION_LOCKS: usize = 2;

/// Every month_lock setting; the FFI layer's hooks read this table, handed to them by
/// [`register_settings`].
static SETTINGS: [CheckedSetting; 3] = [
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

/// Defines the settings and reserves the `month_lock.` prefix. Once, from `_PG_init`.
pub fn register_settings() {
    define_settings(&SETTINGS, c"month_lock", settings_changed);
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
fn settings_changed() {
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

/// `(classid, objsubid)` when every setting is usable and, for `session`, session-scope locks
/// are allowed; else `None` (the caller then takes the path that raises: [`key_space`],
/// [`require_session_locks`]). One load; never raises.
#[inline]
pub fn usable_key_space(session: bool) -> Option<(u32, u16)> {
    let word = KEY_WORD.load(Relaxed);
    let needed = if session {
        USABLE | SESSION_LOCKS_ON
    } else {
        USABLE
    };
    (word & needed == needed).then_some((word as u32, (word >> 32) as u16))
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

fn legacy_keys() -> bool {
    setting(LEGACY_KEYS) != 0
}

/// `(classid, objsubid)` of month locks under the current settings: fields 2 and 4 of the tag.
/// Every month_lock function and the view go through here, so an unusable value of *any*
/// month_lock setting makes each of them raise.
#[inline]
pub fn key_space() -> (u32, u16) {
    if let Some(space) = usable_key_space(false) {
        return space;
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
    if usable_key_space(true).is_some() {
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
