//! Figure 10: what a fencing token costs the statement that asks for it. The transaction that
//! receives a token commits synchronously (a transaction id, a commit record and a WAL flush:
//! README, "Fencing tokens"); the comparison is `nextval` of a plain sequence, which a
//! hand-made token would use and whose commit neither flushes nor waits. The benchmark's
//! cluster runs with `fsync = off`: on a real disk each token statement adds one WAL fsync.

use crate::figures::{median_range_us, Dist, Row, NOT_MEASURED};
use crate::methods::PerMethod;
use month_lock_tests::TestDb;
use serde::Serialize;
use std::time::Instant;

/// Autocommit statements, one round trip each: µs per statement.
#[derive(Serialize)]
pub struct TokenCost {
    pub statements: usize,
    pub month_lock_token_us: Dist,
    pub plain_nextval_us: Dist,
    pub month_lock_over_nextval: f64,
}

impl TokenCost {
    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "10. Fencing token: µs per autocommit statement (one round trip), median (min–max) of {} interleaved; built-in: nextval of a plain sequence (commit without flush); cluster with fsync = off",
                self.statements
            ),
            cells: PerMethod {
                month_lock: median_range_us(&self.month_lock_token_us),
                builtin_queued_wait: median_range_us(&self.plain_nextval_us),
                polling: NOT_MEASURED.into(),
            },
            target: "measured (durable before the commit returns)".into(),
            met: None,
            note: format!("{:.2}× nextval", self.month_lock_over_nextval),
        }
    }
}

/// Holds a month and asks for its token `statements` times, interleaved with as many `nextval`
/// calls of a plain sequence.
pub async fn measure(db: &TestDb, statements: usize) -> TokenCost {
    let client = db.connect_as("bench token").await;
    client
        .batch_execute(
            "CREATE SEQUENCE IF NOT EXISTS bench_plain_seq;
             SELECT month_lock_try(2101, 1);
             SELECT month_lock_token(2101, 1), nextval('bench_plain_seq')",
        )
        .await
        .expect("set up the token figure");
    let calls = [
        "SELECT month_lock_token(2101, 1)",
        "SELECT nextval('bench_plain_seq')",
    ];
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..statements {
        for (i, sql) in calls.iter().enumerate() {
            let start = Instant::now();
            client.simple_query(sql).await.expect(sql);
            times[i].push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    client
        .batch_execute("SELECT month_lock_release(2101, 1)")
        .await
        .expect("release");
    let (a, b) = (Dist::of(&times[0]), Dist::of(&times[1]));
    eprintln!(
        "token: month_lock_token {:.1} µs, plain nextval {:.1} µs",
        a.p50, b.p50
    );
    TokenCost {
        statements,
        month_lock_over_nextval: a.p50 / b.p50,
        month_lock_token_us: a,
        plain_nextval_us: b,
    }
}
