//! Fencing token: what a token costs the statement that asks for it. The transaction that
//! receives a token commits synchronously (a transaction id, a commit record and a WAL flush);
//! the comparison is `nextval` of a plain sequence, which a hand-made token would use and
//! whose commit neither flushes nor waits. The benchmark's cluster runs with `fsync = off`: on
//! a real disk each token statement adds one WAL fsync. No target.

use super::Ctx;
use crate::methods::PerMethod;
use crate::report::Row;
use crate::stats::{median_range_us, Dist};
use std::time::Instant;

fn plan(quick: bool) -> usize {
    if quick {
        200
    } else {
        2000
    }
}

/// Autocommit statements, one round trip each: µs per statement, [token, nextval].
pub struct Token {
    pub us: [Dist; 2],
}

impl Token {
    pub fn row(&self) -> Row {
        Row {
            figure: format!(
                "Fencing token: µs per autocommit statement (one round trip), median (min–max) of {} interleaved; built-in: nextval of a plain sequence (commit without flush); cluster with fsync = off",
                self.us[0].n
            ),
            cells: PerMethod::two(median_range_us(&self.us[0]), median_range_us(&self.us[1])),
            target: "none set (durable before the commit returns)".into(),
            met: None,
            note: format!("{:.2}× nextval", self.us[0].p50 / self.us[1].p50),
        }
    }
}

/// Holds a month and asks for its token, interleaved with as many `nextval` calls.
pub async fn measure(ctx: &Ctx) -> Token {
    let client = ctx.db.connect_as("bench token").await;
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
    for _ in 0..plan(ctx.quick) {
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
    let figure = Token {
        us: times.map(|t| Dist::of(&t)),
    };
    eprintln!(
        "token: month_lock_token {:.1} µs, plain nextval {:.1} µs",
        figure.us[0].p50, figure.us[1].p50
    );
    figure
}
