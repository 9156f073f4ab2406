-- month_lock: a session lock never outlives the failed client request that took it. If the
-- query string in which a session-scope month lock was granted ends in an ERROR, the grant is
-- undone as the error is raised, also inside a transaction block or under a savepoint. Locks
-- taken by requests that completed keep ordinary session semantics.

-- A later error in the same statement.
SELECT month_lock_try(2024, 3), 1/0;
SELECT month_lock_held(2024, 3) AS held_after_failed_statement;
SELECT month_lock(2024, 3), 1/0;
SELECT month_lock_held(2024, 3) AS held_after_failed_raising_form;

-- A later statement of the same query string (psql sends "... \; ..." as one query string;
-- only the last result is shown, as in psql before PostgreSQL 15).
\set SHOW_ALL_RESULTS off
SELECT month_lock_try(2024, 3) \; SELECT 1/0;
\set SHOW_ALL_RESULTS on
SELECT month_lock_held(2024, 3) AS held_after_failed_query_string;

-- Inside a transaction block under a savepoint: the month from the completed request stays,
-- the one from the failed request is gone, and ROLLBACK TO does not drop session locks.
BEGIN;
SELECT month_lock_try(2024, 4);
SAVEPOINT s;
SELECT month_lock_try(2024, 5), 1/0;
ROLLBACK TO s;
SELECT month_lock_held(2024, 4) AS completed_request_held, month_lock_held(2024, 5) AS failed_request_held;
SAVEPOINT t;
SELECT month_lock_try(2024, 6);
ROLLBACK TO t;
SELECT month_lock_held(2024, 6) AS held_after_rollback_to;
ROLLBACK;
SELECT month_lock_held(2024, 4) AS held_after_rollback, month_lock_held(2024, 6) AS taken_under_savepoint;
SELECT month_lock_release_all() AS released;

-- A failed request drops only what it took: a month held from before stays.
SELECT month_lock_try(2024, 7);
SELECT month_lock_try(2024, 7), month_lock_try(2024, 8), 1/0;
SELECT month_lock_held(2024, 7) AS held_from_before, month_lock_held(2024, 8) AS taken_by_failed_request;

-- A PL/pgSQL EXCEPTION block that catches an error: the request completes, so the months it
-- took are kept, also the one taken inside the block that failed.
DO $$
BEGIN
  PERFORM month_lock_try(2024, 10);
  BEGIN
    PERFORM month_lock_try(2024, 11);
    PERFORM 1/0;
  EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught %', SQLERRM;
  END;
END $$;
SELECT month_lock_held(2024, 10) AS taken_before_block, month_lock_held(2024, 11) AS taken_in_failed_block;
-- The same DO block without the EXCEPTION clause fails, and takes nothing.
DO $$
BEGIN
  PERFORM month_lock_try(2024, 12);
  PERFORM 1/0;
END $$;
SELECT month_lock_held(2024, 12) AS taken_by_failed_do;
SELECT month_lock_release_all() AS released;
