//! Which months live guards (and acquisitions in flight) of each connection hold, kept on the
//! client side.
//!
//! The request-scoped markers of `session_sql` are session settings, and a setting made inside
//! a transaction block is undone by its `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`), while the
//! session lock taken in the same statement survives. So the clean-up of a dropped acquisition
//! cannot rely on the marker alone: it also releases a month the session holds that no live
//! guard or other acquisition in flight on the same connection claims. A connection is known
//! by its session's backend key data (`conn_key`), which a `Client` carries wherever it moves.
//!
//! Claiming and sending are one step under one lock, and so are deciding what a clean-up
//! releases and sending it: on each connection the order of claims and clean-ups is the order
//! of their statements on the wire. A request claimed before a clean-up is decided runs before
//! that clean-up; one claimed after runs after it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio_postgres::Client;

use super::conn_key::{self, ConnKey};
use super::session_sql;
use crate::{LockMode, YearMonth};

type Counts = HashMap<(ConnKey, YearMonth), usize>;

fn counts() -> MutexGuard<'static, Counts> {
    static COUNTS: LazyLock<Mutex<Counts>> = LazyLock::new(Mutex::default);
    // A panic while the lock is held cannot leave the map half-updated (single inserts and
    // removals): a poisoned lock is used as it is.
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A claim on months of one connection, given up on drop.
#[derive(Debug)]
pub(crate) struct Claim {
    conn: ConnKey,
    months: Vec<YearMonth>,
}

impl Claim {
    /// Claims `months` of `client`'s connection and, in the same step, runs `send` (which
    /// queues the request that will take them).
    pub(crate) fn claim_and_send<R>(
        client: &Client,
        months: &[YearMonth],
        send: impl FnOnce() -> R,
    ) -> (Claim, R) {
        let conn = conn_key::of(client);
        let mut c = counts();
        // Clean-ups the server refused on this connection go first (see `CleanUp`).
        let refused = refused().remove(&conn).unwrap_or_default();
        for clean_up in refused {
            clean_up.queue(client, conn, &c);
        }
        for m in months {
            *c.entry((conn, *m)).or_default() += 1;
        }
        let sent = send();
        drop(c);
        let claim = Claim {
            conn,
            months: months.to_vec(),
        };
        (claim, sent)
    }

    /// Keep only `months` (the ones the request got).
    pub(crate) fn narrow(mut self, months: &[YearMonth]) -> Claim {
        let mut c = counts();
        self.months.retain(|m| {
            let keep = months.contains(m);
            if !keep {
                give_up(&mut c, self.conn, *m);
            }
            keep
        });
        drop(c);
        self
    }

    /// Gives up this claim and, in the same step, queues the statement `clean_up` builds from
    /// those of `months` that no other live claim of the connection names.
    pub(crate) fn give_up_and_send(
        self,
        client: &Client,
        months: &[YearMonth],
        clean_up: impl FnOnce(&[YearMonth]),
    ) {
        self.give_up_and(client, |c, conn| {
            let unclaimed: Vec<YearMonth> = months
                .iter()
                .copied()
                .filter(|m| !c.contains_key(&(conn, *m)))
                .collect();
            clean_up(&unclaimed);
        });
    }

    /// Gives up this claim and, in the same step, queues `clean_up` (see [`CleanUp::queue`]).
    pub(crate) fn give_up_and_queue(self, client: &Client, clean_up: CleanUp) {
        self.give_up_and(client, |c, conn| clean_up.queue(client, conn, c));
    }

    fn give_up_and(mut self, client: &Client, then: impl FnOnce(&Counts, ConnKey)) {
        let mut c = counts();
        for m in std::mem::take(&mut self.months) {
            give_up(&mut c, self.conn, m);
        }
        let conn = conn_key::of(client);
        then(&c, conn);
        drop(c);
    }
}

fn give_up(c: &mut Counts, conn: ConnKey, m: YearMonth) {
    if let Some(n) = c.get_mut(&(conn, m)) {
        *n -= 1;
        if *n == 0 {
            c.remove(&(conn, m));
        }
    }
}

/// The clean-up of a dropped acquisition (see `pending`): the months it asked for, its mode
/// and request id.
#[derive(Clone, Debug)]
pub(crate) struct CleanUp {
    pub months: Vec<YearMonth>,
    pub mode: LockMode,
    pub id: String,
}

/// Clean-ups refused because the connection sat in a failed transaction block (SQLSTATE
/// 25P02), by connection: queued again (with what is unclaimed *then*) ahead of the next
/// acquisition on that connection, the earliest moment this crate has the connection in hand
/// again. Locked only while the claims are.
fn refused() -> MutexGuard<'static, HashMap<ConnKey, Vec<CleanUp>>> {
    static REFUSED: LazyLock<Mutex<HashMap<ConnKey, Vec<CleanUp>>>> = LazyLock::new(Mutex::default);
    REFUSED.lock().unwrap_or_else(|e| e.into_inner())
}

impl CleanUp {
    /// Queue the release of what this request took (or what is held and unclaimed in `c`) on
    /// `client`, and, on a tokio runtime, watch its answer: a refusal in a failed transaction
    /// block is kept for the next acquisition on the connection.
    pub(crate) fn queue(self, client: &Client, conn: ConnKey, c: &Counts) {
        let unclaimed: Vec<YearMonth> = self
            .months
            .iter()
            .copied()
            .filter(|m| !c.contains_key(&(conn, *m)))
            .collect();
        let text = session_sql::release_if_taken(&self.months, &unclaimed, self.mode, &self.id);
        let Some(answer) = crate::sql::send_for_answer(client, &text) else {
            return; // the connection is closed: the session holds nothing any more
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = answer.await {
                    let failed_block = e.code()
                        == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION);
                    if failed_block {
                        refused().entry(conn).or_default().push(self);
                    }
                }
            });
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.months.is_empty() {
            return;
        }
        let mut c = counts();
        for m in &self.months {
            give_up(&mut c, self.conn, *m);
        }
    }
}
