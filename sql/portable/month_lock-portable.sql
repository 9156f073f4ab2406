-- month_lock, SQL-only edition: the functions of the native extension's SQL API written in
-- PL/pgSQL on top of PostgreSQL's built-in advisory lock functions, for servers that cannot load
-- month_lock's library (managed hosts). tools/portable-build.sh appends sql/month_lock.sql (the
-- view, the token sequence, grants and comments both editions share) and wraps the whole in one
-- statement for `psql -f` and for pg_tle (docs/editions.md).
--
-- Every function pins search_path to pg_catalog, pg_temp and names this edition's own helpers
-- with @extschema@, so nothing planted in another schema is ever bound. Every statement is
-- re-runnable (CREATE OR REPLACE): running a newer script upgrades in place.
--
-- The key layout is the native one (extension/src/keys.rs): a month is year*100+month, the
-- second key of pg_advisory_lock(namespace, yyyymm), or pg_advisory_lock(yyyymm) with legacy
-- keys; exclusive is ExclusiveLock, shared ShareLock. So both editions exclude each other.
--
-- Internal helpers are named month_lock__*; they are not part of the API.

-- Internal helpers (month_lock__*) are dropped and created again below, so that a newer script
-- may change their signatures; the API functions, the view and the sequences are replaced or
-- kept in place.
DO $drop$
DECLARE
  f record;
BEGIN
  FOR f IN SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
             FROM pg_catalog.pg_proc p
            WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
              AND p.proname OPERATOR(pg_catalog.~~) 'month\_lock\_\_%'
  LOOP
    EXECUTE pg_catalog.format('DROP FUNCTION @extschema@.%I(%s)', f.proname, f.args);
  END LOOP;
END
$drop$;

-- The key space under the current settings, checked: {classid, objsubid, namespace,
-- session_locks (1/0)}. A value the native library could not parse raises 22023 naming the
-- setting; values the two editions might read differently (hexadecimal, octal, fractions) are
-- refused too, so both editions never address different key spaces from one setting.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__space()
RETURNS bigint[] LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  ns_text text := pg_catalog.current_setting('month_lock.namespace', true);
  lk_text text := pg_catalog.lower(pg_catalog.current_setting('month_lock.legacy_keys', true));
  sl_text text := pg_catalog.lower(pg_catalog.current_setting('month_lock.session_locks', true));
  ns bigint;
  lk boolean;
  sl boolean;
  bad text;
  expected text;
BEGIN
  -- Unset (no placeholder, or a placeholder after RESET: empty) means the default.
  IF ns_text IS NULL OR ns_text = '' THEN
    ns := 1835821824;
  ELSIF ns_text ~ '^\s*[+-]?(0|[1-9][0-9]{0,9})\s*$' THEN
    ns := pg_catalog.btrim(ns_text)::bigint;
    IF ns < -2147483648 OR ns > 2147483647 THEN ns := NULL; END IF;
  END IF;
  -- parse_bool: any prefix of true/false/yes/no, on, of/off, 1, 0 (case-insensitive).
  IF lk_text IS NULL OR lk_text = '' THEN lk := false;
  ELSIF lk_text IN ('on', '1') OR pg_catalog.strpos('true', lk_text) = 1 OR pg_catalog.strpos('yes', lk_text) = 1 THEN lk := true;
  ELSIF lk_text IN ('of', 'off', '0') OR pg_catalog.strpos('false', lk_text) = 1 OR pg_catalog.strpos('no', lk_text) = 1 THEN lk := false;
  END IF;
  IF sl_text IS NULL OR sl_text = '' THEN sl := true;
  ELSIF sl_text IN ('on', '1') OR pg_catalog.strpos('true', sl_text) = 1 OR pg_catalog.strpos('yes', sl_text) = 1 THEN sl := true;
  ELSIF sl_text IN ('of', 'off', '0') OR pg_catalog.strpos('false', sl_text) = 1 OR pg_catalog.strpos('no', sl_text) = 1 THEN sl := false;
  END IF;
  IF ns IS NULL THEN
    bad := 'month_lock.namespace'; expected := 'an integer';
  ELSIF lk IS NULL THEN
    bad := 'month_lock.legacy_keys'; expected := 'on or off';
  ELSIF sl IS NULL THEN
    bad := 'month_lock.session_locks'; expected := 'on or off';
  END IF;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = pg_catalog.format('month_lock: setting %s has the value "%s", which month_lock cannot use',
                                  bad, pg_catalog.current_setting(bad, true)),
      HINT = pg_catalog.format('month_lock does not fall back to the default: SET %s to %s (or RESET it).',
                               bad, expected);
  END IF;
  IF lk THEN
    RETURN ARRAY[0, 1, ns, sl::integer]::bigint[];
  END IF;
  RETURN ARRAY[CASE WHEN ns < 0 THEN ns + 4294967296 ELSE ns END, 2, ns, sl::integer]::bigint[];
END
$fn$;

-- year*100+month after the native checks (22004 for NULL, 22023 out of range, naming the
-- argument and the value; years from 1000 with legacy keys).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__month(year integer, month integer, sp bigint[])
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  first_year integer := CASE WHEN sp[2] = 1 THEN 1000 ELSE 1 END;
BEGIN
  IF year IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'month_lock: argument "year" must not be NULL';
  ELSIF year < first_year OR year > 9999 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = pg_catalog.format('month_lock: argument "year" must be between %s and 9999%s, got %s',
                                  first_year, CASE WHEN sp[2] = 1 THEN ' (month_lock.legacy_keys = on)' ELSE '' END, year);
  ELSIF month IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'month_lock: argument "month" must not be NULL';
  ELSIF month < 1 OR month > 12 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = pg_catalog.format('month_lock: argument "month" must be between 1 and 12, got %s', month);
  END IF;
  RETURN year * 100 + month;
