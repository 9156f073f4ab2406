//! Which months live guards (and acquisitions in flight) of each connection hold, kept on the
//! client side.
//!
//! The request-scoped markers of `session_sql` are session settings, and a setting made inside
//! a transaction block is undone by its `ROLLBACK` (or `ROLLBACK TO SAVEPOINT`), while the
//! session lock taken in the same statement survives. So the clean-up of a dropped acquisition
//! cannot rely on the marker alone: it also releases a month the session holds that no live
//! guard or other acquisition in flight on the same connection claims. A connection is known
//! by the address of its `Client` (a guard reaches it through a pointer: `&Client`, `Arc`, a
//! pooled object), which stays put while any guard or acquisition of it lives.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio_postgres::Client;

use crate::YearMonth;

type Counts = HashMap<(usize, YearMonth), usize>;

fn counts() -> MutexGuard<'static, Counts> {
    static COUNTS: LazyLock<Mutex<Counts>> = LazyLock::new(Mutex::default);
    // A panic while the lock is held cannot leave the map half-updated (single inserts and
    // removals): a poisoned lock is used as it is.
    COUNTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(client: &Client) -> usize {
    client as *const Client as usize
}

/// A claim on months of one connection, given up on drop.
#[derive(Debug)]
pub(crate) struct Claim {
    conn: usize,
    months: Vec<YearMonth>,
}

impl Claim {
    pub(crate) fn new(client: &Client, months: &[YearMonth]) -> Claim {
        let conn = key(client);
        let mut c = counts();
        for m in months {
            *c.entry((conn, *m)).or_default() += 1;
        }
        Claim {
            conn,
            months: months.to_vec(),
        }
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
}

fn give_up(c: &mut Counts, conn: usize, m: YearMonth) {
    if let Some(n) = c.get_mut(&(conn, m)) {
        *n -= 1;
        if *n == 0 {
            c.remove(&(conn, m));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut c = counts();
        for m in &self.months {
            give_up(&mut c, self.conn, *m);
        }
    }
}

/// Those of `months` that no claim of `client`'s connection names.
pub(crate) fn unclaimed(client: &Client, months: &[YearMonth]) -> Vec<YearMonth> {
    let conn = key(client);
    let c = counts();
    months
        .iter()
        .copied()
        .filter(|m| !c.contains_key(&(conn, *m)))
        .collect()
}
