//! Backfill: a backfill of 120 months by 8 workers with 20 ms of (client-side) work per month,
//! three ways of finding the next month:
//!
//! * **claim any**: one round trip per claim, `month_lock_claim(ARRAY(not-done months))`;
//! * **per-month try loop**: each worker walks the months in order with `month_lock_try(y, m)`,
//!   skipping busy and done months;
//! * **polling**: the original application's loop, in order, for each month
//!   `pg_try_advisory_lock(yyyymm)` every 100 ms until obtained.
//!
//! Every method checks, with a snapshot taken after the lock is held, that the month is still
//! not done (a month another worker has just finished can be free again), and marks it done
//! and releases it in one round trip (`UPDATE ...; COMMIT; SELECT <release>`: the commit
//! comes before the release, so the next holder sees the month done).

use super::Ctx;
use crate::methods::POLL_INTERVAL;
use crate::stats::{fms, ratio, Dist};
use month_lock_tests::sql::exec;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One run of one method.
pub struct BackfillRun {
    pub wall_ms: f64,
    pub round_trips: u64,
    pub months_per_worker: Vec<u64>,
    /// Every month worked on by exactly one worker, and marked done.
    pub exactly_once: bool,
}

/// Every run of every method; its own table in results.md (the methods differ).
pub struct Backfill {
    pub ideal_ms: f64,
    pub runs: Vec<(Way, Vec<BackfillRun>)>,
}

impl Backfill {
    pub fn all_exactly_once(&self) -> bool {
        self.runs
            .iter()
            .flat_map(|(_, r)| r)
            .all(|r| r.exactly_once)
    }

    pub fn table(&self) -> String {
        let runs = self.runs.first().map_or(0, |(_, r)| r.len());
        let mut t = format!(
            "Backfill: {MONTHS} months, {WORKERS} workers, {} ms of work per month (ideal {} ms = total work / workers), {runs} interleaved run(s) of each method; wall time median (min–max).\n\n\
             | Method | How a worker finds its next month | Wall ms | vs ideal | Round trips per month | Months per worker (min–max over runs) | Each month exactly once |\n\
             |---|---|---|---|---|---|---|\n",
            WORK.as_millis(),
            self.ideal_ms,
        );
        for (way, runs) in &self.runs {
            let wall = Dist::of(&runs.iter().map(|r| r.wall_ms).collect::<Vec<_>>());
            let rts: u64 = runs.iter().map(|r| r.round_trips).sum();
            let per_worker = runs
                .iter()
                .flat_map(|r| r.months_per_worker.iter().copied());
            let (lo, hi) = per_worker.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let _ = writeln!(
                t,
                "| {} | {} | {} ({}–{}) | {} | {:.1} | {lo}–{hi} | {} |",
                way.label(),
                way.how(),
                fms(wall.p50),
                fms(wall.min),
                fms(wall.max),
                ratio(wall.p50 / self.ideal_ms),
                rts as f64 / (MONTHS * runs.len()) as f64,
                if runs.iter().all(|r| r.exactly_once) {
                    "yes"
                } else {
                    "**NO**"
                }
            );
        }
        t
    }
}

const FIRST_YEAR: i32 = 2030;
const MONTHS: usize = 120;
const WORKERS: usize = 8;
const WORK: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Way {
    ClaimAny,
    TryLoop,
    Polling,
}

const WAYS: [Way; 3] = [Way::ClaimAny, Way::TryLoop, Way::Polling];

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::ClaimAny => "claim any (month_lock)",
            Way::TryLoop => "per-month try loop (month_lock)",
            Way::Polling => "polling (100 ms)",
        }
    }

    fn how(self) -> &'static str {
        match self {
            Way::ClaimAny => {
                "`month_lock_claim(ARRAY(SELECT month … WHERE NOT done ORDER BY month))`, one round trip per claim, until it returns NULL"
            }
            Way::TryLoop => {
                "walk the months in order, `month_lock_try(y, m)` on each, skip busy and done ones"
            }
            Way::Polling => {
                "walk the months in order, `pg_try_advisory_lock(yyyymm)` every 100 ms until obtained, skip done ones"
            }
        }
    }
}

