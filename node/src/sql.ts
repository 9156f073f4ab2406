// Every statement the package sends, in one place. Each acquisition is one statement: the lock
// and, for exclusive holds, its fencing token come back in one round trip. Arguments are cast
// so that the server, not the driver, decides their types (postgres.js with fetch_types off,
// pg with untyped parameters); tokens come back as text so that no driver setting turns an
// int8 into a lossy number. The extension's objects are named `@extschema@.` here: each
// connection (or pool) looks up the extension's schema once, before its first statement
// (schema.ts), so that no search_path of the caller's (a `SET search_path` of the work, a
// function's pinned one) changes which function runs or makes a statement fail.

const Y = "$1::pg_catalog.int4";
const M = "$2::pg_catalog.int4";
const T = "$3::pg_catalog.int4";
const TOKEN = `@extschema@.month_lock_token(${Y}, ${M})::pg_catalog.text`;

/** Transaction scope's BEGIN: see driver/pg.ts (postgres.js: `sql.begin(BEGIN_OPTIONS, ...)`). */
export const BEGIN_READ_COMMITTED = "BEGIN ISOLATION LEVEL READ COMMITTED";
export const BEGIN_OPTIONS = "isolation level read committed";

// --- transaction scope: `token` is NULL when the month was not had. ---
export const XACT_TRY = `SELECT CASE WHEN @extschema@.month_lock_try_xact(${Y}, ${M}, ${T}) THEN ${TOKEN} END AS token`;
export const XACT_WAIT = `SELECT CASE WHEN (SELECT true FROM @extschema@.month_lock_xact(${Y}, ${M})) THEN ${TOKEN} END AS token`;
export const XACT_TRY_UNFENCED = `SELECT @extschema@.month_lock_try_xact(${Y}, ${M}, ${T}) AS ok`;
export const XACT_WAIT_UNFENCED = `SELECT (SELECT true FROM @extschema@.month_lock_xact(${Y}, ${M})) AS ok`;
export const XACT_TRY_SHARED = `SELECT @extschema@.month_lock_try_xact_shared(${Y}, ${M}, ${T}) AS ok`;
export const XACT_WAIT_SHARED = `SELECT (SELECT true FROM @extschema@.month_lock_xact_shared(${Y}, ${M})) AS ok`;

/** Claim any: the first free month of $1 (date[]), or NULL; its token. */
export const XACT_CLAIM =
  "SELECT pg_catalog.to_char(c.m, 'YYYY-MM-DD') AS month, CASE WHEN c.m IS NOT NULL THEN @extschema@.month_lock_token(" +
  "pg_catalog.date_part('year', c.m)::pg_catalog.int4, pg_catalog.date_part('month', c.m)::pg_catalog.int4" +
  ")::pg_catalog.text END AS token FROM (SELECT @extschema@.month_lock_claim_xact($1::pg_catalog.date[]) AS m) c";

/** All or nothing: every month of $1 (date[]) within $2 ms; their tokens in the array's order. */
export const XACT_ALL =
  "SELECT CASE WHEN @extschema@.month_lock_all_xact($1::pg_catalog.date[], $2::pg_catalog.int4) THEN pg_catalog.array_to_string(ARRAY(" +
  "SELECT @extschema@.month_lock_token(pg_catalog.date_part('year', u.d)::pg_catalog.int4, " +
  "pg_catalog.date_part('month', u.d)::pg_catalog.int4)::pg_catalog.text " +
  "FROM pg_catalog.unnest($1::pg_catalog.date[]) WITH ORDINALITY AS u(d, i) ORDER BY u.i), ',') END AS tokens";

// --- session scope: `held` = already held by this session (nothing taken then). ---
const HELD = `(SELECT @extschema@.month_lock_held(${Y}, ${M}) AS held) h`;
export const SESSION_TRY = `SELECT h.held, CASE WHEN h.held THEN NULL WHEN @extschema@.month_lock_try(${Y}, ${M}, ${T}) THEN ${TOKEN} END AS token FROM ${HELD}`;
export const SESSION_WAIT = `SELECT h.held, CASE WHEN h.held THEN NULL WHEN (SELECT true FROM @extschema@.month_lock(${Y}, ${M})) THEN ${TOKEN} END AS token FROM ${HELD}`;
export const SESSION_TRY_SHARED = `SELECT h.held, CASE WHEN h.held THEN NULL ELSE @extschema@.month_lock_try_shared(${Y}, ${M}, ${T}) END AS ok FROM ${HELD}`;
export const SESSION_WAIT_SHARED = `SELECT h.held, CASE WHEN h.held THEN NULL ELSE (SELECT true FROM @extschema@.month_lock_shared(${Y}, ${M})) END AS ok FROM ${HELD}`;
export const RELEASE = `SELECT @extschema@.month_lock_release(${Y}, ${M}) AS released`;
export const RELEASE_SHARED = `SELECT @extschema@.month_lock_release_shared(${Y}, ${M}) AS released`;

/** compat's acquisition in a transaction of its own (compat.ts): statement_timeout off until COMMIT. */
export const COMPAT_TIMEOUT_OFF_LOCAL = "SET LOCAL statement_timeout = 0";

export const COMPAT_TRY = `SELECT h.held, CASE WHEN h.held THEN true ELSE @extschema@.month_lock_try(${Y}, ${M}, ${T}) END AS ok FROM ${HELD}`;

// --- questions ---
export const IS_LOCKED = `SELECT @extschema@.month_is_locked(${Y}, ${M}) AS locked`;
export const HELD_BY_ME = `SELECT @extschema@.month_lock_held(${Y}, ${M}) AS held`;
export const LIST =
  "SELECT year, month, pg_catalog.to_char(month_start, 'YYYY-MM-DD') AS month_start, mode, granted, pid, waiting_since, " +
  "application_name, usename::pg_catalog.text AS usename, client_addr::pg_catalog.text AS client_addr, backend_start " +
  "FROM @extschema@.month_locks";
export const ALL_ROWS = "SELECT * FROM @extschema@.month_locks";

/** For cancelling a waiter from a second connection (pg). */
export const BACKEND_PID = "SELECT pg_catalog.pg_backend_pid() AS pid";
export const CANCEL_BACKEND = "SELECT pg_catalog.pg_cancel_backend($1::pg_catalog.int4) AS cancelled";

/** The extension's schema, quoted for use in a statement. */
export const EXT_SCHEMA =
  "SELECT pg_catalog.quote_ident(n.nspname) AS schema FROM pg_catalog.pg_extension e " +
  "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'month_lock'";
