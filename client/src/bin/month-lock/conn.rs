//! Connection settings the way libpq takes them: a URL or `key=value` string, else `PG*`
//! variables, then `.pgpass`; TLS from `sslmode`/`sslrootcert` or `PGSSLMODE`/`PGSSLROOTCERT`.
//! What tokio-postgres already defaults (port 5432, user = OS user, database = user on the
//! server side) is left to it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use month_lock_client::tokio_postgres::config::Host;
use month_lock_client::tokio_postgres::Config;

use crate::tls::{RootCert, SslMode, TlsSettings};

pub const APPLICATION_NAME: &str = "month-lock";

/// Everything needed to connect.
#[derive(Debug)]
pub struct Settings {
    pub config: Config,
    pub tls: TlsSettings,
}

/// `url` (from `--database-url`/`DATABASE_URL`) if given, with what it leaves out from the
/// `PG*` variables (`env` reads one; empty counts as unset).
pub fn settings(
    url: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let (url, url_sslmode, url_rootcert) = match url {
        Some(url) => split_tls_params(url),
        None => (String::new(), None, None),
    };
    let mut config = if url.is_empty() {
        Config::new()
    } else {
        url.parse::<Config>().map_err(|e| {
            format!(
                "invalid database URL: {}",
                month_lock_client::error_chain(&e)
            )
        })?
    };
    if config.get_ports().is_empty() {
        // One port, or one per host (comma-separated), as libpq takes it.
        if let Some(ports) = env("PGPORT") {
            for port in ports.split(',') {
                let port: u16 = port
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid PGPORT {ports:?}"))?;
                config.port(port);
            }
        }
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    config.host(host);
                }
            }
            // libpq's default: the Unix socket directory (tokio-postgres has no default host).
            None => {
                let port = config.get_ports().first().copied().unwrap_or(5432);
                let socket_dir = ["/var/run/postgresql", "/tmp"]
                    .into_iter()
                    .find(|dir| Path::new(&format!("{dir}/.s.PGSQL.{port}")).exists());
                config.host(socket_dir.unwrap_or("localhost"));
            }
        }
    }
    if config.get_user().is_none() {
        if let Some(user) = env("PGUSER") {
            config.user(&user);
        }
    }
    if config.get_dbname().is_none() {
        if let Some(db) = env("PGDATABASE") {
            config.dbname(&db);
        }
    }
    if config.get_password().is_none() {
        if let Some(pw) = env("PGPASSWORD") {
            config.password(pw);
        } else if let Some(pw) = password_from_file(&config, &env)? {
            config.password(pw);
        }
    }
    if config.get_connect_timeout().is_none() {
        if let Some(secs) = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
        {
            config.connect_timeout(Duration::from_secs(secs.max(2)));
        }
    }
    config.application_name(env("PGAPPNAME").as_deref().unwrap_or(APPLICATION_NAME));
    // A dead peer is noticed in about a minute instead of the kernel's two hours, also while a
    // heartbeat waits unanswered (data not acknowledged within the user timeout).
    config.keepalives_idle(Duration::from_secs(30));
    config.tcp_user_timeout(Duration::from_secs(30));

    let mode = match url_sslmode.or_else(|| env("PGSSLMODE")) {
        Some(m) => m.parse::<SslMode>()?,
        None => SslMode::default(),
    };
    let root_cert = match url_rootcert.or_else(|| env("PGSSLROOTCERT")) {
        Some(path) => Some(RootCert {
            path: path.into(),
            explicit: true,
        }),
        None => env("HOME").map(|home| RootCert {
            path: Path::new(&home).join(".postgresql/root.crt"),
            explicit: false,
        }),
    };
    // libpq uses no TLS on Unix sockets, whatever sslmode says.
    let all_sockets = !config.get_hosts().is_empty()
        && config.get_hostaddrs().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
    let mode = if all_sockets { SslMode::Disable } else { mode };
    let tls = TlsSettings { mode, root_cert };
    config.ssl_mode(tls.driver_mode());
    Ok(Settings { config, tls })
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a `key=value` string (the driver
/// knows only disable/prefer/require and no root certificates).
fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut rootcert) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            rootcert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        conninfo_pairs(url)
            .into_iter()
            .filter(|(key, value, _)| !take(key, value.clone()))
            .map(|(_, _, raw)| raw)
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, sslmode, rootcert)
}

