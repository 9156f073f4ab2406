//! `month-lock run` with several months (docs/cli.md, "`month-lock run`"): a range held all or
//! nothing with the MONTH_LOCK_* variables set, and `--any`.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use month_lock_client::{MonthLock, MonthLockExt};
use month_lock_tests::server;

use common::cli::{cli, cli_holder_pid, output, scratch_dir, text, wait_for_file};
use common::months::ym;

/// `sh -c SCRIPT` writing the MONTH_LOCK_* variables (`-` for unset) to `file`, then sleeping
/// `pause` seconds.
fn env_script(file: &Path, pause: &str) -> String {
    format!(
        "echo ${{MONTH_LOCK_MONTH--}} ${{MONTH_LOCK_MONTHS--}} ${{MONTH_LOCK_TOKEN--}} ${{MONTH_LOCK_TOKENS--}} > {f}.tmp; \
         mv {f}.tmp {f}; sleep {pause}",
        f = file.display()
    )
}

#[tokio::test]
async fn run_with_a_range_holds_every_month_and_sets_the_environment() {
    let db = server().await.fresh_db("cli_range").await;
    let observer = db.connect().await;
    let dir = scratch_dir("range");
    let file = dir.join("env");
    let run = cli(&db)
        .args([
            "run",
            "2024-01..2024-03",
            "--timeout",
            "5s",
            "--",
            "sh",
            "-c",
        ])
        .arg(env_script(&file, "0.5"))
        .env("MONTH_LOCK_MONTH", "inherited")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_file(&file).await;
    for m in ["2024-01", "2024-02", "2024-03"] {
        assert!(observer.is_locked(ym(m)).await.unwrap(), "{m} held");
    }
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..2], ["-", "2024-01..2024-03"], "{line:?}");
    let max: i64 = fields[2].parse().unwrap();
    let tokens: Vec<(&str, i64)> = fields[3]
        .split(',')
        .map(|p| {
            let (m, t) = p.split_once(':').unwrap();
            (m, t.parse().unwrap())
        })
        .collect();
    assert_eq!(
        tokens.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        ["2024-01", "2024-02", "2024-03"]
    );
    assert_eq!(tokens.iter().map(|(_, t)| *t).max(), Some(max));
    for m in ["2024-01", "2024-02", "2024-03"] {
        assert!(!observer.is_locked(ym(m)).await.unwrap(), "{m} released");
    }

    // One month: MONTH_LOCK_MONTH set; the next run's token is larger.
    let file2 = dir.join("env2");
    let out = output(
        cli(&db)
            .args(["run", "2024-02", "--", "sh", "-c"])
            .arg(env_script(&file2, "0")),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = std::fs::read_to_string(&file2).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..2], ["2024-02", "2024-02"], "{line:?}");
    assert!(fields[2].parse::<i64>().unwrap() > tokens[1].1);
    assert_eq!(fields[3], format!("2024-02:{}", fields[2]));

    // Shared: no token variables.
    let file3 = dir.join("env3");
    let out = output(
        cli(&db)
            .args(["run", "2024-02", "--shared", "--", "sh", "-c"])
            .arg(env_script(&file3, "0")),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&file3).unwrap(),
        "2024-02 2024-02 - -\n"
    );
}

#[tokio::test]
async fn run_with_a_range_is_all_or_nothing() {
    let db = server().await.fresh_db("cli_range_busy").await;
    let other = db.connect().await;
    let dir = scratch_dir("range_busy");
    let held = MonthLock::new(ym("2024-02")).acquire(&other).await.unwrap();
    let out = output(
        cli(&db)
            .args([
                "run",
                "2024-01..2024-03",
                "--timeout",
                "200ms",
                "--",
                "touch",
            ])
            .arg(dir.join("ran")),
    )
    .await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("2024-01..2024-03") && err.contains("2024-02: pid"),
        "{err}"
    );
    assert!(!dir.join("ran").exists());
    for m in ["2024-01", "2024-03"] {
        assert!(!other.is_locked(ym(m)).await.unwrap(), "{m} left free");
    }
    drop(held);

    for bad in [
        vec!["run", "2024-01..2024-02", "--shared", "--", "true"],
        vec![
            "run",
            "--any",
            "2024-01..2024-02",
            "--timeout",
            "1s",
            "--",
            "true",
        ],
        vec!["run", "2024-03..2024-01", "--", "true"],
    ] {
        let out = output(cli(&db).args(&bad)).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
}

#[tokio::test]
async fn run_any_takes_one_free_month_or_exits_75() {
    let db = server().await.fresh_db("cli_any").await;
    let other = db.connect().await;
    let dir = scratch_dir("any");
    let first = MonthLock::new(ym("2024-01")).acquire(&other).await.unwrap();

    let file = dir.join("env");
    let run = cli(&db)
        .args(["run", "--any", "2024-01..2024-12", "--", "sh", "-c"])
        .arg(env_script(&file, "0.5"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = wait_for_file(&file).await;
    assert!(cli_holder_pid(&other, ym("2024-02")).await > 0);
    assert!(
        !other.is_locked(ym("2024-03")).await.unwrap(),
        "one month only"
    );
    let out = tokio::time::timeout(Duration::from_secs(30), run.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[..2], ["2024-02", "2024-02"], "{line:?}");
    let token: i64 = fields[2].parse().unwrap();
    assert!(token > 0);
    assert_eq!(fields[3], format!("2024-02:{token}"));

    // The documented CMD: echo $MONTH_LOCK_MONTH $MONTH_LOCK_TOKEN > file.
    let file2 = dir.join("simple");
    let out = output(
        cli(&db)
            .args(["run", "--any", "2024-01,2024-05", "--", "sh", "-c"])
            .arg(format!(
                "echo $MONTH_LOCK_MONTH $MONTH_LOCK_TOKEN > {}",
                file2.display()
            )),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let simple = std::fs::read_to_string(&file2).unwrap();
    let (month, token2) = simple.trim().split_once(' ').unwrap();
    assert_eq!(month, "2024-05");
    assert!(token2.parse::<i64>().unwrap() > 0);

    // Every month held by another session: 75, CMD not run, nothing taken.
    let rest = MonthLock::range(ym("2024-02"), ym("2024-12"))
        .unwrap()
        .acquire(&other)
        .await
        .unwrap();
    let out = output(
        cli(&db)
            .args(["run", "--any", "2024-01..2024-12", "--", "touch"])
            .arg(dir.join("ran")),
    )
    .await;
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no month of 2024-01..2024-12 is free"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.join("ran").exists());
    drop((first, rest));
}
