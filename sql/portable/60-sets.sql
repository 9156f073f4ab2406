-- month_lock, SQL-only edition: claim any and all or nothing over arrays of months.

-- Claim any: the first month of the array that is free right now, skipping months this
-- session holds in any mode; never waits, never jumps a queued waiter, takes at most one. The
-- attempts run inside an EXCEPTION block that returns the claimed month from inside: an
-- interrupt processed after a grant is caught and the grant given back.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__claim(months pg_catalog.date[], sess boolean)
RETURNS pg_catalog.date LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  yms integer[];
  mine bigint[];
  ym integer;
  current integer;
  got boolean := false;
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  IF sess THEN
    PERFORM @extschema@.month_lock__require_session_locks(sp);
  END IF;
  IF pg_catalog.cardinality(yms) = 0 THEN
    RETURN NULL;
  END IF;
  -- One read of the lock table for the whole array.
  SELECT pg_catalog.array_agg(l.objid::bigint) INTO mine
    FROM pg_catalog.pg_lock_status() l
   WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
     AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2]
     AND l.mode IN ('ExclusiveLock', 'ShareLock');
  -- current names a month only once it is known not to be held before the call: the loop
  -- variable ym also names the held months being skipped, and an interrupt processed at the
  -- skip must not make the handler give one of those back.
  BEGIN
    FOREACH ym IN ARRAY yms LOOP
      CONTINUE WHEN ym = ANY (mine);
      current := ym;
      got := @extschema@.month_lock__try(sp, current, true, sess);
      IF got THEN
        RETURN pg_catalog.make_date(current / 100, current % 100, 1);
      END IF;
    END LOOP;
    RETURN NULL;
  EXCEPTION WHEN query_canceled OR OTHERS THEN
    -- current was not held before the call (held months are skipped before it is set, and a
    -- month whose attempt failed is not held): held now, it is this call's grant (got may not
    -- be assigned yet when the interrupt came right after the grant)
    IF sess AND current IS NOT NULL AND (@extschema@.month_lock__mine(sp, current) & 1) <> 0 THEN
      PERFORM @extschema@.month_lock__unlock(sp, current, true);
    END IF;
    RAISE;
  END;
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
-- Session scope: what this call took is released on false and on an error, including the
-- session reference it adds to a month held before in transaction scope only; a session hold
-- from before the call is left as it was. false and true return from inside the block, whose
-- handler gives everything back if an interrupt comes first. Transaction scope: the loop runs in a subtransaction
-- that is rolled back on false, which releases exactly the transaction-scope references it took
-- (an error rolls back the caller's transaction anyway). true returns from inside the block, so
-- an interrupt processed after the last grant is caught and everything given back.
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
  current integer;
  mine bigint[];
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  budget := @extschema@.month_lock__timeout(timeout_ms);
  deadline := pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => budget / 1000.0);
  taken := '{}';
  IF sess THEN
    PERFORM @extschema@.month_lock__require_session_locks(sp);
    -- Months this session holds exclusively before the call (one read of the lock table).
    SELECT pg_catalog.array_agg(l.objid::bigint) INTO mine
      FROM pg_catalog.pg_lock_status() l
     WHERE l.locktype = 'advisory' AND l.pid = pg_catalog.pg_backend_pid() AND l.granted
       AND l.classid::bigint = sp[1] AND l.objsubid::integer = sp[2] AND l.mode = 'ExclusiveLock';
  END IF;
  SELECT COALESCE(pg_catalog.array_agg(DISTINCT u.m ORDER BY u.m), '{}') INTO yms FROM pg_catalog.unnest(yms) AS u(m);
  BEGIN
    FOREACH ym IN ARRAY yms LOOP
      current := NULL;
      IF sess AND ym = ANY (mine) THEN
        -- held before the call: a session hold stays as it is (re-entry, never given back); a
        -- transaction-scope hold gets a session reference, this call's to give back
        CONTINUE WHEN @extschema@.month_lock__has_session(sp, ym, true);
        current := ym;
        got := @extschema@.month_lock__try(sp, ym, true, true);
      ELSE
        current := ym;
        got := @extschema@.month_lock__try(sp, ym, true, sess);
        IF NOT got THEN
          left_ms := pg_catalog.ceil(pg_catalog.date_part('epoch', deadline - pg_catalog.clock_timestamp()) * 1000)::integer;
          IF left_ms > 0 THEN
            got := @extschema@.month_lock__wait(sp, ym, true, sess, left_ms);
          END IF;
        END IF;
        IF NOT got THEN
          current := NULL;
          IF NOT sess THEN
            RAISE EXCEPTION USING ERRCODE = 'MLALL';
          END IF;
          -- session scope: give back inside this block, so that an interrupt processed meanwhile
          -- reaches the handler below, which finishes the give-back
          PERFORM @extschema@.month_lock__give_back(sp, taken, NULL::integer, false);
          taken := '{}';
          RETURN false;
        END IF;
      END IF;
      IF sess THEN
        taken := taken || ym;
      END IF;
      current := NULL;
    END LOOP;
    RETURN true;
  EXCEPTION
    WHEN SQLSTATE 'MLALL' THEN
      -- transaction scope only: the rolled-back subtransaction released what the loop took
      RETURN false;
    WHEN query_canceled OR OTHERS THEN
      IF sess THEN
        -- finished before the error goes on, even if further interrupts come meanwhile
        -- (giving back twice is harmless: see month_lock__give_back)
        LOOP
          BEGIN
            PERFORM @extschema@.month_lock__give_back(sp, taken, current, current = ANY (mine));
            EXIT;
          EXCEPTION WHEN query_canceled THEN
            NULL;
          END;
        END LOOP;
      END IF;
      RAISE;
  END;
