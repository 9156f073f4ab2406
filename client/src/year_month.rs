//! [`YearMonth`]: one validated calendar month, and ranges of them.

use std::fmt;
use std::iter::FusedIterator;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One calendar month between `0001-01` and `9999-12`, the months `month_lock` can lock.
///
/// Construct it with [`YearMonth::new`] or parse `YYYY-MM` ([`FromStr`]); it prints as
/// `YYYY-MM` ([`Display`](fmt::Display)), orders chronologically ([`Ord`]) and (de)serializes
/// with serde as the string `"YYYY-MM"`.
///
/// ```
/// use month_lock_client::YearMonth;
///
/// let march: YearMonth = "2024-03".parse()?;
/// assert_eq!((march.year(), march.month()), (2024, 3));
/// assert_eq!(march.to_string(), "2024-03");
/// assert_eq!(march.succ().unwrap().to_string(), "2024-04");
/// assert!(march < YearMonth::new(2024, 4)?);
/// assert_eq!(serde_json::to_string(&march).unwrap(), "\"2024-03\"");
/// # Ok::<(), month_lock_client::InvalidYearMonth>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    // Field order matters: the derived Ord compares year first.
    year: u16,
    month: u8,
}

/// Why a value is not a valid [`YearMonth`]; see [`InvalidYearMonth::reason`].
///
/// ```
/// use month_lock_client::{InvalidReason, YearMonth};
///
/// let err = "2024-13".parse::<YearMonth>().unwrap_err();
/// assert_eq!(err.reason(), InvalidReason::MonthOutOfRange);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReason {
    /// The text is not of the form `YYYY-MM`.
    Format,
    /// The year is outside `1..=9999`.
    YearOutOfRange,
    /// The month is outside `1..=12`.
    MonthOutOfRange,
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidReason::Format => "expected YYYY-MM, e.g. 2024-03",
            InvalidReason::YearOutOfRange => "year must be between 1 and 9999",
            InvalidReason::MonthOutOfRange => "month must be between 1 and 12",
        })
    }
}

/// A value that is not a valid [`YearMonth`]. The message names the value.
///
/// ```
/// use month_lock_client::YearMonth;
///
/// let err = YearMonth::new(2024, 0).unwrap_err();
/// assert_eq!(err.value(), "2024-00");
/// assert_eq!(err.to_string(), "invalid month \"2024-00\": month must be between 1 and 12");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid month {value:?}: {reason}")]
pub struct InvalidYearMonth {
    value: String,
    reason: InvalidReason,
}

impl InvalidYearMonth {
    fn new(value: impl Into<String>, reason: InvalidReason) -> Self {
        InvalidYearMonth {
            value: value.into(),
            reason,
        }
    }

    /// The rejected value, as given (numbers are shown as `year-month`).
    ///
    /// ```
    /// use month_lock_client::YearMonth;
    /// assert_eq!("march".parse::<YearMonth>().unwrap_err().value(), "march");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why it was rejected.
    ///
    /// ```
    /// use month_lock_client::{InvalidReason, YearMonth};
    /// assert_eq!(YearMonth::new(0, 1).unwrap_err().reason(), InvalidReason::YearOutOfRange);
    /// ```
    pub fn reason(&self) -> InvalidReason {
        self.reason
    }
}

impl YearMonth {
    /// The first lockable month, `0001-01`.
    ///
    /// ```
    /// use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::MIN.to_string(), "0001-01");
    /// assert_eq!(YearMonth::MIN.pred(), None);
    /// ```
    pub const MIN: YearMonth = YearMonth { year: 1, month: 1 };

    /// The last lockable month, `9999-12`.
    ///
    /// ```
    /// use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::MAX.to_string(), "9999-12");
    /// assert_eq!(YearMonth::MAX.succ(), None);
    /// ```
    pub const MAX: YearMonth = YearMonth {
        year: 9999,
        month: 12,
    };

    /// A month, if `year` is in `1..=9999` and `month` in `1..=12`.
    ///
    /// ```
    /// use month_lock_client::YearMonth;
    /// assert!(YearMonth::new(2024, 3).is_ok());
    /// assert!(YearMonth::new(2024, 13).is_err());
    /// assert!(YearMonth::new(10_000, 1).is_err());
    /// ```
    pub fn new(year: i32, month: u32) -> Result<Self, InvalidYearMonth> {
        if !(1..=9999).contains(&year) {
            return Err(InvalidYearMonth::new(
                format!("{year}-{month:02}"),
                InvalidReason::YearOutOfRange,
            ));
        }
        if !(1..=12).contains(&month) {
            return Err(InvalidYearMonth::new(
                format!("{year:04}-{month:02}"),
                InvalidReason::MonthOutOfRange,
            ));
        }
        Ok(YearMonth {
            year: year as u16,
            month: month as u8,
        })
    }

