-- Hand-written part of the month_lock install script: the month_locks view and a comment on
-- every object. pgrx appends it after the generated CREATE FUNCTION statements.

CREATE VIEW month_locks AS
SELECT (l.objid::bigint / 100)::integer                                   AS year,
       (l.objid::bigint % 100)::integer                                   AS month,
       make_date((l.objid::bigint / 100)::integer, (l.objid::bigint % 100)::integer, 1)
                                                                          AS month_start,
       CASE l.mode WHEN 'ExclusiveLock' THEN 'exclusive' ELSE 'shared' END AS mode,
       l.granted                                                          AS granted,
       l.pid                                                              AS pid,
       CASE WHEN l.granted THEN NULL ELSE l.waitstart END                 AS waiting_since,
       a.application_name                                                 AS application_name,
       a.usename                                                          AS usename,
       a.client_addr                                                      AS client_addr,
       a.backend_start                                                    AS backend_start
  FROM pg_catalog.pg_locks l
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory'
   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                      WHERE d.datname = pg_catalog.current_database())
   AND l.classid::bigint = month_lock_key_classid()
   AND l.objsubid::integer = month_lock_key_objsubid()
   AND l.mode IN ('ExclusiveLock', 'ShareLock')
   AND l.objid::bigint % 100 BETWEEN 1 AND 12
   AND l.objid::bigint / 100 BETWEEN 1 AND 9999
 ORDER BY 1, 2, l.granted DESC, l.waitstart NULLS FIRST, l.pid;

COMMENT ON VIEW month_locks IS
'One row per holder or waiter of a month lock in the current database, under the current month_lock.namespace / month_lock.legacy_keys settings. waiting_since is NULL for holders. No query text is exposed; application_name, usename, client_addr and backend_start of other roles'' sessions are NULL unless the viewer may see them in pg_stat_activity.';

COMMENT ON FUNCTION month_lock_try(integer, integer, integer) IS
'Take the month exclusively for this session. timeout_ms = 0: one attempt; > 0: wait in PostgreSQL''s lock queue up to that many ms, then return false (no error). Already held by this session: true, not stacked. Errors: 22004 on NULL, 22023 on year outside 1..9999, month outside 1..12, negative timeout_ms; 40P01 on deadlock; 57014 on cancel or statement_timeout.';
COMMENT ON FUNCTION month_lock(integer, integer) IS
'Take the month exclusively for this session, waiting without limit in PostgreSQL''s lock queue (cancel, statement_timeout and the deadlock detector apply; lock_timeout does not). Already held: returns at once, not stacked.';
COMMENT ON FUNCTION month_lock_try_shared(integer, integer, integer) IS
'Like month_lock_try, in shared mode: any number of shared holders; excluded by an exclusive holder and vice versa.';
COMMENT ON FUNCTION month_lock_shared(integer, integer) IS
'Like month_lock, in shared mode.';
COMMENT ON FUNCTION month_lock_try_xact(integer, integer, integer) IS
'Like month_lock_try, but held until the current transaction ends (commit or rollback); cannot be released earlier. The form that stays correct behind transaction-pooling proxies. Outside BEGIN ... COMMIT the transaction is the statement itself.';
COMMENT ON FUNCTION month_lock_try_xact_shared(integer, integer, integer) IS
'Like month_lock_try_xact, in shared mode.';
COMMENT ON FUNCTION month_lock_release(integer, integer) IS
'Release this session''s exclusive lock on the month. True if it was held and now is not; false otherwise, quietly (no WARNING). Transaction-scope locks are not released.';
COMMENT ON FUNCTION month_lock_release_shared(integer, integer) IS
'Release this session''s shared lock on the month. True if it was held and now is not; false otherwise, quietly.';
COMMENT ON FUNCTION month_lock_release_all() IS
'Release every session-scope month lock of this session (both modes, current key space) and return how many (month, mode) pairs were released. Other advisory locks and transaction-scope locks stay held.';
COMMENT ON FUNCTION month_is_locked(integer, integer) IS
'True if any session in this database holds the month (exclusive or shared, session or transaction scope). A snapshot: it may change right after.';
COMMENT ON FUNCTION month_lock_held(integer, integer) IS
'True if this session holds the month in any mode and scope.';
COMMENT ON FUNCTION month_lock_key_classid() IS
'Internal: pg_locks.classid of month locks under the current settings (the namespace, or 0 with legacy keys).';
COMMENT ON FUNCTION month_lock_key_objsubid() IS
'Internal: pg_locks.objsubid of month locks under the current settings (2, or 1 with legacy keys).';