END
$fn$;

-- What a failed month_lock_all gives back in session scope: the months it took (taken), and the
-- month it was acquiring when the error came (current), which the interrupt may have followed
-- right after its grant: held before in transaction scope only (held_before), a session
-- reference now is the call's; not held before, held now is the call's. Running it twice gives
-- back nothing more: the months in taken and current had no session reference before the call.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__give_back(sp bigint[], taken integer[], current integer, held_before boolean)
RETURNS pg_catalog.void LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  i integer;
BEGIN
  IF current IS NOT NULL THEN
    IF held_before THEN
      IF @extschema@.month_lock__has_session(sp, current, true) THEN
        PERFORM @extschema@.month_lock__unlock(sp, current, true);
      END IF;
    ELSIF (@extschema@.month_lock__mine(sp, current) & 1) <> 0 THEN
      PERFORM @extschema@.month_lock__unlock(sp, current, true);
    END IF;
  END IF;
  FOR i IN REVERSE pg_catalog.cardinality(taken)..1 LOOP
    PERFORM @extschema@.month_lock__unlock(sp, taken[i], true);
  END LOOP;
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

-- Every month once, in ascending order, released as one list (40-release.sql: a cancel leaves
-- all or none of them released).
CREATE OR REPLACE FUNCTION @extschema@.month_lock_release(months pg_catalog.date[])
RETURNS integer LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  sp bigint[];
  yms integer[];
BEGIN
  sp := @extschema@.month_lock__space();
  yms := @extschema@.month_lock__months(months, sp);
  SELECT pg_catalog.array_agg(DISTINCT u.m ORDER BY u.m) INTO yms FROM pg_catalog.unnest(yms) AS u(m);
  IF yms IS NULL THEN
    RETURN 0;
  END IF;
  RETURN @extschema@.month_lock__unlock_list(sp, yms, pg_catalog.array_fill(true, ARRAY[pg_catalog.cardinality(yms)]));
END
$fn$;

-- Internal helpers are the installer's own: no role needs to call them directly, but the API
-- functions run as their caller, so they stay executable by PUBLIC (the default).
