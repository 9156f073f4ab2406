//! Making the running transaction's commit durable for the WAL written so far (fencing tokens
//! need it).

use pgrx::pg_sys;

/// Makes the running transaction's commit durable for everything logged so far: when it
/// commits, PostgreSQL flushes the WAL up to its commit record before the commit returns and,
/// when `synchronous_commit` asks for it, waits until the synchronous standbys confirm it.
/// WAL is one sequence, so that covers every record inserted before this call, whichever
/// backend wrote it — such as the sequence record behind a token drawn from the sequence's
/// cached range, which the transaction that wrote it may have rolled back.
///
/// PostgreSQL commits synchronously only a transaction that has a transaction id *and* wrote
/// WAL itself (`RecordTransactionCommit` reads `XactLastRecEnd`); a transaction that only read a
/// sequence value from the cached range has neither, and its commit neither flushes nor waits.
/// So the transaction gets an id, and its end of WAL is moved to the current insert position.
/// Raises on a standby (no transaction ids during recovery).
pub fn commit_covers_wal_so_far() {
    // SAFETY: GetTopTransactionId is pgrx-guarded: an ERROR (recovery, xid wraparound limits)
    // comes back as the same ERROR. GetXLogInsertRecPtr reads the insert position under its
    // spinlock and cannot raise. XactLastRecEnd is this backend's own variable, which
    // PostgreSQL advances after each WAL insert of this backend and resets when the transaction
    // ends: moving it forward to a position already inserted only makes the commit flush (and
    // wait for) more; it is never moved backwards.
    unsafe {
        pg_sys::GetTopTransactionId();
        let inserted = pg_sys::GetXLogInsertRecPtr();
        if pg_sys::XactLastRecEnd < inserted {
            pg_sys::XactLastRecEnd = inserted;
        }
    }
}