    /// The year, `1..=9999`.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::new(2024, 3)?.year(), 2024);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn year(self) -> i32 {
        self.year as i32
    }

    /// The month of the year, `1..=12`.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::new(2024, 3)?.month(), 3);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub const fn month(self) -> u32 {
        self.month as u32
    }

    /// The month after this one; `None` after `9999-12`.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::new(2024, 12)?.succ(), Some(YearMonth::new(2025, 1)?));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn succ(self) -> Option<Self> {
        (self < Self::MAX).then(|| Self::from_index(self.index() + 1))
    }

    /// The month before this one; `None` before `0001-01`.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::new(2024, 1)?.pred(), Some(YearMonth::new(2023, 12)?));
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn pred(self) -> Option<Self> {
        (self > Self::MIN).then(|| Self::from_index(self.index() - 1))
    }

    /// The months from `self` to `last`, both included, in order (empty if `last < self`).
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// let q4: Vec<String> = YearMonth::new(2023, 11)?
    ///     .through(YearMonth::new(2024, 1)?)
    ///     .map(|ym| ym.to_string())
    ///     .collect();
    /// assert_eq!(q4, ["2023-11", "2023-12", "2024-01"]);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn through(self, last: YearMonth) -> YearMonthRange {
        YearMonthRange::new(self, last)
    }

    /// The month containing `date`.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// let d = chrono::NaiveDate::from_ymd_opt(2024, 3, 15).unwrap();
    /// assert_eq!(YearMonth::containing(d).to_string(), "2024-03");
    /// ```
    ///
    /// # Panics
    /// If the date's year is outside `1..=9999`.
    pub fn containing(date: chrono::NaiveDate) -> Self {
        use chrono::Datelike;
        YearMonth::new(date.year(), date.month()).expect("date with a year in 1..=9999")
    }

    /// The first day of the month.
    ///
    /// ```
    /// # use month_lock_client::YearMonth;
    /// assert_eq!(YearMonth::new(2024, 3)?.first_day().to_string(), "2024-03-01");
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn first_day(self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(self.year(), self.month(), 1).expect("valid month")
    }

    /// Months since 0001-01.
    fn index(self) -> u32 {
        (self.year as u32) * 12 + self.month as u32 - 1
    }

    fn from_index(i: u32) -> Self {
        YearMonth {
            year: (i / 12) as u16,
            month: (i % 12 + 1) as u8,
        }
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YearMonth({self})")
    }
}

impl FromStr for YearMonth {
    type Err = InvalidYearMonth;

    /// Parses `YYYY-MM` (the year may have 1 to 4 digits, the month 1 or 2).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidYearMonth::new(s, InvalidReason::Format);
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str, max: usize| {
            !t.is_empty() && t.len() <= max && t.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(y, 4) || !digits(m, 2) {
            return Err(bad());
        }
        let (year, month): (i32, u32) =
            (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        YearMonth::new(year, month).map_err(|e| InvalidYearMonth::new(s, e.reason))
    }
}

impl TryFrom<(i32, u32)> for YearMonth {
    type Error = InvalidYearMonth;

    /// `(year, month)` to a month, validated like [`YearMonth::new`].
    fn try_from((year, month): (i32, u32)) -> Result<Self, Self::Error> {
        YearMonth::new(year, month)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = YearMonth;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a month as \"YYYY-MM\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YearMonth, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// An inclusive range of months, in chronological order; made by [`YearMonth::through`].
///
/// It is double-ended and knows its length.
///
/// ```
/// use month_lock_client::{YearMonth, YearMonthRange};
///
/// let year: YearMonthRange = YearMonthRange::new("2024-01".parse()?, "2024-12".parse()?);
/// assert_eq!(year.len(), 12);
/// assert_eq!(year.clone().next_back().unwrap().to_string(), "2024-12");
/// assert_eq!(year.rev().next().unwrap().to_string(), "2024-12");
/// # Ok::<(), month_lock_client::InvalidYearMonth>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YearMonthRange {
    /// Index of the next month to yield.
    front: u32,
    /// One past the index of the last month to yield.
    back: u32,
}

impl YearMonthRange {
    /// The months `first..=last` (empty if `last < first`).
    ///
    /// ```
    /// # use month_lock_client::{YearMonth, YearMonthRange};
    /// let m: YearMonth = "2024-05".parse()?;
    /// assert_eq!(YearMonthRange::new(m, m).count(), 1);
    /// assert_eq!(YearMonthRange::new(m, m.pred().unwrap()).count(), 0);
    /// # Ok::<(), month_lock_client::InvalidYearMonth>(())
    /// ```
    pub fn new(first: YearMonth, last: YearMonth) -> Self {
        let front = first.index();
        let back = (last.index() + 1).max(front);
        YearMonthRange { front, back }
    }
}

impl Iterator for YearMonthRange {
    type Item = YearMonth;

