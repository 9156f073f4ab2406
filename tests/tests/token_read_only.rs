//! Where no token can be drawn, `month_lock_token` says so with 25006 (read_only_sql_transaction),
//! as `nextval` does, before the token sequence is touched (docs/semantics.md, "Fencing tokens"):
//! on a hot standby, where a month can be held but nothing can be written or made durable, and
//! in a read-only transaction on the primary for the first token of a hold. Run as an ordinary
//! role.

mod common;

use std::time::{Duration, Instant};

use common::*;
use month_lock_tests::{connect_config, replica, DEFAULT_SETTINGS};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The token sequence's state on the primary: it must not move when a token is refused.
async fn sequence_state(c: &Client) -> (i64, bool) {
    let row = c
        .query_one(
            "SELECT last_value, is_called FROM month_lock_token_seq",
            &[],
        )
        .await
        .expect("read month_lock_token_seq");
    (row.get(0), row.get(1))
}

/// Expects 25006 from `sql` and returns the message (with the hint).
async fn expect_25006(c: &Client, sql: &str, why: &str) -> String {
    let (code, msg) = error_full(c, sql).await;
    assert_eq!(
        code,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        "{why}: {sql}: {msg}"
    );
    assert!(
        msg.contains("month_lock_token"),
        "{why}: the message names the function: {msg}"
    );
    msg
}

#[tokio::test]
async fn token_on_a_hot_standby_raises_25006_and_the_hold_stays_usable() {
    let pair = replica::start_pair(DEFAULT_SETTINGS).await;
    // Created after the standby is in sync, so the standby replays them.
    let db = pair.primary.fresh_db("token_standby").await;
    let role = db.with_new_role("token_standby").await;
    let primary = db.connect().await;
    let before = sequence_state(&primary).await;

    // A synchronous commit is flushed on the standby, not yet replayed: wait until the standby
    // has replayed everything written so far.
    let target: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    // Asked in the standby's admin database: the test database may not be replayed yet.
    let admin = connect_config(pair.standby.admin_config()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replayed: bool = admin
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&target],
            )
            .await
            .unwrap()
            .get(0);
        if replayed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standby did not replay {target} within 30 s\n{}",
            pair.standby.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut config = replica::db_config(&pair.standby, &db.name);
    config.user(role.user());
    let c = connect_config(&config).await;
    assert!(
        q_bool(&c, "SELECT pg_is_in_recovery()").await,
        "connected to the standby"
    );

    // Not held: the standby is the reason, before the hold is even looked at.
    let msg = expect_25006(&c, "SELECT month_lock_token(2031, 1)", "not held").await;
    assert!(msg.contains("recovery"), "the message says why: {msg}");

    // Held in session scope on the standby (advisory locks work there): still 25006.
    assert!(q_bool(&c, "SELECT month_lock_try(2031, 1)").await);
    expect_25006(
        &c,
        "SELECT month_lock_token(2031, 1)",
        "held, session scope",
    )
    .await;
    // The error undid nothing the request had not taken: the hold from the earlier request
    // stays, and is released as usual.
    assert!(q_bool(&c, "SELECT month_lock_held(2031, 1)").await);
    assert!(q_bool(&c, "SELECT month_lock_release(2031, 1)").await);

    // Held in transaction scope: 25006, and the transaction is aborted as by any error.
    exec(&c, "BEGIN").await;
    assert!(q_bool(&c, "SELECT month_lock_try_xact(2031, 2)").await);
    expect_25006(
        &c,
        "SELECT month_lock_token(2031, 2)",
        "held, transaction scope",
    )
    .await;
    exec(&c, "ROLLBACK").await;
    assert!(!q_bool(&c, "SELECT month_lock_held(2031, 2)").await);

    // Nothing reached the primary's sequence.
    assert_eq!(sequence_state(&primary).await, before);
    pair.stop().await;
}

#[tokio::test]
async fn first_token_in_a_read_only_transaction_raises_25006_and_leaves_the_sequence() {
    let db = db("token_read_only").await;
    let role = db.with_new_role("token_read_only").await;
    let (c, admin) = (role.connect().await, db.connect().await);

    // Warm the sequence so that its state is visible (last_value after a draw).
    exec(&c, "SELECT month_lock_try(2032, 1)").await;
    let first = q_i64(&c, "SELECT month_lock_token(2032, 1)").await;
    let before = sequence_state(&admin).await;

    // The first token of a new hold, in a read-only transaction: refused by month_lock itself.
    exec(&c, "BEGIN READ ONLY").await;
    assert!(q_bool(&c, "SELECT month_lock_try_xact(2032, 2)").await);
    let msg = expect_25006(&c, "SELECT month_lock_token(2032, 2)", "read-only").await;
    assert!(msg.contains("read-only"), "the message says why: {msg}");
    exec(&c, "ROLLBACK").await;
    assert_eq!(
        sequence_state(&admin).await,
        before,
        "the sequence did not move"
    );

    // A hold that has its token keeps it in a read-only transaction (nothing is drawn).
    exec(&c, "BEGIN READ ONLY").await;
    assert_eq!(q_i64(&c, "SELECT month_lock_token(2032, 1)").await, first);
    exec(&c, "COMMIT").await;

    // In a transaction that may write, the new hold gets its token, larger.
    exec(&c, "BEGIN").await;
    assert!(q_bool(&c, "SELECT month_lock_try_xact(2032, 2)").await);
    assert!(q_i64(&c, "SELECT month_lock_token(2032, 2)").await > first);
    exec(&c, "COMMIT").await;
    assert!(q_bool(&c, "SELECT month_lock_release(2032, 1)").await);
}