/// (year, month, 'yyyy-mm-01') of month `i` of the backfill.
fn month_of(i: usize) -> (i32, i32, String) {
    let (y, m) = (FIRST_YEAR + (i / 12) as i32, 1 + (i % 12) as i32);
    (y, m, format!("{y:04}-{m:02}-01"))
}

/// The values of the first column of every row, in order, over the statements of one query
/// string (`None` for NULL), and the row counts of the commands that completed.
async fn run(client: &Client, sql: &str) -> (Vec<Option<String>>, Vec<u64>) {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let (mut values, mut counts) = (Vec::new(), Vec::new());
    for m in messages {
        match m {
            SimpleQueryMessage::Row(row) => values.push(row.get(0).map(str::to_string)),
            SimpleQueryMessage::CommandComplete(n) => counts.push(n),
            _ => {}
        }
    }
    (values, counts)
}

/// What a worker shares with the others: round trips sent and how often each month was worked.
struct Tally {
    round_trips: AtomicU64,
    worked: Mutex<Vec<u32>>,
    /// A mark-done that found the month already done (work done twice).
    duplicate: AtomicU64,
}

impl Tally {
    async fn send(&self, client: &Client, sql: &str) -> (Vec<Option<String>>, Vec<u64>) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        run(client, sql).await
    }

    /// Works on month `i` for 20 ms, then marks it done (committed) and releases it.
    async fn work_and_finish(&self, client: &Client, worker: usize, i: usize, release: &str) {
        let (_, _, date) = month_of(i);
        self.worked.lock().unwrap()[i] += 1;
        tokio::time::sleep(WORK).await;
        let (values, counts) = self
            .send(
                client,
                &format!(
                    "UPDATE backfill SET done = true, worker = {worker} WHERE month = '{date}' AND NOT done; \
                     COMMIT; {release}"
                ),
            )
            .await;
        if counts.first() != Some(&1) {
            self.duplicate.fetch_add(1, Ordering::Relaxed);
        }
        assert_eq!(values.last(), Some(&Some("t".into())), "release after work");
    }
}

fn release_sql(way: Way, y: i32, m: i32) -> String {
    match way {
        Way::ClaimAny | Way::TryLoop => format!("SELECT month_lock_release({y}, {m})"),
        Way::Polling => format!("SELECT pg_advisory_unlock({})", y * 100 + m),
    }
}

