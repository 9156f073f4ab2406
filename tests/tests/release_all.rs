//! month_lock_release_all() releases only the month locks month_lock took, never another library's
//! advisory locks on the same session (with legacy or default keys), and its cost does not grow
//! with other sessions' advisory locks (docs/sql.md: month_lock_release_all).

mod common;

use common::*;
use month_lock_tests::backend_pid;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn release_all_releases_only_what_month_lock_took() {
    let db = db("release_all_only").await;
    let (c, observer) = (db.connect().await, db.connect().await);
    let pid = backend_pid(&c).await;

    // Legacy keys: another library's pg_advisory_lock(4207) on the same session is not a month
    // (it would read as year 42, month 7) and neither shows nor is released.
    exec(&c, "SET month_lock.legacy_keys = on").await;
    exec(&c, "SELECT pg_advisory_lock(4207); SELECT pg_advisory_lock(99901); SELECT pg_advisory_lock(202413)").await;
    assert!(q_bool(&c, "SELECT month_lock_try(2024, 3)").await);
    assert_eq!(
        view_rows(&c).await,
        vec![format!("2024-03 exclusive granted {pid}")]
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        1
    );
    assert_eq!(
        advisory_locks_of(&observer, pid).await,
        [
            "0/202413/1 ExclusiveLock granted",
            "0/4207/1 ExclusiveLock granted",
            "0/99901/1 ExclusiveLock granted"
        ]
    );
    assert!(view_rows(&c).await.is_empty());
    // Years below 1000 are not six-digit keys: refused in legacy mode.
    let (code, message) = error_of(&c, "SELECT month_lock_try(999, 1)").await;
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE, "{message}");
    assert!(message.contains("year"), "{message}");
    exec(
        &c,
        "SELECT pg_advisory_unlock_all(); RESET month_lock.legacy_keys",
    )
    .await;

    // Default keys: a raw pg_advisory_lock(namespace, 202403) is the caller's to release.
    assert!(
        q_bool(
            &c,
            &format!("SELECT pg_try_advisory_lock({DEFAULT_NAMESPACE}, 202403)")
        )
        .await
    );
    assert!(
        q_bool(
            &c,
            "SELECT month_lock_try(2024, 4) AND month_lock_try_shared(2024, 5)"
        )
        .await
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        2
    );
    assert_eq!(
        advisory_locks_of(&observer, pid).await,
        [format!(
            "{DEFAULT_NAMESPACE}/202403/2 ExclusiveLock granted"
        )]
    );
    assert!(
        q_bool(
            &c,
            &format!("SELECT pg_advisory_unlock({DEFAULT_NAMESPACE}, 202403)")
        )
        .await
    );
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        0
    );
}

#[tokio::test]
async fn release_all_cost_does_not_grow_with_other_sessions_advisory_locks() {
    let db = db("release_all_cost").await;
    let (c, other) = (db.connect().await, db.connect().await);
    // Timed in the server (clock_timestamp around each call), so that scheduling of the client
    // on loaded cores does not count; 3 months held at each call.
    exec(
        &c,
        "CREATE FUNCTION pg_temp.release_all_ms(calls int) RETURNS float8 LANGUAGE plpgsql AS $$
         DECLARE total interval := '0'; t0 timestamptz; n int;
         BEGIN
           FOR i IN 1..calls LOOP
             PERFORM month_lock_try(2024, 3), month_lock_try(2024, 4), month_lock_try_shared(2024, 5);
             t0 := clock_timestamp();
             n := month_lock_release_all();
             total := total + (clock_timestamp() - t0);
             IF n <> 3 THEN RAISE EXCEPTION 'call %: released %', i, n; END IF;
           END LOOP;
           RETURN extract(epoch FROM total) * 1000 / calls;
         END $$",
    )
    .await;
    let mut averages = Vec::new();
    for other_locks in [0, 50_000] {
        if other_locks > 0 {
            let sql = format!(
                "SELECT count(pg_advisory_lock(5, i)) FROM generate_series(1, {other_locks}) i"
            );
            assert_eq!(q_i64(&other, &sql).await, other_locks);
        }
        averages.push(one::<f64>(&c, "SELECT pg_temp.release_all_ms(200)").await);
    }
    println!(
        "release_all with 3 months held, 200 calls timed in the server: {:.4} ms per call alone, \
         {:.4} ms with 50,000 other advisory locks in the table",
        averages[0], averages[1]
    );
    assert!(
        averages[1] < 5.0,
        "release_all took {} ms per call",
        averages[1]
    );
}

/// The session's record of what month_lock took keeps its rules when it holds many months
/// (the record changes its storage above a handful of holds): re-entry, a release of one, a
/// failed request's undo and the final release all answer as with one month held.
#[tokio::test]
async fn many_months_held_keep_every_rule_of_the_record() {
    let db = db("release_all_many").await;
    let (c, observer) = (db.connect().await, db.connect().await);
    let pid = backend_pid(&c).await;

    // 40 months, 2001-01 .. 2004-04, in one request; re-entry on all of them takes nothing.
    let take = "SELECT count(*) FILTER (WHERE month_lock_try(2001 + g / 12, 1 + g % 12))::bigint \
                FROM generate_series(0, 39) g";
    assert_eq!(q_i64(&c, take).await, 40);
    assert_eq!(q_i64(&c, take).await, 40, "re-entry answers true");
    assert_eq!(advisory_locks_of(&observer, pid).await.len(), 40);

    // A request that takes 30 more and then fails gives back exactly those 30.
    let (code, _) = error_of(
        &c,
        "SELECT count(*) FILTER (WHERE month_lock_try(2010 + g / 12, 1 + g % 12)) / 0 \
         FROM generate_series(0, 29) g",
    )
    .await;
    assert_eq!(code, SqlState::DIVISION_BY_ZERO);
    assert_eq!(advisory_locks_of(&observer, pid).await.len(), 40);

    // One release frees one month; a raw lock taken meanwhile stays the caller's.
    assert!(q_bool(&c, "SELECT month_lock_release(2001, 1)").await);
    assert!(!q_bool(&c, "SELECT month_lock_release(2001, 1)").await);
    exec(
        &c,
        &format!("SELECT pg_advisory_lock({DEFAULT_NAMESPACE}, 209901)"),
    )
    .await;
    assert_eq!(advisory_locks_of(&observer, pid).await.len(), 40);
    assert_eq!(
        q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
        39
    );
    assert_eq!(
        advisory_locks_of(&observer, pid).await,
        [format!(
            "{DEFAULT_NAMESPACE}/209901/2 ExclusiveLock granted"
        )]
    );
}
