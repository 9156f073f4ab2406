-- month_lock: the raising forms of 0.2.0 in one session. month_lock(y, m, t),
-- month_lock_shared(y, m, t), month_lock_xact(y, m [, t]) and month_lock_xact_shared(y, m [, t])
-- return void and only with the month held; on a free month they return at once. (55P03 at the
-- timeout needs a second session that holds the month: specs/raising_timeout.spec.)

-- Session scope with a timeout: held afterwards, until released.
SELECT month_lock(2024, 3, 100), month_lock_shared(2024, 4, 100);
SELECT month_lock_held(2024, 3) AS exclusive_held, month_lock_held(2024, 4) AS shared_held;
SELECT mode FROM month_locks WHERE pid = pg_backend_pid() ORDER BY month;
-- Re-entry returns at once (also with timeout_ms = 0) and does not stack: one release frees it.
SELECT month_lock(2024, 3, 0), month_lock(2024, 3);
SELECT month_lock_release(2024, 3) AS first_release, month_lock_release(2024, 3) AS second_release;
SELECT month_lock_release_shared(2024, 4) AS shared_released;

-- Transaction scope, with and without a timeout: held until COMMIT, untouched by release_all.
BEGIN;
SELECT month_lock_xact(2024, 5), month_lock_xact(2024, 6, 100),
       month_lock_xact_shared(2024, 7), month_lock_xact_shared(2024, 8, 100);
SELECT month, mode FROM month_locks WHERE pid = pg_backend_pid() ORDER BY month;
-- Re-entry in transaction scope is simply true.
SELECT month_lock_try_xact(2024, 5, 100) AS reentry_xact, month_lock_xact(2024, 6);
SELECT month_lock_release(2024, 5) AS release_xact, month_lock_release_all() AS release_all_xact;
SELECT month_lock_held(2024, 5) AS still_held_in_xact;
COMMIT;
SELECT count(*) AS held_after_commit FROM month_locks WHERE pid = pg_backend_pid();
-- ... and until ROLLBACK.
BEGIN;
SELECT month_lock_xact(2024, 5, 100);
ROLLBACK;
SELECT month_lock_held(2024, 5) AS held_after_rollback;
-- Outside BEGIN ... COMMIT the transaction is the statement itself.
SELECT month_lock_xact(2024, 5), month_lock_held(2024, 5) AS held_within_statement;
SELECT month_lock_held(2024, 5) AS held_after_statement;

-- Bad arguments raise before anything is taken, as for the other forms.
SELECT month_lock(2024, 3, -1);
SELECT month_lock_xact(2024, 13, 100);
SELECT month_lock_xact_shared(NULL, 1);
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