/// One worker of one method; returns how many months it worked on.
async fn worker(client: Arc<Client>, way: Way, id: usize, tally: Arc<Tally>) -> u64 {
    let mut worked = 0;
    match way {
        Way::ClaimAny => loop {
            // The claim, and (second statement, fresh snapshot) the not-done months this
            // session holds: the claimed one, unless another worker finished it meanwhile.
            let (values, _) = tally
                .send(
                    &client,
                    "SELECT month_lock_claim(ARRAY(SELECT month FROM backfill WHERE NOT done ORDER BY month)); \
                     SELECT count(*) FROM backfill WHERE NOT done \
                     AND month_lock_held(extract(year FROM month)::int, extract(month FROM month)::int)",
                )
                .await;
            let Some(date) = values[0].clone() else {
                break;
            };
            let i = {
                let y: i32 = date[..4].parse().unwrap();
                let m: i32 = date[5..7].parse().unwrap();
                ((y - FIRST_YEAR) * 12 + m - 1) as usize
            };
            let (y, m, _) = month_of(i);
            if values[1].as_deref() == Some("1") {
                tally
                    .work_and_finish(&client, id, i, &release_sql(way, y, m))
                    .await;
                worked += 1;
            } else {
                tally.send(&client, &release_sql(way, y, m)).await;
            }
        },
        Way::TryLoop | Way::Polling => {
            for i in 0..MONTHS {
                let (y, m, date) = month_of(i);
                let try_sql = match way {
                    Way::TryLoop => format!("SELECT month_lock_try({y}, {m})"),
                    _ => format!("SELECT pg_try_advisory_lock({})", y * 100 + m),
                };
                let sql = format!("{try_sql}; SELECT done FROM backfill WHERE month = '{date}'");
                let (got, done) = loop {
                    let (values, _) = tally.send(&client, &sql).await;
                    if values[0].as_deref() == Some("t") {
                        break (true, values[1].as_deref() == Some("t"));
                    }
                    if way == Way::TryLoop {
                        break (false, false); // busy: another worker has it
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                };
                if !got {
                    continue;
                }
                if done {
                    tally.send(&client, &release_sql(way, y, m)).await;
                } else {
                    tally
                        .work_and_finish(&client, id, i, &release_sql(way, y, m))
                        .await;
                    worked += 1;
                }
            }
        }
    }
    worked
}

/// One run of one method: resets the table, starts the workers together, waits for the last.
async fn backfill_run(admin: &Client, clients: &[Arc<Client>], way: Way) -> BackfillRun {
    exec(admin, "UPDATE backfill SET done = false, worker = NULL").await;
    let tally = Arc::new(Tally {
        round_trips: AtomicU64::new(0),
        worked: Mutex::new(vec![0; MONTHS]),
        duplicate: AtomicU64::new(0),
    });
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(id, c)| tokio::spawn(worker(c.clone(), way, id, tally.clone())))
        .collect();
    let mut months_per_worker = Vec::with_capacity(tasks.len());
    for task in tasks {
        months_per_worker.push(task.await.expect("backfill worker"));
    }
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let (values, _) = run(admin, "SELECT count(*) FROM backfill WHERE done").await;
    let all_done = values[0].as_deref() == Some(&MONTHS.to_string()[..]);
    let worked_once = tally.worked.lock().unwrap().iter().all(|&n| n == 1);
    BackfillRun {
        wall_ms,
        round_trips: tally.round_trips.load(Ordering::Relaxed),
        months_per_worker,
        exactly_once: all_done && worked_once && tally.duplicate.load(Ordering::Relaxed) == 0,
    }
}

/// The runs of each method, interleaved, on the same 8 warmed connections.
pub async fn measure(ctx: &Ctx) -> Backfill {
    let runs = if ctx.quick { 1 } else { 3 };
    let db = &ctx.db;
    let admin = db.connect_as("bench backfill admin").await;
    exec(
        &admin,
        &format!(
            "CREATE TABLE backfill (month date PRIMARY KEY, done boolean NOT NULL DEFAULT false, worker int); \
             INSERT INTO backfill (month) SELECT d::date FROM generate_series(\
             '{FIRST_YEAR}-01-01'::date, '{FIRST_YEAR}-01-01'::date + interval '{} months', interval '1 month') d",
            MONTHS - 1
        ),
    )
    .await;
    let mut clients = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let client = db.connect_as("bench backfill worker").await;
        // Warm every call the methods use, on a month outside the backfill.
        let claimed = run(
            &client,
            "SELECT month_lock_claim(ARRAY['1999-03-01'::date])",
        )
        .await;
        assert_eq!(
            claimed.0,
            vec![Some("1999-03-01".to_string())],
            "warm-up claim"
        );
        for sql in [
            "SELECT month_lock_held(1999, 3)",
            "SELECT month_lock_release(1999, 3)",
            "SELECT month_lock_try(1999, 3)",
            "SELECT month_lock_release(1999, 3)",
            "SELECT pg_try_advisory_lock(199903)",
            "SELECT pg_advisory_unlock(199903)",
        ] {
            assert_eq!(
                run(&client, sql).await.0,
                vec![Some("t".to_string())],
                "{sql}"
            );
        }
        clients.push(Arc::new(client));
    }
    let mut by_way: Vec<Vec<BackfillRun>> = WAYS.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, way) in WAYS.into_iter().enumerate() {
            by_way[i].push(backfill_run(&admin, &clients, way).await);
        }
    }
    let ideal_ms = (MONTHS as f64 * WORK.as_secs_f64() * 1e3) / WORKERS as f64;
    exec(&admin, "DROP TABLE backfill").await;
    let figure = Backfill {
        ideal_ms,
        runs: WAYS.into_iter().zip(by_way).collect(),
    };
    eprintln!("{}", figure.table());
    figure
}
