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
use std::sync::atomic::{AtomicU64, Ordering};
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
        schema: &str,
        send: impl FnOnce() -> R,
    ) -> (Claim, R) {
        let conn = conn_key::of(client);
        let mut c = counts();
        // Clean-ups on this connection whose outcome is not known yet, or that the server
        // refused, go first (see `unsettled`).
        let unsettled = unsettled().remove(&conn).unwrap_or_default();
        for (_, mut clean_up, refused) in unsettled {
            if !refused {
                // Its outcome is not known yet: it may have run already, and its request's
                // marker may have come back since (a `ROLLBACK` of a block in which a later
                // request took the month again). Only what the session holds and no live
                // claim names is released.
                clean_up.id = "-".to_string();
            }
            if clean_up.schema.is_empty() {
                // Refused because the schema it named is gone: the one looked up now.
                clean_up.schema = schema.to_string();
            }
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

    /// Keep only `kept` (the months the request got) and give up the rest. A month given up
    /// that the clean-up of a dropped request left alone because this request claimed it
    /// (`left_alone`), and that no claim names any more, is released in the same step if the
    /// session holds it: the dropped request may have taken it inside a transaction block whose
    /// `ROLLBACK` undid its marker, and this request was answered "already held".
    pub(crate) fn settle(mut self, client: &Client, kept: &[YearMonth], schema: &str) -> Claim {
        let mut c = counts();
        let conn = self.conn;
        let mut orphans = Vec::new();
        {
            let mut left = left_alone();
            self.months.retain(|m| {
                if kept.contains(m) {
                    left.remove(&(conn, *m)); // taken now: it was not held
                    return true;
                }
                if give_up(&mut c, conn, *m) {
                    if let Some(mode) = left.remove(&(conn, *m)) {
                        orphans.push((*m, mode));
                    }
                }
                false
            });
        }
        for (m, mode) in orphans {
            let clean_up = CleanUp {
                months: vec![m],
                mode,
                id: "-".to_string(), // no request's id: releases the month only if unclaimed
                schema: schema.to_string(),
            };
            clean_up.queue(client, conn, &c);
        }
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
            if give_up(&mut c, self.conn, m) {
                // `then` releases what is held and unclaimed: nothing is left alone any more.
                left_alone().remove(&(self.conn, m));
            }
        }
        let conn = conn_key::of(client);
        then(&c, conn);
        drop(c);
    }
}

/// Gives up one claim on `m`; true if none is left.
fn give_up(c: &mut Counts, conn: ConnKey, m: YearMonth) -> bool {
    if let Some(n) = c.get_mut(&(conn, m)) {
        *n -= 1;
        if *n == 0 {
            c.remove(&(conn, m));
            return true;
        }
    }
    false
}

/// Months a clean-up did not release without its request's marker because another request in
/// flight (or a guard) of the connection claimed them, with the dropped request's mode: if the
/// last of those claims ends without the month being taken by it, the month may be the dropped
/// request's, its marker undone by a `ROLLBACK` (see [`Claim::settle`]). Locked only while the
/// claims are.
fn left_alone() -> MutexGuard<'static, HashMap<(ConnKey, YearMonth), LockMode>> {
    static LEFT: LazyLock<Mutex<HashMap<(ConnKey, YearMonth), LockMode>>> =
        LazyLock::new(Mutex::default);
    LEFT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The clean-up of a dropped acquisition (see `pending`): the months it asked for, its mode,
/// request id and the extension's schema its acquisition named.
#[derive(Clone, Debug)]
pub(crate) struct CleanUp {
    pub months: Vec<YearMonth>,
    pub mode: LockMode,
    pub id: String,
    pub schema: String,
}

/// Clean-ups queued on each connection whose outcome is not known yet, or that the server
/// refused (a failed transaction block, SQLSTATE 25P02; a cancel meant for another statement,
/// 57014; the schema they named gone, 3F000/42883/42P01: their schema is then cleared and the
/// next acquisition's used; any other error but a connection gone), by connection and sending
/// number, and whether it was refused. A clean-up's answer is read by a task of its own, so the next acquisition on the
/// connection may be sent before that answer is seen: every entry still here then is queued
/// again ahead of it (with what is unclaimed *then*). Sending one again is harmless: it
/// releases only months its request's marker names or that the session holds and no live
/// claim names, decided again when it is sent. Locked only while the claims are.
type Unsettled = HashMap<ConnKey, Vec<(u64, CleanUp, bool)>>;

