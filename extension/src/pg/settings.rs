//! Settings that fail closed: text settings with check and assign hooks. The registry handed to
//! [`define_settings`] is the one the hooks read.

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};
use std::sync::OnceLock;

/// How a [`CheckedSetting`]'s text is read: as PostgreSQL reads an integer or a boolean setting.
#[derive(Clone, Copy, Debug)]
pub enum SettingParser {
    Int,
    Bool,
}

/// A setting defined as text with a check hook, so that a value month_lock cannot use is never
/// replaced by the default without notice. PostgreSQL calls the hook for every new value:
/// - usable: accepted, and [`CheckedSetting::value`] returns it;
/// - unusable, from an interactive source (`SET`, a client's startup options, the validation
///   of `ALTER ROLE/DATABASE ... SET` while the library is loaded): refused with 22023, as
///   PostgreSQL refuses a bad value of its own settings;
/// - unusable, from anywhere else (a placeholder set before the library was loaded, a role or
///   database default, the configuration file): kept, and [`CheckedSetting::value`] returns
///   `None` until a usable value replaces it, so every month_lock call raises.
pub struct CheckedSetting {
    name: &'static CStr,
    short: &'static CStr,
    long: &'static CStr,
    parser: SettingParser,
    text: GucSetting<Option<CString>>,
    value: AtomicI32,
    valid: AtomicBool,
}

impl CheckedSetting {
    pub const fn new(
        name: &'static CStr,
        short: &'static CStr,
        long: &'static CStr,
        boot: &'static CStr,
        parser: SettingParser,
    ) -> Self {
        CheckedSetting {
            name,
            short,
            long,
            parser,
            text: GucSetting::<Option<CString>>::new(Some(boot)),
            value: AtomicI32::new(0),
            valid: AtomicBool::new(false),
        }
    }

    /// The current value, `None` while the setting holds text month_lock cannot use.
    #[inline]
    pub fn value(&self) -> Option<i32> {
        self.valid.load(Relaxed).then(|| self.value.load(Relaxed))
    }

    pub fn name(&self) -> &'static str {
        self.name.to_str().expect("setting names are ASCII")
    }

    /// The setting's current text, as `SHOW` prints it.
    pub fn text(&self) -> String {
        self.text
            .get()
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn expected(&self) -> &'static str {
        match self.parser {
            SettingParser::Int => "an integer",
            SettingParser::Bool => "on or off",
        }
    }

    fn parse(&self, text: &CStr) -> Option<i32> {
        // SAFETY: parse_int and parse_bool only read the NUL-terminated string and write the
        // result; they never raise (no units are requested) and keep no pointer.
        unsafe {
            match self.parser {
                SettingParser::Int => {
                    let (mut out, mut hint) = (0, std::ptr::null::<c_char>());
                    pg_sys::parse_int(text.as_ptr(), &mut out, 0, &mut hint).then_some(out)
                }
                SettingParser::Bool => {
                    let mut out = false;
                    pg_sys::parse_bool(text.as_ptr(), &mut out).then_some(out as i32)
                }
            }
        }
    }
}

/// True while `define_settings` runs: PostgreSQL then re-applies placeholder values, which must
/// be kept (and fail closed) whatever their source.
static DEFINING: AtomicBool = AtomicBool::new(false);

