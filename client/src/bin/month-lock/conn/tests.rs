//! Connection settings as libpq takes them: URL and `key=value` forms, `PG*` variables,
//! `.pgpass` matching, host and port lists.

use super::*;
use std::collections::HashMap;

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn url_settings_win_and_the_application_name_is_month_lock() {
    let none = env_of(&[]);
    let c = settings(
        Some("postgres://alice@db.example:6543/sales?application_name=x"),
        &none,
    )
    .unwrap()
    .config;
    assert_eq!(c.get_user(), Some("alice"));
    assert_eq!(c.get_dbname(), Some("sales"));
    assert_eq!(c.get_ports(), [6543]);
    assert_eq!(c.get_application_name(), Some("x"), "the user's name wins");
    let c = settings(Some("postgres://db.example/sales"), &none)
        .unwrap()
        .config;
    assert_eq!(c.get_application_name(), Some(APPLICATION_NAME));
    let env = env_of(&[("PGAPPNAME", "nightly")]);
    let c = settings(Some("host=h application_name=mine"), &env)
        .unwrap()
        .config;
    assert_eq!(
        c.get_application_name(),
        Some("mine"),
        "over PGAPPNAME, as libpq"
    );
    assert!(settings(Some("postgres://[bad"), &none).is_err());
}

#[test]
fn pg_variables_fill_what_the_url_leaves_out_and_pgappname_renames() {
    let env = env_of(&[
        ("PGPORT", "6000"),
        ("PGUSER", "bob"),
        ("PGDATABASE", "db1"),
        ("PGAPPNAME", "nightly"),
    ]);
    let c = settings(Some("host=db.example dbname=sales"), &env)
        .unwrap()
        .config;
    assert_eq!(
        (c.get_ports(), c.get_user(), c.get_dbname()),
        (&[6000][..], Some("bob"), Some("sales"))
    );
    assert_eq!(c.get_application_name(), Some("nightly"));
    let c = settings(None, &env_of(&[("PGHOST", "h1,h2")]))
        .unwrap()
        .config;
    assert_eq!(
        c.get_hosts(),
        [Host::Tcp("h1".into()), Host::Tcp("h2".into())]
    );
    assert_eq!(c.get_user(), None, "left to tokio-postgres (the OS user)");
    assert_eq!(
        c.get_ports(),
        [] as [u16; 0],
        "left to tokio-postgres (5432)"
    );
}

#[test]
fn a_url_without_a_port_takes_pgport() {
    let env = env_of(&[("PGPORT", "6000")]);
    let c = settings(Some("postgres://alice@db.example/sales"), &env)
        .unwrap()
        .config;
    assert_eq!(c.get_ports(), [6000]);
    let c = settings(Some("postgres://db.example:6543/sales"), &env)
        .unwrap()
        .config;
    assert_eq!(c.get_ports(), [6543], "a port in the URL wins");
    let env = env_of(&[("PGPORT", "6000,6001")]);
    let c = settings(Some("postgres://a,[::1]/sales"), &env)
        .unwrap()
        .config;
    assert_eq!(c.get_ports(), [6000, 6001]);
    let c = settings(Some("postgres://db.example/sales"), &env_of(&[]))
        .unwrap()
        .config;
    assert_eq!(c.get_ports(), [5432]);
}

#[test]
fn sslmode_and_root_cert_from_the_url_or_the_environment() {
    let env = env_of(&[("PGSSLMODE", "require"), ("PGSSLROOTCERT", "/env/root.crt")]);
    let s = settings(
        Some("postgres://h/db?sslmode=verify-full&sslrootcert=%2Fca%2Froot.pem&connect_timeout=5"),
        &env,
    )
    .unwrap();
    assert_eq!(s.tls.mode, SslMode::VerifyFull);
    assert_eq!(
        s.tls.root_cert,
        Some(RootCert {
            path: "/ca/root.pem".into(),
            explicit: true
        })
    );
    assert_eq!(
        s.config.get_connect_timeout(),
        Some(&Duration::from_secs(5))
    );
    let s = settings(Some("host=h sslmode=verify-ca dbname=x"), &env).unwrap();
    assert_eq!(s.tls.mode, SslMode::VerifyCa);
    assert_eq!(s.config.get_dbname(), Some("x"));
    let s = settings(Some("postgres://h/db"), &env).unwrap();
    assert_eq!(s.tls.mode, SslMode::Require);
    assert_eq!(s.tls.root_cert.unwrap().path, Path::new("/env/root.crt"));
    assert!(
        settings(None, &env_of(&[("PGHOST", "h"), ("PGSSLMODE", "bogus")]))
            .unwrap_err()
            .contains("bogus")
    );
}

