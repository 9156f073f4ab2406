-- month_lock, SQL-only edition: releases and the read-only functions.

-- Drops the token this transaction cached for an exclusive hold (month_lock_token, 50-tokens.sql)
-- after the hold ended: the entry goes, with a new generation drawn first (not possible in a
-- read-only transaction, where the whole cache goes: no cached token is used there).
CREATE OR REPLACE FUNCTION @extschema@.month_lock__tok_forget(tk text)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  x text := COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '');
BEGIN
  IF x = '' OR (tk IS NOT NULL AND pg_catalog.strpos(x, tk) = 0) THEN
    RETURN;
  END IF;
  IF pg_catalog.current_setting('transaction_read_only') = 'on' THEN
    PERFORM pg_catalog.set_config('month_lock_sql.xtok', '', true);
    RETURN;
  END IF;
  PERFORM pg_catalog.set_config('month_lock_sql.xtok',
    pg_catalog.nextval('@extschema@.month_lock__hint_seq'::pg_catalog.regclass)::text || '|'
      || CASE WHEN tk IS NULL THEN ','
              ELSE @extschema@.month_lock__tok_drop(pg_catalog.split_part(x, '|', 2), tk) END, true);
END
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
  -- A token this transaction cached for the month belonged to the hold that just ended.
  IF excl AND done AND COALESCE(pg_catalog.current_setting('month_lock_sql.xtok', true), '') <> '' THEN
    PERFORM @extschema@.month_lock__tok_forget(',' || sp[1]::text || '.' || sp[2]::text || '.' || ym::text || '=');
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
  PERFORM @extschema@.month_lock__tok_forget(NULL);
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
