//! Text for messages, written once and compiled into both the library and the `month-lock`
//! command (its `main.rs` includes this file by path), public in neither.

use crate::YearMonth;

/// Months for messages: runs of consecutive months as `FIRST..LAST`, joined by commas, in the
/// given order (`2024-01..2024-03,2024-06`).
pub(crate) fn describe_months(months: &[YearMonth]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < months.len() {
        let mut j = i;
        while j + 1 < months.len() && months[j].succ() == Some(months[j + 1]) {
            j += 1;
        }
        parts.push(if j == i {
            months[i].to_string()
        } else {
            format!("{}..{}", months[i], months[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// `e` and its sources, joined by ": ", skipping a source whose text the previous one already
/// shows (tokio-postgres prints only "error connecting to server", the cause holds the rest).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_skip_repeated_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = crate::Error::UnexpectedAnswer("x".into());
        assert_eq!(error_chain(&e), "unexpected answer from the server: x");
        assert_eq!(error_chain(&io), "Connection refused");
    }
}