END
$fn$;

-- The months of a date[] argument (any day names its month), as year*100+month in the array's
-- order, with the native checks.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__months(months pg_catalog.date[], sp bigint[])
RETURNS integer[] LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  first_year integer := CASE WHEN sp[2] = 1 THEN 1000 ELSE 1 END;
  d date;
  y integer;
  out integer[] := '{}';
BEGIN
  IF months IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'month_lock: argument "months" must not be NULL';
  END IF;
  FOREACH d IN ARRAY months LOOP
    IF d IS NULL THEN
      RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'month_lock: argument "months" must not contain NULL';
    END IF;
    y := CASE WHEN pg_catalog.isfinite(d) AND d >= '0001-01-01'::date
              THEN pg_catalog.date_part('year', d)::integer ELSE 2147483647 END;
    IF y < first_year OR y > 9999 THEN
      RAISE EXCEPTION USING ERRCODE = '22023',
        MESSAGE = pg_catalog.format('month_lock: argument "months" contains %s, outside the years %s..9999', d, first_year),
        HINT = 'Months are dates between 0001-01-01 and 9999-12-31 (1000-01-01 with legacy keys).';
    END IF;
    out := out || (y * 100 + pg_catalog.date_part('month', d)::integer);
  END LOOP;
  RETURN out;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock__timeout(timeout_ms integer)
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF timeout_ms IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22004', MESSAGE = 'month_lock: argument "timeout_ms" must not be NULL';
  ELSIF timeout_ms < 0 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = pg_catalog.format('month_lock: argument "timeout_ms" must be at least 0, got %s', timeout_ms);
  END IF;
  RETURN timeout_ms;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock__require_session_locks(sp bigint[])
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF sp[4] = 0 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = 'month_lock: session-scope month locks are disabled by month_lock.session_locks = off; use month_lock_try_xact or month_lock_xact inside a transaction',
      HINT = 'Behind a transaction-pooling proxy only transaction-scope locks are safe: BEGIN; SELECT month_lock_xact(year, month, timeout_ms); ...; COMMIT;';
  END IF;
END
$fn$;

-- The modes in which this session holds the month (any scope): 1 exclusive, 2 shared, 3 both.
-- Reads the whole shared lock table (pg_lock_status), as pg_locks does: its cost grows with the
-- number of locks in the server. This is the price of re-entry detection without the library.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__mine(sp bigint[], ym integer)
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RETURN (SELECT COALESCE(pg_catalog.bit_or(CASE WHEN l.mode = 'ExclusiveLock' THEN 1 ELSE 2 END), 0)
            FROM pg_catalog.pg_lock_status() l
           WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
             AND l.classid::bigint = sp[1] AND l.objid::bigint = ym AND l.objsubid::integer = sp[2]
             AND l.mode IN ('ExclusiveLock', 'ShareLock'));
END
$fn$;

