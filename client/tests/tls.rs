//! `month-lock` over TLS against a throwaway server with certificates made here (openssl CLI): a
//! CA, a server certificate for the name `db.test` signed by it, and an unrelated CA (docs/cli.md,
//! "Connection settings (libpq habits)").

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use month_lock_client::{MonthLockExt, YearMonth};
use month_lock_tests::{connect_config, start_cluster, Server};
use tokio::process::Command;
use tokio_postgres::config::Host;

mod common;
use common::cli::{output, text, BIN};

fn openssl(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// CA `ca.crt`, server `server.crt`/`server.key` for `db.test`, unrelated CA `other-ca.crt`.
fn make_certificates() -> PathBuf {
    // One directory per server: tests run in parallel.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("month_lock_tls_{}_{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir.join("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n[dn]\nCN = month-lock test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
    );
    write(
        &dir.join("server.ext"),
        "subjectAltName = DNS:db.test\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = serverAuth\nauthorityKeyIdentifier = keyid\n",
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (ca, subject) in [
        ("ca", "/CN=month-lock test CA"),
        ("other-ca", "/CN=some other CA"),
    ] {
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut args = vec![
            "req", "-x509", "-config", "ca.cnf", "-subj", subject, "-days", "2", "-keyout", &key,
            "-out", &crt,
        ];
        args.extend(ec);
        openssl(&dir, &args);
    }
    let mut args = vec![
        "req",
        "-new",
        "-config",
        "ca.cnf",
        "-subj",
        "/CN=db.test",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    openssl(&dir, &args);
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
    // A self-signed server certificate (CA:TRUE, as `openssl req -x509` makes it), also used
    // as the root file by the client.
    write(
        &dir.join("self.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3\nprompt = no\n[dn]\nCN = db.test\n\
         [v3]\nbasicConstraints = critical,CA:TRUE\nsubjectAltName = DNS:db.test\nsubjectKeyIdentifier = hash\n",
    );
    let mut args = vec![
        "req", "-x509", "-config", "self.cnf", "-days", "2", "-keyout", "self.key", "-out",
        "self.crt",
    ];
    args.extend(ec);
    openssl(&dir, &args);
    std::fs::set_permissions(
        dir.join("self.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // The server runs as the OS user `postgres` when we are root: it must own its key (0600).
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    if rustix::process::geteuid().is_root() {
        let user = std::env::var("MONTH_LOCK_TEST_OS_USER").unwrap_or_else(|_| "postgres".into());
        let id = |flag: &str| -> u32 {
            let out = StdCommand::new("id").args([flag, &user]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        for file in ["server.key", "server.crt", "self.key", "self.crt"] {
            std::os::unix::fs::chown(dir.join(file), Some(id("-u")), Some(id("-g"))).unwrap();
        }
    }
    dir
}

struct Tls {
    server: Server,
    certs: PathBuf,
    db: String,
    port: u16,
}

async fn tls_server() -> Tls {
    tls_server_with("server").await
}

/// A TLS server with the certificate and key `NAME.crt`, `NAME.key` of [`make_certificates`].
async fn tls_server_with(name: &str) -> Tls {
    let certs = make_certificates();
    let (crt, key) = (
        certs.join(format!("{name}.crt")),
        certs.join(format!("{name}.key")),
    );
    let server = start_cluster(&[
        ("ssl", "on"),
        ("ssl_cert_file", crt.to_str().unwrap()),
        ("ssl_key_file", key.to_str().unwrap()),
    ])
    .await;
    let db = server.fresh_db("tls").await;
    let port = db.config.get_ports()[0];
    assert_eq!(db.config.get_hosts(), [Host::Tcp("127.0.0.1".into())]);
    Tls {
        server,
        certs,
        db: db.name,
        port,
    }
}

impl Tls {
    /// `month-lock ARGS` with only the given connection settings in its environment.
    fn cli(&self, url: &str, env: &[(&str, String)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.certs);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("--database-url").arg(url).kill_on_drop(true);
        cmd
    }

    /// Connects to 127.0.0.1 but names the server `db.test` (the certificate's name).
    fn by_name(&self) -> String {
        format!(
            "host=db.test hostaddr=127.0.0.1 port={} user=postgres dbname={}",
            self.port, self.db
        )
    }

    fn by_address(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.db)
    }

    fn root(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }
}

/// Runs `month-lock run` and, while it holds the month, asks the server whether that session
/// uses TLS (`pg_stat_ssl`). Returns (exit code, TLS used, stderr).
async fn run_and_check_tls(
    tls: &Tls,
    mut cmd: Command,
    month: &str,
    app: &str,
) -> (Option<i32>, bool, String) {
    let mut config = tls.server.admin_config().clone();
    config.dbname(&tls.db);
    let observer = connect_config(&config).await;
    let child = cmd
        .args(["run", month, "--", "sleep", "1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ym: YearMonth = month.parse().unwrap();
    let start = Instant::now();
    let mut ssl = None;
    while ssl.is_none() && start.elapsed() < Duration::from_secs(5) {
        if observer.is_locked(ym).await.unwrap() {
            let row = observer
                .query_one(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                    &[&app],
                )
                .await
                .unwrap();
            ssl = Some(row.get::<_, bool>(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (out.status.code(), ssl.unwrap_or(false), text(&out.stderr))
}

#[tokio::test]
async fn tls_modes_connect_verify_and_fail_with_the_tls_layers_message() {
    let tls = tls_server().await;

    // require: encrypted, the certificate not checked (no root file).
    let cmd = tls.cli(
        &tls.by_address(),
        &[
            ("PGSSLMODE", "require".into()),
            ("PGAPPNAME", "tls-require".into()),
        ],
    );
    let (code, ssl, err) = run_and_check_tls(&tls, cmd, "2024-01", "tls-require").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(ssl, "the session uses TLS");

    // require with a socket directory as host and a TCP hostaddr: the connection goes to the
    // address over TCP, so TLS as sslmode says (libpq does the same).
    let cmd = tls.cli(
        &format!(
            "host=/var/run/postgresql hostaddr=127.0.0.1 port={} user=postgres dbname={} sslmode=require",
            tls.port, tls.db
        ),
        &[("PGAPPNAME", "tls-hostaddr".into())],
    );
    let (code, ssl, err) = run_and_check_tls(&tls, cmd, "2024-07", "tls-hostaddr").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(ssl, "a socket host with a TCP hostaddr uses TLS");

    // verify-full with the right root and the certificate's name: connects, over TLS.
    let env = [
        ("PGSSLMODE", "verify-full".into()),
        ("PGSSLROOTCERT", tls.root("ca.crt")),
        ("PGAPPNAME", "tls-full".into()),
    ];
    let (code, ssl, err) =
        run_and_check_tls(&tls, tls.cli(&tls.by_name(), &env), "2024-02", "tls-full").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(ssl);

    // verify-full with a wrong root: exit 69 and rustls's own reason.
    let env = [
        ("PGSSLMODE", "verify-full".into()),
        ("PGSSLROOTCERT", tls.root("other-ca.crt")),
    ];
    let out = output(
        tls.cli(&tls.by_name(), &env)
            .args(["run", "2024-03", "--", "true"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(69));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot connect")
            && err.contains("TLS handshake")
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    // verify-full against an address the certificate does not name: refused; verify-ca
    // (chain only) accepts the same server. Settings from the URL this time.
    let url = |mode: &str| {
        format!(
            "{}?sslmode={mode}&sslrootcert={}",
            tls.by_address(),
            tls.root("ca.crt")
        )
    };
    let out = output(tls.cli(&url("verify-full"), &[]).args(["check", "2024-04"])).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("certificate") && err.contains("127.0.0.1"),
        "names the mismatch: {err}"
    );
    let out = output(tls.cli(&url("verify-ca"), &[]).args(["check", "2024-04"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // verify-ca without any root file: libpq's advice, exit 69.
    let out = output(
        tls.cli(&tls.by_address(), &[("PGSSLMODE", "verify-ca".into())])
            .args(["run", "2024-05", "--", "true"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stderr).contains("root.crt\" does not exist"),
        "{}",
        text(&out.stderr)
    );

    // disable: plain.
    let cmd = tls.cli(
        &tls.by_address(),
        &[
            ("PGSSLMODE", "disable".into()),
            ("PGAPPNAME", "tls-off".into()),
        ],
    );
    let (code, ssl, err) = run_and_check_tls(&tls, cmd, "2024-06", "tls-off").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!ssl);
}

/// A rustls connector trusting the test CA, as `Config::connect` takes it.
fn rustls_connector(tls: &Tls) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(tls.certs.join("ca.crt")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[tokio::test]
/// No cancel request goes out for a dropped wait, on any transport: over TLS as over plain TCP
/// the connection is busy exactly until the wait ends by itself, and never 30 s more.
async fn a_dropped_wait_over_tls_ends_with_its_timeout_or_grant() {
    use month_lock_client::MonthLock;
    let tls = tls_server().await;
    let mut admin = tls.server.admin_config().clone();
    admin.dbname(&tls.db);
    let holder = connect_config(&admin).await;
    let m: YearMonth = "2026-01".parse().unwrap();
    let hold = MonthLock::new(m).acquire(&holder).await.unwrap();

    let connector = rustls_connector(&tls);
    let config: tokio_postgres::Config = format!("{} sslmode=require", tls.by_name())
        .parse()
        .unwrap();
    let (client, connection) = config.connect(connector).await.unwrap();
    tokio::spawn(connection);
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the connection uses TLS");

    // A wait with a timeout: the connection is free again when the timeout ends.
    let started = Instant::now();
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        MonthLock::new(m)
            .timeout(Duration::from_secs(2))
            .acquire(&client),
    )
    .await;
    assert!(dropped.is_err(), "still waiting when dropped");
    assert!(!client.held(m).await.unwrap());
    let took = started.elapsed();
    println!("TLS connection free again {took:?} after a dropped 2 s wait");
    assert!(
        took >= Duration::from_secs(2),
        "{took:?}: the wait was cut short"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");

    // A wait without limit: busy until the month is granted; the grant is then released.
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        MonthLock::new(m).acquire(&client),
    )
    .await;
    assert!(dropped.is_err());
    let blocked = tokio::time::timeout(Duration::from_secs(1), client.held(m)).await;
    assert!(blocked.is_err(), "no cancel ends the wait");
    let released = Instant::now();
    hold.release().await.unwrap();
    assert!(
        !client.held(m).await.unwrap(),
        "the late grant was released"
    );
    let took = released.elapsed();
    println!("TLS connection free again {took:?} after the grant");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// libpq accepts a self-signed server certificate that is itself the root file; so does
/// month-lock (verify-full, verify-ca, require with a root file), and verify-full still checks
/// the name.
#[tokio::test]
async fn a_self_signed_server_certificate_as_the_root_is_trusted() {
    let tls = tls_server_with("self").await;
    for (i, mode) in ["verify-full", "verify-ca", "require"]
        .into_iter()
        .enumerate()
    {
        let app = format!("tls-self-{mode}");
        let env = [
            ("PGSSLMODE", mode.into()),
            ("PGSSLROOTCERT", tls.root("self.crt")),
            ("PGAPPNAME", app.clone()),
        ];
        let month = format!("2024-{:02}", i + 8);
        let (code, ssl, err) =
            run_and_check_tls(&tls, tls.cli(&tls.by_name(), &env), &month, &app).await;
        assert_eq!(code, Some(0), "{mode}: {err}");
        assert!(ssl, "{mode}");
    }
    // The name is still checked with verify-full.
    let url = format!(
        "host=other.test hostaddr=127.0.0.1 port={} user=postgres dbname={}",
        tls.port, tls.db
    );
    let env = [
        ("PGSSLMODE", "verify-full".into()),
        ("PGSSLROOTCERT", tls.root("self.crt")),
    ];
    let out = output(tls.cli(&url, &env).args(["run", "2024-11", "--", "true"])).await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    // A different self-signed root is refused.
    let env = [
        ("PGSSLMODE", "verify-ca".into()),
        ("PGSSLROOTCERT", tls.root("other-ca.crt")),
    ];
    let out = output(
        tls.cli(&tls.by_name(), &env)
            .args(["run", "2024-11", "--", "true"]),
    )
    .await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
}