/// The settings [`define_settings`] was handed, which its hooks read, and what to call after
/// each change.
struct Registry {
    settings: &'static [CheckedSetting],
    changed: fn(),
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// How many settings [`define_settings`] can define (one check and one assign hook each).
const MAX_SETTINGS: usize = 3;

/// Defines `settings` (at most three), then reserves `prefix`: from then on an unknown
/// `prefix.name` is an error (PostgreSQL 15+; 14 only warns). The hooks read these same
/// settings, and call `changed` after every value that becomes current (see
/// [`assign_setting`]); `changed` must not raise or panic. Once per process, from `_PG_init`.
pub fn define_settings(settings: &'static [CheckedSetting], prefix: &CStr, changed: fn()) {
    type Check = unsafe extern "C-unwind" fn(
        *mut *mut c_char,
        *mut *mut c_void,
        pg_sys::GucSource::Type,
    ) -> bool;
    type Assign = unsafe extern "C-unwind" fn(*const c_char, *mut c_void);
    const CHECK: [Check; MAX_SETTINGS] =
        [check_setting::<0>, check_setting::<1>, check_setting::<2>];
    const ASSIGN: [Assign; MAX_SETTINGS] = [
        assign_setting::<0>,
        assign_setting::<1>,
        assign_setting::<2>,
    ];
    assert!(
        settings.len() <= MAX_SETTINGS,
        "define_settings: at most {MAX_SETTINGS} settings"
    );
    if REGISTRY.set(Registry { settings, changed }).is_err() {
        return; // defined already in this process
    }
    DEFINING.store(true, Relaxed);
    for (i, setting) in settings.iter().enumerate() {
        // SAFETY: the hooks never panic or raise (see below), and the setting's storage is a
        // 'static GucSetting, as DefineCustomStringVariable requires.
        unsafe {
            GucRegistry::define_string_guc_with_hooks(
                setting.name,
                setting.short,
                setting.long,
                &setting.text,
                GucContext::Userset,
                GucFlags::default(),
                Some(CHECK[i]),
                Some(ASSIGN[i]),
                None,
            );
        }
    }
    DEFINING.store(false, Relaxed);
    // SAFETY: called once from _PG_init with a NUL-terminated prefix.
    unsafe {
        #[cfg(feature = "pg14")]
        pg_sys::EmitWarningsOnPlaceholders(prefix.as_ptr());
        #[cfg(not(feature = "pg14"))]
        pg_sys::MarkGUCPrefixReserved(prefix.as_ptr());
    }
}

/// Setting `I` of the registry (the hooks of `I` exist only for a defined setting).
fn registered(i: usize) -> Option<(&'static CheckedSetting, fn())> {
    let registry = REGISTRY.get()?;
    Some((registry.settings.get(i)?, registry.changed))
}

/// Check hook of setting `I`. See [`CheckedSetting`] for which values are accepted.
unsafe extern "C-unwind" fn check_setting<const I: usize>(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    use pg_sys::GucSource::*;
    let Some((setting, _)) = registered(I) else {
        return true;
    };
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value, a NUL-terminated
    // string (the boot values are never NULL).
    let Some(text) = (unsafe { (*newval).as_ref() }).map(|p| unsafe { CStr::from_ptr(p) }) else {
        return false;
    };
    if setting.parse(text).is_some() {
        return true;
    }
    let interactive = matches!(
        source,
        PGC_S_CLIENT | PGC_S_OVERRIDE | PGC_S_INTERACTIVE | PGC_S_TEST | PGC_S_SESSION
    );
    if DEFINING.load(Relaxed) || !interactive {
        return true; // kept; every month_lock call raises until it is replaced
    }
    let detail = CString::new(format!("{} takes {}.", setting.name(), setting.expected()))
        .expect("no NUL in a setting name");
    // SAFETY: PostgreSQL reads GUC_check_errdetail_string after the hook returns false; the
    // copy lives in the current memory context, which outlives that report.
    unsafe { pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr()) };
    false
}

/// Assign hook of setting `I`: PostgreSQL calls it for every value that becomes current,
/// including values restored at transaction or subtransaction end.
unsafe extern "C-unwind" fn assign_setting<const I: usize>(
    newval: *const c_char,
    _extra: *mut c_void,
) {
    let Some((setting, changed)) = registered(I) else {
        return;
    };
    // SAFETY: PostgreSQL passes the new value, a NUL-terminated string or NULL.
    let parsed =
        unsafe { newval.as_ref() }.and_then(|p| setting.parse(unsafe { CStr::from_ptr(p) }));
    setting.value.store(parsed.unwrap_or(0), Relaxed);
    setting.valid.store(parsed.is_some(), Relaxed);
    changed();
}
