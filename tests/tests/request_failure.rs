//! A session grant is undone only when the client request that made it failed (docs/semantics.md:
//! "A session lock never outlives a failed request that took it"): never by an error that was
//! caught while the request was still succeeding — at the Sync that commits an extended-protocol
//! request, while a holdable cursor is materialised at commit, in a fast-path call — and always
//! when the request fails: one query string (also across COMMITs inside it), or one
//! extended-protocol Execute up to and including its commit at Sync.

mod common;

use common::*;
use month_lock_tests::wire::{Answer, Wire};
use month_lock_tests::{backend_pid, server, wait_until_waiting, TestDb};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// A table whose deferred constraint trigger runs at commit and catches an error there, and
/// one whose deferred trigger fails at commit; a function that takes a month and then catches
/// an error. Created by the superuser; used by an ordinary role.
async fn db_and_role(hint: &str) -> (TestDb, TestDb) {
    let db = server().await.fresh_db(hint).await;
    let admin = db.connect().await;
    exec(
        &admin,
        "CREATE TABLE log (x int);
         CREATE FUNCTION catches() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             BEGIN PERFORM 1/0; EXCEPTION WHEN others THEN NULL; END;
             RETURN NULL;
           END $$;
         CREATE CONSTRAINT TRIGGER catches AFTER INSERT ON log
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catches();
         CREATE TABLE bad (x int);
         CREATE FUNCTION fails() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'deferred check failed' USING ERRCODE = '23514'; END $$;
         CREATE CONSTRAINT TRIGGER fails AFTER INSERT ON bad
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fails();
         CREATE FUNCTION take_then_catch(y int, m int) RETURNS boolean LANGUAGE plpgsql AS $$
           DECLARE got boolean;
           BEGIN
             got := month_lock_try(y, m);
             BEGIN PERFORM 1/0; EXCEPTION WHEN others THEN NULL; END;
             RETURN got;
           END $$;
         CREATE FUNCTION take_in_block(y int, m int) RETURNS boolean LANGUAGE plpgsql AS $$
           DECLARE got boolean;
           BEGIN
             BEGIN got := month_lock_try(y, m); EXCEPTION WHEN others THEN NULL; END;
             RETURN got;
           END $$;
         CREATE PROCEDURE take_commit_fail(y int, m int) LANGUAGE plpgsql AS $$
           BEGIN
             PERFORM month_lock_try(y, m);
             COMMIT;
             PERFORM 1/(month_lock_held(y, m)::int - 1);
           END $$;
         CREATE PROCEDURE take_commit_fails(y int, m int) LANGUAGE plpgsql AS $$
           BEGIN
             PERFORM month_lock_try(y, m);
             INSERT INTO bad VALUES (1);
             COMMIT;
           END $$;
         GRANT ALL ON log, bad TO PUBLIC;",
    )
    .await;
    let role = db.with_new_role("request_failure").await;
    (db, role)
}

/// The month is held by `holder`'s session: `month_lock_held` there, refused elsewhere.
async fn held_by(holder: &Client, other: &Client, y: i32, m: i32) -> bool {
    let mine = q_bool(holder, &format!("SELECT month_lock_held({y}, {m})")).await;
    let free = q_bool(other, &format!("SELECT month_lock_try({y}, {m})")).await;
    if free {
        exec(other, &format!("SELECT month_lock_release({y}, {m})")).await;
    }
    assert_eq!(mine, !free, "month_lock_held and another session disagree");
    mine
}

