-- month_lock SQL-only edition: what the edition itself promises, run by the database owner that
-- installed it (no superuser). Differences to the native extension are named in
-- docs/editions.md; each has a test here or in tests/regress with its expected output.

-- The library is not loaded in this session, and there is no extension: the functions are the
-- edition's, in PL/pgSQL, each with a pinned search_path.
SELECT current_setting('month_lock.namespace', true) IS NULL AS library_not_loaded,
       (SELECT count(*) FROM pg_extension WHERE extname = 'month_lock') AS extensions,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser;
SELECT l.lanname, count(*) AS functions,
       bool_and(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp']) AS search_path_pinned,
       bool_or(p.prosecdef) AS any_security_definer,
       count(*) FILTER (WHERE p.proname NOT LIKE 'month\_lock\_\_%') AS api_functions,
       count(*) FILTER (WHERE p.proname NOT LIKE 'month\_lock\_\_%' AND obj_description(p.oid, 'pg_proc') IS NULL) AS api_without_comment
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'public'::regnamespace AND (p.proname LIKE 'month\_lock%' OR p.proname = 'month_is_locked')
 GROUP BY l.lanname;

-- Settings fail closed at call time: a value the native library would refuse raises 22023
-- naming the setting; an integer is an optional sign and decimal digits without a leading zero,
-- anything else is refused too, also where the native library reads a value (hexadecimal,
-- octal and any leading zero, fractions, exponents). Spaces around an integer and prefixes of
-- on/off words are read as the native library reads them.
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  EXECUTE q INTO r;
  RETURN coalesce(r, 'ok');
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT setting, value, pg_temp.outcome(format(
         'SELECT set_config(%L, %L, false), month_lock_key_classid()::text || ''/'' || month_lock_key_objsubid()',
         setting, value)) AS outcome
  FROM (VALUES ('month_lock.namespace', '0x10'), ('month_lock.namespace', '010'),
               ('month_lock.namespace', '7.0'), ('month_lock.namespace', '1e3'),
               ('month_lock.namespace', '00'), ('month_lock.namespace', '2147483648'),
               ('month_lock.namespace', ' 42 '), ('month_lock.namespace', '-1'),
               ('month_lock.namespace', ''), ('month_lock.legacy_keys', 'TRU'),
               ('month_lock.legacy_keys', 'o'), ('month_lock.legacy_keys', 'of'),
               ('month_lock.session_locks', 'maybe')) AS t(setting, value);
RESET month_lock.namespace;
RESET month_lock.legacy_keys;
RESET month_lock.session_locks;
-- Every function raises while a setting is unusable, and takes nothing.
SET month_lock.legacy_keys = 'sometimes';
SELECT q, pg_temp.outcome(q) FROM (VALUES
  ('SELECT month_lock_try(2024, 3)'), ('SELECT month_lock_try_xact(2024, 3, 10)'),
  ('SELECT month_lock_release(2024, 3)'), ('SELECT month_lock_release_all()'),
  ('SELECT month_is_locked(2024, 3)'), ('SELECT month_lock_claim(ARRAY[''2024-03-01''::date])'),
  ('SELECT month_lock_all(ARRAY[''2024-03-01''::date])'), ('SELECT count(*) FROM month_locks')) AS t(q);
RESET month_lock.legacy_keys;
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- The caller's lock_timeout is neither used nor changed by a wait.
SET lock_timeout = '1ms';
SELECT month_lock_try(2024, 3, 50) AS waited_form, month_lock(2024, 4);
SHOW lock_timeout;
RESET lock_timeout;
SELECT month_lock_release_all() AS released;

-- Re-entry does not stack, also when the month was held in transaction scope only: the session
-- acquisition then adds the one session reference, which outlives the transaction.
SELECT month_lock_try(2024, 5), month_lock_try(2024, 5, 100), month_lock(2024, 5);
SELECT month_lock_release(2024, 5) AS released, month_lock_held(2024, 5) AS still_held;
BEGIN;
SELECT month_lock_try_xact(2024, 6) AS xact, month_lock_try(2024, 6) AS session_too, month_lock_try(2024, 6) AS again;
COMMIT;
SELECT month_lock_held(2024, 6) AS session_hold_survives_commit;
SELECT month_lock_release(2024, 6) AS released, month_lock_held(2024, 6) AS still_held;

-- Re-entry reads the lock table (nothing kept in a setting is trusted for it): after a ROLLBACK
-- or ROLLBACK TO SAVEPOINT (which rewind settings, not session locks) re-entry still does not
-- stack, and a hold ended behind month_lock's back (raw unlock) is taken afresh.
BEGIN;
SELECT month_lock_try(2024, 9) AS taken_in_rolled_back_transaction;
ROLLBACK;
SELECT month_lock_try(2024, 9) AS reentry, month_lock_try_shared(2024, 9) AS shared_too;
BEGIN;
SAVEPOINT s;
SELECT month_lock_release_shared(2024, 9) AS released_shared, month_lock_try(2024, 10) AS october;
ROLLBACK TO s;
SELECT month_lock_try(2024, 10) AS october_again, month_lock_try_shared(2024, 9) AS shared_again;
COMMIT;
SELECT month_lock_release(2024, 9) AS sep, month_lock_release_shared(2024, 9) AS sep_shared,
       month_lock_release(2024, 10) AS oct, month_lock_held(2024, 9) OR month_lock_held(2024, 10) AS still_held;
SELECT month_lock_try(2024, 11), pg_advisory_unlock(1835821824, 202411) AS raw_unlock;
SELECT month_lock_try(2024, 11) AS taken_again, month_lock_release(2024, 11) AS released,
       month_lock_held(2024, 11) AS still_held;
-- In a read-only transaction as well.
BEGIN READ ONLY;
SELECT month_lock_try(2024, 12) AS read_only, month_lock_try(2024, 12) AS reentry;
COMMIT;
SELECT month_lock_try(2024, 12) AS reentry_read_write;
SELECT month_lock_release(2024, 12) AS released, month_lock_held(2024, 12) AS still_held;
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- Fencing tokens: every call draws a new, larger token (nothing is cached: docs/editions.md); the
-- transaction that drew one has a transaction id and WAL of its own, so its COMMIT waits for the
-- flush.
SELECT month_lock_try(2024, 7);
BEGIN;
SELECT month_lock_token(2024, 7) AS a \gset
SELECT month_lock_token(2024, 7) > :a AS next_call_larger;
COMMIT;
BEGIN;
SELECT pg_current_xact_id_if_assigned() IS NULL AS no_xid_before;
SELECT month_lock_token(2024, 7) > :a AS new_transaction_larger;
SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS token_transaction_has_xid;
COMMIT;
-- A release ends the hold: the next hold's token is larger, also within one transaction.
BEGIN;
SELECT month_lock_token(2024, 7) AS b \gset
SELECT month_lock_release(2024, 7), month_lock_try(2024, 7), month_lock_token(2024, 7) > :b AS next_hold_larger;
COMMIT;
-- ROLLBACK TO SAVEPOINT rewinds settings but not the session lock: after a release and a new
-- hold inside the rolled-back savepoint the hold gets a new, larger token, never the earlier
-- hold's (with a read-only stretch and another holder in between: specs/token_rollback.spec).
BEGIN;
SELECT month_lock_token(2024, 7) AS c \gset
SAVEPOINT s;
SELECT month_lock_release(2024, 7) AS released, month_lock_try(2024, 7) AS taken_again;
ROLLBACK TO s;
SELECT month_lock_token(2024, 7) > :c AS new_after_rollback_to_savepoint;
COMMIT;
-- Read-only: no token can be drawn (nextval is refused: 25006).
BEGIN READ ONLY;
SELECT pg_temp.outcome('SELECT month_lock_token(2024, 7)') AS read_only;
ROLLBACK;
SELECT month_lock_token(2024, 7) > :c AS larger_after_read_only;
-- The setting and the session hint of earlier versions are not read at all.
SET month_lock_sql.xtok = '1|,1835821824.2.202407=9000000000000000,';
SET month_lock_sql.held = '1|,1835821824.2.202408x,|,1835821824.2.202407=9000000000000000,';
SELECT month_lock_token(2024, 7) < 9000000000000000 AS hint_ignored, month_lock_try(2024, 8) AS taken,
       month_lock_held(2024, 8) AS held, month_lock_release(2024, 8) AS released;
RESET month_lock_sql.held;
RESET month_lock_sql.xtok;
-- Transaction scope: a new token on every call, and larger in the next transaction's hold.
BEGIN;
SELECT month_lock_try_xact(2024, 8), month_lock_token(2024, 8) AS x \gset
SELECT month_lock_token(2024, 8) > :x AS next_call_larger;
COMMIT;
BEGIN;
SELECT month_lock_try_xact(2024, 8), month_lock_token(2024, 8) > :x AS next_transaction_larger;
COMMIT;
SELECT month_lock_release(2024, 7);
SELECT pg_temp.outcome('SELECT month_lock_token(2024, 7)') AS not_held;
SELECT month_lock_try_shared(2024, 7);
SELECT pg_temp.outcome('SELECT month_lock_token(2024, 7)') AS held_shared;
SELECT month_lock_release_shared(2024, 7);

-- Claim any and all or nothing in one session (other sessions: specs/sets.spec).
SELECT month_lock_try(2024, 8);
SELECT month_lock_claim(ARRAY['2024-08-01', '2024-09-15', '2024-10-01']::date[]) AS claimed_skips_held;
SELECT month_lock_claim(ARRAY[]::date[]) AS claimed_nothing;
SELECT month_lock_all(ARRAY['2024-10-01', '2024-08-01', '2024-10-20']::date[], 100) AS all_taken;
SELECT month, mode FROM month_locks WHERE pid = pg_backend_pid() ORDER BY month;
SELECT month_lock_release(ARRAY['2024-08-01', '2024-09-01', '2024-10-01', '2024-11-01']::date[]) AS released;
SELECT q, pg_temp.outcome(q) FROM (VALUES
  ('SELECT month_lock_claim(NULL)'), ('SELECT month_lock_claim(ARRAY[NULL]::date[])'),
  ('SELECT month_lock_all(ARRAY[''0001-01-01 BC'']::date[])'), ('SELECT month_lock_all(ARRAY[''infinity'']::date[])'),
  ('SELECT month_lock_all(ARRAY[''2024-01-01'']::date[], -1)')) AS t(q);

-- Nothing planted in the caller's search_path is bound: look-alikes of every built-in the
-- edition calls, in a schema searched before pg_catalog, raise if ever called.
CREATE SCHEMA planted;
CREATE FUNCTION planted.pg_try_advisory_lock(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN RAISE 'planted pg_try_advisory_lock called'; END$$;
CREATE FUNCTION planted.pg_advisory_unlock(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN RAISE 'planted pg_advisory_unlock called'; END$$;
CREATE FUNCTION planted.pg_lock_status() RETURNS SETOF record LANGUAGE plpgsql AS $$BEGIN RAISE 'planted pg_lock_status called'; END$$;
CREATE FUNCTION planted.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $$BEGIN RAISE 'planted current_setting called'; END$$;
CREATE FUNCTION planted.pg_backend_pid() RETURNS integer LANGUAGE plpgsql AS $$BEGIN RAISE 'planted pg_backend_pid called'; END$$;
CREATE FUNCTION planted.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS $$BEGIN RAISE 'planted nextval called'; END$$;
CREATE FUNCTION planted.eq(integer, integer) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN RAISE 'planted = called'; END$$;
CREATE OPERATOR planted.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = planted.eq);
CREATE FUNCTION planted.ge(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN RAISE 'planted >= called'; END$$;
CREATE OPERATOR planted.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = planted.ge);
SET search_path = planted, pg_catalog, public;
SELECT public.month_lock_try(2024, 3) AS try, public.month_lock_try(2024, 3, 10) AS try_again,
       public.month_lock_held(2024, 3) AS held, public.month_is_locked(2024, 3) AS locked,
       public.month_lock_token(2024, 3) > 0 AS token, public.month_lock_release(2024, 3) AS released;
SELECT public.month_lock_claim(ARRAY['2024-03-01']::pg_catalog.date[]) AS claimed,
       public.month_lock_all(ARRAY['2024-04-01']::pg_catalog.date[], 10) AS all_taken,
       (SELECT pg_catalog.count(*) FROM public.month_locks) AS view_rows,
       public.month_lock_release_all() AS released_all;
RESET search_path;
DROP SCHEMA planted CASCADE;

-- DISCARD SEQUENCES changes nothing.
SELECT month_lock_try(2024, 1), month_lock_release(2024, 1);
DISCARD SEQUENCES;
SELECT month_lock_try(2024, 1) AS after_discard_sequences;
BEGIN;
SELECT month_lock_token(2024, 1) AS f \gset
DISCARD SEQUENCES;
SELECT month_lock_token(2024, 1) > :f AS new_after_discard_sequences;
COMMIT;
SELECT month_lock_release(2024, 1);
DISCARD ALL;
SELECT month_lock_try(2024, 1) AS after_discard_all, month_lock_release(2024, 1);
