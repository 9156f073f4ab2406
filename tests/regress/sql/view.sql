-- month_lock: the month_locks view.

-- Columns and their types.
SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute
 WHERE attrelid = 'month_locks'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- No rows without month locks; other advisory locks are not listed.
SELECT pg_advisory_lock(202403), pg_advisory_lock(7, 202403);
SELECT count(*) AS rows_without_month_locks FROM month_locks;
SELECT pg_advisory_unlock_all();

-- One row per (month, mode) held, ordered by month, for this backend's locks.
SELECT month_lock_try(2024, 12), month_lock_try_shared(2024, 1), month_lock_try(2023, 5);
SELECT year, month, month_start, mode, granted, waiting_since IS NULL AS not_waiting,
       pid = pg_backend_pid() AS mine, usename = current_user AS my_role,
       application_name = current_setting('application_name') AS my_application,
       backend_start IS NOT NULL AS has_backend_start
  FROM month_locks;
-- Transaction locks are listed too.
BEGIN;
SELECT month_lock_try_xact(2024, 2);
SELECT year, month, mode FROM month_locks;
COMMIT;
-- The view follows the key settings.
SET month_lock.namespace = 42;
SELECT count(*) AS rows_in_namespace_42 FROM month_locks;
RESET month_lock.namespace;
SELECT month_lock_release_all();
SELECT count(*) AS rows_after_release FROM month_locks;

-- Every role may read the view and call the functions: SELECT is granted to PUBLIC.
SELECT grantee = 0 AS to_public, privilege_type
  FROM aclexplode((SELECT relacl FROM pg_class WHERE oid = 'month_locks'::regclass))
 WHERE grantee = 0;
CREATE ROLE regress_month_lock_reader;
SET ROLE regress_month_lock_reader;
SELECT month_lock_try(2024, 3) AS unprivileged_try;
SELECT year, month, mode, usename = session_user AS login_role FROM month_locks;
SELECT month_lock_release_all();
RESET ROLE;
DROP ROLE regress_month_lock_reader;
