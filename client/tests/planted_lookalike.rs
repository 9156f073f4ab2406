//! A look-alike of the extension's functions, planted by an ordinary role in a schema earlier on
//! the clients' `search_path`, is never called (rustdoc of `MonthLock`, "Where the extension's
//! functions are"; client/README.md): two clients never both get a guard on one month, in any
//! form, and the questions of `MonthLockExt` tell the truth. Also against the SQL-only edition
//! (installed by the test kit's superuser; `MONTH_LOCK_TEST_EDITION=portable`).

use std::time::Duration;

use month_lock_client::{Error, MonthLock, MonthLockExt};
use month_lock_tests::server;
use tokio_postgres::Client;

mod common;
use common::months::{is_locked_elsewhere, ym};

/// Functions with the extension's names and signatures that take nothing and say they did.
const LOOKALIKES: &str = "
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.month_lock_held(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE FUNCTION evil.month_lock_try(integer, integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_try_shared(integer, integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock(integer, integer) RETURNS void LANGUAGE sql AS 'SELECT';
CREATE FUNCTION evil.month_lock_all(date[], integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_claim(date[]) RETURNS date LANGUAGE sql AS 'SELECT $1[1]';
CREATE FUNCTION evil.month_lock_try_xact(integer, integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_all_xact(date[], integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_claim_xact(date[]) RETURNS date LANGUAGE sql AS 'SELECT $1[1]';
CREATE FUNCTION evil.month_lock_release(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_release(date[]) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.month_lock_release_all() RETURNS integer LANGUAGE sql AS 'SELECT 0';
CREATE FUNCTION evil.month_is_locked(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT false';
";

/// Two connections of an ordinary role whose `search_path` puts the planted schema first, and a
/// superuser observer with the default one.
async fn planted(hint: &str) -> (Client, Client, Client) {
    let db = server().await.fresh_db(hint).await;
    let observer = db.connect().await;
    let mallory = db.with_new_role("mallory").await;
    observer
        .batch_execute(&format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{}\"",
            db.name,
            mallory.user()
        ))
        .await
        .unwrap();
    mallory
        .connect()
        .await
        .batch_execute(LOOKALIKES)
        .await
        .unwrap();
    let victim = db.with_new_role("victim").await;
    let (a, b) = (victim.connect().await, victim.connect().await);
    for c in [&a, &b] {
        c.batch_execute("SET search_path = evil, public")
            .await
            .unwrap();
        // The look-alike is what an unqualified call binds.
        let planted: bool = c
            .query_one("SELECT month_lock_try(1999, 1, 0)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(planted);
    }
    (a, b, observer)
}

#[tokio::test]
async fn a_planted_look_alike_never_gives_two_clients_one_month() {
    let (a, b, observer) = planted("lookalike_session").await;
    let (m, n) = (ym("2034-03"), ym("2034-04"));
    for round in 0..100 {
        // One month.
        let ga = MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .unwrap();
        assert!(is_locked_elsewhere(&observer, m).await, "round {round}");
        let gb = MonthLock::new(m).timeout(Duration::ZERO).acquire(&b).await;
        assert!(
            gb.as_ref().is_err_and(|e| e.is_timeout()),
            "round {round}: a second guard on {m}: {:?}",
            gb.map(|g| g.months().to_vec())
        );
        assert!(b.is_locked(m).await.unwrap() && a.held(m).await.unwrap());
        assert!(!b.held(m).await.unwrap());
        ga.release().await.unwrap();
        assert!(!is_locked_elsewhere(&observer, m).await, "round {round}");

        // A set, then any_of over it.
        let ga = MonthLock::set([m, n])
            .unwrap()
            .timeout(Duration::ZERO)
            .acquire(&a)
            .await
            .unwrap();
        let gb = MonthLock::set([m, n])
            .unwrap()
            .timeout(Duration::ZERO)
            .acquire(&b)
            .await;
        assert!(gb.is_err_and(|e| e.is_timeout()), "round {round}: set");
        let gb = MonthLock::any_of([m, n]).unwrap().acquire(&b).await;
        assert!(gb.is_err_and(|e| e.is_timeout()), "round {round}: any_of");
        assert!(is_locked_elsewhere(&observer, n).await, "round {round}");
        drop(ga);
        let ga = MonthLock::any_of([m, n])
            .unwrap()
            .acquire(&a)
            .await
            .unwrap();
        assert_eq!(ga.year_month(), m);
        assert_eq!(
            MonthLock::any_of([m, n])
                .unwrap()
                .acquire(&b)
                .await
                .unwrap()
                .year_month(),
            n,
            "round {round}: any_of took a held month"
        );
        ga.release().await.unwrap();
    }
    assert_eq!(a.release_all().await.unwrap(), 0);
    assert!(!is_locked_elsewhere(&observer, m).await);
    assert!(!is_locked_elsewhere(&observer, n).await);
}

#[tokio::test]
async fn a_planted_look_alike_never_gives_two_transactions_one_month() {
    let (mut a, b, observer) = planted("lookalike_xact").await;
    let m = ym("2034-05");
    for round in 0..100 {
        let tx = a.transaction().await.unwrap();
        MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire_xact(&tx)
            .await
            .unwrap();
        assert!(is_locked_elsewhere(&observer, m).await, "round {round}");
        let e = MonthLock::new(m)
            .timeout(Duration::ZERO)
            .acquire_xact(&b)
            .await;
        assert!(
            matches!(e, Err(Error::Timeout { .. })),
            "round {round}: {e:?}"
        );
        let e = MonthLock::any_of([m]).unwrap().acquire_xact(&b).await;
        assert!(
            matches!(e, Err(Error::NoneFree { .. })),
            "round {round}: {e:?}"
        );
        tx.rollback().await.unwrap();
    }
}
