//! The MONTHS argument of `run` (`2024-03`, `2024-01..2024-03`, `2024-01,2024-04..2024-06`); the
//! same compact form is written by `text::describe_months` (for `MONTH_LOCK_MONTHS`, messages).

use month_lock_client::YearMonth;

/// Months as written: comma-separated items, each `YYYY-MM` or `FIRST..LAST` (inclusive), in
/// the order given (duplicates kept; the library removes them).
pub fn parse(s: &str) -> Result<Vec<YearMonth>, String> {
    let mut months = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        match item.split_once("..") {
            Some((first, last)) => {
                let first: YearMonth = first.trim().parse().map_err(|e| format!("{e}"))?;
                let last: YearMonth = last.trim().parse().map_err(|e| format!("{e}"))?;
                if last < first {
                    return Err(format!("empty range {item}: {last} is before {first}"));
                }
                months.extend(first.through(last));
            }
            None => months.push(item.parse().map_err(|e| format!("{e}"))?),
        }
    }
    Ok(months)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::describe_months as format;

    fn ym(s: &str) -> YearMonth {
        s.parse().unwrap()
    }

    #[test]
    fn months_parse_and_format_round_trip() {
        assert_eq!(parse("2024-03").unwrap(), [ym("2024-03")]);
        let q = parse("2023-12..2024-02").unwrap();
        assert_eq!(q, [ym("2023-12"), ym("2024-01"), ym("2024-02")]);
        assert_eq!(format(&q), "2023-12..2024-02");
        let list = parse("2024-01, 2024-03..2024-04,2024-06").unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(format(&list), "2024-01,2024-03..2024-04,2024-06");
        assert!(parse("2024-03..2024-01")
            .unwrap_err()
            .contains("empty range"));
        assert!(parse("2024-13").is_err());
        assert!(parse("").is_err());
        assert!(parse("2024-01..").is_err());
    }
}
