-- month_lock, SQL-only edition: the lock primitives every acquisition and release is built of.
--
-- The rule behind their shape: a session-scope advisory lock is not released when the statement
-- that took it fails (a subtransaction rollback does not release it either), and PostgreSQL
-- processes a cancel or statement_timeout at the start of every PL/pgSQL statement. So a grant
-- is always the value a function returns (nothing interruptible runs between the grant and the
-- return), or it happens inside an EXCEPTION block whose handler gives it back; and a session
-- reference is only ever dropped and taken back within one expression, where no interrupt is
-- processed (docs/editions.md, "Cancels").


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

-- Waits in PostgreSQL's lock queue (the same queue as every advisory lock: FIFO handoff,
-- deadlock detection) for up to timeout_ms (0: without limit), under a lock_timeout of this
-- function's own: the SET clause restores the caller's value on exit. The wait runs in a
-- subtransaction (the EXCEPTION block) so that the timeout becomes false. The caller guarantees
-- this session did not hold (month, mode) on entry. The grant returns from inside the block, so
-- an interrupt processed after it is caught: a session grant that raced the timeout is kept
-- (true), one that raced any other error is released before the error is re-raised. A
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
    RETURN true;
  EXCEPTION
    WHEN lock_not_available THEN
      RETURN sess AND (@extschema@.month_lock__mine(sp, ym) & bit) <> 0;
    WHEN query_canceled OR OTHERS THEN
      IF sess AND (@extschema@.month_lock__mine(sp, ym) & bit) <> 0 THEN
        PERFORM @extschema@.month_lock__unlock(sp, ym, excl);
      END IF;
      RAISE;
  END;
END
$fn$;

-- Whether this session holds a session-scope reference on (month, mode), which the lock table
-- cannot tell from a transaction-scope one. The caller guarantees the session holds the month
-- in this mode. Pinned by a transaction-scope reference (granted locally at once), one session
-- reference is dropped and, if there was one, taken back in the same expression: no interrupt
-- is processed between the two, and the pin keeps the lock from being released in the lock
-- manager meanwhile, so no other session can take the month. Raising MLPIN then rolls back the
-- subtransaction that owns the pin. An interrupt processed anywhere here leaves the session's
-- references as they were. Without a session reference, pg_advisory_unlock's WARNING reaches the
-- server log.
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
    IF sp[2] = 1 AND excl THEN
      had_session := CASE WHEN pg_catalog.pg_advisory_unlock(ym::bigint)
                          THEN pg_catalog.pg_try_advisory_lock(ym::bigint) ELSE false END;
    ELSIF sp[2] = 1 THEN
      had_session := CASE WHEN pg_catalog.pg_advisory_unlock_shared(ym::bigint)
                          THEN pg_catalog.pg_try_advisory_lock_shared(ym::bigint) ELSE false END;
    ELSIF excl THEN
      had_session := CASE WHEN pg_catalog.pg_advisory_unlock(sp[3]::integer, ym)
                          THEN pg_catalog.pg_try_advisory_lock(sp[3]::integer, ym) ELSE false END;
    ELSE
      had_session := CASE WHEN pg_catalog.pg_advisory_unlock_shared(sp[3]::integer, ym)
                          THEN pg_catalog.pg_try_advisory_lock_shared(sp[3]::integer, ym) ELSE false END;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'MLPIN';
  EXCEPTION WHEN SQLSTATE 'MLPIN' THEN
    NULL;
  END;
  RETURN had_session;
END
$fn$;

-- The 55P03 error of the raising forms, as a boolean expression's last operand.
CREATE OR REPLACE FUNCTION @extschema@.month_lock__unavailable(ym integer, wait integer, timeout_ms integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  RAISE EXCEPTION USING ERRCODE = '55P03',
    MESSAGE = pg_catalog.format('month_lock: month %s-%s not available %s',
                                pg_catalog.lpad((ym / 100)::text, 4, '0'), pg_catalog.lpad((ym % 100)::text, 2, '0'),
                                CASE wait WHEN 0 THEN 'at once (timeout_ms = 0)'
                                          WHEN 1 THEN pg_catalog.format('within %s ms', timeout_ms)
                                          ELSE '(the wait ended without it)' END),
    HINT = 'Another session holds the month or waits for it ahead of this one: see the month_locks view.';
END
$fn$;