#[tokio::test]
async fn a_grant_survives_an_error_caught_by_a_deferred_trigger_at_syncs_commit() {
    let (_, role) = db_and_role("deferred_catch").await;
    let (c, other) = (role.connect().await, role.connect().await);
    for round in 0..50 {
        let x = round;
        // tokio-postgres sends Parse/Bind/Execute/Sync: the trigger runs at Sync's commit.
        let row = c
            .query_one(
                "WITH i AS (INSERT INTO log VALUES ($1) RETURNING x) SELECT month_lock_try(2050, 5) FROM i",
                &[&x],
            )
            .await
            .unwrap_or_else(|e| panic!("{}", describe(&e)));
        assert!(row.get::<_, bool>(0));
        assert!(
            held_by(&c, &other, 2050, 5).await,
            "round {round}: grant kept"
        );
        let claimed: Option<String> = c
            .query_one(
                "WITH i AS (INSERT INTO log VALUES ($1) RETURNING x) \
                 SELECT month_lock_claim(ARRAY['2050-06-01']::date[])::text FROM i",
                &[&x],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(claimed.as_deref(), Some("2050-06-01"));
        let all: bool = c
            .query_one(
                "WITH i AS (INSERT INTO log VALUES ($1) RETURNING x) \
                 SELECT month_lock_all(ARRAY['2050-07-01', '2050-08-01']::date[], 100) FROM i",
                &[&x],
            )
            .await
            .unwrap()
            .get(0);
        assert!(all);
        for m in [6, 7, 8] {
            assert!(
                held_by(&c, &other, 2050, m).await,
                "round {round}: 2050-{m:02} kept"
            );
        }
        assert_eq!(
            q_i64(&c, "SELECT month_lock_release_all()::bigint").await,
            4
        );
    }
}

#[tokio::test]
async fn a_grant_made_while_a_holdable_cursor_is_materialised_at_commit_survives_a_caught_error() {
    let (_, role) = db_and_role("holdable_cursor").await;
    let (c, other) = (role.connect().await, role.connect().await);
    for round in 0..20 {
        // Extended protocol (tokio-postgres prepares every statement) and simple protocol.
        c.execute(
            "DECLARE cur CURSOR WITH HOLD FOR SELECT take_then_catch(2050, 9)",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{}", describe(&e)));
        assert!(
            held_by(&c, &other, 2050, 9).await,
            "round {round}, extended"
        );
        exec(&c, "CLOSE cur; SELECT month_lock_release(2050, 9)").await;
        c.batch_execute("DECLARE cur CURSOR WITH HOLD FOR SELECT take_then_catch(2050, 9)")
            .await
            .unwrap();
        assert!(held_by(&c, &other, 2050, 9).await, "round {round}, simple");
        exec(&c, "CLOSE cur; SELECT month_lock_release(2050, 9)").await;
    }
}

#[tokio::test]
async fn a_grant_made_in_a_fast_path_call_survives_an_error_caught_in_it() {
    let (_, role) = db_and_role("fast_path").await;
    let other = role.connect().await;
    let oid = q_i64(
        &other,
        "SELECT 'take_then_catch(int, int)'::regprocedure::oid::bigint",
    )
    .await;
    let config = role.config.clone();
    let (answer, pid) = tokio::task::spawn_blocking(move || {
        let mut wire = Wire::connect(&config);
        let answer = wire.call(oid as u32, &["2050", "10"]);
        let pid = wire.pid();
        (answer, pid, wire)
    })
    .await
    .map(|(a, p, wire)| {
        std::mem::forget(wire); // keep the session (and its month) open until the test ends
        (a, p)
    })
    .unwrap();
    assert_eq!(answer, Answer::Rows(vec![Some("t".into())]));
    assert!(
        !q_bool(&other, "SELECT month_lock_try(2050, 10)").await,
        "the fast-path caller kept the month"
    );
    let holders = q_i64(
        &other,
        &format!(
            "SELECT count(*) FROM month_locks WHERE year = 2050 AND month = 10 AND granted AND pid = {pid}"
        ),
    )
    .await;
    assert_eq!(holders, 1);
}

/// A request is one Execute with the Sync that commits it: a grant is undone when the same
/// Execute fails, or the commit at its Sync fails; in a pipeline of several Executes, a grant
/// an earlier Execute reported stays when a later one, or the commit, fails.
#[tokio::test]
async fn in_a_pipeline_each_execute_is_a_request_and_its_commit_at_sync_belongs_to_it() {
    let (_, role) = db_and_role("pipeline_commit").await;
    let other = role.connect().await;
    let config = role.config.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let mut wire = Wire::connect(&config);
        let mut out = Vec::new();
        for _ in 0..20 {
            // The failing write in the same Execute as the grant: its commit fails at Sync.
            out.push(wire.pipeline(&[
                "WITH i AS (INSERT INTO bad VALUES (1) RETURNING x) SELECT month_lock_try(2051, 1) FROM i",
            ]));
            out.push(wire.pipeline(&["SELECT month_lock_held(2051, 1)"]));
            // In a later Execute, failing at the commit.
            out.push(wire.pipeline(&[
                "SELECT month_lock_try(2051, 2)",
                "INSERT INTO bad VALUES (2)",
            ]));
            out.push(wire.pipeline(&["SELECT month_lock_held(2051, 2)"]));
            // A later Execute that fails at once.
            out.push(wire.pipeline(&[
                "SELECT month_lock_try(2051, 3)",
                "SELECT 1/(month_lock_held(2051, 3)::int - 1)",
            ]));
            out.push(wire.pipeline(&["SELECT month_lock_held(2051, 3)"]));
            // A pipeline that commits.
            out.push(wire.pipeline(&[
                "SELECT month_lock_try(2051, 4)",
                "INSERT INTO log VALUES (1)",
            ]));
            out.push(wire.pipeline(&["SELECT month_lock_held(2051, 4)"]));
            out.push(wire.pipeline(&["SELECT month_lock_release_all()"]));
        }
        out
    })
    .await
    .unwrap();
    let t = || Answer::Rows(vec![Some("t".into())]);
    let f = || Answer::Rows(vec![Some("f".into())]);
    for round in outcomes.chunks(9) {
        assert_eq!(round[0].len(), 2, "{:?}", round[0]);
        assert!(matches!(&round[0][1], Answer::Error(code, _) if code == "23514"));
        assert_eq!(
            round[1],
            vec![f()],
            "the Execute whose commit failed: undone"
        );
        assert_eq!(round[2][0], t());
        assert!(matches!(&round[2][2], Answer::Error(code, _) if code == "23514"));
        assert_eq!(
            round[3],
            vec![t()],
            "an earlier Execute of the pipeline: kept"
        );
        assert_eq!(round[4][0], t());
        assert!(matches!(&round[4][1], Answer::Error(code, _) if code == "22012"));
        assert_eq!(
            round[5],
            vec![t()],
            "an earlier Execute of the pipeline: kept"
        );
        assert_eq!(round[7], vec![t()], "committed pipeline: kept");
        assert_eq!(round[8], vec![Answer::Rows(vec![Some("3".into())])]);
    }
    assert_eq!(
        q_i64(&other, "SELECT count(*) FROM month_locks WHERE year = 2051").await,
        0
    );
}

