//! `month-lock status`: the month_locks view as a table or JSON lines.

use month_lock_client::tokio_postgres::Client;
use month_lock_client::{Error, MonthLockExt, MonthLockInfo};
use std::io::Write;

pub async fn status(client: &Client, json: bool) -> Result<i32, Error> {
    let rows = client.locks().await?;
    let mut out = std::io::stdout().lock();
    if json {
        for row in &rows {
            let line = serde_json::to_string(row).expect("serializable");
            let _ = writeln!(out, "{line}");
        }
        return Ok(0);
    }
    let _ = out.write_all(table(&rows).as_bytes());
    Ok(0)
}

/// A row's month as everywhere else: `0005-03`.
pub fn month_of(r: &MonthLockInfo) -> String {
    r.year_month()
        .map(|m| m.to_string())
        .unwrap_or_else(|| format!("{:04}-{:02}", r.year, r.month))
}

/// A row's client: its address; `local` for a Unix-socket client; `hidden` when the view hides
/// another role's session (then `backend_start` is hidden too).
fn client_of(r: &MonthLockInfo) -> String {
    match (r.client_addr, r.pid, r.backend_start) {
        (Some(addr), _, _) => addr.to_string(),
        (None, None, _) => String::new(),
        (None, Some(_), Some(_)) => "local".into(),
        (None, Some(_), None) => "hidden".into(),
    }
}

pub fn table(rows: &[MonthLockInfo]) -> String {
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let time = |t: &Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    let mut lines: Vec<[String; 9]> = vec![[
        "MONTH",
        "MODE",
        "STATE",
        "PID",
        "APPLICATION",
        "USER",
        "CLIENT",
        "WAITING SINCE",
        "BACKEND START",
    ]
    .map(String::from)];
    for r in rows {
        lines.push([
            month_of(r),
            r.mode.to_string(),
            if r.granted { "held" } else { "waiting" }.to_string(),
            r.pid.map(|p| p.to_string()).unwrap_or_default(),
            opt(&r.application_name),
            opt(&r.usename),
            client_of(r),
            time(&r.waiting_since),
            time(&r.backend_start),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    if rows.is_empty() {
        text.push_str("(no month locks)\n");
    }
    text
}
