//! Single-session semantics, run inside one backend by `cargo pgrx test` (each test in a
//! transaction that is rolled back). Contention needs several connections: see `tests/`.
//! What plain SQL can show (argument errors, release results, key layout, re-entry, settings,
//! the view, the catalog) is a pg_regress test in tests/regress/sql; these are what remains.
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
        Spi::get_one::<String>(sql)
            .expect(sql)
            .expect("NULL result")
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
    fn raw_stacked_references_are_released_by_the_raw_functions() {
        Spi::run("SELECT pg_advisory_lock(1835821824, 200302)").unwrap();
        Spi::run("SELECT pg_advisory_lock(1835821824, 200302)").unwrap();
        assert!(
            bool_of("SELECT month_lock_try(2003, 2)"),
            "held already: true, no third reference"
        );
        assert!(
            bool_of("SELECT month_lock_release(2003, 2)"),
            "drops month_lock's reference"
        );
        assert!(
            bool_of("SELECT month_lock_held(2003, 2)"),
            "the raw calls stacked another one"
        );
        assert_eq!(
            i64_of("SELECT month_lock_release_all()::bigint"),
            0,
            "raw references are not month_lock's"
        );
        assert!(
            bool_of("SELECT pg_advisory_unlock(1835821824, 200302)"),
            "the documented path"
        );
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
        assert!(bool_of(
            "SELECT month_lock_try(2001, 5) AND month_lock_try_shared(2001, 5)"
        ));
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
    fn namespace_setting_moves_the_key_space() {
        Spi::run("SET LOCAL month_lock.namespace = 42").unwrap();
        assert!(bool_of("SELECT month_lock_try(2001, 8)"));
        assert_eq!(my_advisory_locks(), "42/200108/2/ExclusiveLock");
        assert_eq!(i64_of("SELECT count(*) FROM month_locks"), 1);
        Spi::run("SET LOCAL month_lock.namespace = -1").unwrap();
        assert!(
            !bool_of("SELECT month_lock_held(2001, 8)"),
            "other key space"
        );
        assert_eq!(i64_of("SELECT count(*) FROM month_locks"), 0);
        assert!(bool_of("SELECT month_lock_try(2001, 8)"));
        assert_eq!(
            i64_of("SELECT count(*) FROM month_locks"),
            1,
            "negative namespace works"
        );
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
        assert_eq!(
            i64_of("SELECT count(*) FROM month_locks WHERE year = 2001 AND month = 9"),
            1
        );
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
    fn transaction_locks_are_not_released_by_session_release() {
        assert!(bool_of("SELECT month_lock_try_xact(2002, 1)"));
        assert!(bool_of("SELECT month_lock_try_xact(2002, 1)"));
        assert!(bool_of("SELECT month_lock_held(2002, 1)"));
        assert!(!bool_of("SELECT month_lock_release(2002, 1)"));
        assert!(bool_of("SELECT month_lock_held(2002, 1)"));
        // A session lock on top of it is its own reference.
        assert!(bool_of("SELECT month_lock_try(2002, 1)"));
        assert!(bool_of("SELECT month_lock_release(2002, 1)"));
        assert!(
            bool_of("SELECT month_lock_held(2002, 1)"),
            "the transaction lock remains"
        );
        assert!(bool_of("SELECT month_lock_try_xact_shared(2002, 2)"));
        assert!(!bool_of("SELECT month_lock_release_shared(2002, 2)"));
    }

    #[pg_test]
    fn waiting_forms_on_a_free_month_return_at_once() {
        Spi::run("SET LOCAL lock_timeout = '7s'").unwrap();
        Spi::run("SELECT month_lock(2002, 4)").unwrap();
        Spi::run("SELECT month_lock_shared(2002, 5)").unwrap();
        assert!(bool_of("SELECT month_lock_try(2002, 6, 1000)"));
        assert!(bool_of("SELECT month_lock_try_xact(2002, 7, 1000)"));
        assert_eq!(text_of("SHOW lock_timeout"), "7s");
        assert!(bool_of(
            "SELECT month_is_locked(2002, 4) AND month_is_locked(2002, 5)"
        ));
        assert!(!bool_of("SELECT month_is_locked(2002, 8)"));
        assert_eq!(i64_of("SELECT month_lock_release_all()::bigint"), 3);
    }

    /// The one-attempt and release entry points read the settings through one word that the
    /// settings' assign hooks keep current: a value set inside a subtransaction that rolls
    /// back is gone for them too, and a value set in it was in force while it lasted.
    #[pg_test]
    fn hot_functions_follow_settings_restored_by_a_rollback() {
        Spi::run(
            "DO $$ BEGIN \
               SET LOCAL month_lock.namespace = 42; \
               PERFORM month_lock_try_xact(2031, 1); \
               IF NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' \
                   AND pid = pg_backend_pid() AND classid = 42 AND objid = 203101) THEN \
                 RAISE 'not taken in namespace 42'; \
               END IF; \
               PERFORM 1 / 0; \
             EXCEPTION WHEN division_by_zero THEN NULL; END $$",
        )
        .unwrap();
        assert_eq!(text_of("SHOW month_lock.namespace"), "1835821824");
        assert!(bool_of("SELECT month_lock_try(2031, 2)"));
        assert!(bool_of("SELECT month_lock_try_xact_shared(2031, 3)"));
        assert_eq!(
            my_advisory_locks(),
            "1835821824/203102/2/ExclusiveLock,1835821824/203103/2/ShareLock"
        );
        assert!(bool_of("SELECT month_lock_release(2031, 2)"));
        // 55000 while session_locks is off; allowed again once that is rolled back.
        Spi::run(
            "DO $$ BEGIN \
               SET LOCAL month_lock.session_locks = off; \
               PERFORM month_lock_try(2031, 4); \
               RAISE 'taken while session_locks is off'; \
             EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$",
        )
        .unwrap();
        assert!(bool_of("SELECT month_lock_try(2031, 4)"));
        assert!(bool_of("SELECT month_lock_release(2031, 4)"));
    }
}