#[test]
fn pgpass_lines_match_as_in_libpq() {
    let text = "# comment\n\
                other:5432:*:alice:nope\n\
                db.example:6543:sales:alice:pa\\:ss\\\\word\n\
                *:*:*:alice:fallback\n";
    assert_eq!(
        pgpass_lookup(text, ["db.example", "6543", "sales", "alice"]).as_deref(),
        Some("pa:ss\\word")
    );
    assert_eq!(
        pgpass_lookup(text, ["db.example", "5432", "sales", "alice"]).as_deref(),
        Some("fallback")
    );
    assert_eq!(
        pgpass_lookup(text, ["db.example", "5432", "sales", "bob"]),
        None
    );
    // An escaped star is a literal star, not a wildcard.
    let text = "h:5432:\\*:u:literal\nh:5432:*:u:wild\n";
    assert_eq!(
        pgpass_lookup(text, ["h", "5432", "db", "u"]).as_deref(),
        Some("wild")
    );
    assert_eq!(
        pgpass_lookup(text, ["h", "5432", "*", "u"]).as_deref(),
        Some("literal")
    );
    // A field "*x" is no wildcard either.
    assert_eq!(
        pgpass_lookup("*x:5432:d:u:p\n", ["h", "5432", "d", "u"]),
        None
    );
}

