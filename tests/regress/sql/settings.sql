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
