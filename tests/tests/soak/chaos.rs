//! The soak test's chaos task.

use super::*;

/// Chaos: every 50..250 ms one of terminate a holder, terminate a waiter, cancel a waiter,
/// close a worker's socket; one fast-shutdown restart at about 40 % of the run.
pub(super) async fn chaos(
    server: &Server,
    db: TestDb,
    closers: Vec<Arc<Notify>>,
    counts: Arc<Counts>,
    until: Instant,
    restart_at: Instant,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ std::process::id() as u64);
    let mut admin: Option<Conn> = None;
    let mut restarted = false;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50 + rng.below(200))).await;
        if !restarted && Instant::now() >= restart_at {
            restarted = true;
            admin = None;
            let down = faults::restart(server).await;
            add(&counts.restarts);
            println!("soak: server restarted (fast shutdown + start), unavailable for {down:?}");
            continue;
        }
        if admin.as_ref().is_none_or(|c| c.client.is_closed()) {
            admin = connect(&db.config).await.ok();
        }
        let Some(conn) = admin.as_ref() else { continue };
        let pick = |granted: bool, f: &str| {
            format!(
                "SELECT count(*) FILTER (WHERE ok) FROM (SELECT {f}(pid) AS ok FROM (SELECT pid \
                 FROM month_locks WHERE usename = '{ROLE}' AND granted = {granted} \
                 ORDER BY random() LIMIT 1) p) q"
            )
        };
        let (sql, counter) = match rng.below(4) {
            0 => (
                Some(pick(true, "pg_terminate_backend")),
                &counts.terminated_holders,
            ),
            1 => (
                Some(pick(false, "pg_terminate_backend")),
                &counts.terminated_waiters,
            ),
            2 => (
                Some(pick(false, "pg_cancel_backend")),
                &counts.cancelled_waiters,
            ),
            _ => (None, &counts.socket_closes),
        };
        match sql {
            Some(sql) => {
                if let Ok(rows) = conn.client.simple_query(&sql).await {
                    let n: u64 = rows
                        .iter()
                        .find_map(|m| match m {
                            SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                            _ => None,
                        })
                        .unwrap_or(0);
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
            // Counted by the worker when its request is cut off.
            None => closers[rng.below(closers.len() as u64) as usize].notify_one(),
        }
    }
}