-- One attempt, no wait (never jumps a queued waiter: the lock manager refuses a new request
-- that conflicts with a waiter).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__try(sp bigint[], ym integer, excl boolean, sess boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF sp[2] = 1 THEN
    IF sess THEN
      IF excl THEN RETURN pg_catalog.pg_try_advisory_lock(ym::bigint); END IF;
      RETURN pg_catalog.pg_try_advisory_lock_shared(ym::bigint);
    END IF;
    IF excl THEN RETURN pg_catalog.pg_try_advisory_xact_lock(ym::bigint); END IF;
    RETURN pg_catalog.pg_try_advisory_xact_lock_shared(ym::bigint);
  END IF;
  IF sess THEN
    IF excl THEN RETURN pg_catalog.pg_try_advisory_lock(sp[3]::integer, ym); END IF;
    RETURN pg_catalog.pg_try_advisory_lock_shared(sp[3]::integer, ym);
  END IF;
  IF excl THEN RETURN pg_catalog.pg_try_advisory_xact_lock(sp[3]::integer, ym); END IF;
  RETURN pg_catalog.pg_try_advisory_xact_lock_shared(sp[3]::integer, ym);
END
$fn$;

-- Drops one session-scope reference; true if there was one. pg_advisory_unlock warns when there
-- is none: the warning is kept from the client (client_min_messages), not from the server log.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__unlock(sp bigint[], ym integer, excl boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $fn$
BEGIN
  IF sp[2] = 1 THEN
    IF excl THEN RETURN pg_catalog.pg_advisory_unlock(ym::bigint); END IF;
    RETURN pg_catalog.pg_advisory_unlock_shared(ym::bigint);
  END IF;
  IF excl THEN RETURN pg_catalog.pg_advisory_unlock(sp[3]::integer, ym); END IF;
  RETURN pg_catalog.pg_advisory_unlock_shared(sp[3]::integer, ym);
END
$fn$;

-- Waits in PostgreSQL's lock queue (the same queue as every advisory lock: FIFO handoff,
-- deadlock detection) for up to timeout_ms (0: without limit), under a lock_timeout of this
-- function's own: the SET clause restores the caller's value on exit. The wait runs in a
-- subtransaction (the EXCEPTION block) so that the timeout becomes false. The caller guarantees
-- this session did not hold (month, mode) on entry; a session grant that raced the timeout is
-- kept (true), one that raced any other error is released before the error is re-raised. A
-- transaction-scope grant that raced an error belongs to the rolled-back subtransaction and is
-- gone with it.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__wait(sp bigint[], ym integer, excl boolean, sess boolean, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET lock_timeout = 0 AS $fn$
DECLARE
  bit integer := CASE WHEN excl THEN 1 ELSE 2 END;
BEGIN
  IF timeout_ms > 0 THEN
    PERFORM pg_catalog.set_config('lock_timeout', timeout_ms::text, true);
  END IF;
  BEGIN
    IF sp[2] = 1 THEN
      IF sess AND excl THEN PERFORM pg_catalog.pg_advisory_lock(ym::bigint);
      ELSIF sess THEN PERFORM pg_catalog.pg_advisory_lock_shared(ym::bigint);
      ELSIF excl THEN PERFORM pg_catalog.pg_advisory_xact_lock(ym::bigint);
      ELSE PERFORM pg_catalog.pg_advisory_xact_lock_shared(ym::bigint);
      END IF;
    ELSE
      IF sess AND excl THEN PERFORM pg_catalog.pg_advisory_lock(sp[3]::integer, ym);
      ELSIF sess THEN PERFORM pg_catalog.pg_advisory_lock_shared(sp[3]::integer, ym);
      ELSIF excl THEN PERFORM pg_catalog.pg_advisory_xact_lock(sp[3]::integer, ym);
      ELSE PERFORM pg_catalog.pg_advisory_xact_lock_shared(sp[3]::integer, ym);
      END IF;
    END IF;
  EXCEPTION
    WHEN lock_not_available THEN
      RETURN sess AND (@extschema@.month_lock__mine(sp, ym) & bit) <> 0;
    WHEN query_canceled OR OTHERS THEN
      IF sess AND (@extschema@.month_lock__mine(sp, ym) & bit) <> 0 THEN
        PERFORM @extschema@.month_lock__unlock(sp, ym, excl);
      END IF;
      RAISE;
  END;
  RETURN true;
END
$fn$;

-- Re-entry of a session-scope hold that pg_lock_status shows in this mode: make sure exactly one
-- session reference exists without stacking a second one and without ever letting go of the
-- lock. An extra transaction-scope reference pins the lock while one session reference is
-- dropped and one taken back (both granted locally at once), then the subtransaction that owns
-- the pin is rolled back. If the hold was transaction-scope only, the drop finds no session
-- reference (a WARNING in the server log) and the take adds the first one. Returns 1 when a
-- session reference existed (the same hold), 2 when this added the first one (a new session
-- hold), 0 when the pin is refused: the month is not this session's after all (a stale hint: a
-- raw unlock ended the hold and another session holds it or waits for it), and nothing was done.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__reenter(sp bigint[], ym integer, excl boolean)
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $fn$
DECLARE
  had_session boolean;
BEGIN
  BEGIN
    IF NOT @extschema@.month_lock__try(sp, ym, excl, false) THEN
      RETURN 0;
    END IF;
    had_session := @extschema@.month_lock__unlock(sp, ym, excl);
    IF NOT @extschema@.month_lock__try(sp, ym, excl, true) THEN
      RAISE EXCEPTION 'month_lock: internal error: a pinned month could not be taken back';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'MLPIN';
  EXCEPTION WHEN SQLSTATE 'MLPIN' THEN
    NULL;
  END;
  RETURN CASE WHEN had_session THEN 1 ELSE 2 END;
END
$fn$;

-- Which session-scope holds this session took through month_lock: a hint that spares the common
-- acquisition a read of the whole lock table (pg_lock_status costs grow with the server's lock
-- table size: max_locks_per_transaction x max_connections). The hint lives in the session
-- setting month_lock_sql.held as 'G|,key,key,|,tok,tok,' (key: classid.objsubid.yyyymm.x|s;
-- tok: classid.objsubid.yyyymm=TOKEN for an exclusive session hold that month_lock confirmed,
-- TOKEN empty until month_lock_token is first asked). Settings are
-- transactional: a ROLLBACK rewinds the hint although session locks stay. So every write also
-- draws G from the sequence below, whose per-session currval no ROLLBACK rewinds: a hint whose G
-- is not currval was rewound and is rebuilt from the lock table. A key in the hint is only a
-- hint (a raw pg_advisory_unlock can end the hold): re-entry is confirmed by
-- month_lock__reenter, which never leaves the month unheld and never stacks.
CREATE SEQUENCE IF NOT EXISTS @extschema@.month_lock__hint_seq AS pg_catalog.int8 CACHE 1000;
GRANT USAGE ON SEQUENCE @extschema@.month_lock__hint_seq TO PUBLIC;

-- The hint, checked: NULL when there is none, it was rewound, or the transaction is read-only
-- (no sequence there: callers then read the lock table).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__hint()
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  h text := pg_catalog.current_setting('month_lock_sql.held', true);
BEGIN
  IF COALESCE(h, '') = '' OR pg_catalog.current_setting('transaction_read_only') = 'on' THEN
    RETURN NULL;
  END IF;
  IF pg_catalog.split_part(h, '|', 1) = pg_catalog.currval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text THEN
    RETURN h;
  END IF;
  RETURN NULL;
END
$fn$;

-- A new hint from the lock table: every granted advisory lock of this session that looks like a
-- month lock (either scope: a transaction-scope key is harmless, re-entry confirms it).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__hint_rebuild()
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RETURN COALESCE((
    SELECT ',' || pg_catalog.string_agg(l.classid::text || '.' || l.objsubid::text || '.' || l.objid::text
                                 || CASE WHEN l.mode = 'ExclusiveLock' THEN 'x' ELSE 's' END, ',') || ','
      FROM pg_catalog.pg_lock_status() l
     WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
       AND l.mode IN ('ExclusiveLock', 'ShareLock')), '');
END
$fn$;

-- Stores a hint (key list and token list, each ',...,' or ''), with a new G.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__hint_store(keys text, toks text)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_catalog.set_config('month_lock_sql.held',
    pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text || '|'
      || CASE WHEN COALESCE(keys, '') = '' THEN ',' ELSE keys END || '|'
      || CASE WHEN COALESCE(toks, '') = '' THEN ',' ELSE toks END, false);
END
$fn$;

-- A token list without the entry of one month (tk: ',classid.objsubid.yyyymm=').
CREATE OR REPLACE FUNCTION @extschema@.month_lock__tok_drop(toks text, tk text)
RETURNS text LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  p integer := pg_catalog.strpos(toks, tk);
BEGIN
  IF p = 0 THEN
    RETURN toks;
  END IF;
  -- ',a=1,b=2,' without 'b=2,': keep up to the comma before the entry, then what follows the
  -- comma after it
  RETURN pg_catalog.substr(toks, 1, p)
      || pg_catalog.substr(toks, p + pg_catalog.length(tk)
                                 + pg_catalog.strpos(pg_catalog.substr(toks, p + pg_catalog.length(tk)), ','));
END
$fn$;

-- Forgets the hint: the next acquisition reads the lock table. Drawing from the sequence first
-- makes sure a ROLLBACK that brings the old hint back cannot make it usable again (not possible
-- in a read-only transaction: see docs/editions.md).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__hint_forget()
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  IF COALESCE(pg_catalog.current_setting('month_lock_sql.held', true), '') <> '' THEN
    IF pg_catalog.current_setting('transaction_read_only') = 'off' THEN
      PERFORM pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass);
    END IF;
    PERFORM pg_catalog.set_config('month_lock_sql.held', '', false);
  END IF;
