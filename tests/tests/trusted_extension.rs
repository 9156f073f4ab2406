//! CREATE EXTENSION month_lock by a role without superuser follows the control file's trusted flag:
//! refused with 42501 and nothing created while it is false (docs/install.md, "Why a superuser").

mod common;

use common::*;
use month_lock_tests::server;
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn create_extension_as_non_superuser_follows_the_trusted_flag() {
    let bare = server().await.bare_db("create_ext_role").await;
    let role = bare.with_new_role("creator").await;
    let admin = bare.connect().await;
    exec(
        &admin,
        &format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            bare.name,
            role.user()
        ),
    )
    .await;
    let trusted = q_bool(
        &admin,
        "SELECT v.trusted FROM pg_available_extension_versions v JOIN pg_available_extensions e \
           ON e.name = v.name AND e.default_version = v.version WHERE v.name = 'month_lock'",
    )
    .await;
    let c = role.connect().await;
    let result = c.batch_execute("CREATE EXTENSION month_lock").await;
    println!(
        "month_lock trusted = {trusted}; CREATE EXTENSION as a non-superuser: {:?}",
        result.as_ref().map_err(describe)
    );
    if trusted {
        result.unwrap_or_else(|e| panic!("trusted, yet: {}", describe(&e)));
        assert!(q_bool(&c, "SELECT month_lock_try(2041, 5)").await);
    } else {
        let e = result.expect_err("superuser = true, trusted = false");
        assert_eq!(
            code(&e),
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "{}",
            describe(&e)
        );
        assert_eq!(
            q_i64(
                &admin,
                "SELECT count(*) FROM pg_extension WHERE extname = 'month_lock'"
            )
            .await,
            0
        );
    }
}
