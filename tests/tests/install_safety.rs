//! The install script cannot be hijacked by look-alike objects in the target schema
//! (docs/install.md, "Why a superuser").
//!
//! An unprivileged role `mallory` may create objects in schema `s`. Before a superuser runs
//! `CREATE EXTENSION month_lock SCHEMA s`, mallory plants operators and functions there that an
//! install script with unqualified operator or function names could bind to (an exact-type match
//! such as `bigint % integer` beats pg_catalog's `bigint % bigint`, wherever pg_catalog sits in
//! the search path). Each trap records its call in a table mallory owns and tries to make
//! mallory a superuser, then returns the right answer so nothing looks wrong. After the install
//! the superuser takes locks, reads `s.month_locks` and calls every month_lock function; no trap
//! may have fired, mallory must still be an ordinary role, and no object of the extension (nor
//! the view's rewrite rule) may depend on anything mallory owns.
//!
//! The traps and the dependency check are proven armed by positive controls first, so a pass
//! means the install is safe, not that the test could not see. A second test installs 0.1.0
//! (which does bind to the planted `%`) and runs `ALTER EXTENSION month_lock UPDATE`: the
//! update must leave nothing bound to the planted objects; it needs the released
//! `month_lock--0.1.0.sql` in the extension directory and fails if it is missing.

mod common;
#[path = "install_safety/look_alikes.rs"]
mod look_alikes;

use common::*;
use look_alikes::traps;
use month_lock_tests::server;
use tokio_postgres::Client;

/// Dependencies of the extension's members (and of the view's rewrite rule), plus the objects
/// `extra_watched` selects as (classid, objid), on objects mallory owns, as
/// "object -> referenced object" strings.
fn bad_dependencies_sql(role: &str, extra_watched: &str) -> String {
    format!(
        "
WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'month_lock'),
members AS (
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
),
watched AS (
    SELECT classid, objid FROM members
    UNION ALL
    SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid
      FROM pg_catalog.pg_rewrite r JOIN members m
        ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND r.ev_class = m.objid
    {extra_watched}
),
intruder AS (
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass AS classid, oid FROM pg_catalog.pg_proc
     WHERE proowner = '{role}'::pg_catalog.regrole
    UNION ALL
    SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, oid FROM pg_catalog.pg_operator
     WHERE oprowner = '{role}'::pg_catalog.regrole
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, oid FROM pg_catalog.pg_class
     WHERE relowner = '{role}'::pg_catalog.regrole
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, oid FROM pg_catalog.pg_type
     WHERE typowner = '{role}'::pg_catalog.regrole
)
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
       || pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
  FROM pg_catalog.pg_depend d
  JOIN watched w ON w.classid = d.classid AND w.objid = d.objid
  JOIN intruder m ON m.classid = d.refclassid AND m.oid = d.refobjid
 ORDER BY 1"
    )
}

