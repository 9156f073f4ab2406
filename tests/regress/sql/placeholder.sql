-- month_lock: settings fail closed. A SET as the session's first statement arrives before the
-- library is loaded, so PostgreSQL keeps it as a placeholder; a value month_lock cannot use is
-- never replaced by the default: every month_lock call and the view raise 22023 naming the
-- setting until a usable value is set.
SET month_lock.namespace = 'seven';
SELECT month_lock_try(2024, 3);
SELECT month_lock_release_all();
SELECT count(*) FROM month_locks;
SHOW month_lock.namespace;
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
-- A usable value, and month_lock works in that namespace.
SET month_lock.namespace = 7;
SELECT month_lock_try(2024, 3);
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT month_lock_release_all();
