//! The hot SQL functions — one attempt (`month_lock_try(year, month)` and its shared and
//! transaction-scope forms) and the releases — as hand-written version-1 C functions instead of
//! pgrx-generated wrappers. Their SQL declarations are written above this layer, under the C
//! symbols pgrx gave them (frozen: installed catalogues name them), listed at [`EntryHooks`].
//! What the functions mean — the fast checks, the release of a recorded hold, the slow paths
//! that validate and raise — is handed in as [`EntryHooks`].
//!
//! Why by hand: an uncontended attempt and release cost little more than the lock manager's
//! own work, and pgrx's wrapper (argument boxes, a memory-context switch, `catch_unwind`) and
//! its error guard around each PostgreSQL call (a `sigsetjmp` and the saved error state) were a
//! large part of the pair (`make bench-pairs` measures it). Here the lock manager is called
//! directly from a frame that is as PostgreSQL's own C would be, and the Rust code around it
//! runs inside [`guarded`]: an inlined
//! `catch_unwind` that hands a panic to pgrx's guard, which raises it as an ERROR. Each entry
//! point is one function: the checks, the lock manager's call and the ledger's work are inlined
//! into it (the hot ledger paths take no closure; see `BackendLocal::borrow`).
//!
//! The argument for calling `LockAcquireExtended` without pgrx's guard: an ERROR inside it
//! (out of memory growing the local lock table or the entry's owner array, out of shared
//! memory, PostgreSQL 14's first `RecoveryInProgress` after a promotion allocating) is a
//! `siglongjmp` to PostgreSQL's innermost handler, which deallocates the frames between without
//! running anything in them. Rust defines that for "plain old frames" — frames with no value
//! whose destructor is pending and no `catch_unwind` in progress (the C-unwind ABI, RFC 2945;
//! the same condition pgrx's own `pgrx_extern_c_guard` states). The only Rust frame between
//! PostgreSQL's function-call machinery and `LockAcquireExtended` is the entry function below
//! (its helpers are `#[inline(always)]`, and the fast-check hook [`EntryHooks::fast_tag`] has
//! returned before the call, and may neither raise nor panic), and at that call it holds only
//! plain values: the argument pointer, integers, the tag, the result slot. Nothing was changed
//! before the call that an ERROR would leave half done: the grant is reported
//! ([`super::GrantHooks`]) after it, inside [`guarded`]. So an ERROR there behaves exactly as
//! in the built-in `pg_try_advisory_lock`, which makes the same call.

use super::lock::{attempt_made, report_grant};
use super::{unguarded, Extension, Mode, MonthTag, Scope};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::pgrx_extern_c_guard;

/// What the entry points do: implemented above this layer (by the code that declares the SQL
/// functions) for [`Extension`], and called statically, so the hot path pays no indirection.
///
/// The C symbols are frozen: `sql/month_lock--0.1.0.sql` names the releases' and
/// `sql/month_lock--0.1.0--0.2.0.sql` the one-attempt forms', and installed catalogues keep
/// them across upgrades:
///
/// | C symbol                                 | SQL function                               |
/// |------------------------------------------|--------------------------------------------|
/// | `month_lock_try_now_wrapper`             | `month_lock_try(year, month)`              |
/// | `month_lock_try_shared_now_wrapper`      | `month_lock_try_shared(year, month)`       |
/// | `month_lock_try_xact_now_wrapper`        | `month_lock_try_xact(year, month)`         |
/// | `month_lock_try_xact_shared_now_wrapper` | `month_lock_try_xact_shared(year, month)`  |
/// | `month_lock_release_wrapper`             | `month_lock_release(year, month)`          |
/// | `month_lock_release_shared_wrapper`      | `month_lock_release_shared(year, month)`   |
pub trait EntryHooks {
    /// The tag of (year, month) when every fast check passes — settings usable, the month in
    /// range and, for `session`, session-scope locks allowed — else `None`: the call then goes
    /// to the slow hooks. Runs before anything is guarded: must neither raise nor panic.
    fn fast_tag(year: i32, month: i32, session: bool) -> Option<MonthTag>;
    /// The release once the tag is known: the session hold month_lock took, if any.
    fn release(tag: MonthTag, mode: Mode) -> bool;
    /// A one-attempt call the fast checks did not accept: validates again and raises the right
    /// error, or makes the attempt.
    fn slow_attempt(year: Option<i32>, month: Option<i32>, mode: Mode, scope: Scope) -> bool;
    /// A release call the fast checks did not accept, likewise.
    fn slow_release(year: Option<i32>, month: Option<i32>, mode: Mode) -> bool;
}

type Hooks = Extension;

