//! The command's argument checks and its output formats.

use super::*;
use month_lock_client::MonthLockInfo;

fn row(year: i32, addr: Option<&str>, start: bool) -> MonthLockInfo {
    serde_json::from_value(serde_json::json!({
        "year": year, "month": 3,
        "month_start": format!("{year:04}-03-01"),
        "mode": "exclusive", "granted": true, "pid": 42,
        "waiting_since": null, "application_name": "a", "usename": "u",
        "client_addr": addr,
        "backend_start": if start { Some("2024-01-01T00:00:00Z") } else { None },
    }))
    .unwrap()
}

#[test]
fn status_writes_four_digit_years_and_tells_local_from_hidden_clients() {
    let text = table(&[
        row(5, None, true),
        row(2024, Some("10.0.0.7"), true),
        row(2025, None, false),
    ]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("0005-03 "), "{text}");
    assert!(lines[1].contains(" local "), "{text}");
    assert!(lines[2].contains(" 10.0.0.7 "), "{text}");
    assert!(lines[3].contains(" hidden"), "{text}");
}

#[test]
fn heartbeat_is_bounded() {
    assert!(parse_heartbeat("0").is_err());
    assert!(parse_heartbeat("10ms").is_err());
    assert!(parse_heartbeat("2h").is_err());
    assert_eq!(parse_heartbeat("250ms"), Ok(Duration::from_millis(250)));
}

#[test]
fn exit_status_of_a_signalled_child_is_128_plus_n() {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
    assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
}