END
$fn$;

-- Whether this session holds a session-scope reference on (month, mode), which the lock table
-- cannot tell from a transaction-scope one: pinned by a transaction-scope reference in a
-- subtransaction, one session reference is dropped and, if there was one, taken back; the
-- subtransaction is then rolled back. The caller guarantees the session holds the month in this
-- mode. When there is no session reference, pg_advisory_unlock's WARNING reaches the server log.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__has_session(sp bigint[], ym integer, excl boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $fn$
DECLARE
  had_session boolean;
BEGIN
  BEGIN
    IF NOT @extschema@.month_lock__try(sp, ym, excl, false) THEN
      RAISE EXCEPTION 'month_lock: internal error: a held month could not be pinned';
    END IF;
    had_session := @extschema@.month_lock__unlock(sp, ym, excl);
    IF had_session AND NOT @extschema@.month_lock__try(sp, ym, excl, true) THEN
      RAISE EXCEPTION 'month_lock: internal error: a pinned month could not be taken back';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'MLPIN';
  EXCEPTION WHEN SQLSTATE 'MLPIN' THEN
    NULL;
  END;
  RETURN had_session;
END
$fn$;

-- Every acquisition. wait: 0 one attempt, 1 up to timeout_ms, 2 without limit. The common path
-- (settings unset, arguments in range) is written inline: every call of a function with a pinned
-- search_path costs a few microseconds of its own.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__acquire(year integer, month integer, timeout_ms integer,
                                                           wait integer, excl boolean, sess boolean, raising boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
  got boolean;
  key text;
  hint text;
  keys text;
  toks text;
  tk text;
  r integer;
  g bigint;
BEGIN
  IF wait = 1 AND (timeout_ms IS NULL OR timeout_ms <= 0) THEN
    IF @extschema@.month_lock__timeout(timeout_ms) = 0 THEN
      wait := 0;
    END IF;
  END IF;
  IF COALESCE(pg_catalog.current_setting('month_lock.namespace', true), '') = ''
     AND COALESCE(pg_catalog.current_setting('month_lock.legacy_keys', true), '') = ''
     AND COALESCE(pg_catalog.current_setting('month_lock.session_locks', true), '') = '' THEN
    sp := '{1835821824,2,1835821824,1}';
  ELSE
    sp := @extschema@.month_lock__space();
  END IF;
  IF (year >= (CASE WHEN sp[2] = 1 THEN 1000 ELSE 1 END) AND year <= 9999 AND month >= 1 AND month <= 12) THEN
    ym := year * 100 + month;
  ELSE
    ym := @extschema@.month_lock__month(year, month, sp);  -- raises
  END IF;
  IF sess THEN
    IF sp[4] = 0 THEN
      PERFORM @extschema@.month_lock__require_session_locks(sp);  -- raises
    END IF;
    -- Already ours in this mode: true at once, without a second session reference. The hint
    -- (month_lock__hint) answers "not ours" without reading the lock table; without a usable
    -- hint the whole lock table is read, the SQL-only edition's price for re-entry detection.
    key := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || CASE WHEN excl THEN 'x' ELSE 's' END || ',';
    -- month_lock__hint, inline (every function call with a pinned search_path costs microseconds)
    hint := pg_catalog.current_setting('month_lock_sql.held', true);
    IF COALESCE(hint, '') = '' OR pg_catalog.current_setting('transaction_read_only') = 'on' THEN
      hint := NULL;
    ELSIF pg_catalog.split_part(hint, '|', 1)
          <> pg_catalog.currval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text THEN
      hint := NULL;  -- rewound by a ROLLBACK
    END IF;
    IF hint IS NULL AND pg_catalog.current_setting('transaction_read_only') = 'off' THEN
      keys := @extschema@.month_lock__hint_rebuild();
      toks := ',';
    ELSIF hint IS NOT NULL THEN
      keys := pg_catalog.split_part(hint, '|', 2);
      toks := pg_catalog.split_part(hint, '|', 3);
    END IF;
    tk := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=';
    IF keys IS NOT NULL THEN
      -- The new G is drawn before anything can grant the lock: if anything ends this statement
      -- between the grant and the hint's update below (a cancel, say), the hint no longer
      -- matches currval and is rebuilt, instead of missing a month this session holds. So
      -- every path from here stores the hint.
      g := pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass);
      IF pg_catalog.strpos(keys, key) > 0 THEN
        r := @extschema@.month_lock__reenter(sp, ym, excl);
        IF r = 0 THEN
          keys := pg_catalog.replace(keys, key, ',');  -- a stale key: the hold had ended
        END IF;
        IF r <> 1 AND excl THEN
          toks := @extschema@.month_lock__tok_drop(toks, tk);  -- not the hold its token was for
        END IF;
        IF (r = 2 OR (r = 1 AND pg_catalog.strpos(COALESCE(toks, ''), tk) = 0)) AND excl THEN
          -- confirmed as this session's exclusive hold, without a token yet
          toks := CASE WHEN COALESCE(toks, '') IN ('', ',') THEN tk || ',' ELSE toks || pg_catalog.substr(tk, 2) || ',' END;
        END IF;
        IF r <> 0 THEN
          PERFORM pg_catalog.set_config('month_lock_sql.held', g::text || '|' || keys || '|'
            || CASE WHEN COALESCE(toks, '') = '' THEN ',' ELSE toks END, false);
          RETURN true;
        END IF;
      END IF;
    ELSIF EXISTS (SELECT FROM pg_catalog.pg_lock_status() l
                   WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
                     AND l.classid::bigint = sp[1] AND l.objid::bigint = ym AND l.objsubid::integer = sp[2]
                     AND l.mode = CASE WHEN excl THEN 'ExclusiveLock' ELSE 'ShareLock' END)
          AND @extschema@.month_lock__reenter(sp, ym, excl) <> 0 THEN
      RETURN true;  -- read-only transaction: no hint
    END IF;
  END IF;
  IF sp[2] = 1 THEN
    IF sess THEN
      got := CASE WHEN excl THEN pg_catalog.pg_try_advisory_lock(ym::bigint)
                  ELSE pg_catalog.pg_try_advisory_lock_shared(ym::bigint) END;
    ELSE
      got := CASE WHEN excl THEN pg_catalog.pg_try_advisory_xact_lock(ym::bigint)
                  ELSE pg_catalog.pg_try_advisory_xact_lock_shared(ym::bigint) END;
    END IF;
  ELSIF sess THEN
    got := CASE WHEN excl THEN pg_catalog.pg_try_advisory_lock(sp[3]::integer, ym)
                ELSE pg_catalog.pg_try_advisory_lock_shared(sp[3]::integer, ym) END;
  ELSE
    got := CASE WHEN excl THEN pg_catalog.pg_try_advisory_xact_lock(sp[3]::integer, ym)
                ELSE pg_catalog.pg_try_advisory_xact_lock_shared(sp[3]::integer, ym) END;
  END IF;
  IF NOT got AND wait <> 0 THEN
    got := @extschema@.month_lock__wait(sp, ym, excl, sess, CASE WHEN wait = 1 THEN timeout_ms ELSE 0 END);
  END IF;
  IF got AND sess AND keys IS NULL THEN
    -- read-only transaction: no new G can be drawn, so the hint is dropped (see docs/editions.md
    -- for the one case this leaves open: that transaction rolled back)
    PERFORM @extschema@.month_lock__hint_forget();
  ELSIF sess AND keys IS NOT NULL THEN
    -- month_lock__hint_store, inline, with the G drawn above; a new exclusive hold is confirmed
    -- (its token entry, empty until asked, replaces any stale one)
    IF got AND excl THEN
      IF pg_catalog.strpos(toks, tk) > 0 THEN
        toks := @extschema@.month_lock__tok_drop(toks, tk);
      END IF;
      toks := CASE WHEN COALESCE(toks, '') IN ('', ',') THEN tk || ',' ELSE toks || pg_catalog.substr(tk, 2) || ',' END;
    END IF;
    PERFORM pg_catalog.set_config('month_lock_sql.held', g::text || '|'
      || CASE WHEN NOT got THEN CASE WHEN keys = '' THEN ',' ELSE keys END
              WHEN keys = '' OR keys = ',' THEN key
              ELSE keys || pg_catalog.substr(key, 2) END
      || '|' || CASE WHEN COALESCE(toks, '') = '' THEN ',' ELSE toks END, false);
  END IF;
  IF NOT got AND raising THEN
    RAISE EXCEPTION USING ERRCODE = '55P03',
      MESSAGE = pg_catalog.format('month_lock: month %s-%s not available %s',
                                  pg_catalog.lpad((ym / 100)::text, 4, '0'), pg_catalog.lpad((ym % 100)::text, 2, '0'),
                                  CASE wait WHEN 0 THEN 'at once (timeout_ms = 0)'
                                            WHEN 1 THEN pg_catalog.format('within %s ms', timeout_ms)
                                            ELSE '(the wait ended without it)' END),
      HINT = 'Another session holds the month or waits for it ahead of this one: see the month_locks view.';
  END IF;
  RETURN got;