/// `PG_GETARG_INT32` of argument `i`, `None` when it is NULL.
///
/// # Safety
/// `fcinfo` must be the call's argument block, with more than `i` arguments.
#[inline(always)]
unsafe fn int_arg(fcinfo: pg_sys::FunctionCallInfo, i: usize) -> Option<i32> {
    let arg = unsafe { &*(*fcinfo).args.as_ptr().add(i) };
    (!arg.isnull).then_some(arg.value.value() as i32)
}

/// `PG_RETURN_BOOL`.
///
/// # Safety
/// `fcinfo` must be the call's argument block.
#[inline(always)]
unsafe fn return_bool(fcinfo: pg_sys::FunctionCallInfo, value: bool) -> pg_sys::Datum {
    unsafe { (*fcinfo).isnull = false };
    pg_sys::Datum::from(value)
}

/// The tag of the call's (year, month) when the arguments pass the fast checks
/// ([`EntryHooks::fast_tag`]), else `None`.
///
/// # Safety
/// `fcinfo` must be the argument block of a call with two int arguments.
#[inline(always)]
unsafe fn fast_tag(fcinfo: pg_sys::FunctionCallInfo, session: bool) -> Option<MonthTag> {
    match unsafe { (int_arg(fcinfo, 0), int_arg(fcinfo, 1)) } {
        (Some(year), Some(month)) => Hooks::fast_tag(year, month, session),
        _ => None,
    }
}

/// Runs `f`, and turns a panic in it into a PostgreSQL ERROR as pgrx's guard does: the
/// unwinding is caught here and handed to [`reraise`], which resumes it inside pgrx's guard
/// (`pgrx_extern_c_guard`), so the ERROR carries the same message and location. Unlike calling
/// that guard directly, a call that does not panic costs only `f`: `catch_unwind` is inlined
/// and unwinds through tables, while pgrx's guard is an out-of-line call that returns its
/// result inside an error report, which the caller then inspects.
///
/// # Safety
/// Only frames holding plain values may lie below, up to PostgreSQL's: [`reraise`]'s ERROR
/// longjmps over them. `f` may call PostgreSQL through pgrx's guarded bindings (their ERROR
/// arrives here as a panic and is raised again) or through functions that cannot raise; an
/// ERROR longjmp out of `f` would cross this `catch_unwind`.
#[inline(always)]
unsafe fn guarded<R>(f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(value) => value,
        // SAFETY: as this function's; the payload moves into `reraise`.
        Err(payload) => unsafe { reraise(payload) },
    }
}

/// The panic [`guarded`] caught, raised as the ERROR pgrx's guard makes of it.
///
/// # Safety
/// As for [`guarded`].
#[cold]
#[inline(never)]
unsafe fn reraise(payload: Box<dyn std::any::Any + Send>) -> ! {
    // SAFETY: this frame holds nothing with a destructor once the payload has moved into the
    // closure; the frames below hold plain values ([`guarded`]).
    unsafe { pgrx_extern_c_guard(move || std::panic::resume_unwind(payload)) }
}

/// Everything the fast checks did not accept: `slow` validates again and raises the right
/// error, or does the work as the pgrx-wrapped functions do, inside pgrx's guard.
///
/// # Safety
/// As for [`fast_tag`]; only the entry function's frame (plain values) lies below it.
#[cold]
#[inline(never)]
unsafe fn slow_path(
    fcinfo: pg_sys::FunctionCallInfo,
    slow: impl FnOnce(Option<i32>, Option<i32>) -> bool,
) -> pg_sys::Datum {
    let (year, month) = unsafe { (int_arg(fcinfo, 0), int_arg(fcinfo, 1)) };
    let done = unsafe { pgrx_extern_c_guard(move || slow(year, month)) };
    unsafe { return_bool(fcinfo, done) }
}

/// One attempt without waiting: the tag from [`EntryHooks::fast_tag`], `LockAcquireExtended`
/// unguarded (see the module comment), then the grant report. Any argument or setting that the
/// fast checks do not accept goes to [`EntryHooks::slow_attempt`], which validates everything
/// again and raises the right error (or makes the attempt, guarded).
///
/// # Safety
/// `fcinfo` must be the argument block of a call with two int arguments; called only as the
/// body of a version-1 C function (so that its own frame is the only Rust frame below
/// PostgreSQL's).
#[inline(always)]
unsafe fn attempt<const SHARED: bool, const SESSION: bool>(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let (mode, scope, session) = (mode_of(SHARED), scope_of(SESSION), SESSION);
    let Some(tag) = (unsafe { fast_tag(fcinfo, session) }) else {
        return unsafe {
            slow_path(fcinfo, move |year, month| {
                Hooks::slow_attempt(year, month, mode, scope)
            })
        };
    };
    let locktag = tag.locktag();
    let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
    // SAFETY: a valid advisory tag of the user lock method and one of its modes; dontWait, so
    // it never sleeps. An ERROR longjmps over this frame only, which holds plain values (module
    // comment).
    let result = unsafe {
        #[cfg(not(feature = "pg18"))]
        {
            unguarded::LockAcquireExtended(
                &locktag,
                mode.lockmode(),
                session,
                true,
                true,
                &mut locallock,
            )
        }
        #[cfg(feature = "pg18")]
        {
            unguarded::LockAcquireExtended(
                &locktag,
                mode.lockmode(),
                session,
                true,
                true,
                &mut locallock,
                false,
            )
        }
    };
    let granted = match result {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => false,
        // A transaction-scope reference was added (they stack): nothing to record.
        _ if !session => true,
        // A new session hold (the common case): recorded, nothing to undo.
        // SAFETY: only this frame (plain values) lies below.
        pg_sys::LockAcquireResult::LOCKACQUIRE_OK => unsafe {
            guarded(move || report_grant(tag, mode, true));
            true
        },
        // SAFETY: `result` and `locallock` are what LockAcquireExtended just returned.
        _ => unsafe { session_attempt_made(tag, mode, result, locallock) },
    };
    unsafe { return_bool(fcinfo, granted) }
}

