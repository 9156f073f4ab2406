-- month_lock: the settings month_lock.namespace and month_lock.legacy_keys move the key space.
-- The settings exist once the library is loaded (the first call of a month_lock function in
-- the session); a SET before that is kept and applies from then on.
SELECT month_lock_key_classid(), month_lock_key_objsubid();
SHOW month_lock.namespace;
SHOW month_lock.legacy_keys;

-- Another namespace: a separate key space.
SELECT month_lock_try(2024, 3);
SET month_lock.namespace = 42;
SELECT month_lock_key_classid(), month_lock_key_objsubid();
SELECT month_lock_held(2024, 3) AS held_in_namespace_42;
SELECT month_lock_try(2024, 3);
SELECT classid, objid, objsubid FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY classid;
SELECT month_lock_release_all() AS released_in_42;
RESET month_lock.namespace;
SELECT month_lock_release_all() AS released_in_default;

-- Legacy keys: the original application's bigint key yyyymm.
SET month_lock.legacy_keys = on;
SELECT month_lock_key_classid(), month_lock_key_objsubid();
SELECT month_lock_try(2024, 3);
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pg_advisory_unlock(202403) AS raw_unlock_frees_it, month_lock_held(2024, 3);
SELECT pg_advisory_lock(202403);
SELECT month_lock_held(2024, 3) AS raw_lock_is_the_month, month_lock_release_all();
RESET month_lock.legacy_keys;

-- Bad values are refused (22023), and the setting keeps its value.
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ('SET month_lock.legacy_keys = maybe'),
  ('SET month_lock.namespace = ''x'''),
  ('SET month_lock.namespace = 4294967296')
) AS t(q);
SHOW month_lock.namespace;
RESET month_lock.namespace;
SHOW month_lock.namespace;

-- Once the library is loaded, a value month_lock cannot use is refused at SET time (22023),
-- with the message, and the setting keeps its value.
SET month_lock.namespace = 'seven';
SET month_lock.legacy_keys = 'sometimes';
SET month_lock.session_locks = 2;
SHOW month_lock.namespace;
-- An unknown name under the month_lock prefix is refused (42602) on PostgreSQL 15 and later;
-- PostgreSQL 14 accepts it as a placeholder. (Shown as one line so that the output is the same
-- on every major.)
SELECT pg_temp.sqlstate_of('SET month_lock.namspace = 1')
       = CASE WHEN current_setting('server_version_num')::int >= 150000 THEN '42602' ELSE 'ok' END
       AS unknown_name_handled_as_documented;

-- Legacy keys are always six digits: years 1000..9999.
SET month_lock.legacy_keys = on;
SELECT month_lock_try(999, 1);
SELECT month_lock_held(999, 12);
SELECT month_lock_try(1000, 1) AS first_legacy_month, month_lock_try(9999, 12) AS last_legacy_month;
SELECT year, month FROM month_locks WHERE pid = pg_backend_pid() ORDER BY year;
-- Another library's bigint lock 4207 is not a month ("0042-07"): not in the view, and
-- release_all leaves it held.
SELECT pg_advisory_lock(4207);
SELECT count(*) AS rows_in_view FROM month_locks WHERE year < 1000;
SELECT month_lock_release_all() AS released_months;
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT pg_advisory_unlock(4207);
RESET month_lock.legacy_keys;
