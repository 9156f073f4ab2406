//! The three ways of taking a month that the main table compares, and one value per way.

use std::ops::{Index, IndexMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    MonthLock,
    Queued,
    Polling,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::MonthLock, Method::Queued, Method::Polling];

    /// Name in file names (pgbench scripts).
    pub fn key(self) -> &'static str {
        match self {
            Method::MonthLock => "month_lock",
            Method::Queued => "builtin_queued_wait",
            Method::Polling => "polling",
        }
    }

    /// Name in the table and the chart.
    pub fn label(self) -> &'static str {
        match self {
            Method::MonthLock => "month_lock",
            Method::Queued => "built-in queued wait",
            Method::Polling => "polling (100 ms)",
        }
    }
}

/// One value per method.
#[derive(Clone, Debug)]
pub struct PerMethod<T> {
    pub month_lock: T,
    pub builtin_queued_wait: T,
    pub polling: T,
}

impl<T> PerMethod<T> {
    pub fn from_fn(mut f: impl FnMut(Method) -> T) -> PerMethod<T> {
        PerMethod {
            month_lock: f(Method::MonthLock),
            builtin_queued_wait: f(Method::Queued),
            polling: f(Method::Polling),
        }
    }

    /// month_lock and the built-in only; the polling column reads "—".
    pub fn two(month_lock: T, builtin: T) -> PerMethod<T>
    where
        T: From<&'static str>,
    {
        PerMethod {
            month_lock,
            builtin_queued_wait: builtin,
            polling: NOT_MEASURED.into(),
        }
    }

    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> PerMethod<U> {
        PerMethod::from_fn(|m| f(&self[m]))
    }

    /// (method, value) in [`Method::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Method, &T)> {
        Method::ALL.into_iter().map(move |m| (m, &self[m]))
    }
}

/// The cell of the polling column in the figures that compare month_lock with the built-in only.
pub const NOT_MEASURED: &str = "—";

impl<T> Index<Method> for PerMethod<T> {
    type Output = T;
    fn index(&self, m: Method) -> &T {
        match m {
            Method::MonthLock => &self.month_lock,
            Method::Queued => &self.builtin_queued_wait,
            Method::Polling => &self.polling,
        }
    }
}

impl<T> IndexMut<Method> for PerMethod<T> {
    fn index_mut(&mut self, m: Method) -> &mut T {
        match m {
            Method::MonthLock => &mut self.month_lock,
            Method::Queued => &mut self.builtin_queued_wait,
            Method::Polling => &mut self.polling,
        }
    }
}
