-- month_lock, SQL-only edition: releases and the read-only functions.

-- Releases: one session-scope reference, straight to the lock manager (no lock-table read).
-- pg_advisory_unlock warns when there is none: client_min_messages keeps the warning from the
-- client, not from the server log.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__release(year integer, month integer, excl boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp SET client_min_messages = error AS $fn$
DECLARE
  sp bigint[];
  ym integer;
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
  -- The unlock is the last thing the call does, in its RETURN: a cancel processed inside the call
  -- comes before it (nothing released), never after it (docs/editions.md, "Cancels").
  RETURN CASE WHEN sp[2] = 1 AND excl THEN pg_catalog.pg_advisory_unlock(ym::bigint)
              WHEN sp[2] = 1 THEN pg_catalog.pg_advisory_unlock_shared(ym::bigint)
              WHEN excl THEN pg_catalog.pg_advisory_unlock(sp[3]::integer, ym)
              ELSE pg_catalog.pg_advisory_unlock_shared(sp[3]::integer, ym) END;
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

-- Releases a list of (month, mode) session references, one each; returns how many were held. A
-- cancel processed once the list is being released does not stop it halfway: the handler
-- finishes the list (further cancels meanwhile included) and re-raises, so a cancelled call
-- released either nothing (cancelled before, while its caller read the months) or everything
-- (docs/editions.md, "Cancels"). Each step unlocks and records in one
-- statement (an interrupt is processed between statements, never between the two).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__unlock_list(sp bigint[], yms integer[], excls boolean[])
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  done integer[] := '{}';
  i integer;
BEGIN
  BEGIN
    FOR i IN 1..COALESCE(pg_catalog.cardinality(yms), 0) LOOP
      done := done || (@extschema@.month_lock__unlock(sp, yms[i], excls[i]))::integer;
    END LOOP;
  EXCEPTION WHEN query_canceled THEN
    LOOP
      BEGIN
        FOR i IN pg_catalog.cardinality(done) + 1..COALESCE(pg_catalog.cardinality(yms), 0) LOOP
          done := done || (@extschema@.month_lock__unlock(sp, yms[i], excls[i]))::integer;
        END LOOP;
        EXIT;
      EXCEPTION WHEN query_canceled THEN
        NULL;
      END;
    END LOOP;
    RAISE;
  END;
  RETURN (SELECT COALESCE(pg_catalog.sum(d), 0)::integer FROM pg_catalog.unnest(done) AS u(d));
END
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
  yms integer[];
  excls boolean[];
BEGIN
  sp := @extschema@.month_lock__space();
  first_key := CASE WHEN sp[2] = 1 THEN 100001 ELSE 101 END;
  SELECT pg_catalog.array_agg(l.objid::integer ORDER BY l.objid, l.mode),
         pg_catalog.array_agg(l.mode = 'ExclusiveLock' ORDER BY l.objid, l.mode)
    INTO yms, excls
    FROM pg_catalog.pg_lock_status() l
   WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
     AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2]
     AND l.mode IN ('ExclusiveLock', 'ShareLock')
     AND l.objid::bigint % 100 BETWEEN 1 AND 12
     AND l.objid::bigint BETWEEN first_key AND 999912;
  RETURN @extschema@.month_lock__unlock_list(sp, yms, excls);
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