async fn bad_dependencies(admin: &Client, sql: &str) -> Vec<String> {
    admin
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("dependency query: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn trap_calls(admin: &Client) -> Vec<String> {
    admin
        .query(
            "SELECT what || ' (as ' || by_user || ')' FROM s.mallory_calls ORDER BY id",
            &[],
        )
        .await
        .expect("read s.mallory_calls")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn is_superuser(admin: &Client, role: &str) -> bool {
    q_bool(
        admin,
        &format!("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = '{role}'"),
    )
    .await
}

#[tokio::test]
async fn the_install_script_cannot_be_hijacked_by_look_alikes_in_its_schema() {
    hijack_attempt("mallory", false).await;
}

/// A database that installed 0.1.0 (whose view bound to the planted `%`) and then ran
/// `ALTER EXTENSION month_lock UPDATE`: the update must rebind everything, and its own script
/// must not bind to look-alikes either.
#[tokio::test]
async fn an_update_from_0_1_0_rebinds_the_view_away_from_look_alikes() {
    hijack_attempt("mallory_upd", true).await;
}

/// Plants the traps as `role`, installs (or installs 0.1.0 and updates), uses everything as
/// superuser and checks that no trap fired and nothing depends on the role's objects.
async fn hijack_attempt(role: &str, update_from_0_1_0: bool) {
    let server = server().await;
    let db = server
        .bare_db(if update_from_0_1_0 {
            "install_update"
        } else {
            "install_safety"
        })
        .await;
    let admin = db.connect().await;
    exec(&admin, "SET search_path = \"$user\", public").await;

    let version_available = q_text(
        &admin,
        "SELECT coalesce(default_version, '?') FROM pg_catalog.pg_available_extensions WHERE name = 'month_lock'",
    )
    .await;
    println!("month_lock default_version available: {version_available}");

    // An unprivileged role that may create objects in s (roles are cluster-wide; this file's
    // process has a cluster of its own, but stay idempotent anyway).
    exec(
        &admin,
        &format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ),
    )
    .await;
    exec(
        &admin,
        &format!("CREATE SCHEMA s; GRANT USAGE, CREATE ON SCHEMA s TO {role}"),
    )
    .await;
    assert!(
        !is_superuser(&admin, role).await,
        "mallory starts as an ordinary role"
    );

    // Mallory plants the record table, the hook and the traps.
    let mallory = db.connect_as_role(role).await;
    exec(
        &mallory,
        &format!("CREATE TABLE s.mallory_calls (id bigserial PRIMARY KEY, what text NOT NULL, by_user name NOT NULL);
         GRANT INSERT, SELECT ON s.mallory_calls TO PUBLIC;
         GRANT USAGE ON SEQUENCE s.mallory_calls_id_seq TO PUBLIC;
         CREATE FUNCTION s.mal_hook(what text) RETURNS void LANGUAGE plpgsql
           SET search_path = pg_catalog, pg_temp AS $f$
         BEGIN
           INSERT INTO s.mallory_calls (what, by_user) VALUES (what, current_user);
           BEGIN
             EXECUTE 'ALTER ROLE {role} SUPERUSER';
           EXCEPTION WHEN OTHERS THEN NULL;
           END;
         END $f$;"),
    )
    .await;
    let traps = traps();
    for stmt in &traps {
        exec(&mallory, stmt).await;
    }
    let planted: i64 = q_i64(
        &admin,
        &format!(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_operator WHERE oprowner = '{role}'::regrole)
                  + (SELECT count(*) FROM pg_catalog.pg_proc WHERE proowner = '{role}'::regrole)"
        ),
    )
    .await;
    println!("{role} planted {planted} operators and functions in schema s");

    // Positive control 1: the traps are armed. Mallory trips one herself (she cannot escalate,
    // so only the record stays), then empties the record table.
    assert_eq!(q_i64(&mallory, "SELECT 7::bigint OPERATOR(s.%) 2").await, 1);
    assert_eq!(
        trap_calls(&admin).await,
        vec![format!("operator bigint % integer (as {role})")]
    );
    exec(&mallory, "TRUNCATE s.mallory_calls").await;
    // ... and an unqualified `bigint % integer` with s in the search path binds to the trap even
    // though pg_catalog is searched first: the exact-type match wins.
    exec(&mallory, "SET search_path = s").await;
    assert_eq!(q_i64(&mallory, "SELECT 7::bigint % 2").await, 1);
    assert_eq!(
        trap_calls(&admin).await.len(),
        1,
        "the unqualified operator should bind to the trap"
    );
    exec(&mallory, "TRUNCATE s.mallory_calls").await;

    // Positive control 2: the dependency check sees a view bound to a trap.
    exec(
        &admin,
        "CREATE VIEW public.bait AS SELECT 202403::bigint OPERATOR(s.%) 100 AS m",
    )
    .await;
    let bait_sql = bad_dependencies_sql(
        role,
        "UNION ALL SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, r.oid FROM pg_catalog.pg_rewrite r
          WHERE r.ev_class = 'public.bait'::pg_catalog.regclass",
    );
    let bait_deps = bad_dependencies(&admin, &bait_sql).await;
    assert!(
        bait_deps
            .iter()
            .any(|d| d.contains("rule _RETURN on view bait") && d.contains("operator s.%")),
        "the dependency check does not see a view bound to mallory's operator: {bait_deps:?}"
    );
    exec(&admin, "DROP VIEW public.bait").await;

    // The superuser installs into s (the script runs with s first in its search path).
    if update_from_0_1_0 {
        let available = q_i64(
            &admin,
            "SELECT count(*) FROM pg_catalog.pg_available_extension_versions
              WHERE name = 'month_lock' AND version = '0.1.0'",
        )
        .await;
        assert_eq!(
            available, 1,
            "month_lock 0.1.0 cannot be installed here: `make install` must also install the \
             released script sql/month_lock--0.1.0.sql into the extension directory"
        );
        exec(
            &admin,
            "CREATE EXTENSION month_lock VERSION '0.1.0' SCHEMA s",
        )
        .await;
        let before = bad_dependencies(&admin, &bad_dependencies_sql(role, "")).await;
        println!("0.1.0 installed; its dependencies on {role}'s objects: {before:?}");
        // 0.1.0 did bind to the planted operator: the update has something to repair.
        assert!(
            !before.is_empty(),
            "0.1.0's view was expected to bind to the planted `%`"
        );
        exec(&admin, "ALTER EXTENSION month_lock UPDATE").await;
    } else {
        exec(&admin, "CREATE EXTENSION month_lock SCHEMA s").await;
    }
    let installed = q_text(
        &admin,
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'month_lock'",
    )
    .await;
    println!("installed month_lock {installed} into schema s");

    // Locks in both modes held by other sessions (an ordinary role too), so the view has rows
    // and evaluates every expression of its select list and WHERE clause.
    let holder = db.connect().await;
    exec(&holder, "SET search_path = \"$user\", public").await;
    assert!(q_bool(&holder, "SELECT s.month_lock_try(2024, 3)").await);
    let reader = db.connect_as_role(role).await;
    exec(&reader, "SET search_path = pg_catalog").await;
    assert!(q_bool(&reader, "SELECT s.month_lock_try_shared(2024, 5)").await);
    assert!(q_bool(&holder, "SELECT s.month_lock_try_shared(2024, 5)").await);
    // A waiter too (waiting_since, ordering by waitstart).
    let waiter = db.connect().await;
    let waiting = tokio::spawn(async move {
        let got = q_bool(&waiter, "SELECT s.month_lock_try(2024, 3, 30000)").await;
        (got, waiter)
    });
    let deadline = std::time::Instant::now() + SLOW;
    loop {
        if q_i64(
            &admin,
            "SELECT count(*) FROM s.month_locks WHERE NOT granted",
        )
        .await
            == 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never showed in s.month_locks"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The superuser reads the view, with and without s in the search path.
    for path in ["\"$user\", public", "s", "s, pg_catalog", "pg_catalog, s"] {
        exec(&admin, &format!("SET search_path = {path}")).await;
        let rows = admin
            .query(
                "SELECT year, month, month_start::text, mode, granted, pid, waiting_since IS NULL,
                        application_name, usename::text, client_addr IS NULL, backend_start IS NULL
                   FROM s.month_locks",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("read s.month_locks (search_path {path}): {e}"));
        let summary: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}-{:02} {} {} {}",
                    r.get::<_, i32>(0),
                    r.get::<_, i32>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, bool>(4)
                )
            })
            .collect();
        assert_eq!(
            rows.len(),
            4,
            "view rows with search_path {path}: {summary:?}"
        );
        assert!(
            summary.contains(&"2024-03 2024-03-01 exclusive true".to_string()),
            "{summary:?}"
        );
        assert!(
            summary.contains(&"2024-03 2024-03-01 exclusive false".to_string()),
            "{summary:?}"
        );
    }
    exec(&admin, "SET search_path = s").await;

    // Every function of the extension, called by the superuser with s in its search path, on a
    // month nobody else holds (so the unlimited waits return at once).
    exec(&admin, "SET statement_timeout = '20s'").await;
    let functions = admin
        .query(
            "SELECT p.oid::regprocedure::text, p.proname::text,
                    coalesce(p.proargnames, ARRAY[]::text[]), p.pronargs::int
               FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
               JOIN pg_catalog.pg_extension e ON d.refclassid = 'pg_catalog.pg_extension'::regclass
                    AND d.refobjid = e.oid AND d.deptype = 'e'
              WHERE e.extname = 'month_lock'
              ORDER BY 1",
            &[],
        )
        .await
        .expect("list the extension's functions");
    assert!(
        functions.len() >= 12,
        "only {} functions in the extension",
        functions.len()
    );
    let mut called = 0;
    let mut errors = Vec::new();
    for round in 0..2 {
        exec(&admin, "BEGIN").await;
        for f in &functions {
            let (sig, name, argnames, nargs): (String, String, Vec<String>, i32) =
                (f.get(0), f.get(1), f.get(2), f.get(3));
            let args: Vec<String> = argnames
                .iter()
                .take(nargs as usize)
                .map(|a| {
                    let v = match a.as_str() {
                        "year" => "2024",
                        "month" => "4",
                        "timeout_ms" => "10",
                        other => {
                            println!("{sig}: argument {other} not known to this test, passing 1");
                            "1"
                        }
                    };
                    format!("{a} => {v}")
                })
                .collect();
            // Unqualified in round 0 (s is the search path), qualified in round 1.
            let schema = if round == 0 { "" } else { "s." };
            let sql = format!("SELECT {schema}{name}({})::text", args.join(", "));
            exec(&admin, "SAVEPOINT call").await;
            match admin.simple_query(&sql).await {
                Ok(_) => called += 1,
                Err(e) => {
                    let msg = e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or(e.to_string());
                    errors.push(format!("{sig}: {msg}"));
                    exec(&admin, "ROLLBACK TO SAVEPOINT call").await;
                }
            }
        }
        // A few more shapes: stacked calls in one statement, the view joined with a function.
        exec(
            &admin,
            "SELECT s.month_lock_try(2024, 6), s.month_lock_held(2024, 6), s.month_is_locked(2024, 6),
                    s.month_lock_release(2024, 6), s.month_lock_release_all()",
        )
        .await;
        exec(
            &admin,
            "SELECT count(*) FROM s.month_locks WHERE s.month_lock_held(year, month)",
        )
        .await;
        exec(&admin, "COMMIT").await;
    }
    println!(
        "called {called} functions ({} in the extension, twice) as superuser; errors: {errors:?}",
        functions.len()
    );
    assert!(called >= functions.len(), "most calls failed: {errors:?}");

    assert!(q_bool(&holder, "SELECT s.month_lock_release(2024, 3)").await);
    let (got, waiter) = waiting.await.unwrap();
    assert!(
        got,
        "the waiter should get 2024-03 once the holder released it"
    );
    drop(waiter);

    // Verdict.
    let calls = trap_calls(&admin).await;
    let superuser = is_superuser(&admin, role).await;
    let deps = bad_dependencies(&admin, &bad_dependencies_sql(role, "")).await;
    let members = q_i64(
        &admin,
        "SELECT count(*) FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e
             ON d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = e.oid AND d.deptype = 'e'
          WHERE e.extname = 'month_lock'",
    )
    .await;
    println!(
        "extension members: {members}; trap calls: {}; mallory superuser: {superuser}; \
         dependencies on mallory's objects: {}",
        calls.len(),
        deps.len()
    );
    let mut fired: Vec<(String, usize)> = Vec::new();
    for c in &calls {
        match fired.iter_mut().find(|(what, _)| what == c) {
            Some((_, n)) => *n += 1,
            None => fired.push((c.clone(), 1)),
        }
    }
    let fired: Vec<String> = fired
        .iter()
        .map(|(what, n)| format!("{what} x{n}"))
        .collect();
    for f in &fired {
        println!("  trap fired: {f}");
    }
    for d in &deps {
        println!("  depends: {d}");
    }
    if superuser {
        exec(&admin, &format!("ALTER ROLE {role} NOSUPERUSER")).await;
    }
    assert!(
        !superuser,
        "mallory made herself superuser through the extension; traps fired: {fired:?}; \
         dependencies on mallory's objects: {deps:?}"
    );
    assert!(
        calls.is_empty(),
        "mallory's look-alikes were called: {fired:?}"
    );
    assert!(
        deps.is_empty(),
        "month_lock objects depend on mallory's objects: {deps:?}"
    );
    drop(holder);
    drop(reader);
    drop(mallory);
}