#[test]
fn pgpassfile_supplies_the_password_unless_it_is_readable_by_others() {
    let dir = std::env::temp_dir().join(format!("ml_pgpass_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pgpass");
    std::fs::write(&file, "127.0.0.1:5999:app:alice:s3cret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = env_of(&[("PGPASSFILE", file.to_str().unwrap())]);
    let c = first_attempt(settings(Some("postgres://alice@127.0.0.1:5999/app"), &env));
    assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
    let c = first_attempt(settings(
        Some("postgres://alice:given@127.0.0.1:5999/app"),
        &env,
    ));
    assert_eq!(
        c.get_password(),
        Some(&b"given"[..]),
        "a password in the URL wins"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = first_attempt(settings(Some("postgres://alice@127.0.0.1:5999/app"), &env));
    assert_eq!(c.get_password(), None, "ignored: readable by others");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pgpass_password_ends_at_an_unescaped_colon_and_keeps_a_trailing_backslash() {
    // libpq's passwordFromFile: the password field ends at the next unescaped ':'.
    assert_eq!(
        pgpass_lookup("h:5432:d:u:pass:extra\n", ["h", "5432", "d", "u"]).as_deref(),
        Some("pass")
    );
    assert_eq!(
        pgpass_lookup("h:5432:d:u:pw\\\n", ["h", "5432", "d", "u"]).as_deref(),
        Some("pw\\")
    );
    // Only a '#' in the first column starts a comment.
    assert_eq!(
        pgpass_lookup(" #h:5432:d:u:x\n", [" #h", "5432", "d", "u"]).as_deref(),
        Some("x")
    );
}

fn first_attempt(s: Result<Settings, String>) -> Config {
    s.unwrap().attempts().unwrap().remove(0)
}

/// A password file in a directory of its own, mode 0600.
fn pgpass_file(name: &str, content: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ml_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pgpass");
    std::fs::write(&file, content).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

#[test]
fn a_non_utf8_byte_spoils_only_its_own_line() {
    let file = pgpass_file(
        "pgpass_bin",
        b"127.0.0.1:5999:app:alice:\xff\xfe\nother:\xff:x:y:z\n*:*:app:alice:good\n",
    );
    let env = env_of(&[("PGPASSFILE", file.to_str().unwrap())]);
    let c = first_attempt(settings(Some("postgres://alice@127.0.0.1:5999/app"), &env));
    assert_eq!(c.get_password(), Some(&b"\xff\xfe"[..]), "bytes, as libpq");
    let c = first_attempt(settings(Some("postgres://alice@10.0.0.1:5999/app"), &env));
    assert_eq!(c.get_password(), Some(&b"good"[..]));
}

#[test]
fn pgpass_is_looked_up_per_host_and_sockets_match_as_in_libpq() {
    let file = pgpass_file(
        "pgpass_hosts",
        b"a:5432:d:u:pa\nb:5433:d:u:pb\nlocalhost:5432:d:u:local\n/srv/sock:5432:d:u:sock\n",
    );
    let env = env_of(&[("PGPASSFILE", file.to_str().unwrap())]);
    let s = settings(Some("host=a,b port=5432,5433 user=u dbname=d"), &env).unwrap();
    let pws: Vec<_> = s
        .attempts()
        .unwrap()
        .iter()
        .map(|c| c.get_password().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(pws, [Some(b"pa".to_vec()), Some(b"pb".to_vec())]);
    // The default socket directory matches `localhost`; another one only its own path.
    let c = first_attempt(settings(
        Some("host=/var/run/postgresql user=u dbname=d"),
        &env,
    ));
    assert_eq!(c.get_password(), Some(&b"local"[..]));
    let c = first_attempt(settings(Some("host=/srv/sock user=u dbname=d"), &env));
    assert_eq!(c.get_password(), Some(&b"sock"[..]));
    let c = first_attempt(settings(Some("host=/tmp user=u dbname=d"), &env));
    assert_eq!(c.get_password(), None);
    // No host named at all: `localhost`.
    let env = env_of(&[
        ("PGPASSFILE", file.to_str().unwrap()),
        ("PGUSER", "u"),
        ("PGDATABASE", "d"),
    ]);
    let c = first_attempt(settings(None, &env));
    assert_eq!(c.get_password(), Some(&b"local"[..]));
}

#[test]
fn a_mixed_socket_and_tcp_list_uses_tls_only_on_tcp() {
    let s = settings(
        Some("host=/var/run/postgresql,db.example sslmode=require dbname=x"),
        &env_of(&[]),
    )
    .unwrap();
    assert_eq!(s.tls.mode, SslMode::Require);
    let modes: Vec<_> = s
        .attempts()
        .unwrap()
        .iter()
        .map(|c| c.get_ssl_mode())
        .collect();
    assert_eq!(modes, [DriverSslMode::Disable, DriverSslMode::Require]);
    let hosts: Vec<_> = s
        .attempts()
        .unwrap()
        .iter()
        .map(|c| c.get_hosts().to_vec())
        .collect();
    assert_eq!(
        hosts,
        [
            vec![Host::Unix("/var/run/postgresql".into())],
            vec![Host::Tcp("db.example".into())]
        ]
    );
}

#[test]
fn unix_sockets_use_no_tls_whatever_sslmode_says() {
    let none = env_of(&[]);
    let s = settings(
        Some("host=/var/run/postgresql sslmode=require dbname=x"),
        &none,
    )
    .unwrap();
    assert_eq!(s.tls.mode, SslMode::Disable);
    let env = env_of(&[("PGHOST", "/tmp"), ("PGSSLMODE", "verify-full")]);
    assert_eq!(settings(None, &env).unwrap().tls.mode, SslMode::Disable);
    let env = env_of(&[("PGHOST", "db.example"), ("PGSSLMODE", "require")]);
    assert_eq!(settings(None, &env).unwrap().tls.mode, SslMode::Require);
}

#[test]
fn pgport_may_list_a_port_per_host() {
    let env = env_of(&[("PGHOST", "a,b"), ("PGPORT", "5432,5433")]);
    assert_eq!(
        settings(None, &env).unwrap().config.get_ports(),
        [5432, 5433]
    );
    let env = env_of(&[("PGPORT", "5432,x")]);
    assert!(settings(None, &env).is_err());
}

#[test]
fn pgport_entries_as_libpq_reads_them() {
    // An empty entry is the default port.
    let env = env_of(&[("PGHOST", "a,b"), ("PGPORT", "55415,")]);
    assert_eq!(
        settings(None, &env).unwrap().config.get_ports(),
        [55415, 5432]
    );
    let env = env_of(&[("PGPORT", "55415,")]);
    let url = settings(Some("postgres://u@a,b/db"), &env).unwrap();
    assert_eq!(url.config.get_ports(), [55415, 5432]);
    // Port 0 is refused, as libpq does.
    let env = env_of(&[("PGHOST", "a"), ("PGPORT", "0")]);
    let e = settings(None, &env).err().unwrap();
    assert!(e.contains("invalid port number"), "{e}");
    // Two ports for three hosts: refused, as libpq does.
    let env = env_of(&[("PGHOST", "a,b,c"), ("PGPORT", "1,2")]);
    let e = settings(None, &env).err().unwrap();
    assert_eq!(e, "could not match 2 port numbers to 3 hosts");
    let none = env_of(&[]);
    assert!(settings(Some("host=a,b,c port=1,2"), &none).is_err());
}

#[test]
fn quoted_values_keep_their_spaces() {
    let none = env_of(&[]);
    let s = settings(
        Some("host=h password='a  b' sslmode='require' application_name = 'it\\'s'"),
        &none,
    )
    .unwrap();
    assert_eq!(s.config.get_password(), Some(&b"a  b"[..]));
    assert_eq!(s.tls.mode, SslMode::Require);
    assert_eq!(s.config.get_hosts(), [Host::Tcp("h".into())]);
}
