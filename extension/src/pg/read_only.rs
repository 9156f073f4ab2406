//! Whether the running transaction may write, asked as PostgreSQL's own writing functions ask
//! it (`nextval` among them) before they touch anything.

use pgrx::pg_sys;

/// Why the running transaction may not write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOnly {
    /// The server is in recovery: a hot standby (or a server still replaying WAL). Every
    /// transaction is read-only there, and none can get a transaction id.
    Recovery,
    /// A read-only transaction on a server that can write (`SET TRANSACTION READ ONLY`,
    /// `default_transaction_read_only`).
    Transaction,
}

/// `None` when the running transaction may write; else why not. The same checks, in the same
/// order, as `PreventCommandDuringRecovery` and `PreventCommandIfReadOnly`.
pub fn read_only() -> Option<ReadOnly> {
    // SAFETY: RecoveryInProgress is pgrx-guarded (an ERROR comes back as the same ERROR);
    // XactReadOnly is this backend's own variable, read on its own thread.
    unsafe {
        if pg_sys::RecoveryInProgress() {
            Some(ReadOnly::Recovery)
        } else if pg_sys::XactReadOnly {
            Some(ReadOnly::Transaction)
        } else {
            None
        }
    }
}
