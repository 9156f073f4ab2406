//! Fencing tokens (`month_lock_token`): one per hold — an uninterrupted exclusive hold in
//! either scope, as [`pg::exclusive_hold`] defines it — drawn from the extension's sequence when
//! the hold first asks, and durable before the commit of any transaction that received it
//! returns.
//!
//! Public surface: [`token`], [`transaction_ended`].

use crate::errors::raise;
use crate::keys::month_text;
use crate::pg::{self, BackendLocal, Mode, MonthTag};
use pgrx::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Tokens of this backend's exclusive holds, by month, valid while [`pg::exclusive_hold`]
/// reports the hold marked (a month's entry can outlive its hold: a new hold starts unmarked,
/// draws a new token and replaces it). One per backend process: PostgreSQL runs SQL on one
/// thread per backend.
static TOKENS: BackendLocal<Remembered> = BackendLocal::new(Remembered {
    by_month: HashMap::with_hasher(BuildHasherDefault::new()),
    prune_above: PRUNE_AT_LEAST,
});

struct Remembered {
    by_month: HashMap<MonthTag, i64, BuildHasherDefault<DefaultHasher>>,
    /// [`transaction_ended`] drops the entries of holds that are gone once there are more
    /// entries than this: twice as many as the last pruning kept. Pruning costs one lookup per
    /// entry, so it is paid once per that many new tokens, and a session holding thousands of
    /// tokens pays nothing for them at the end of every transaction.
    prune_above: usize,
}

/// Below this many entries nothing is pruned.
const PRUNE_AT_LEAST: usize = 16;

/// The fencing token of this session's exclusive hold of `tag`: the same for the whole hold,
/// larger than any token handed out before it (by any session, for any month). Raises 25006
/// on a hot standby (nothing can be drawn or made durable there), then 55000 unless the month
/// is held exclusively, in either scope, and 25006 when a token must be drawn in a read-only
/// transaction — each before the token sequence is touched.
///
/// Durability: the commit of a transaction that receives a token — drawn now or remembered —
/// flushes the WAL that covers the token and waits for synchronous standbys as
/// `synchronous_commit` says ([`pg::commit_covers_wal_so_far`]).
/// Without that, a token drawn from the sequence's cached range carries no WAL of its own: a
/// crash after such a commit could hand the same number out again.
pub fn token(tag: MonthTag) -> i64 {
    if pg::read_only() == Some(pg::ReadOnly::Recovery) {
        cannot_write(
            "month_lock: month_lock_token cannot run during recovery (this server is a standby)",
        );
    }
    let marked = match pg::exclusive_hold(tag, false) {
        pg::ExclusiveHold::NotHeld => raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "month_lock: month {} is not held exclusively by this session",
                month_text(tag)
            ),
            "Take the month first (month_lock_try, month_lock, month_lock_try_xact, ...): a token \
             belongs to a hold."
                .into(),
        ),
        pg::ExclusiveHold::Held { marked } => marked,
    };
    let known = marked
        .then(|| TOKENS.with(|tokens| tokens.by_month.get(&tag).copied()))
        .flatten();
    let token = known.unwrap_or_else(|| {
        if pg::read_only().is_some() {
            cannot_write(
                "month_lock: month_lock_token cannot draw a token in a read-only transaction",
            );
        }
        let token = next_token();
        pg::exclusive_hold(tag, true);
        TOKENS.with(|tokens| tokens.by_month.insert(tag, token));
        token
    });
    pg::commit_covers_wal_so_far();
    token
}

/// 25006 (`read_only_sql_transaction`), as `nextval` raises it.
#[cold]
fn cannot_write(message: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
        message.into(),
        "A new token is drawn from a sequence and made durable at commit: ask for it on the \
         primary, in a transaction that may write."
            .into(),
    )
}

/// The next value of the extension's token sequence.
fn next_token() -> i64 {
    const NEXT: &str = "SELECT pg_catalog.nextval(c.oid::pg_catalog.regclass) \
          FROM pg_catalog.pg_class c, pg_catalog.pg_extension e \
         WHERE e.extname OPERATOR(pg_catalog.=) 'month_lock' \
           AND c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace \
           AND c.relname OPERATOR(pg_catalog.=) 'month_lock_token_seq'";
    match Spi::get_one::<i64>(NEXT) {
        Ok(Some(token)) => token,
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "month_lock: the sequence month_lock_token_seq of the extension is missing".into(),
            "Run ALTER EXTENSION month_lock UPDATE.".into(),
        ),
    }
}

/// The top-level transaction ended: once enough have gathered (see
/// [`Remembered::prune_above`]), remembered tokens of holds that are gone are dropped (a hold
/// that goes on keeps its token; see [`token`]). Registered as
/// [`pg::TransactionHooks::transaction_ended`].
pub fn transaction_ended() {
    TOKENS.with(|tokens| {
        if tokens.by_month.len() > tokens.prune_above {
            tokens
                .by_month
                .retain(|tag, _| pg::held_by_me(*tag, Mode::Exclusive));
            tokens.prune_above = (2 * tokens.by_month.len()).max(PRUNE_AT_LEAST);
        }
    });
}