/// Inside a transaction block each Execute is a request: a completed one keeps its grant
/// when a later one fails, and through the ROLLBACK that follows.
#[tokio::test]
async fn inside_a_block_a_completed_execute_keeps_its_grant_when_a_later_one_fails() {
    let (_, role) = db_and_role("pipeline_block").await;
    let (c, other) = (role.connect().await, role.connect().await);
    let config = role.config.clone();
    let (answers, held, pid, wire) = tokio::task::spawn_blocking(move || {
        let mut wire = Wire::connect(&config);
        wire.pipeline(&["BEGIN"]);
        let answers = wire.pipeline(&["SELECT month_lock_try(2051, 5)", "SELECT 1/0"]);
        wire.pipeline(&["ROLLBACK"]);
        let held = wire.pipeline(&["SELECT month_lock_held(2051, 5)"]);
        let pid = wire.pid();
        (answers, held, pid, wire)
    })
    .await
    .unwrap();
    assert_eq!(answers[0], Answer::Rows(vec![Some("t".into())]));
    assert!(matches!(&answers[1], Answer::Error(code, _) if code == "22012"));
    assert_eq!(held, vec![Answer::Rows(vec![Some("t".into())])]);
    assert!(!q_bool(&other, "SELECT month_lock_try(2051, 5)").await);
    let _ = (c, pid);
    drop(wire);
}

/// A grant made inside a subtransaction (an EXCEPTION block; month_lock's own wait) belongs to
/// the request like any other: undone when the request fails later, in and outside a block.
#[tokio::test]
async fn a_grant_made_inside_a_subtransaction_is_undone_when_its_request_fails() {
    let (_, role) = db_and_role("subtransaction_grant").await;
    let (c, other, observer) = (
        role.connect().await,
        role.connect().await,
        role.connect().await,
    );
    let pid = backend_pid(&c).await;
    for round in 0..20 {
        for sql in [
            // Each fails after its grant (a constant 1/0 would fail at planning, before it).
            "SELECT 1/(take_in_block(2052, 1)::int - 1)",
            "SELECT 1/(month_lock_try(2052, 1, 1000)::int - 1)",
            "SELECT 1/(month_lock_all(ARRAY['2052-01-01']::date[], 1000)::int - 1)",
        ] {
            let (code, _) = error_of(&c, sql).await;
            assert_eq!(code, SqlState::DIVISION_BY_ZERO);
            assert!(!held_by(&c, &other, 2052, 1).await, "round {round}: {sql}");
            exec(&c, "BEGIN").await;
            let (code, _) = error_of(&c, sql).await;
            assert_eq!(code, SqlState::DIVISION_BY_ZERO);
            exec(&c, "ROLLBACK").await;
            assert!(
                !held_by(&c, &other, 2052, 1).await,
                "round {round}, in a block: {sql}"
            );
        }
        // Through a wait that was really queued: another session held the month.
        assert!(q_bool(&other, "SELECT month_lock_try(2052, 2)").await);
        let releaser = async {
            wait_until_waiting(&observer, pid).await;
            exec(&other, "SELECT month_lock_release(2052, 2)").await;
        };
        let (failed, _) = tokio::join!(
            error_of(&c, "SELECT 1/(month_lock_try(2052, 2, 5000)::int - 1)"),
            releaser
        );
        assert_eq!(failed.0, SqlState::DIVISION_BY_ZERO);
        assert!(
            !held_by(&c, &other, 2052, 2).await,
            "round {round}: after a queued wait"
        );
    }
}

