-- month_lock, SQL-only edition: the functions of the native extension's SQL API written in
-- PL/pgSQL on top of PostgreSQL's built-in advisory lock functions, for servers that cannot load
-- month_lock's library (managed hosts). tools/portable-build.sh concatenates sql/portable/*.sql in
-- name order, appends sql/month_lock.sql (the view, the token sequence, grants and comments both
-- editions share) and wraps the whole in one statement for `psql -f` and for pg_tle
-- (docs/editions.md). This file: the install guard and the argument and setting checks.
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

-- Overload resolution looks for a function in the schema it is qualified with, so a role that
-- may create objects in the target schema could plant an overload of a helper (or, with default
-- arguments, make a call ambiguous). Every call below passes arguments of the helper's exact types
-- (no untyped literal: an unknown-typed NULL or string would prefer a planted text overload), and
-- the edition does not install where a role other than the installing one, the schema's owner or
-- a superuser may create objects: such a role could plant overloads that break calls.
DO $schema_create$
DECLARE
  who pg_catalog.text;
BEGIN
  SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE r.rolname::pg_catalog.text END INTO who
    FROM pg_catalog.pg_namespace n
   CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
    LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
   WHERE n.oid OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
     AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
     AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
     AND a.grantee OPERATOR(pg_catalog.<>) (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
     AND NOT COALESCE(r.rolsuper, false)
   ORDER BY 1
   LIMIT 1;
  IF who IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '42501',
      MESSAGE = pg_catalog.format('month_lock: %s may create objects in schema %s, where month_lock would be installed',
                                  who, '@extschema@'),
      DETAIL = 'A role that may create objects in the schema of month_lock''s functions can plant look-alikes that break them.',
      HINT = 'REVOKE CREATE ON SCHEMA ... FROM that role (PostgreSQL 14 grants CREATE on public to PUBLIC: REVOKE CREATE ON SCHEMA public FROM PUBLIC), or install into a schema of its own (docs/editions.md).';
  END IF;
END
$schema_create$;

-- Upgrading in place. A helper (month_lock__*) the newer script creates with the same signature,
-- argument names and result type is replaced in place below (CREATE OR REPLACE keeps its OID), so
-- a call in flight in another session, running the older version's code, still finds every
-- helper it calls. A helper the newer script no longer has, or has with another result type or
-- argument names (which CREATE OR REPLACE cannot change), is dropped here: a call in flight that
-- reaches it then fails (42883; docs/editions.md, "Upgrading in place"). The API functions, the
-- view and the sequence are replaced or kept in place. tools/portable-build.sh writes the list
-- of this script's helpers in place of the placeholder below.
DO $drop$
DECLARE
  f record;
BEGIN
  FOR f IN SELECT p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
             FROM pg_catalog.pg_proc p
            WHERE p.pronamespace OPERATOR(pg_catalog.=) '@extschema@'::pg_catalog.regnamespace
              AND p.proname OPERATOR(pg_catalog.~~) 'month\_lock\_\_%'
              AND NOT EXISTS (
                    SELECT FROM (VALUES @month_lock_helpers@) AS h(sig, argnames, rettype)
                     WHERE pg_catalog.to_regprocedure(h.sig) OPERATOR(pg_catalog.=) p.oid
                       AND COALESCE(p.proargnames, ARRAY[]::pg_catalog.text[]) OPERATOR(pg_catalog.=) h.argnames
                       AND p.prorettype OPERATOR(pg_catalog.=) pg_catalog.to_regtype(h.rettype))
  LOOP
    EXECUTE pg_catalog.format('DROP FUNCTION @extschema@.%I(%s)', f.proname, f.args);
  END LOOP;
END
$drop$;

-- One database, one token sequence: fencing tokens must grow across every edition that hands
-- them out, and two editions beside each other would draw from two sequences. The schema of
-- another edition, or NULL: a month_lock extension in another schema (native, or this edition
-- through pg_tle), or a month_lock_token_seq in another, non-temporary schema owned by owner_id
-- (the owner of this edition's sequence, or the installing role) or by a superuser. A role cannot
-- forge either (a sequence it creates is its own, a temporary one is no edition), so no role can
-- make this edition refuse tokens by naming a sequence of its own month_lock_token_seq.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__other_edition(owner_id pg_catalog.oid)
RETURNS pg_catalog.text LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT o.nspname::text FROM (
  SELECT n.nspname
    FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
   WHERE e.extname = 'month_lock' AND e.extnamespace <> '@extschema@'::pg_catalog.regnamespace
  UNION ALL
  SELECT n.nspname
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
   WHERE c.relname = 'month_lock_token_seq' AND c.relkind = 'S' AND c.relpersistence = 'p'
     AND c.relnamespace <> '@extschema@'::pg_catalog.regnamespace
     AND (c.relowner = owner_id OR r.rolsuper)) o
 LIMIT 1
$fn$;

-- The installer refuses beside another edition; month_lock_token refuses as well if one appears
-- later (50-tokens.sql).
DO $one_sequence$
DECLARE
  other pg_catalog.text := @extschema@.month_lock__other_edition(
    (SELECT u.oid FROM pg_catalog.pg_roles u WHERE u.rolname OPERATOR(pg_catalog.=) CURRENT_USER));
BEGIN
  IF other IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = pg_catalog.format('month_lock: another month_lock edition is installed in this database (schema %s)', other),
      HINT = 'Fencing tokens come from one sequence per database: remove the other edition first, or move between editions as docs/editions.md describes.';
  END IF;
END
$one_sequence$;

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
