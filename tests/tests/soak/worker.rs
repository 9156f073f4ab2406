//! One soak worker: takes random months in random scopes and modes with random timeouts,
//! records each hold only between instants it knows it held the month (the server's clock),
//! and survives terminations, cancels, closed sockets and the restart by reconnecting.

use super::*;

pub(super) struct Worker {
    pub(super) id: usize,
    pub(super) config: Config,
    pub(super) conn: Option<Conn>,
    pub(super) close_now: Arc<Notify>,
    pub(super) counts: Arc<Counts>,
    pub(super) rng: Rng,
    pub(super) holds: Vec<Hold>,
    pub(super) errors: Vec<String>,
}

impl Worker {
    /// Runs one simple query; the chaos task may close the socket abruptly meanwhile.
    pub(super) async fn run(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Failure> {
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| Failure::Lost("not connected".into()))?;
        let result = tokio::select! {
            r = conn.client.simple_query(sql) => r,
            _ = self.close_now.notified() => {
                self.conn = None; // aborts the driver: the socket closes mid-request
                add(&self.counts.socket_closes);
                return Err(Failure::Lost("socket closed by the chaos task".into()));
            }
        };
        match result {
            Ok(messages) => Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                    }
                    _ => None,
                })
                .collect()),
            Err(e) => {
                let lost = e.is_closed()
                    || self.conn.as_ref().is_none_or(|c| c.client.is_closed())
                    || matches!(
                        e.as_db_error().map(|d| d.code().clone()),
                        Some(SqlState::ADMIN_SHUTDOWN)
                            | Some(SqlState::CRASH_SHUTDOWN)
                            | Some(SqlState::CANNOT_CONNECT_NOW)
                    );
                if lost || e.as_db_error().is_none() {
                    self.conn = None;
                    add(&self.counts.connection_losses);
                    Err(Failure::Lost(e.to_string()))
                } else {
                    let d = e.as_db_error().unwrap();
                    Err(Failure::Db(d.code().clone(), d.message().to_string()))
                }
            }
        }
    }

    pub(super) async fn ensure_connected(&mut self, give_up: Instant) {
        while self.conn.is_none() {
            match connect(&self.config).await {
                Ok(c) => {
                    self.conn = Some(c);
                    add(&self.counts.reconnects);
                }
                Err(e) => {
                    assert!(
                        Instant::now() < give_up,
                        "worker {} cannot reconnect: {e}",
                        self.id
                    );
                    tokio::time::sleep(Duration::from_millis(50 + self.rng.below(150))).await;
                }
            }
        }
    }

    pub(super) fn note_unexpected(&mut self, what: &str, f: &Failure) {
        if let Failure::Db(code, msg) = f {
            add(&self.counts.unexpected);
            if self.errors.len() < 5 {
                self.errors
                    .push(format!("worker {} {what}: {} {msg}", self.id, code.code()));
            }
        }
    }

    /// One cycle: maybe take a month, hold it for a few confirmed instants, let go.
    pub(super) async fn cycle(&mut self) {
        let m = self.rng.below(MONTHS as u64) as i32;
        let (year, month) = (2023 + m / 12, 1 + m % 12);
        let mode = if self.rng.chance(25) {
            Mode::Shared
        } else {
            Mode::Exclusive
        };
        let xact = self.rng.chance(50);
        let raising = self.rng.chance(40);
        let timeout_ms = match self.rng.below(100) {
            0..=14 => 0,
            15..=69 => 1 + self.rng.below(200),
            70..=94 => 200 + self.rng.below(1800),
            _ => u64::MAX, // no limit (statement_timeout of the role still applies)
        };
        let sh = if mode == Mode::Shared { "_shared" } else { "" };
        let call = match (xact, raising, timeout_ms) {
            (false, false, u64::MAX) => format!("month_lock{sh}({year}, {month})"),
            (false, false, t) => format!("month_lock_try{sh}({year}, {month}, {t})"),
            (false, true, u64::MAX) => format!("month_lock{sh}({year}, {month})"),
            (false, true, t) => format!("month_lock{sh}({year}, {month}, {t})"),
            (true, false, u64::MAX) => format!("month_lock_xact{sh}({year}, {month})"),
            (true, false, t) => format!("month_lock_try_xact{sh}({year}, {month}, {t})"),
            (true, true, u64::MAX) => format!("month_lock_xact{sh}({year}, {month})"),
            (true, true, t) => format!("month_lock_xact{sh}({year}, {month}, {t})"),
        };
        // The instant is read after the call returned (OFFSET 0 keeps the call in a subquery
        // evaluated first): a confirmed instant of the hold.
        let acquire = format!(
            "{}SELECT r::text, {NOW_US} FROM (SELECT {call} AS r OFFSET 0) s",
            if xact { "BEGIN; " } else { "" }
        );
        add(&self.counts.attempts);
        let (got, start) = match self.run(&acquire).await {
            Ok(rows) => {
                let row = &rows[0];
                let got = row[0].as_deref() != Some("false") && row[0].as_deref() != Some("f");
                (got, row[1].as_deref().unwrap().parse::<i64>().unwrap())
            }
            Err(Failure::Lost(_)) => return,
            Err(f) => {
                match &f {
                    Failure::Db(c, _) if *c == SqlState::LOCK_NOT_AVAILABLE => {
                        add(&self.counts.timeouts)
                    }
                    Failure::Db(c, _) if *c == SqlState::QUERY_CANCELED => {
                        add(&self.counts.cancels_seen)
                    }
                    _ => self.note_unexpected(&call, &f),
                }
                if xact && self.run("ROLLBACK").await.is_err() {
                    return;
                }
                self.check_nothing_left(year, month).await;
                return;
            }
        };
        if !got {
            add(&self.counts.timeouts);
            if xact && self.run("ROLLBACK").await.is_err() {
                return;
            }
            self.check_nothing_left(year, month).await;
            return;
        }
        add(&self.counts.acquires);
        let mut hold = Hold {
            worker: self.id,
            month: m,
            mode,
            xact,
            start,
            end: start,
            end_confirmed: false,
        };

        // Work: one or two steps, each ending with a confirmed instant.
        let mut alive = true;
        let mut failed = false;
        for _ in 0..1 + self.rng.below(2) {
            let sleep = self.rng.below(8);
            match self
                .run(&format!("SELECT {NOW_US} FROM pg_sleep({sleep} / 1000.0)"))
                .await
            {
                Ok(rows) => hold.end = rows[0][0].as_deref().unwrap().parse().unwrap(),
                Err(Failure::Lost(_)) => {
                    alive = false;
                    break;
                }
                Err(f) => {
                    match &f {
                        Failure::Db(c, _) if *c == SqlState::QUERY_CANCELED => {
                            add(&self.counts.cancels_seen)
                        }
                        _ => self.note_unexpected("work", &f),
                    }
                    failed = true;
                    break;
                }
            }
        }
        if alive {
            let release = if xact {
                if failed {
                    "ROLLBACK".to_string()
                } else {
                    "COMMIT".to_string()
                }
            } else {
                format!("SELECT month_lock_release{sh}({year}, {month})")
            };
            match self.run(&release).await {
                Ok(rows) => {
                    hold.end_confirmed = !failed;
                    if !xact && rows[0][0].as_deref() != Some("t") {
                        // The session is alive and took the month in a completed request: it
                        // must still hold it.
                        add(&self.counts.release_false);
                    }
                }
                Err(Failure::Lost(_)) => {}
                Err(f) => self.note_unexpected("release", &f),
            }
        }
        if !hold.end_confirmed {
            add(&self.counts.unconfirmed_ends);
        }
        self.holds.push(hold);
    }

    /// After a failed or false acquire the session must not hold the month.
    pub(super) async fn check_nothing_left(&mut self, year: i32, month: i32) {
        if let Ok(rows) = self
            .run(&format!("SELECT month_lock_held({year}, {month})"))
            .await
        {
            if rows[0][0].as_deref() != Some("f") {
                add(&self.counts.leftovers);
                self.errors.push(format!(
                    "worker {} holds {year}-{month:02} after a failed acquire",
                    self.id
                ));
                let _ = self.run("SELECT month_lock_release_all()").await;
            }
        }
    }
}