fn unsettled() -> MutexGuard<'static, Unsettled> {
    static UNSETTLED: LazyLock<Mutex<Unsettled>> = LazyLock::new(Mutex::default);
    UNSETTLED.lock().unwrap_or_else(|e| e.into_inner())
}

impl CleanUp {
    /// Queue the release of what this request took (or what is held and unclaimed in `c`) on
    /// `client`, and, on a tokio runtime, watch its answer: a refusal is kept for the next
    /// acquisition on the connection (see `refused`).
    pub(crate) fn queue(self, client: &Client, conn: ConnKey, c: &Counts) {
        let unclaimed: Vec<YearMonth> = self
            .months
            .iter()
            .copied()
            .filter(|m| !c.contains_key(&(conn, *m)))
            .collect();
        {
            let mut left = left_alone();
            for m in &self.months {
                if unclaimed.contains(m) {
                    left.remove(&(conn, *m));
                } else {
                    left.insert((conn, *m), self.mode);
                }
            }
        }
        let text = session_sql::release_if_taken(
            &self.months,
            &unclaimed,
            self.mode,
            &self.id,
            &self.schema,
        );
        let Some(answer) = crate::sql::send_for_answer(client, &text) else {
            return; // the connection is closed: the session holds nothing any more
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let number = NEXT.fetch_add(1, Ordering::Relaxed);
            // Unsettled from now until its answer says otherwise (see `unsettled`).
            unsettled()
                .entry(conn)
                .or_default()
                .push((number, self.clone(), false));
            runtime.spawn(async move {
                let outcome = answer.await;
                let _c = counts(); // the claims' lock orders this with `claim_and_send`
                let mut all = unsettled();
                let Some(list) = all.get_mut(&conn) else {
                    return; // queued again (or settled) meanwhile
                };
                let Some(at) = list.iter().position(|(n, ..)| *n == number) else {
                    return;
                };
                match outcome {
                    Err(e) if !crate::sql::connection_gone(&e) => {
                        list[at].2 = true;
                        if crate::sql::undefined(&e) {
                            // The schema it named is gone: the next acquisition looks it up
                            // afresh, and the clean-up names that one.
                            list[at].1.schema.clear();
                            super::schema::forget(conn);
                        }
                    }
                    // Done, or the session is gone (it holds nothing then).
                    _ => {
                        list.remove(at);
                        if list.is_empty() {
                            all.remove(&conn);
                        }
                    }
                }
            });
        }
    }
}

/// Queue `text`, a guard's release of `clean_up.months` (whose claim is given up), on `client`
/// without waiting; on a tokio runtime, watch its answer: if the schema it named is gone
/// (3F000, 42883, 42P01: the extension's schema renamed, or the extension recreated elsewhere),
/// `clean_up` is sent again, naming the schema looked up then, ahead of the next acquisition on
/// the connection (see `unsettled`).
pub(crate) fn send_release(client: &Client, text: &str, mut clean_up: CleanUp) {
    let Some(answer) = crate::sql::send_for_answer(client, text) else {
        return; // the connection is closed: the session holds nothing any more
    };
    let conn = conn_key::of(client);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(e) = answer.await {
                if crate::sql::undefined(&e) {
                    static NEXT: AtomicU64 = AtomicU64::new(0);
                    let number = u64::MAX / 2 + NEXT.fetch_add(1, Ordering::Relaxed);
                    clean_up.schema.clear();
                    let _c = counts();
                    super::schema::forget(conn);
                    unsettled()
                        .entry(conn)
                        .or_default()
                        .push((number, clean_up, true));
                }
            }
        });
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.months.is_empty() {
            return;
        }
        let mut c = counts();
        for m in &self.months {
            if give_up(&mut c, self.conn, *m) {
                left_alone().remove(&(self.conn, *m)); // a guard's month: it was held by the guard
            }
        }
    }
}