/// `attempt_made` for a session-scope re-entry (the lock was held already), guarded (the
/// grant hook could panic only on a broken invariant, which then becomes an ERROR).
///
/// # Safety
/// As for `attempt_made`.
#[inline(never)]
unsafe fn session_attempt_made(
    tag: MonthTag,
    mode: Mode,
    result: pg_sys::LockAcquireResult::Type,
    locallock: *mut pg_sys::LOCALLOCK,
) -> bool {
    // SAFETY: the entry function's frame below holds plain values only; `attempt_made` calls
    // PostgreSQL only through `LockRelease`, which cannot raise here (`release::lock_release`).
    unsafe { guarded(move || attempt_made(tag, mode, Scope::Session, result, locallock).granted()) }
}

/// The releases: [`EntryHooks::release`] runs inside [`guarded`]; the wrapper only reads the
/// arguments and returns the result.
///
/// # Safety
/// As for [`attempt`].
#[inline(always)]
unsafe fn release<const SHARED: bool>(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let mode = mode_of(SHARED);
    let Some(tag) = (unsafe { fast_tag(fcinfo, false) }) else {
        return unsafe {
            slow_path(fcinfo, move |year, month| {
                Hooks::slow_release(year, month, mode)
            })
        };
    };
    // SAFETY: this frame holds no value with a destructor; the release calls PostgreSQL only
    // through `LockRelease`, which cannot raise here (`release::lock_release`).
    let released = unsafe { guarded(move || Hooks::release(tag, mode)) };
    unsafe { return_bool(fcinfo, released) }
}

// The entry points' mode and scope are const parameters, so that every entry point has closures
// of its own type: each [`guarded`] body then has a single caller, which the compiler inlines
// into the entry function instead of calling it (a call and the registers it saves, each time).

#[inline(always)]
const fn mode_of(shared: bool) -> Mode {
    if shared {
        Mode::Shared
    } else {
        Mode::Exclusive
    }
}

#[inline(always)]
const fn scope_of(session: bool) -> Scope {
    if session {
        Scope::Session
    } else {
        Scope::Transaction
    }
}

/// A version-1 C function (`PG_FUNCTION_INFO_V1`) with the given body.
macro_rules! v1_function {
    ($name:ident, $finfo:ident, |$fcinfo:ident| $body:expr) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub unsafe extern "C-unwind" fn $name($fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            // SAFETY: PostgreSQL calls it with the argument block of its SQL declaration
            // (two int arguments; see `EntryHooks`).
            unsafe { $body }
        }

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1_API
        }
    };
}

v1_function!(
    month_lock_try_now_wrapper,
    pg_finfo_month_lock_try_now_wrapper,
    |fcinfo| attempt::<false, true>(fcinfo)
);
v1_function!(
    month_lock_try_shared_now_wrapper,
    pg_finfo_month_lock_try_shared_now_wrapper,
    |fcinfo| attempt::<true, true>(fcinfo)
);
v1_function!(
    month_lock_try_xact_now_wrapper,
    pg_finfo_month_lock_try_xact_now_wrapper,
    |fcinfo| attempt::<false, false>(fcinfo)
);
v1_function!(
    month_lock_try_xact_shared_now_wrapper,
    pg_finfo_month_lock_try_xact_shared_now_wrapper,
    |fcinfo| attempt::<true, false>(fcinfo)
);
v1_function!(
    month_lock_release_wrapper,
    pg_finfo_month_lock_release_wrapper,
    |fcinfo| release::<false>(fcinfo)
);
v1_function!(
    month_lock_release_shared_wrapper,
    pg_finfo_month_lock_release_shared_wrapper,
    |fcinfo| release::<true>(fcinfo)
);
