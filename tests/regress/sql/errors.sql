-- month_lock: argument errors. Each call shows its SQLSTATE and message; no lock is taken and
-- the session stays usable. (The raising forms' argument errors: raising.sql.)
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT q, pg_temp.outcome(q) FROM (VALUES
  ('SELECT month_lock_try(2024, 0)'),
  ('SELECT month_lock_try(2024, 13)'),
  ('SELECT month_lock_try(0, 1)'),
  ('SELECT month_lock_try(10000, 1)'),
  ('SELECT month_lock_try(2024, 3, -1)'),
  ('SELECT month_lock_try(NULL, 3)'),
  ('SELECT month_lock_try(2024, NULL)'),
  ('SELECT month_lock_try(2024, 3, NULL)'),
  ('SELECT month_lock(2024, 13)'),
  ('SELECT month_lock_shared(-1, 1)'),
  ('SELECT month_lock_try_shared(2024, 0, 10)'),
  ('SELECT month_lock_try_xact(2024, 13)'),
  ('SELECT month_lock_try_xact_shared(2024, 3, -5)'),
  ('SELECT month_lock_release(2024, 13)'),
  ('SELECT month_lock_release_shared(NULL, 1)'),
  ('SELECT month_is_locked(2024, 13)'),
  ('SELECT month_lock_held(0, 1)'),
  ('SELECT month_lock(10000, 1)'),
  ('SELECT month_lock_try_shared(2024, 13)'),
  ('SELECT month_lock_release(2024, -1)'),
  ('SELECT month_is_locked(2024, 0)'),
  ('SELECT month_lock_try(2024, 1, -5)'),
  ('SELECT month_lock_try_xact(2024, 1, -1)'),
  ('SELECT month_is_locked(2024, NULL)'),
  ('SELECT month_lock_held(2024, NULL)'),
  ('SELECT month_lock_try_xact(2024, 1, NULL)'),
  ('SELECT month_lock_try_shared(2024, 1, NULL)')
) AS t(q);

-- The extremes of the integer arguments: the same errors (no key is computed before the range
-- check, so nothing overflows), and the largest timeout is an ordinary one.
SELECT q, pg_temp.outcome(q) FROM (VALUES
  ('SELECT month_lock_try(2147483647, 12)'),
  ('SELECT month_lock_try(-2147483648, 1)'),
  ('SELECT month_lock_try(2024, 2147483647)'),
  ('SELECT month_lock_try(2024, -2147483648)'),
  ('SELECT month_lock_try_shared(2147483647, 12, 0)'),
  ('SELECT month_lock_try_xact_shared(2147483647, 12, 0)'),
  ('SELECT month_lock_xact(2147483647, 12)'),
  ('SELECT month_lock_release(2147483647, 12)'),
  ('SELECT month_lock_release_shared(-2147483648, 12)'),
  ('SELECT month_is_locked(2147483647, 12)'),
  ('SELECT month_lock_held(2147483647, 12)'),
  ('SELECT month_lock_try(2024, 3, 2147483647) AND month_lock_release(2024, 3)')
) AS t(q);

-- Nothing was taken, and the session still works.
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT month_lock_try(2024, 3) AS usable, month_lock_release(2024, 3);

-- The error as psql shows it, once.
SELECT month_lock_try(2024, 13);
