//! `ALTER EXTENSION month_lock UPDATE` from the released 0.1.0 (or `MONTH_LOCK_UPGRADE_FROM`),
//! with locks held across it, gives a catalog identical to a fresh install of the current
//! version (docs/install.md, "Upgrades"). Needs the released script
//! (`sql/month_lock--0.1.0.sql`) and the upgrade scripts installed next to the current one
//! (`make tree-install` does that); fails if they are missing.
//!
//! 1. database A: `CREATE EXTENSION month_lock` (the current version, fresh);
//! 2. database B: `CREATE EXTENSION month_lock VERSION 'FROM'`; a second session takes a
//!    session lock, a shared lock and a transaction lock in B and keeps them; `ALTER EXTENSION
//!    month_lock UPDATE`; the locks are still granted to that session and it can release them;
//! 3. the catalog of A and B is identical: extension version, every member function's
//!    signature, result, definition (`pg_get_functiondef`), comment and ACL, the view's
//!    definition, comment and ACL, the extension's member list.

mod common;

use common::*;
use month_lock_tests::{server, TestDb};
use tokio_postgres::SimpleQueryMessage;

/// Every object of the extension as (kind and name, definition) rows, in a stable order.
const CATALOG: &str = "
SELECT 'extension', extname || ' ' || extversion || ' relocatable=' || extrelocatable || ' schema=' || extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'month_lock'
UNION ALL
SELECT 'member', pg_describe_object(classid, objid, objsubid)
  FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
UNION ALL
SELECT 'function ' || p.oid::regprocedure,
       'returns ' || pg_get_function_result(p.oid) || E'\\n' || pg_get_functiondef(p.oid)
       || E'\\ncomment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '<none>')
       || E'\\nacl: ' || coalesce(p.proacl::text, '<default>') || ' owner: ' || p.proowner::regrole
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
UNION ALL
SELECT 'relation ' || c.oid::regclass,
       c.relkind::text || E'\\n' || coalesce(pg_get_viewdef(c.oid), '')
       || E'\\ncomment: ' || coalesce(obj_description(c.oid, 'pg_class'), '<none>')
       || E'\\nacl: ' || coalesce(c.relacl::text, '<default>') || ' owner: ' || c.relowner::regrole
  FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'month_lock')
ORDER BY 1, 2";

/// The catalog of the extension in `db` as "kind|definition" rows (the text psql -At prints).
async fn catalog(db: &TestDb) -> Vec<String> {
    let c = db.connect().await;
    c.simple_query(CATALOG)
        .await
        .unwrap_or_else(|e| panic!("catalog query: {}", describe(&e)))
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(format!(
                "{}|{}",
                r.get(0).unwrap_or(""),
                r.get(1).unwrap_or("")
            )),
            _ => None,
        })
        .collect()
}

/// The first value of a one-value simple query (text, as psql -At prints it).
async fn text_of(c: &tokio_postgres::Client, sql: &str) -> String {
    let messages = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    first_value(&messages).unwrap_or_else(|| panic!("{sql}: no row"))
}

#[tokio::test]
async fn updating_from_0_1_0_with_locks_held_gives_the_catalog_of_a_fresh_install() {
    let from = std::env::var("MONTH_LOCK_UPGRADE_FROM").unwrap_or_else(|_| "0.1.0".into());
    let server = server().await;
    let fresh = server.bare_db("upgrade_fresh").await;
    let upgraded = server.bare_db("upgrade_from").await;
    let admin = fresh.connect().await;
    let to = text_of(
        &admin,
        "SELECT default_version FROM pg_available_extensions WHERE name = 'month_lock'",
    )
    .await;
    if to == from {
        println!("upgrade-check: default version is {from} itself, no upgrade to check");
        return;
    }
    println!("upgrade-check: {from} -> {to}");
    exec(&admin, "CREATE EXTENSION month_lock").await;
    // Each step in a session of its own, as psql -c would.
    exec(
        &upgraded.connect().await,
        &format!("CREATE EXTENSION month_lock VERSION '{from}'"),
    )
    .await;

    // A session that holds locks across the update.
    let holder = upgraded.connect().await;
    assert_eq!(
        text_of(&holder, "SELECT month_lock_try(2024, 3)").await,
        "t"
    );
    assert_eq!(
        text_of(&holder, "SELECT month_lock_try_shared(2024, 4)").await,
        "t"
    );
    exec(&holder, "BEGIN").await;
    assert_eq!(
        text_of(&holder, "SELECT month_lock_try_xact(2024, 5)").await,
        "t"
    );
    let holder_pid = text_of(&holder, "SELECT pg_backend_pid()").await;

    exec(
        &upgraded.connect().await,
        "ALTER EXTENSION month_lock UPDATE",
    )
    .await;
    let version = text_of(
        &upgraded.connect().await,
        "SELECT extversion FROM pg_extension WHERE extname = 'month_lock'",
    )
    .await;
    assert_eq!(version, to, "upgrade-check: version after the update");

    let held = text_of(
        &upgraded.connect().await,
        &format!(
            "SELECT string_agg(year || '-' || month || ' ' || mode, ', ' ORDER BY year, month)
               FROM month_locks WHERE pid = {holder_pid} AND granted"
        ),
    )
    .await;
    println!("upgrade-check: held across the update by pid {holder_pid}: {held}");
    assert_eq!(
        held, "2024-3 exclusive, 2024-4 shared, 2024-5 exclusive",
        "upgrade-check: locks lost"
    );
    exec(&holder, "COMMIT").await;
    assert_eq!(
        text_of(
            &holder,
            "SELECT month_lock_release(2024, 3) AND month_lock_release_shared(2024, 4) \
             AND NOT month_lock_held(2024, 5)"
        )
        .await,
        "t"
    );
    drop(holder);

    let (fresh_rows, upgraded_rows) = (catalog(&fresh).await, catalog(&upgraded).await);
    if fresh_rows != upgraded_rows {
        let only = |a: &[String], b: &[String], sign: char| -> Vec<String> {
            a.iter()
                .filter(|row| !b.contains(row))
                .map(|row| format!("{sign} {row}"))
                .collect()
        };
        panic!(
            "upgrade-check: FAILED, the catalog after ALTER EXTENSION UPDATE differs from a fresh {to} install (- fresh, + upgraded):\n{}\n{}",
            only(&fresh_rows, &upgraded_rows, '-').join("\n"),
            only(&upgraded_rows, &fresh_rows, '+').join("\n")
        );
    }
    println!(
        "upgrade-check: {} catalog rows identical (fresh {to} vs {from} updated)",
        fresh_rows.len()
    );
}
