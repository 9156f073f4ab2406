//! Where the extension's functions are: the schema every statement of this crate names them
//! with, found in `pg_catalog` (never through the session's `search_path`) once per session.
//!
//! An unqualified call resolves through the `search_path`, and a role that may create objects in
//! a schema earlier on it could plant a look-alike `month_lock_try` that "takes" a month without
//! locking it: two clients would each get a guard on one month. So every statement names the
//! functions qualified with the schema found here:
//!
//! * the native extension (also the SQL-only edition registered through pg_tle): the schema of
//!   its `pg_extension` row, one per database;
//! * the SQL-only edition installed with `psql -f` (no `pg_extension` row): a schema holding
//!   its `month_lock_try(integer, integer, integer)`, preferring one whose function a superuser
//!   owns, then one the database owner owns (the roles docs/editions.md has install it), then
//!   the first on the `search_path`. A look-alike planted by any other role is never chosen
//!   over an installation by a superuser or the database owner, and never at all off the
//!   `search_path` (nothing found: `ExtensionMissing`).
//!
//! The answer is kept per session, known by its backend key data (`conn_key`): one extra round
//! trip on the first statement of a session that needs it, none after. Only a trustworthy
//! answer is kept (the `pg_extension` row; functions a superuser or the database owner owns):
//! functions of another role may be dropped and the extension installed while the session
//! lives. Connections without key data (some proxies) cannot be told apart: they look it up for
//! every statement. A statement that fails with 42883, 42P01 or 3F000 makes the session look
//! again (the extension was moved, dropped or recreated elsewhere): `sql::classify` for the
//! next statement, a guard for a retry at once (see `MonthLockGuard`'s `schema_moved`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use tokio_postgres::GenericClient;

use super::conn_key::{self, ConnKey};
use crate::error::{Error, Result};

/// The schema of the extension's functions, quoted (`quote_ident`), or no row when neither
/// edition is installed. Every name and operator is `pg_catalog`'s: the lookup runs under the
/// session's `search_path` too.
const LOOKUP: &str = "SELECT pg_catalog.quote_ident(s.nspname), s.trust FROM (\
     SELECT n.nspname, 0 AS trust, 0 AS place \
       FROM pg_catalog.pg_extension e \
       JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
      WHERE e.extname OPERATOR(pg_catalog.=) 'month_lock' \
     UNION ALL \
     SELECT n.nspname, \
            CASE WHEN r.rolsuper THEN 1 \
                 WHEN p.proowner OPERATOR(pg_catalog.=) d.datdba THEN 2 ELSE 3 END, \
            pg_catalog.array_position(pg_catalog.current_schemas(false), n.nspname) \
       FROM pg_catalog.pg_proc p \
       JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
       JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.proowner \
       JOIN pg_catalog.pg_database d ON d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database() \
      WHERE p.proname OPERATOR(pg_catalog.=) 'month_lock_try' \
        AND p.proargtypes OPERATOR(pg_catalog.=) '23 23 23'::pg_catalog.oidvector \
        AND n.nspname OPERATOR(pg_catalog.!~) '^pg_(toast_)?temp_' \
        AND (r.rolsuper OR p.proowner OPERATOR(pg_catalog.=) d.datdba \
             OR n.nspname OPERATOR(pg_catalog.=) ANY(pg_catalog.current_schemas(false))) \
        AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension x \
                         WHERE x.extname OPERATOR(pg_catalog.=) 'month_lock')) s \
     ORDER BY s.trust, s.place, s.nspname LIMIT 1";

/// The schema named when neither edition is found: only superusers create objects there, so a
/// statement qualified with it fails with 42883 (which `sql::classify` reports as
/// [`Error::ExtensionMissing`]) instead of running whatever the `search_path` finds.
const NOWHERE: &str = "pg_catalog";

/// Sessions remembered at most (sessions end without telling: past this, start over).
const REMEMBERED: usize = 4096;

fn known() -> MutexGuard<'static, HashMap<ConnKey, String>> {
    static KNOWN: LazyLock<Mutex<HashMap<ConnKey, String>>> = LazyLock::new(Mutex::default);
    KNOWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The schema (quoted) to name the extension's functions with on `client`'s session.
pub(crate) async fn of<G: GenericClient + ?Sized>(client: &G) -> Result<String> {
    let key = conn_key::of(client.client());
    if let Some(schema) = known().get(&key) {
        return Ok(schema.clone());
    }
    Ok(look_up(client)
        .await?
        .unwrap_or_else(|| NOWHERE.to_string()))
}

/// The schema (quoted) found in `pg_catalog` now, whatever `client`'s session was told before
/// (`None` if neither edition is found): remembered for the session if trustworthy (see
/// [`LOOKUP`]), forgotten otherwise.
pub(crate) async fn look_up<G: GenericClient + ?Sized>(client: &G) -> Result<Option<String>> {
    let key = conn_key::of(client.client());
    let rows = client.query_typed(LOOKUP, &[]).await?;
    let found = match rows.first() {
        None => None,
        Some(row) => {
            let read = |e: tokio_postgres::Error| {
                Error::UnexpectedAnswer(format!("the extension's schema: {e}"))
            };
            let schema: String = row.try_get(0).map_err(read)?;
            let trust: i32 = row.try_get(1).map_err(read)?;
            Some((schema, trust))
        }
    };
    let mut known = known();
    match &found {
        // Only the extension's own row or functions a superuser or the database owner owns are
        // remembered: another role's functions (found on the search_path only) may be dropped
        // and the real extension installed elsewhere while the session lives.
        Some((schema, trust)) if *trust <= 2 && key.is_known() => {
            if known.len() >= REMEMBERED {
                known.clear();
            }
            known.insert(key, schema.clone());
        }
        _ => {
            known.remove(&key);
        }
    }
    Ok(found.map(|(schema, _)| schema))
}

/// Forget what session `key` was told (a statement naming its schema failed with 42883, 42P01
/// or 3F000): its next statement looks the schema up again.
pub(crate) fn forget(key: ConnKey) {
    known().remove(&key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_names_only_pg_catalog() {
        // Every function, type and operator it names is qualified (a look-alike earlier on the
        // search_path must not bind).
        for word in [
            "quote_ident",
            "array_position",
            "current_schemas",
            "current_database",
        ] {
            assert!(LOOKUP.contains(&format!("pg_catalog.{word}(")), "{word}");
        }
        assert!(!LOOKUP.contains(" = "), "unqualified operator in {LOOKUP}");
    }
}