/// A request that commits partway (a procedure's COMMIT, a COMMIT inside a query string) and
/// then fails is still one failed request: its grants are undone, before and after the COMMIT,
/// also when the COMMIT itself is what fails.
#[tokio::test]
async fn a_request_that_commits_partway_and_then_fails_keeps_no_grant() {
    let (_, role) = db_and_role("commit_partway").await;
    let (c, other) = (role.connect().await, role.connect().await);
    for round in 0..10 {
        for (sql, code) in [
            ("CALL take_commit_fail(2053, 1)", SqlState::DIVISION_BY_ZERO),
            ("CALL take_commit_fails(2053, 1)", SqlState::CHECK_VIOLATION),
            (
                "DO $$ BEGIN PERFORM month_lock_try(2053, 1); COMMIT; \
                 PERFORM 1/(month_lock_held(2053, 1)::int - 1); END $$",
                SqlState::DIVISION_BY_ZERO,
            ),
            (
                "SELECT month_lock_try(2053, 1); COMMIT; SELECT 1/(month_lock_held(2053, 1)::int - 1)",
                SqlState::DIVISION_BY_ZERO,
            ),
        ] {
            // Simple protocol, and (single statements) the extended protocol.
            let (got, _) = error_of(&c, sql).await;
            assert_eq!(got, code, "{sql}");
            assert!(!held_by(&c, &other, 2053, 1).await, "round {round}: {sql}");
            if !sql.contains("; ") {
                let err = c.execute(sql, &[]).await.expect_err(sql);
                assert_eq!(common::code(&err), Some(code.clone()), "{sql}");
                assert!(!held_by(&c, &other, 2053, 1).await, "round {round}, extended: {sql}");
            }
        }
    }
}

/// A hold only the raw functions took stays theirs when a month_lock call that took it over
/// fails: `month_lock_all` returning false or raising, a failed request.
#[tokio::test]
async fn a_failed_call_gives_a_raw_hold_back_to_the_raw_functions() {
    let (_, role) = db_and_role("raw_adopt").await;
    let (c, other) = (role.connect().await, role.connect().await);
    let key = format!("{DEFAULT_NAMESPACE}, {}", ym(2054, 1));
    assert!(q_bool(&other, "SELECT month_lock_try(2054, 2)").await);
    for (sql, raises) in [
        (
            "SELECT month_lock_all(ARRAY['2054-01-01', '2054-02-01']::date[])",
            false,
        ),
        (
            "SELECT month_lock_all(ARRAY['2054-01-01', '2054-02-01']::date[], 20)",
            false,
        ),
        ("SELECT 1/(month_lock_try(2054, 1)::int - 1)", true),
        (
            "SELECT 1/(month_lock_claim(ARRAY['2054-01-01']::date[]) IS NULL)::int",
            false,
        ),
    ] {
        exec(&c, &format!("SELECT pg_advisory_lock({key})")).await;
        if raises {
            error_of(&c, sql).await;
        } else {
            c.simple_query(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
        }
        assert!(
            !q_bool(&c, "SELECT month_lock_release(2054, 1)").await,
            "{sql}: the raw hold is not month_lock's"
        );
        assert!(q_bool(&c, "SELECT month_lock_held(2054, 1)").await, "{sql}");
        assert!(
            q_bool(&c, &format!("SELECT pg_advisory_unlock({key})")).await,
            "{sql}"
        );
        assert!(
            !q_bool(&c, "SELECT month_lock_held(2054, 1)").await,
            "{sql}"
        );
    }
}

/// A `replication=database` connection runs SQL in a walsender: its failed requests are
/// undone too.
#[tokio::test]
async fn a_failed_request_on_a_replication_connection_keeps_no_grant() {
    let (db, role) = db_and_role("walsender").await;
    let admin = db.connect().await;
    exec(
        &admin,
        &format!("ALTER ROLE \"{}\" REPLICATION", role.user()),
    )
    .await;
    let other = role.connect().await;
    let host = host_of(&role.config);
    let port = role.config.get_ports().first().copied().unwrap_or(5432);
    let conninfo = format!(
        "host={host} port={port} user={} dbname={} replication=database",
        role.user(),
        role.name
    );
    let out = std::process::Command::new(pg_bindir().join("psql"))
        .args(["-X", "-At", "-d", &conninfo])
        .args(["-c", "SELECT month_lock_try(2055, 1)"])
        .args(["-c", "SELECT 1/(month_lock_try(2055, 2)::int - 1)"])
        .args(["-c", "SELECT month_lock_held(2055, 1), month_lock_held(2055, 2), backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()"])
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("division by zero"), "{stderr}");
    assert!(
        stdout.lines().any(|l| l == "t|f|walsender"),
        "the completed request kept its month, the failed one none:\n{stdout}\n{stderr}"
    );
    assert!(q_bool(&other, "SELECT month_lock_try(2055, 2)").await);
}
