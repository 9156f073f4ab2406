//! Single-session semantics, run inside one backend by `cargo pgrx test` (each test in a
//! transaction that is rolled back). Contention needs several connections: see `tests/`.
//! Session locks outlive the rolled-back transaction, so every test that takes one ends with
//! `month_lock_release_all()`. Tests run in parallel backends of one database: each test uses
//! months no other test uses.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn bool_of(sql: &str) -> bool {
        Spi::get_one::<bool>(sql).expect(sql).expect("NULL result")
    }

    fn i64_of(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).expect(sql).expect("NULL result")
    }

    fn text_of(sql: &str) -> String {
        Spi::get_one::<String>(sql).expect(sql).expect("NULL result")
    }

    /// Our advisory locks as "classid/objid/objsubid/mode" lines, sorted.
    fn my_advisory_locks() -> String {
        text_of(
            "SELECT coalesce(string_agg(classid || '/' || objid || '/' || objsubid || '/' || mode, ',' \
               ORDER BY classid, objid, objsubid, mode), '') \
               FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        )
    }

    #[pg_test]
    fn reentry_does_not_stack() {
        assert!(bool_of("SELECT month_lock_try(2001, 1)"));
        assert!(bool_of("SELECT month_lock_try(2001, 1)"));
        assert!(bool_of("SELECT month_lock_try(2001, 1, 100)"));
        Spi::run("SELECT month_lock(2001, 1)").unwrap();
        // One release frees it, however often it was taken.
        assert!(bool_of("SELECT month_lock_release(2001, 1)"));
        assert!(!bool_of("SELECT month_lock_held(2001, 1)"));
        assert!(!bool_of("SELECT month_lock_release(2001, 1)"));
        assert_eq!(my_advisory_locks(), "");
    }

    #[pg_test]
    fn release_results() {
        assert!(!bool_of("SELECT month_lock_release(2001, 2)"), "never taken");
        assert!(!bool_of("SELECT month_lock_release_shared(2001, 2)"), "never taken");
        assert!(bool_of("SELECT month_lock_try_shared(2001, 2)"));
        assert!(!bool_of("SELECT month_lock_release(2001, 2)"), "held shared, not exclusive");
        assert!(bool_of("SELECT month_lock_release_shared(2001, 2)"));
        assert!(!bool_of("SELECT month_lock_release_shared(2001, 2)"), "already released");
    }

    #[pg_test]
    fn release_leaves_message_levels_as_they_were() {
        Spi::run("SET LOCAL client_min_messages = debug1").unwrap();
        Spi::run("SET LOCAL log_min_messages = info").unwrap();
        assert!(!bool_of("SELECT month_lock_release(2003, 1)"));
        assert!(bool_of("SELECT month_lock_try(2003, 1)"));
        assert!(bool_of("SELECT month_lock_release(2003, 1)"));
        assert_eq!(text_of("SHOW client_min_messages"), "debug1");
        assert_eq!(text_of("SHOW log_min_messages"), "info");
    }

    #[pg_test]
    fn release_drops_references_stacked_by_raw_calls() {
        Spi::run("SELECT pg_advisory_lock(1835821824, 200302)").unwrap();
        Spi::run("SELECT pg_advisory_lock(1835821824, 200302)").unwrap();
        assert!(bool_of("SELECT month_lock_try(2003, 2)"), "held already: true, no third reference");
        assert!(bool_of("SELECT month_lock_release(2003, 2)"));
        assert!(!bool_of("SELECT month_lock_held(2003, 2)"));
        assert_eq!(my_advisory_locks(), "");
    }

    #[pg_test]
    fn release_all_spares_other_advisory_locks() {
        Spi::run("SELECT pg_advisory_lock(1)").unwrap();
        Spi::run("SELECT pg_advisory_lock(1835821824, 5)").unwrap(); // our namespace, not a month
        Spi::run("SELECT pg_advisory_lock(7, 200103)").unwrap(); // another namespace
        assert!(bool_of("SELECT month_lock_try(2001, 3)"));
        assert!(bool_of("SELECT month_lock_try_shared(2001, 4)"));
        assert!(bool_of("SELECT month_lock_try(2001, 5) AND month_lock_try_shared(2001, 5)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 4);
        assert_eq!(
            my_advisory_locks(),
            "0/1/1/ExclusiveLock,7/200103/2/ExclusiveLock,1835821824/5/2/ExclusiveLock"
        );
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 0);
        Spi::run("SELECT pg_advisory_unlock_all()").unwrap();
    }

    #[pg_test]
    fn release_all_keeps_transaction_locks() {
        assert!(bool_of("SELECT month_lock_try_xact(2001, 6)"));
        assert!(bool_of("SELECT month_lock_try(2001, 7)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 1);
        assert!(bool_of("SELECT month_lock_held(2001, 6)"));
        assert!(!bool_of("SELECT month_lock_held(2001, 7)"));
    }

    #[pg_test]
    fn key_layout_is_namespace_and_yyyymm() {
        assert!(bool_of("SELECT month_lock_try(2024, 3)"));
        assert!(bool_of("SELECT month_lock_try_shared(2024, 4)"));
        assert_eq!(
            my_advisory_locks(),
            "1835821824/202403/2/ExclusiveLock,1835821824/202404/2/ShareLock"
        );
        // The same lock as the raw two-int form.
        assert!(bool_of("SELECT pg_advisory_unlock(1835821824, 202403)"));
        assert!(!bool_of("SELECT month_lock_held(2024, 3)"));
        Spi::run("SELECT month_lock_release_all()").unwrap();
    }

    #[pg_test]
    fn extreme_months_have_keys() {
        assert!(bool_of("SELECT month_lock_try(1, 1) AND month_lock_try(9999, 12)"));
        assert_eq!(
            my_advisory_locks(),
            "1835821824/101/2/ExclusiveLock,1835821824/999912/2/ExclusiveLock"
        );
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"), 2);
        assert_eq!(
            text_of("SELECT string_agg(month_start::text, ',' ORDER BY year) FROM month_locks WHERE pid = pg_backend_pid()"),
            "0001-01-01,9999-12-01"
        );
        Spi::run("SELECT month_lock_release_all()").unwrap();
    }

    #[pg_test]
    fn namespace_setting_moves_the_key_space() {
        Spi::run("SET LOCAL month_lock.namespace = 42").unwrap();
        assert!(bool_of("SELECT month_lock_try(2001, 8)"));
        assert_eq!(my_advisory_locks(), "42/200108/2/ExclusiveLock");
        assert_eq!(i64_of("SELECT count(*) FROM month_locks"), 1);
        Spi::run("SET LOCAL month_lock.namespace = -1").unwrap();
        assert!(!bool_of("SELECT month_lock_held(2001, 8)"), "other key space");
        assert_eq!(i64_of("SELECT count(*) FROM month_locks"), 0);
        assert!(bool_of("SELECT month_lock_try(2001, 8)"));
        assert_eq!(i64_of("SELECT count(*) FROM month_locks"), 1, "negative namespace works");
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 1);
        Spi::run("SET LOCAL month_lock.namespace = 42").unwrap();
        assert!(bool_of("SELECT month_lock_held(2001, 8)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 1);
        assert_eq!(my_advisory_locks(), "");
    }

    #[pg_test]
    fn legacy_keys_are_the_bigint_yyyymm() {
        Spi::run("SET LOCAL month_lock.legacy_keys = on").unwrap();
        assert!(bool_of("SELECT month_lock_try(2001, 9)"));
        assert_eq!(my_advisory_locks(), "0/200109/1/ExclusiveLock");
        assert!(bool_of("SELECT month_is_locked(2001, 9)"));
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE year = 2001 AND month = 9"), 1);
        // The original application's unlock releases it: it is the same lock.
        assert!(bool_of("SELECT pg_advisory_unlock(200109)"));
        assert!(!bool_of("SELECT month_is_locked(2001, 9)"));
        // And a raw lock is a month lock under legacy keys, but release_all leaves raw locks
        // to whoever took them (it releases only what month_lock took).
        Spi::run("SELECT pg_advisory_lock(200110)").unwrap();
        assert!(bool_of("SELECT month_lock_held(2001, 10)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 0);
        assert!(bool_of("SELECT pg_advisory_unlock(200110)"));
        assert_eq!(my_advisory_locks(), "");
    }

    #[pg_test]
    fn legacy_release_all_spares_bigint_locks_that_read_as_months() {
        Spi::run("SET LOCAL month_lock.legacy_keys = on").unwrap();
        Spi::run("SELECT pg_advisory_lock(4207)").unwrap(); // "0042-07" to a careless reader
        assert!(bool_of("SELECT month_lock_try(2002, 7)"));
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"), 1);
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 1);
        assert_eq!(my_advisory_locks(), "0/4207/1/ExclusiveLock");
        assert!(bool_of("SELECT pg_advisory_unlock(4207)"));
    }

    #[pg_test(error = "month_lock: argument \"year\" must be between 1000 and 9999 (month_lock.legacy_keys = on), got 999")]
    fn legacy_keys_are_six_digits() {
        Spi::run("SET LOCAL month_lock.legacy_keys = on").unwrap();
        Spi::run("SELECT month_lock_try(999, 1)").unwrap();
    }

    #[pg_test(error = "invalid value for parameter \"month_lock.namespace\": \"seven\"")]
    fn an_unusable_namespace_is_refused_once_loaded() {
        Spi::run("SET LOCAL month_lock.namespace = 'seven'").unwrap();
    }

    #[pg_test(error = "month_lock: session-scope month locks are disabled by month_lock.session_locks = off; use month_lock_try_xact or month_lock_xact inside a transaction")]
    fn session_locks_off_refuses_session_scope() {
        Spi::run("SET LOCAL month_lock.session_locks = off").unwrap();
        assert!(bool_of("SELECT month_lock_try_xact(2002, 8)"), "transaction scope still works");
        assert!(!bool_of("SELECT month_lock_release(2002, 8)"), "releases still work");
        Spi::run("SELECT month_lock_try(2002, 8)").unwrap();
    }

    #[pg_test]
    fn the_view_is_readable_by_every_role() {
        assert!(bool_of(
            "SELECT bool_or(a.grantee = 0 AND a.privilege_type = 'SELECT') \
               FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = 'month_locks'::regclass"
        ));
    }

    #[pg_test]
    fn view_shows_this_backend() {
        assert!(bool_of("SELECT month_lock_try(2001, 11)"));
        assert!(bool_of("SELECT month_lock_try_shared(2001, 12)"));
        assert_eq!(
            text_of(
                "SELECT string_agg(format('%s-%s %s %s %s %s', year, month, month_start, mode, granted, \
                    waiting_since IS NULL), ',' ORDER BY month) \
                 FROM month_locks WHERE pid = pg_backend_pid()"
            ),
            "2001-11 2001-11-01 exclusive t t,2001-12 2001-12-01 shared t t"
        );
        assert!(bool_of(
            "SELECT bool_and(usename = current_user AND backend_start IS NOT NULL) FROM month_locks WHERE pid = pg_backend_pid()"
        ));
        Spi::run("SELECT pg_advisory_lock(200111)").unwrap(); // bigint form: not a month lock here
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"), 2);
        Spi::run("SELECT pg_advisory_unlock_all()").unwrap();
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"), 0);
    }

    #[pg_test]
    fn transaction_locks_are_not_released_by_session_release() {
        assert!(bool_of("SELECT month_lock_try_xact(2002, 1)"));
        assert!(bool_of("SELECT month_lock_try_xact(2002, 1)"));
        assert!(bool_of("SELECT month_lock_held(2002, 1)"));
        assert!(!bool_of("SELECT month_lock_release(2002, 1)"));
        assert!(bool_of("SELECT month_lock_held(2002, 1)"));
        // A session lock on top of it is its own reference.
        assert!(bool_of("SELECT month_lock_try(2002, 1)"));
        assert!(bool_of("SELECT month_lock_release(2002, 1)"));
        assert!(bool_of("SELECT month_lock_held(2002, 1)"), "the transaction lock remains");
        assert!(bool_of("SELECT month_lock_try_xact_shared(2002, 2)"));
        assert!(!bool_of("SELECT month_lock_release_shared(2002, 2)"));
    }

    #[pg_test]
    fn one_session_may_hold_both_modes() {
        assert!(bool_of("SELECT month_lock_try(2002, 3)"));
        assert!(bool_of("SELECT month_lock_try_shared(2002, 3)"));
        assert_eq!(i64_of("SELECT count(*) FROM month_locks WHERE pid = pg_backend_pid()"), 2);
        assert!(bool_of("SELECT month_lock_release(2002, 3)"));
        assert!(bool_of("SELECT month_lock_held(2002, 3)"), "still shared");
        assert!(bool_of("SELECT month_lock_release_shared(2002, 3)"));
        assert!(!bool_of("SELECT month_is_locked(2002, 3)"));
    }

    #[pg_test]
    fn waiting_forms_on_a_free_month_return_at_once() {
        Spi::run("SET LOCAL lock_timeout = '7s'").unwrap();
        Spi::run("SELECT month_lock(2002, 4)").unwrap();
        Spi::run("SELECT month_lock_shared(2002, 5)").unwrap();
        assert!(bool_of("SELECT month_lock_try(2002, 6, 1000)"));
        assert!(bool_of("SELECT month_lock_try_xact(2002, 7, 1000)"));
        assert_eq!(text_of("SHOW lock_timeout"), "7s");
        assert!(bool_of("SELECT month_is_locked(2002, 4) AND month_is_locked(2002, 5)"));
        assert!(!bool_of("SELECT month_is_locked(2002, 8)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 3);
    }

    #[pg_test]
    fn functions_are_volatile_and_parallel_unsafe() {
        assert_eq!(
            i64_of(
                "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid \
                 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'month_lock' \
                 WHERE p.provolatile <> 'v' OR p.proparallel <> 'u'"
            ),
            0
        );
        assert_eq!(
            i64_of(
                "SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid \
                 JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'month_lock' \
                 WHERE p.pronamespace <> 'tests'::regnamespace \
                   AND obj_description(p.oid, 'pg_proc') IS NULL"
            ),
            0,
            "every function has a comment"
        );
        assert!(bool_of("SELECT obj_description('month_locks'::regclass, 'pg_class') IS NOT NULL"));
    }

    #[pg_test(error = "month_lock: argument \"year\" must be between 1 and 9999, got 0")]
    fn year_zero_is_rejected() {
        Spi::run("SELECT month_lock_try(0, 1)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"year\" must be between 1 and 9999, got 10000")]
    fn year_10000_is_rejected() {
        Spi::run("SELECT month_lock(10000, 1)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"month\" must be between 1 and 12, got 13")]
    fn month_13_is_rejected() {
        Spi::run("SELECT month_lock_release(2024, 13)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"month\" must be between 1 and 12, got 0")]
    fn month_0_is_rejected() {
        Spi::run("SELECT month_is_locked(2024, 0)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"timeout_ms\" must be at least 0, got -1")]
    fn negative_timeout_is_rejected() {
        Spi::run("SELECT month_lock_try_xact(2024, 1, -1)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"month\" must not be NULL")]
    fn null_month_is_rejected() {
        Spi::run("SELECT month_lock_held(2024, NULL)").unwrap();
    }

    #[pg_test(error = "month_lock: argument \"timeout_ms\" must not be NULL")]
    fn null_timeout_is_rejected() {
        Spi::run("SELECT month_lock_try_shared(2024, 1, NULL)").unwrap();
    }
}
