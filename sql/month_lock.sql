-- Hand-written part of the month_lock install script: the month_locks view, its grant and a
-- comment on every object. pgrx appends it after the generated CREATE FUNCTION statements.
-- Install scripts run as superuser with the target schema first in search_path: every operator,
-- function and type below is schema-qualified, so nothing another role planted there is bound.

CREATE VIEW @extschema@.month_locks AS
SELECT (l.key OPERATOR(pg_catalog./) 100::pg_catalog.int8)::pg_catalog.int4    AS year,
       (l.key OPERATOR(pg_catalog.%) 100::pg_catalog.int8)::pg_catalog.int4    AS month,
       pg_catalog.make_date((l.key OPERATOR(pg_catalog./) 100::pg_catalog.int8)::pg_catalog.int4,
                            (l.key OPERATOR(pg_catalog.%) 100::pg_catalog.int8)::pg_catalog.int4,
                            1)                                             AS month_start,
       CASE WHEN l.mode OPERATOR(pg_catalog.=) 'ExclusiveLock'::pg_catalog.text
            THEN 'exclusive'::pg_catalog.text
            ELSE 'shared'::pg_catalog.text END                            AS mode,
       l.granted                                                          AS granted,
       l.pid                                                              AS pid,
       CASE WHEN l.granted THEN NULL ELSE l.waitstart END                 AS waiting_since,
       a.application_name                                                 AS application_name,
       a.usename                                                          AS usename,
       a.client_addr                                                      AS client_addr,
       a.backend_start                                                    AS backend_start
  -- The key space, evaluated once and first (an unusable month_lock setting raises here, even
  -- when no advisory lock exists); OFFSET 0 keeps both subqueries from being flattened.
  FROM (SELECT @extschema@.month_lock_key_classid() AS classid,
               @extschema@.month_lock_key_objsubid() AS objsubid
        OFFSET 0) k
 CROSS JOIN LATERAL (
        SELECT p.objid::pg_catalog.int8 AS key, p.mode, p.granted, p.pid, p.waitstart
          FROM pg_catalog.pg_locks p
         WHERE p.locktype OPERATOR(pg_catalog.=) 'advisory'::pg_catalog.text
           AND p.database OPERATOR(pg_catalog.=)
               (SELECT d.oid FROM pg_catalog.pg_database d
                 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
           AND p.classid::pg_catalog.int8 OPERATOR(pg_catalog.=) k.classid
           AND p.objsubid::pg_catalog.int4 OPERATOR(pg_catalog.=) k.objsubid
           AND (p.mode OPERATOR(pg_catalog.=) 'ExclusiveLock'::pg_catalog.text
                OR p.mode OPERATOR(pg_catalog.=) 'ShareLock'::pg_catalog.text)
           -- a month: last two digits 01..12; years 1..9999, or 1000..9999 (six digits) with
           -- legacy keys (objsubid 1)
           AND (p.objid::pg_catalog.int8 OPERATOR(pg_catalog.%) 100::pg_catalog.int8)
               OPERATOR(pg_catalog.>=) 1::pg_catalog.int8
           AND (p.objid::pg_catalog.int8 OPERATOR(pg_catalog.%) 100::pg_catalog.int8)
               OPERATOR(pg_catalog.<=) 12::pg_catalog.int8
           AND p.objid::pg_catalog.int8 OPERATOR(pg_catalog.>=)
               CASE WHEN k.objsubid OPERATOR(pg_catalog.=) 1 THEN 100001::pg_catalog.int8
                    ELSE 101::pg_catalog.int8 END
           AND p.objid::pg_catalog.int8 OPERATOR(pg_catalog.<=) 999912::pg_catalog.int8
        OFFSET 0) l
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
 ORDER BY 1, 2, l.granted DESC, l.waitstart NULLS FIRST, l.pid;

GRANT SELECT ON @extschema@.month_locks TO PUBLIC;

-- Fencing tokens: one sequence for every hold (see month_lock_token). Its value is dumped with
-- the extension's configuration, so a dump and restore never hands out a token again.
CREATE SEQUENCE @extschema@.month_lock_token_seq AS pg_catalog.int8 MINVALUE 1 NO CYCLE;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.month_lock_token_seq', '');
-- month_lock_token runs as its caller: every role may draw tokens (USAGE = nextval/currval),
-- none may set the sequence back (no UPDATE).
GRANT USAGE ON SEQUENCE @extschema@.month_lock_token_seq TO PUBLIC;
COMMENT ON SEQUENCE @extschema@.month_lock_token_seq IS
'Source of month_lock fencing tokens (month_lock_token): strictly increasing, never reused.';


COMMENT ON VIEW @extschema@.month_locks IS
'One row per holder or waiter of a month lock in the current database, under the current month_lock.namespace / month_lock.legacy_keys settings; readable by every role. waiting_since is NULL for holders. No query text is exposed. application_name and usename are shown for every session (as in pg_stat_activity); client_addr and backend_start of another role''s session are NULL unless the viewer is a member of that role or of pg_read_all_stats.';

COMMENT ON FUNCTION @extschema@.month_lock_try(integer, integer) IS
'month_lock_try(year, month, 0): one attempt, no wait. Its own function rather than a DEFAULT argument, so calls cost no default-argument planning.';
COMMENT ON FUNCTION @extschema@.month_lock_try(integer, integer, integer) IS
'Take the month exclusively for this session. timeout_ms = 0: one attempt; > 0: wait in PostgreSQL''s lock queue up to that many ms, then return false (no error). Already held by this session: true, not stacked. Released by month_lock_release or the end of the session; also undone if the request that took it ends in an error. Errors: 22004 on NULL, 22023 on year outside 1..9999 (1000..9999 with legacy keys), month outside 1..12, negative timeout_ms or an unusable month_lock setting; 55000 when month_lock.session_locks is off; 40P01 on deadlock; 57014 on cancel or statement_timeout.';
COMMENT ON FUNCTION @extschema@.month_lock(integer, integer) IS
'Take the month exclusively for this session, waiting without limit in PostgreSQL''s lock queue (cancel, statement_timeout and the deadlock detector apply; lock_timeout does not). Already held: returns at once, not stacked.';
COMMENT ON FUNCTION @extschema@.month_lock(integer, integer, integer) IS
'Like month_lock_try, but raises 55P03 (lock_not_available) instead of returning false when the month was not had within timeout_ms (0: one attempt). Returns only with the month held.';
COMMENT ON FUNCTION @extschema@.month_lock_try_shared(integer, integer) IS
'month_lock_try_shared(year, month, 0): one attempt, no wait.';
COMMENT ON FUNCTION @extschema@.month_lock_try_shared(integer, integer, integer) IS
'Like month_lock_try, in shared mode: any number of shared holders; excluded by an exclusive holder and vice versa.';
COMMENT ON FUNCTION @extschema@.month_lock_shared(integer, integer) IS
'Like month_lock, in shared mode.';
COMMENT ON FUNCTION @extschema@.month_lock_shared(integer, integer, integer) IS
'Like month_lock(year, month, timeout_ms), in shared mode.';
COMMENT ON FUNCTION @extschema@.month_lock_try_xact(integer, integer) IS
'month_lock_try_xact(year, month, 0): one attempt, no wait.';
COMMENT ON FUNCTION @extschema@.month_lock_try_xact(integer, integer, integer) IS
'Like month_lock_try, but held until the current transaction ends (commit or rollback); cannot be released earlier. The form that stays correct behind transaction-pooling proxies. Outside BEGIN ... COMMIT the transaction is the statement itself.';
COMMENT ON FUNCTION @extschema@.month_lock_try_xact_shared(integer, integer) IS
'month_lock_try_xact_shared(year, month, 0): one attempt, no wait.';
COMMENT ON FUNCTION @extschema@.month_lock_try_xact_shared(integer, integer, integer) IS
'Like month_lock_try_xact, in shared mode.';
COMMENT ON FUNCTION @extschema@.month_lock_xact(integer, integer) IS
'Take the month exclusively until the current transaction ends, waiting without limit (cancel, statement_timeout and the deadlock detector apply; lock_timeout does not). For one-round-trip scripts behind transaction poolers: BEGIN; SELECT month_lock_xact(2024, 3); <work>; COMMIT; month_lock_xact(year, month, timeout_ms) raises 55P03 at the timeout instead.';
COMMENT ON FUNCTION @extschema@.month_lock_xact(integer, integer, integer) IS
'Like month_lock_try_xact, but raises 55P03 (lock_not_available) instead of returning false when the month was not had within timeout_ms (0: one attempt).';
COMMENT ON FUNCTION @extschema@.month_lock_xact_shared(integer, integer) IS
'Like month_lock_xact, in shared mode.';
COMMENT ON FUNCTION @extschema@.month_lock_xact_shared(integer, integer, integer) IS
'Like month_lock_xact(year, month, timeout_ms), in shared mode.';
COMMENT ON FUNCTION @extschema@.month_lock_release(integer, integer) IS
'Release this session''s session-scope exclusive lock on the month. True if there was one and it is released; false otherwise, quietly (no WARNING). A transaction-scope hold of the same month is not released (month_lock_held stays true until the transaction ends).';
COMMENT ON FUNCTION @extschema@.month_lock_release_shared(integer, integer) IS
'Release this session''s session-scope shared lock on the month. True if there was one and it is released; false otherwise, quietly.';
COMMENT ON FUNCTION @extschema@.month_lock_release_all() IS
'Release every session-scope month lock this session took through month_lock (both modes, current key space) and return how many (month, mode) pairs were released. Costs O(months held). Other advisory locks (also raw pg_advisory_lock calls on month keys) and transaction-scope locks stay held.';
COMMENT ON FUNCTION @extschema@.month_is_locked(integer, integer) IS
'True if any session in this database holds the month (exclusive or shared, session or transaction scope). A snapshot: it may change right after.';
COMMENT ON FUNCTION @extschema@.month_lock_held(integer, integer) IS
'True if this session holds the month in any mode and scope.';
COMMENT ON FUNCTION @extschema@.month_lock_key_classid() IS
'Internal: pg_locks.classid of month locks under the current settings (the namespace, or 0 with legacy keys).';
COMMENT ON FUNCTION @extschema@.month_lock_key_objsubid() IS
'Internal: pg_locks.objsubid of month locks under the current settings (2, or 1 with legacy keys).';
COMMENT ON FUNCTION @extschema@.month_lock_token(integer, integer) IS
'Fencing token of this session''s exclusive hold of the month (session scope, or transaction scope in this transaction); 55000 if the month is not held exclusively. The same hold returns the same token; every later hold of the month, by any session, gets a larger one. Durable once the transaction that obtained it has committed (across restarts, crashes and a failover to a synchronous standby). Pattern: store the highest token with the data and write only WHERE stored_token <= my_token.';
COMMENT ON FUNCTION @extschema@.month_lock_claim(date[]) IS
'Take the first month of the array (in order; any day names its month) that is free right now, exclusively for this session, without waiting and without jumping a queued waiter; months this session already holds are skipped. Returns the month''s first day, or NULL (and takes nothing) if none is free. Never takes more than one.';
COMMENT ON FUNCTION @extschema@.month_lock_claim_xact(date[]) IS
'Like month_lock_claim, held until the current transaction ends.';
COMMENT ON FUNCTION @extschema@.month_lock_all(date[]) IS
'month_lock_all(months, 0): one attempt per month, no wait.';
COMMENT ON FUNCTION @extschema@.month_lock_all(date[], integer) IS
'Take every month of the set exclusively for this session, in ascending order (two such calls over overlapping sets cannot deadlock with each other), within one overall timeout_ms measured from the call''s start (0: one attempt per month). True with all held; false, having released every month this call took, at the timeout. On an error it releases what it took and re-raises.';
COMMENT ON FUNCTION @extschema@.month_lock_all_xact(date[]) IS
'month_lock_all_xact(months, 0): one attempt per month, no wait.';
COMMENT ON FUNCTION @extschema@.month_lock_all_xact(date[], integer) IS
'Like month_lock_all, held until the current transaction ends (on false, what this call took is released at once).';
COMMENT ON FUNCTION @extschema@.month_lock_release(date[]) IS
'Release this session''s session-scope exclusive locks on the months (e.g. taken by month_lock_all); returns how many were released.';
