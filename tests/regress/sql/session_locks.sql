-- month_lock: month_lock.session_locks = off (for roles behind a transaction pooler) makes
-- every session-scope acquisition raise 55000 naming the setting and the transaction-scope
-- API. Transaction-scope forms, releases, month_lock_held and the view work as usual.
SELECT month_lock_try(2024, 9) AS taken_while_allowed;
SET month_lock.session_locks = off;
SHOW month_lock.session_locks;

SELECT month_lock_try(2024, 3);
-- The other session-scope acquisitions, SQLSTATE only.
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ('SELECT month_lock_try(2024, 3, 100)'),
  ('SELECT month_lock(2024, 3)'),
  ('SELECT month_lock(2024, 3, 100)'),
  ('SELECT month_lock_try_shared(2024, 3)'),
  ('SELECT month_lock_shared(2024, 3)'),
  ('SELECT month_lock_shared(2024, 3, 100)'),
  ('SELECT month_lock_try_xact(2024, 3)'),
  ('SELECT month_lock_try_xact_shared(2024, 3, 100)'),
  ('SELECT month_lock_xact(2024, 3)'),
  ('SELECT month_lock_xact_shared(2024, 3, 100)'),
  ('SELECT month_lock_held(2024, 3)'),
  ('SELECT month_is_locked(2024, 3)'),
  ('SELECT count(*) FROM month_locks')
) AS t(q);

-- Nothing was taken by the refused calls; the transaction-scope API works.
SELECT count(*) AS advisory_locks_held FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid <> 202409;
BEGIN;
SELECT month_lock_xact(2024, 3, 100), month_lock_try_xact(2024, 4) AS try_xact;
SELECT month, mode FROM month_locks WHERE pid = pg_backend_pid() ORDER BY month;
COMMIT;
-- A session lock taken while it was allowed can still be released, also by release_all.
SELECT month_lock_held(2024, 9) AS still_held, month_lock_release_all() AS released;
RESET month_lock.session_locks;
SELECT month_lock_try(2024, 3) AS allowed_again, month_lock_release(2024, 3);
