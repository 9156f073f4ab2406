//! The kinds of request, as marker types of [`MonthLock`](crate::MonthLock): what a request of
//! each kind may be given is decided by its type, so a combination the server does not offer
//! does not compile.

use std::fmt;

/// One kind of request: [`One`], [`AllOf`] or [`AnyOf`]. Sealed: this crate's three only.
pub trait Kind:
    sealed::Sealed + Copy + fmt::Debug + Eq + std::hash::Hash + Send + Sync + 'static
{
}

/// One month, exclusive or shared, waiting without limit or up to a timeout
/// ([`MonthLock::new`](crate::MonthLock::new)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct One;

/// Every month of a set, exclusive, all or nothing, waiting without limit or up to one overall
/// timeout ([`MonthLock::set`](crate::MonthLock::set), [`range`](crate::MonthLock::range)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AllOf;

/// The first free month of a list, exclusive, never waiting
/// ([`MonthLock::any_of`](crate::MonthLock::any_of)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnyOf;

impl Kind for One {}
impl Kind for AllOf {}
impl Kind for AnyOf {}

/// The kind as a value, for the code shared by all kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Form {
    One,
    All,
    Any,
}

pub(crate) fn form<K: Kind>() -> Form {
    K::FORM.0
}

mod sealed {
    /// Public in a private module: nameable by this crate only.
    #[derive(Clone, Copy, Debug)]
    pub struct FormOf(pub(crate) super::Form);

    pub trait Sealed {
        const FORM: FormOf;
    }
    impl Sealed for super::One {
        const FORM: FormOf = FormOf(super::Form::One);
    }
    impl Sealed for super::AllOf {
        const FORM: FormOf = FormOf(super::Form::All);
    }
    impl Sealed for super::AnyOf {
        const FORM: FormOf = FormOf(super::Form::Any);
    }
}

/// A set or `any_of` request without a month, refused when it is made
/// ([`MonthLock::set`](crate::MonthLock::set), [`range`](crate::MonthLock::range) with `last`
/// before `first`, [`any_of`](crate::MonthLock::any_of)). Converts into
/// [`Error::InvalidRequest`](crate::Error::InvalidRequest) with `?`.
///
/// ```
/// use month_lock_client::{MonthLock, NoMonths, YearMonth};
/// assert_eq!(MonthLock::set(Vec::<YearMonth>::new()).unwrap_err(), NoMonths);
/// assert_eq!(NoMonths.to_string(), "no months given");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("no months given")]
pub struct NoMonths;
