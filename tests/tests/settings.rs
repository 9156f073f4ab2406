//! Settings with values month_lock cannot use fail closed: every kind of call raises 22023 naming
//! the setting and the value, takes nothing, and works again once a usable value is set
//! (docs/sql.md, "Keys and settings": "Settings fail closed").

mod common;

use common::*;
use month_lock_tests::backend_pid;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const EVERY_KIND_OF_CALL: [&str; 7] = [
    "SELECT month_lock_try(2027, 3)",
    "SELECT month_lock_held(2027, 3)",
    "SELECT month_is_locked(2027, 3)",
    "SELECT month_lock_release(2027, 3)",
    "SELECT month_lock_release_all()",
    "BEGIN; SELECT month_lock_try_xact(2027, 3); COMMIT",
    "SELECT count(*) FROM month_locks",
];

/// Every kind of call fails with 22023 naming the setting and the value; collects all
/// deviations before failing, so one run shows the whole picture.
async fn assert_fails_closed(c: &Client, observer: &Client, setting: &str, value: &str, how: &str) {
    let pid = backend_pid(c).await;
    let mut wrong = Vec::new();
    for sql in EVERY_KIND_OF_CALL {
        let result = c.batch_execute(sql).await;
        exec(c, "ROLLBACK").await;
        match result {
            Ok(()) => wrong.push(format!("{sql}: succeeded")),
            Err(e) => {
                let (code, message) = match e.as_db_error() {
                    Some(d) => (d.code().clone(), d.message().to_string()),
                    None => panic!("{how}: {sql}: {e}"),
                };
                if code != SqlState::INVALID_PARAMETER_VALUE
                    || !message.contains(setting)
                    || !message.contains(value)
                {
                    wrong.push(format!("{sql}: {} {message}", code.code()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{how}: expected 22023 naming {setting} and '{value}' from every call:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        advisory_count(observer, pid).await,
        0,
        "{how}: nothing taken"
    );
}

#[tokio::test]
async fn settings_with_unusable_values_fail_closed() {
    let db = db("fail_closed").await;
    let observer = db.connect().await;

    // Placeholders set before the library is loaded in the session (first statement).
    for (setting, bad, good) in [
        ("month_lock.namespace", "seven", "7"),
        ("month_lock.legacy_keys", "maybe", "off"),
        ("month_lock.session_locks", "sometimes", "on"),
    ] {
        let c = db.connect().await;
        exec(&c, &format!("SET {setting} = '{bad}'")).await;
        assert_fails_closed(
            &c,
            &observer,
            setting,
            bad,
            &format!("SET {setting} before load"),
        )
        .await;
        exec(&c, &format!("SET {setting} = {good}")).await;
        assert!(
            q_bool(&c, "SELECT month_lock_try(2027, 3)").await,
            "{setting} = {good} works"
        );
        if setting == "month_lock.namespace" {
            assert_eq!(
                advisory_locks_of(&observer, backend_pid(&c).await).await,
                ["7/202703/2 ExclusiveLock granted"]
            );
        }
        assert!(q_bool(&c, "SELECT month_lock_release(2027, 3)").await);
    }

    // ALTER ROLE ... SET for an ordinary role, from a session that has not loaded the library
    // (with it loaded the ALTER itself would be refused); a new connection of that role.
    let role_db = db.with_new_role("r").await;
    let fresh_admin = db.connect().await;
    exec(
        &fresh_admin,
        &format!(
            "ALTER ROLE \"{}\" SET month_lock.namespace = 'seven'",
            role_db.user()
        ),
    )
    .await;
    let c = role_db.connect().await;
    assert_fails_closed(
        &c,
        &observer,
        "month_lock.namespace",
        "seven",
        "ALTER ROLE SET",
    )
    .await;
    exec(&c, "SET month_lock.namespace = 8").await;
    assert!(q_bool(&c, "SELECT month_lock_try(2027, 3)").await);
    assert_eq!(
        advisory_locks_of(&observer, backend_pid(&c).await).await,
        ["8/202703/2 ExclusiveLock granted"]
    );

    // Once loaded, PostgreSQL itself refuses a bad value and an unknown month_lock.* name.
    let loaded = db.connect().await;
    assert!(!q_bool(&loaded, "SELECT month_lock_held(2027, 3)").await);
    let (code, message) = error_of(&loaded, "SET month_lock.namespace = 'seven'").await;
    assert_eq!(code, SqlState::INVALID_PARAMETER_VALUE, "{message}");
    assert!(message.contains("month_lock.namespace"), "{message}");
    let version: i32 = one(&loaded, "SELECT current_setting('server_version_num')::int").await;
    if version >= 150000 {
        let (code, message) = error_of(&loaded, "SET month_lock.namspace = 1").await;
        assert_eq!(code, SqlState::INVALID_NAME, "{message}");
        assert!(message.contains("month_lock.namspace"), "{message}");
    } else {
        // PostgreSQL 14 has no reserved prefixes: it only warned when the library was loaded.
        exec(&loaded, "SET month_lock.namspace = 1").await;
    }
    assert!(
        q_bool(&loaded, "SELECT month_lock_try(2027, 4)").await,
        "session still usable"
    );
}
