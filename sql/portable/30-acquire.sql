-- month_lock, SQL-only edition: every acquisition (month_lock__acquire) and the API functions
-- that take one month.

-- Every acquisition. wait: 0 one attempt, 1 up to timeout_ms, 2 without limit. The common path
-- (settings unset, arguments in range) is written inline: every call of a function with a pinned
-- search_path costs a few microseconds of its own. Re-entry of a session-scope hold is detected
-- by reading the lock table (pg_lock_status: its cost grows with the server's lock table,
-- max_locks_per_transaction x max_connections), the SQL-only edition's price for it; nothing
-- kept in a setting is trusted for it. A session-scope grant returns from inside an EXCEPTION
-- block whose handler gives it back if an interrupt is processed before the function returns.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__acquire(year integer, month integer, timeout_ms integer,
                                                           wait integer, excl boolean, sess boolean, raising boolean)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  ym integer;
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
    -- Already ours in this mode: true at once, without a second session reference. A month
    -- held in transaction scope only gets its first session reference.
    IF EXISTS (SELECT FROM pg_catalog.pg_lock_status() l
                WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
                  AND l.classid::bigint = sp[1] AND l.objid::bigint = ym AND l.objsubid::integer = sp[2]
                  AND l.mode = CASE WHEN excl THEN 'ExclusiveLock' ELSE 'ShareLock' END) THEN
      IF @extschema@.month_lock__has_session(sp, ym, excl) THEN
        RETURN true;
      END IF;
      BEGIN
        RETURN @extschema@.month_lock__try(sp, ym, excl, true);
      EXCEPTION WHEN query_canceled OR OTHERS THEN
        -- there was no session reference before: one now is this call's
        IF @extschema@.month_lock__has_session(sp, ym, excl) THEN
          PERFORM @extschema@.month_lock__unlock(sp, ym, excl);
        END IF;
        RAISE;
      END;
    END IF;
    -- Not held in this mode before: held after an error means this call's grant, given back.
    BEGIN
      RETURN CASE WHEN @extschema@.month_lock__try(sp, ym, excl, sess) THEN true
                  WHEN wait = 0 THEN CASE WHEN raising THEN @extschema@.month_lock__unavailable(ym, wait, timeout_ms) ELSE false END
                  WHEN @extschema@.month_lock__wait(sp, ym, excl, sess, CASE WHEN wait = 1 THEN timeout_ms ELSE 0 END) THEN true
                  WHEN raising THEN @extschema@.month_lock__unavailable(ym, wait, timeout_ms)
                  ELSE false END;
    EXCEPTION WHEN query_canceled OR OTHERS THEN
      IF (@extschema@.month_lock__mine(sp, ym) & CASE WHEN excl THEN 1 ELSE 2 END) <> 0 THEN
        PERFORM @extschema@.month_lock__unlock(sp, ym, excl);
      END IF;
      RAISE;
    END;
  END IF;
  -- Transaction scope: a grant followed by an error ends with the failed transaction (or the
  -- savepoint rolled back), as in the native edition.
  RETURN CASE WHEN @extschema@.month_lock__try(sp, ym, excl, sess) THEN true
              WHEN wait = 0 THEN CASE WHEN raising THEN @extschema@.month_lock__unavailable(ym, wait, timeout_ms) ELSE false END
              WHEN @extschema@.month_lock__wait(sp, ym, excl, sess, CASE WHEN wait = 1 THEN timeout_ms ELSE 0 END) THEN true
              WHEN raising THEN @extschema@.month_lock__unavailable(ym, wait, timeout_ms)
              ELSE false END;
END
$fn$;

-- ---- the API ----------------------------------------------------------------------------------
-- The forms that return void are SQL functions: a PL/pgSQL function returning void ends with an
-- implicit RETURN statement, where an interrupt would be processed after the grant.

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
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, 0, 2, true, true, true)
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, true, true)
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
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, 0, 2, false, true, true)
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_shared(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, true, true)
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
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, 0, 2, true, false, true)
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, timeout_ms, 1, true, false, true)
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact_shared(year integer, month integer)
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, 0, 2, false, false, true)
$fn$;
CREATE OR REPLACE FUNCTION @extschema@.month_lock_xact_shared(year integer, month integer, timeout_ms integer)
RETURNS pg_catalog.void LANGUAGE sql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
SELECT @extschema@.month_lock__acquire(year, month, timeout_ms, 1, false, false, true)
$fn$;