    fn next(&mut self) -> Option<YearMonth> {
        (self.front < self.back).then(|| {
            self.front += 1;
            YearMonth::from_index(self.front - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.back - self.front) as usize;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for YearMonthRange {
    fn next_back(&mut self) -> Option<YearMonth> {
        (self.front < self.back).then(|| {
            self.back -= 1;
            YearMonth::from_index(self.back)
        })
    }
}

impl ExactSizeIterator for YearMonthRange {}
impl FusedIterator for YearMonthRange {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(ym("2024-03"), YearMonth::new(2024, 3).unwrap());
        assert_eq!(ym("2024-3").to_string(), "2024-03");
        assert_eq!(ym("1-1").to_string(), "0001-01");
        assert_eq!(ym("9999-12"), YearMonth::MAX);
        assert_eq!(format!("{:?}", ym("2024-03")), "YearMonth(2024-03)");
    }

    #[test]
    fn rejects_bad_text_naming_the_value() {
        for (text, reason) in [
            ("2024-13", InvalidReason::MonthOutOfRange),
            ("2024-00", InvalidReason::MonthOutOfRange),
            ("0000-05", InvalidReason::YearOutOfRange),
            ("2024", InvalidReason::Format),
            ("2024-03-01", InvalidReason::Format),
            ("24-003", InvalidReason::Format),
            ("+2024-03", InvalidReason::Format),
            ("2024--3", InvalidReason::Format),
            (" 2024-03", InvalidReason::Format),
            ("10000-01", InvalidReason::Format),
            ("", InvalidReason::Format),
            ("２０２４-03", InvalidReason::Format),
        ] {
            let err = text.parse::<YearMonth>().unwrap_err();
            assert_eq!(err.reason(), reason, "{text:?}");
            assert_eq!(err.value(), text);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
        let err = YearMonth::new(-5, 3).unwrap_err();
        assert_eq!(err.reason(), InvalidReason::YearOutOfRange);
        assert_eq!(err.value(), "-5-03");
        assert_eq!(
            YearMonth::try_from((2024, 13)).unwrap_err().value(),
            "2024-13"
        );
    }

    #[test]
    fn orders_chronologically() {
        let mut v = vec![ym("2024-01"), ym("2023-12"), ym("2024-10"), ym("0999-02")];
        v.sort();
        assert_eq!(
            v,
            [ym("0999-02"), ym("2023-12"), ym("2024-01"), ym("2024-10")]
        );
    }

    #[test]
    fn succ_and_pred_cross_years_and_stop_at_the_ends() {
        assert_eq!(ym("2023-12").succ(), Some(ym("2024-01")));
        assert_eq!(ym("2024-01").pred(), Some(ym("2023-12")));
        assert_eq!(ym("2024-05").succ().unwrap().pred(), Some(ym("2024-05")));
        assert_eq!(YearMonth::MAX.succ(), None);
        assert_eq!(YearMonth::MIN.pred(), None);
    }

    #[test]
    fn inclusive_ranges() {
        let r: Vec<_> = ym("2023-11")
            .through(ym("2024-02"))
            .map(|m| m.to_string())
            .collect();
        assert_eq!(r, ["2023-11", "2023-12", "2024-01", "2024-02"]);
        assert_eq!(
            ym("2024-02").through(ym("2024-02")).collect::<Vec<_>>(),
            [ym("2024-02")]
        );
        assert_eq!(ym("2024-02").through(ym("2024-01")).count(), 0);
        assert_eq!(YearMonth::MIN.through(YearMonth::MAX).len(), 9999 * 12);
        assert_eq!(
            YearMonth::MIN.through(YearMonth::MAX).next_back(),
            Some(YearMonth::MAX)
        );
        let back: Vec<_> = ym("2024-01").through(ym("2024-03")).rev().collect();
        assert_eq!(back, [ym("2024-03"), ym("2024-02"), ym("2024-01")]);
        let mut mixed = ym("2024-01").through(ym("2024-04"));
        assert_eq!(mixed.next(), Some(ym("2024-01")));
        assert_eq!(mixed.next_back(), Some(ym("2024-04")));
        assert_eq!(mixed.len(), 2);
        assert_eq!(mixed.next(), Some(ym("2024-02")));
        assert_eq!(mixed.next_back(), Some(ym("2024-03")));
        assert_eq!(mixed.next(), None);
        assert_eq!(mixed.next_back(), None);
    }

    #[test]
    fn serde_round_trip_and_rejection() {
        let m = ym("2024-03");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2024-03\"");
        assert_eq!(serde_json::from_str::<YearMonth>("\"2024-03\"").unwrap(), m);
        let err = serde_json::from_str::<YearMonth>("\"2024-13\"").unwrap_err();
        assert!(err.to_string().contains("2024-13"), "{err}");
        assert!(serde_json::from_str::<YearMonth>("202403").is_err());
    }

    #[test]
    fn dates() {
        let d = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(YearMonth::containing(d), ym("2024-02"));
        assert_eq!(
            ym("2024-02").first_day(),
            chrono::NaiveDate::from_ymd_opt(2024, 2, 1).unwrap()
        );
    }
}