END
$fn$;

-- ---- the API ----------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.month_lock_try(year integer, month integer, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, true, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, 0, 0, true, true, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock(year integer, month integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, 0, 2, true, true, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, true, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_shared(year integer, month integer, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, true, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_shared(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, 0, 0, false, true, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_shared(year integer, month integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, 0, 2, false, true, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_shared(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, true, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_xact(year integer, month integer, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, false, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_xact(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, 0, 0, true, false, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_xact_shared(year integer, month integer, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, false, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_try_xact_shared(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__acquire(year, month, 0, 0, false, false, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact(year integer, month integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, 0, 2, true, false, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, false, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact_shared(year integer, month integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, 0, 2, false, false, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact_shared(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN PERFORM @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, false, true); END
$fn$;

-- Releases: one session-scope reference, straight to the lock manager (no lock-table read).
-- pg_advisory_unlock warns when there is none: client_min_messages keeps the warning from the
-- client, not from the server log.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__release(year integer, month integer, excl boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $fn$
DECLARE
  sp bigint[];
  ym integer;
  done boolean;
  hint text;
  key text;
  toks text;
  tk text;
  p integer;
BEGIN
  IF COALESCE(pg_catalog.current_setting('month_lock.namespace', true), '') = ''
     AND COALESCE(pg_catalog.current_setting('month_lock.legacy_keys', true), '') = ''
     AND COALESCE(pg_catalog.current_setting('month_lock.session_locks', true), '') = '' THEN
    sp := '{1835821824,2,1835821824,1}';
  ELSE
    sp := @extschema@.month_lock__space();
  END IF;
  IF (year >= (CASE WHEN sp[2] = 1 THEN 1000 ELSE 1 END) AND year <= 9999 AND month >= 1 AND month <= 12) THEN
    ym := year * 100 + month;
  ELSE
    ym := @extschema@.month_lock__month(year, month, sp);  -- raises
  END IF;
  IF sp[2] = 1 THEN
    done := CASE WHEN excl THEN pg_catalog.pg_advisory_unlock(ym::bigint)
                 ELSE pg_catalog.pg_advisory_unlock_shared(ym::bigint) END;
  ELSE
    done := CASE WHEN excl THEN pg_catalog.pg_advisory_unlock(sp[3]::integer, ym)
                 ELSE pg_catalog.pg_advisory_unlock_shared(sp[3]::integer, ym) END;
  END IF;
  -- Keep the hint exact where it is usable (an unusable one is rebuilt by the next acquisition).
  hint := pg_catalog.current_setting('month_lock_sql.held', true);
  IF COALESCE(hint, '') <> '' AND pg_catalog.current_setting('transaction_read_only') = 'on' THEN
    PERFORM pg_catalog.set_config('month_lock_sql.held', '', false);
  ELSIF COALESCE(hint, '') <> '' THEN
    key := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || CASE WHEN excl THEN 'x' ELSE 's' END || ',';
    IF pg_catalog.strpos(pg_catalog.split_part(hint, '|', 2), key) = 0 THEN
      NULL;
    ELSIF pg_catalog.split_part(hint, '|', 1)
          = pg_catalog.currval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text THEN
      -- the key goes, and with an exclusive hold its token entry (month_lock__tok_drop, inline)
      toks := pg_catalog.split_part(hint, '|', 3);
      tk := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=';
      p := pg_catalog.strpos(toks, tk);
      IF excl AND p > 0 THEN
        toks := pg_catalog.substr(toks, 1, p)
             || pg_catalog.substr(toks, p + pg_catalog.length(tk)
                                        + pg_catalog.strpos(pg_catalog.substr(toks, p + pg_catalog.length(tk)), ','));
      END IF;
      PERFORM pg_catalog.set_config('month_lock_sql.held',
        pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text || '|'
          || pg_catalog.replace(pg_catalog.split_part(hint, '|', 2), key, ',') || '|'
          || CASE WHEN COALESCE(toks, '') = '' THEN ',' ELSE toks END, false);
    END IF;
  END IF;
  -- A token this transaction cached for the month (month_lock_token) belonged to the hold that
  -- just ended.
  IF excl AND done AND pg_catalog.strpos(COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), ''),
                                         ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=') > 0 THEN
    PERFORM pg_catalog.set_config('month_lock_sql.xtok', @extschema@.month_lock__tok_drop(
      pg_catalog.current_setting('month_lock_sql.xtok', true), ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '='), true);
  END IF;
  RETURN done;
END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_release(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__release(year, month, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_release_shared(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__release(year, month, false); END
$fn$;

-- Without the library there is no record of which locks month_lock took: this releases one
-- session reference of every month lock (current key space, both modes) that pg_lock_status
-- shows this session holding, including one taken by a raw pg_advisory_lock on a month key.
CREATE OR REPLACE FUNCTION @extschema@.month_lock_release_all()
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE STRICT
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  first_key bigint;
  r record;
  n integer;
BEGIN
  sp := @extschema@.month_lock__space();
  first_key := CASE WHEN sp[2] = 1 THEN 100001 ELSE 101 END;
  n := 0;
  FOR r IN
    SELECT l.objid::bigint AS key, l.mode = 'ExclusiveLock' AS excl
      FROM pg_catalog.pg_lock_status() l
     WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
       AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2]
       AND l.mode IN ('ExclusiveLock', 'ShareLock')
       AND l.objid::bigint % 100 BETWEEN 1 AND 12
       AND l.objid::bigint BETWEEN first_key AND 999912
  LOOP
    IF @extschema@.month_lock__unlock(sp, r.key::integer, r.excl) THEN
      n := n + 1;
    END IF;
  END LOOP;
  PERFORM @extschema@.month_lock__hint_forget();
  IF COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '') <> '' THEN
    PERFORM pg_catalog.set_config('month_lock_sql.xtok', '', true);
  END IF;
  RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_is_locked(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
BEGIN
  sp := @extschema@.month_lock__space();
  ym := @extschema@.month_lock__month(year, month, sp);
  RETURN EXISTS (
    SELECT FROM pg_catalog.pg_lock_status() l
     WHERE l.locktype = 'advisory' AND l.granted
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
       AND l.classid::bigint = sp[1] AND l.objid::bigint = ym AND l.objsubid::integer = sp[2]
       AND l.mode IN ('ExclusiveLock', 'ShareLock'));
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_held(year integer, month integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
BEGIN
  sp := @extschema@.month_lock__space();
  RETURN @extschema@.month_lock__mine(sp, @extschema@.month_lock__month(year, month, sp)) <> 0;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_key_classid()
RETURNS bigint LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE STRICT
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN (@extschema@.month_lock__space())[1]; END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_key_objsubid()
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE STRICT
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN (@extschema@.month_lock__space())[2]::integer; END
$fn$;

-- ---- fencing tokens, claim any, all or nothing --------------------------------------------------

-- A fencing token for this session's exclusive hold of the month: the same for the whole hold,
-- larger than every token drawn before it by any session. An exclusive session hold that
-- month_lock confirmed keeps its token in the session hint (month_lock_sql.held); any other
-- exclusive hold (transaction scope, or a session hold the hint cannot vouch for, e.g. after a
-- ROLLBACK rewound it) keeps it in the transaction-local setting month_lock_sql.xtok, which ends
-- with the transaction and is rewound with the subtransaction that could have ended the hold. A
-- cache that cannot vouch for the hold is dropped, never used: the hold then gets a new, larger
-- token. Durability: a value nextval takes from the sequence's pre-logged range carries no WAL
-- and no transaction id, so its transaction would commit without a flush. The transactional
-- logical message gives the transaction both: its COMMIT returns only once the token's sequence
-- record is flushed (and, with synchronous_commit = on and synchronous standbys, replicated).
CREATE OR REPLACE FUNCTION @extschema@.month_lock_token(year integer, month integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
  tk text;
  hint text;
  toks text;
  x text;
  p integer;
  cached text;
  token bigint;
BEGIN
  sp := @extschema@.month_lock__space();
  ym := @extschema@.month_lock__month(year, month, sp);
  tk := ',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=';
  IF (@extschema@.month_lock__mine(sp, ym) & 1) = 0 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: month %s-%s is not held exclusively by this session',
                                  pg_catalog.lpad((ym / 100)::text, 4, '0'), pg_catalog.lpad((ym % 100)::text, 2, '0')),
      HINT = 'Take the month first (month_lock_try, month_lock, month_lock_try_xact, ...): a token belongs to a hold.';
  END IF;
  hint := @extschema@.month_lock__hint();
  toks := pg_catalog.split_part(hint, '|', 3);
  p := pg_catalog.strpos(COALESCE(toks, ''), tk);
  IF p > 0 AND NOT @extschema@.month_lock__has_session(sp, ym, true) THEN
    -- the confirmed session hold has ended (a rolled-back read-only transaction can leave such
    -- an entry behind); the month is held in transaction scope now: not that hold's token
    PERFORM @extschema@.month_lock__hint_store(pg_catalog.split_part(hint, '|', 2),
                                               @extschema@.month_lock__tok_drop(toks, tk));
    hint := @extschema@.month_lock__hint();
    toks := pg_catalog.split_part(hint, '|', 3);
    p := 0;
  END IF;
  IF p > 0 THEN
    -- a confirmed exclusive session hold: its token, or none yet
    cached := pg_catalog.split_part(pg_catalog.substr(toks, p + pg_catalog.length(tk)), ',', 1);
    IF cached <> '' THEN
      RETURN cached::bigint;
    END IF;
  ELSE
    x := COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '');
    p := pg_catalog.strpos(x, tk);
    IF p > 0 THEN
      RETURN pg_catalog.split_part(pg_catalog.substr(x, p + pg_catalog.length(tk)), ',', 1)::bigint;
    END IF;
  END IF;
  token := pg_catalog.nextval('@extschema@.month_lock_token_seq'::pg_catalog.regclass);
  PERFORM pg_catalog.pg_logical_emit_message(true, 'month_lock', token::text);
  IF pg_catalog.strpos(COALESCE(toks, ''), tk) > 0 THEN
    PERFORM @extschema@.month_lock__hint_store(pg_catalog.split_part(hint, '|', 2),
      pg_catalog.replace(toks, tk || ',', tk || token::text || ','));
  ELSE
    PERFORM pg_catalog.set_config('month_lock_sql.xtok',
      CASE WHEN x = '' THEN ',' ELSE x END || pg_catalog.substr(tk, 2) || token::text || ',', true);
  END IF;
  RETURN token;
END
$fn$;

-- Claim any: the first month of the array that is free right now, skipping months this
-- session holds in any mode; never waits, never jumps a queued waiter, takes at most one.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__claim(months pg_catalog.date[], sess boolean)
RETURNS pg_catalog.date LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  yms integer[];
  mine bigint[];
  ym integer;
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  IF sess THEN
    PERFORM @extschema@.month_lock__require_session_locks(sp);
  END IF;
  IF pg_catalog.cardinality(yms) = 0 THEN
    RETURN NULL;
  END IF;
  IF sess THEN
    -- before anything is taken: a cancel after the grant must not leave a usable hint that
    -- lacks the claimed month
    PERFORM @extschema@.month_lock__hint_forget();
  END IF;
  -- One read of the lock table for the whole array.
  SELECT pg_catalog.array_agg(l.objid::bigint) INTO mine
    FROM pg_catalog.pg_lock_status() l
   WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
     AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2]
     AND l.mode IN ('ExclusiveLock', 'ShareLock');
  FOREACH ym IN ARRAY yms LOOP
    CONTINUE WHEN ym = ANY (mine);
    IF @extschema@.month_lock__try(sp, ym, true, sess) THEN
      RETURN pg_catalog.make_date(ym / 100, ym % 100, 1);
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_claim(months pg_catalog.date[])
RETURNS pg_catalog.date LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__claim(months, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_claim_xact(months pg_catalog.date[])
RETURNS pg_catalog.date LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__claim(months, false); END
$fn$;

-- All or nothing: every month, exclusive, in ascending order (two such calls over overlapping
-- sets cannot deadlock with each other) within one deadline measured from the call's start.
-- Session scope: what this call took is released on false and on an error. Transaction scope:
-- the loop runs in a subtransaction that is rolled back on false, which releases exactly the
-- transaction-scope references it took (an error rolls back the caller's transaction anyway).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__all(months pg_catalog.date[], timeout_ms integer, sess boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  yms integer[];
  budget integer;
  deadline timestamptz;
  taken integer[];
  ym integer;
  left_ms integer;
  got boolean;
  mine bigint[];
  current integer;
  i integer;
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  budget := @extschema@.month_lock__timeout(timeout_ms);
  deadline := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => budget / 1000.0);
  taken := '{}';
  IF sess THEN
    PERFORM @extschema@.month_lock__require_session_locks(sp);
    -- Months this session holds exclusively before the call stay out of the give-back (one read
    -- of the lock table for the whole set).
    SELECT pg_catalog.array_agg(l.objid::bigint) INTO mine
      FROM pg_catalog.pg_lock_status() l
     WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
       AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2] AND l.mode = 'ExclusiveLock';
  END IF;
  SELECT COALESCE(pg_catalog.array_agg(DISTINCT u.m ORDER BY u.m), '{}') INTO yms FROM pg_catalog.unnest(yms) AS u(m);
  IF sess THEN
    PERFORM @extschema@.month_lock__hint_forget();
  END IF;
  BEGIN
    FOREACH ym IN ARRAY yms LOOP
      IF sess AND ym = ANY (mine) THEN
        -- held before the call: ensure a session reference (re-entry), never give it back
        PERFORM @extschema@.month_lock__reenter(sp, ym, true);
        CONTINUE;
      END IF;
      current := ym;
      got := @extschema@.month_lock__try(sp, ym, true, sess);
      IF NOT got THEN
        left_ms := pg_catalog.ceil(pg_catalog.date_part('epoch', deadline - pg_catalog.clock_timestamp()) * 1000)::integer;
        IF left_ms > 0 THEN
          got := @extschema@.month_lock__wait(sp, ym, true, sess, left_ms);
        END IF;
      END IF;
      IF NOT got THEN
        RAISE EXCEPTION USING ERRCODE = 'MLALL';
      END IF;
      IF sess THEN
        taken := taken || ym;
      END IF;
      current := NULL;
    END LOOP;
  EXCEPTION
    WHEN SQLSTATE 'MLALL' THEN
      FOR i IN REVERSE pg_catalog.cardinality(taken)..1 LOOP
        PERFORM @extschema@.month_lock__unlock(sp, taken[i], true);
      END LOOP;
      RETURN false;
    WHEN query_canceled OR OTHERS THEN
      -- A cancel can be processed after the month being acquired was granted and before it was
      -- recorded in taken: it was not held before the call, so if it is held now it is ours.
      IF sess AND current IS NOT NULL AND (@extschema@.month_lock__mine(sp, current) & 1) <> 0 THEN
        PERFORM @extschema@.month_lock__unlock(sp, current, true);
      END IF;
      FOR i IN REVERSE pg_catalog.cardinality(taken)..1 LOOP
        PERFORM @extschema@.month_lock__unlock(sp, taken[i], true);
      END LOOP;
      RAISE;
  END;
  RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_all(months pg_catalog.date[], timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__all(months, timeout_ms, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_all(months pg_catalog.date[])
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__all(months, 0, true); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_all_xact(months pg_catalog.date[], timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__all(months, timeout_ms, false); END
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_all_xact(months pg_catalog.date[])
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN RETURN @extschema@.month_lock__all(months, 0, false); END
$fn$;

CREATE OR REPLACE FUNCTION @extschema@.month_lock_release(months pg_catalog.date[])
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  yms integer[];
  ym integer;
  n integer;
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  n := 0;
  FOR ym IN SELECT DISTINCT u.m FROM pg_catalog.unnest(yms) AS u(m) ORDER BY 1 LOOP
    IF @extschema@.month_lock__unlock(sp, ym, true) THEN
      n := n + 1;
    END IF;
  END LOOP;
  PERFORM @extschema@.month_lock__hint_forget();
  IF COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '') <> '' THEN
    PERFORM pg_catalog.set_config('month_lock_sql.xtok', '', true);
  END IF;
  RETURN n;
END
$fn$;

-- Internal helpers are the installer's own: no role needs to call them directly, but the API
-- functions run as their caller, so they stay executable by PUBLIC (the default).