/// The `key = value` pairs of a libpq connection string: values in single quotes may hold
/// spaces, `\'` and `\\` escape; each pair comes with its original text.
fn conninfo_pairs(s: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= chars.len() {
            return pairs;
        }
        let start = i;
        let mut key = String::new();
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            key.push(chars[i]);
            i += 1;
        }
        skip_space(&mut i);
        if i < chars.len() && chars[i] == '=' {
            i += 1;
        }
        skip_space(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
            i += 1; // the closing quote
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        let raw: String = chars[start..i.min(chars.len())].iter().collect();
        pairs.push((key, value, raw));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password for the first host from `PGPASSFILE` or `~/.pgpass`, as libpq reads it:
/// `host:port:database:user:password` lines, `*` matches anything, `\` escapes `:` and `\`,
/// a Unix-socket host matches `localhost`; a file readable by group or others is ignored with
/// a warning.
fn password_from_file(
    config: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Vec<u8>>, String> {
    let path = match env("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => match env("HOME") {
            Some(home) => Path::new(&home).join(".pgpass"),
            None => return Ok(None),
        },
    };
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "month-lock: WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return Ok(None);
    }
    // As libpq: a password file that cannot be read is skipped, not fatal.
    let text = match std::fs::read(&path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => {
            eprintln!(
                "month-lock: WARNING: password file \"{}\" is not UTF-8; ignored",
                path.display()
            );
            return Ok(None);
        }
        Err(e) => {
            eprintln!(
                "month-lock: WARNING: cannot read password file \"{}\": {e}; ignored",
                path.display()
            );
            return Ok(None);
        }
    };
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = match config.get_user() {
        Some(u) => u.to_owned(),
        None => whoami::username().map_err(|e| format!("cannot tell the OS user name: {e}"))?,
    };
    let db = config.get_dbname().map_or(user.clone(), str::to_owned);
    Ok(pgpass_lookup(&text, [&host, &port, &db, &user]).map(String::into_bytes))
}

/// The password of the first line of a `.pgpass` text matching host, port, database, user.
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .find_map(|line| {
            let fields = split_pgpass_line(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            // The password ends at the next unescaped `:`, as in libpq.
            matches.then(|| fields[4].clone())
        })
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            // A backslash escapes the next character; a trailing one stays itself.
            '\\' => fields
                .last_mut()
                .unwrap()
                .push(chars.next().unwrap_or('\\')),
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.get_application_name(), Some(APPLICATION_NAME));
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
        // (A postgres:// URL without a port gets 5432 from tokio-postgres's parser; key=value does not.)
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
    fn sslmode_and_root_cert_from_the_url_or_the_environment() {
        let env = env_of(&[("PGSSLMODE", "require"), ("PGSSLROOTCERT", "/env/root.crt")]);
        let s = settings(Some("postgres://h/db?sslmode=verify-full&sslrootcert=%2Fca%2Froot.pem&connect_timeout=5"), &env).unwrap();
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
    }

    #[test]
    fn pgpassfile_supplies_the_password_unless_it_is_readable_by_others() {
        let dir = std::env::temp_dir().join(format!("ml_pgpass_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "127.0.0.1:5999:app:alice:s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env_of(&[("PGPASSFILE", file.to_str().unwrap())]);
        let c = settings(Some("postgres://alice@127.0.0.1:5999/app"), &env)
            .unwrap()
            .config;
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
        let c = settings(Some("postgres://alice:given@127.0.0.1:5999/app"), &env)
            .unwrap()
            .config;
        assert_eq!(
            c.get_password(),
            Some(&b"given"[..]),
            "a password in the URL wins"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = settings(Some("postgres://alice@127.0.0.1:5999/app"), &env)
            .unwrap()
            .config;
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

    #[test]
    fn a_pgpass_that_is_not_utf8_is_ignored_not_fatal() {
        let dir = std::env::temp_dir().join(format!("ml_pgpass_bin_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, b"127.0.0.1:5999:app:alice:\xff\xfe\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = env_of(&[("PGPASSFILE", file.to_str().unwrap())]);
        let c = settings(Some("postgres://alice@127.0.0.1:5999/app"), &env)
            .expect("not fatal")
            .config;
        assert_eq!(c.get_password(), None);
        let _ = std::fs::remove_dir_all(&dir);
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
}
