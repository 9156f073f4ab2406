-- month_lock: the single-session API (PostgreSQL's regression-test convention: this file runs
-- through pg_regress, its output must equal expected/api.out).

-- Free month: the no-wait and the waiting forms all succeed at once.
SELECT month_lock_try(2024, 3) AS try_free;
SELECT month_lock_held(2024, 3) AS held, month_is_locked(2024, 3) AS locked;

-- Re-entry does not stack: true again, and one release frees it.
SELECT month_lock_try(2024, 3, 1000) AS try_again;
SELECT month_lock_release(2024, 3) AS first_release, month_lock_release(2024, 3) AS second_release;
SELECT month_lock_held(2024, 3) AS held_after_release, month_is_locked(2024, 3) AS locked_after_release;

-- The waiting forms return at once on a free month; release_all counts (month, mode) pairs.
SELECT month_lock(2024, 4), month_lock_shared(2024, 5);
SELECT month_lock_try_shared(2024, 5) AS shared_again;
-- One session may hold a month in both modes; each mode is released separately.
SELECT month_lock_try(2024, 5) AS exclusive_too;
SELECT month_lock_release_shared(2024, 5) AS shared_released, month_lock_held(2024, 5) AS still_held;
SELECT month_lock_release_all() AS released_pairs;
SELECT month_lock_release_all() AS nothing_left;

-- Transaction scope: held until the transaction ends, untouched by release and release_all.
BEGIN;
SELECT month_lock_try_xact(2024, 6) AS xact, month_lock_try_xact_shared(2024, 7) AS xact_shared;
SELECT month_lock_release(2024, 6) AS release_xact, month_lock_release_all() AS release_all_xact;
SELECT month_lock_held(2024, 6) AS held_in_xact, month_lock_held(2024, 7) AS shared_held_in_xact;
COMMIT;
SELECT month_lock_held(2024, 6) AS held_after_commit, month_lock_held(2024, 7) AS shared_held_after_commit;
BEGIN;
SELECT month_lock_try_xact(2024, 6) AS xact;
ROLLBACK;
SELECT month_lock_held(2024, 6) AS held_after_rollback;
-- Outside BEGIN ... COMMIT the transaction is the statement itself.
SELECT month_lock_try_xact(2024, 6) AS statement_xact;
SELECT month_lock_held(2024, 6) AS held_after_statement;

-- Session locks survive ROLLBACK of the transaction that took them.
BEGIN;
SELECT month_lock_try(2024, 8) AS session_in_xact;
ROLLBACK;
SELECT month_lock_held(2024, 8) AS session_survives_rollback;
SELECT month_lock_release(2024, 8);

-- Quiet release: no WARNING for a month this session does not hold (pg_advisory_unlock warns).
SELECT month_lock_release(2024, 9) AS quiet, month_lock_release_shared(2024, 9) AS quiet_shared;
-- Each release answers for its own mode: held shared is not held exclusive.
SELECT month_lock_try_shared(2024, 10) AS shared;
SELECT month_lock_release(2024, 10) AS exclusive_release_of_shared,
       month_lock_release_shared(2024, 10) AS shared_release,
       month_lock_release_shared(2024, 10) AS already_released;

-- The key layout in pg_locks: classid = namespace, objid = yyyymm, objsubid = 2; exclusive is
-- ExclusiveLock and shared ShareLock (the modes of pg_advisory_lock and pg_advisory_lock_shared).
SELECT month_lock_try(2024, 3), month_lock_try_shared(2024, 4);
SELECT classid, objid, objsubid, mode, granted
  FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY objid;
SELECT month_lock_release_shared(2024, 4);
-- The raw two-int unlock releases the month: it is the same lock.
SELECT pg_advisory_unlock(1835821824, 202403) AS raw_unlock, month_lock_held(2024, 3) AS held_after_raw_unlock;
SELECT month_lock_try(2024, 3);
-- The same lock as the two-int advisory form: a raw call stacks a reference of its own on it.
-- month_lock_release drops month_lock's one reference; the raw one is the raw caller's.
SELECT pg_try_advisory_lock(1835821824, 202403) AS raw_same_lock;
SELECT month_lock_release(2024, 3), month_lock_held(2024, 3) AS held_by_the_raw_reference;
SELECT month_lock_release_all() AS release_all_leaves_it;
SELECT pg_advisory_unlock(1835821824, 202403) AS raw_unlock, month_lock_held(2024, 3) AS held_after_raw_unlock;
-- Other advisory locks are not month locks.
SELECT pg_advisory_lock(202403);
SELECT month_is_locked(2024, 3) AS bigint_key_is_not_a_month_lock, month_lock_release_all();
SELECT pg_advisory_unlock(202403);

-- Extreme months.
SELECT month_lock_try(1, 1) AS first_month, month_lock_try(9999, 12) AS last_month;
SELECT year, month, month_start, mode FROM month_locks WHERE pid = pg_backend_pid();
SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY objid;
SELECT month_lock_release_all();
