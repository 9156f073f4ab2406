//! Connection settings the way libpq takes them: a URL or `key=value` string, else `PG*`
//! variables, then `.pgpass`; TLS from `sslmode`/`sslrootcert` or `PGSSLMODE`/`PGSSLROOTCERT`.
//! What tokio-postgres already defaults (port 5432, user = OS user, database = user on the
//! server side) is left to it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use month_lock_client::tokio_postgres::config::{Host, SslMode as DriverSslMode};
use month_lock_client::tokio_postgres::Config;

use crate::tls::{RootCert, SslMode, TlsSettings};

pub const APPLICATION_NAME: &str = "month-lock";

/// Everything needed to connect.
#[derive(Debug)]
pub struct Settings {
    /// Every host; connect through [`Settings::attempts`].
    pub config: Config,
    pub tls: TlsSettings,
    /// The password file's bytes, when no password was given otherwise.
    pgpass: Option<Vec<u8>>,
    /// A host (or host address) was named; else `.pgpass` matches `localhost`.
    host_given: bool,
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
    // A URL without a port leaves it to PGPORT, as in libpq (tokio-postgres's URL parser would
    // fill in 5432 for each host).
    let pgport = env("PGPORT").map(|p| pgport_list(&p)).transpose()?;
    let url = match &pgport {
        Some(ports) => url_with_ports(&url, ports),
        None => url,
    };
    let mut config = if url.is_empty() {
        Config::new()
    } else {
        url.parse::<Config>()
            .map_err(|e| format!("invalid database URL: {}", crate::text::error_chain(&e)))?
    };
    if config.get_ports().is_empty() {
        // One port, or one per host (comma-separated), as libpq takes it.
        for port in pgport.iter().flatten() {
            config.port(*port);
        }
    }
    let host_given = !config.get_hosts().is_empty()
        || !config.get_hostaddrs().is_empty()
        || env("PGHOST").is_some();
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
    // libpq: one port for every host, or one per host.
    let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
    let ports = config.get_ports().len();
    if ports > 1 && ports != hosts {
        return Err(format!(
            "could not match {ports} port numbers to {hosts} hosts"
        ));
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
        }
    }
    // Looked up per host when connecting (`attempts`), as libpq does.
    let pgpass = if config.get_password().is_none() {
        read_password_file(&env)
    } else {
        None
    };
    if config.get_connect_timeout().is_none() {
        if let Some(secs) = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0)
        {
            config.connect_timeout(Duration::from_secs(secs.max(2)));
        }
    }
    // The user's application_name (connection string, then PGAPPNAME) wins; ours is libpq's
    // fallback_application_name.
    if config.get_application_name().is_none() {
        config.application_name(env("PGAPPNAME").as_deref().unwrap_or(APPLICATION_NAME));
    }
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
    // libpq uses no TLS on Unix sockets, whatever sslmode says (per host: see `attempts`).
    let all_sockets = !config.get_hosts().is_empty()
        && config.get_hostaddrs().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)));
    let mode = if all_sockets { SslMode::Disable } else { mode };
    let tls = TlsSettings { mode, root_cert };
    config.ssl_mode(tls.driver_mode());
    Ok(Settings {
        config,
        tls,
        pgpass,
        host_given,
    })
}

impl Settings {
    /// One configuration per host, tried in order as libpq tries a host list: each with its
    /// own port, its own `.pgpass` password (libpq looks the file up for each host) and no TLS
    /// for a Unix socket. A host-address list is left to the driver as a whole.
    pub fn attempts(&self) -> Result<Vec<Config>, String> {
        let hosts = self.config.get_hosts();
        if hosts.len() <= 1 || !self.config.get_hostaddrs().is_empty() {
            let mut config = self.config.clone();
            if let Some(host) = hosts.first() {
                let port = config.get_ports().first().copied();
                self.fill_host(&mut config, host, port)?;
                let addrs = config.get_hostaddrs().to_vec();
                if matches!(host, Host::Unix(_)) && addrs.len() == 1 {
                    // A socket directory with a `hostaddr`: TCP to the address, and TLS as
                    // `sslmode` says. The driver names no server for TLS on a socket host, so
                    // the address stands in for the name (libpq sends no SNI for it either).
                    let ports = config.get_ports().to_vec();
                    strip_hosts(&mut config);
                    config.host(addrs[0].to_string()).hostaddr(addrs[0]);
                    for port in ports {
                        config.port(port);
                    }
                }
            }
            return Ok(vec![config]);
        }
        let ports = self.config.get_ports();
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = match ports.len() {
                    0 => None,
                    1 => Some(ports[0]),
                    _ => ports.get(i).copied(),
                };
                // Everything but the host list: a copy with one host and one port.
                let mut config = self.config.clone();
                strip_hosts(&mut config);
                match host {
                    Host::Tcp(h) => config.host(h),
                    Host::Unix(path) => config.host_path(path),
                };
                if let Some(port) = port {
                    config.port(port);
                }
                self.fill_host(&mut config, host, port)?;
                Ok(config)
            })
            .collect()
    }

    /// The `.pgpass` password and the TLS mode for one host of `config`.
    fn fill_host(&self, config: &mut Config, host: &Host, port: Option<u16>) -> Result<(), String> {
        // A socket directory with a `hostaddr` connects over TCP to that address (libpq and
        // the driver alike): TLS then follows `sslmode` as for any TCP connection.
        if matches!(host, Host::Unix(_)) && config.get_hostaddrs().is_empty() {
            config.ssl_mode(DriverSslMode::Disable);
        }
        if let (None, Some(text)) = (config.get_password(), &self.pgpass) {
            let host = match host {
                _ if !self.host_given => "localhost".to_owned(),
                Host::Tcp(h) => h.clone(),
                // libpq: a socket directory matches `localhost` only when it is libpq's default.
                Host::Unix(p) if p == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
                Host::Unix(p) => p.display().to_string(),
            };
            let port = port.unwrap_or(5432).to_string();
            let user = match config.get_user() {
                Some(u) => u.to_owned(),
                None => {
                    whoami::username().map_err(|e| format!("cannot tell the OS user name: {e}"))?
                }
            };
            let db = config.get_dbname().map_or(user.clone(), str::to_owned);
            let wanted = [
                host.as_bytes(),
                port.as_bytes(),
                db.as_bytes(),
                user.as_bytes(),
            ];
            if let Some(pw) = pgpass_lookup_bytes(text, wanted) {
                config.password(pw);
            }
        }
        Ok(())
    }
}

/// libpq's compiled-in socket directory on Debian (`DEFAULT_PGSOCKET_DIR`).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// `config` without its hosts and ports (tokio-postgres has no setter to clear them): the
/// configuration re-parsed from nothing, with every other setting copied over.
fn strip_hosts(config: &mut Config) {
    let mut fresh = Config::new();
    if let Some(u) = config.get_user() {
        fresh.user(u);
    }
    if let Some(p) = config.get_password() {
        fresh.password(p);
    }
    if let Some(d) = config.get_dbname() {
        fresh.dbname(d);
    }
    if let Some(o) = config.get_options() {
        fresh.options(o);
    }
    if let Some(a) = config.get_application_name() {
        fresh.application_name(a);
    }
    if let Some(t) = config.get_connect_timeout() {
        fresh.connect_timeout(*t);
    }
    if let Some(t) = config.get_tcp_user_timeout() {
        fresh.tcp_user_timeout(*t);
    }
    fresh.keepalives(config.get_keepalives());
    fresh.keepalives_idle(config.get_keepalives_idle());
    if let Some(i) = config.get_keepalives_interval() {
        fresh.keepalives_interval(i);
    }
    if let Some(r) = config.get_keepalives_retries() {
        fresh.keepalives_retries(r);
    }
    fresh.ssl_negotiation(config.get_ssl_negotiation());
    fresh.target_session_attrs(config.get_target_session_attrs());
    fresh.ssl_mode(config.get_ssl_mode());
    fresh.channel_binding(config.get_channel_binding());
    fresh.load_balance_hosts(config.get_load_balance_hosts());
    *config = fresh;
}

/// `url` with `ports` (PGPORT: one, or one per host) put in for its hosts, when the URL is a
/// `postgres://` URL that names hosts and gives none of them a port. Anything else unchanged.
/// `PGPORT` as libpq reads it: a comma-separated list, an empty entry meaning the default port
/// (5432); 0 and anything but a port number are refused.
fn pgport_list(text: &str) -> Result<Vec<u16>, String> {
    text.split(',')
        .map(|p| match p.trim() {
            "" => Ok(5432),
            p => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("invalid PGPORT {text:?}: invalid port number {p:?}")),
        })
        .collect()
}

fn url_with_ports(url: &str, ports: &[u16]) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if scheme != "postgres" && scheme != "postgresql" {
        return url.to_owned();
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    if hostlist.is_empty() {
        return url.to_owned();
    }
    let hosts: Vec<&str> = hostlist.split(',').collect();
    let has_port = |h: &str| match h.rfind(']') {
        Some(close) => h[close..].contains(':'),
        None => h.contains(':'),
    };
    if hosts.iter().any(|h| has_port(h)) {
        return url.to_owned();
    }
    if ports.len() != 1 && ports.len() != hosts.len() {
        return url.to_owned(); // left for the driver to refuse
    }
    let with: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{h}:{}", ports[if ports.len() == 1 { 0 } else { i }]))
        .collect();
    format!("{scheme}://{userinfo}{}{tail}", with.join(","))
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

/// The text of `PGPASSFILE` or `~/.pgpass`, as libpq reads it: none if missing; ignored with a
/// warning if readable by group or others or unreadable (not fatal: the server may not ask).
fn read_password_file(env: &dyn Fn(&str) -> Option<String>) -> Option<Vec<u8>> {
    let path = match env("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(&env("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "month-lock: WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "month-lock: WARNING: cannot read password file \"{}\": {e}; ignored",
                path.display()
            );
            None
        }
    }
}

/// The password of the first `.pgpass` line matching host, port, database, user, byte by byte
/// as libpq's `passwordFromFile`: `host:port:database:user:password`, a field that is exactly
/// an unescaped `*` matches anything (`\*` is a literal star), `\` escapes the next byte, the
/// password ends at the next unescaped `:`. A line that is not UTF-8 is compared as bytes like
/// any other; it spoils nothing else.
fn pgpass_lookup_bytes(text: &[u8], wanted: [&[u8]; 4]) -> Option<Vec<u8>> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b'#' {
            return None;
        }
        let mut rest = line;
        for want in wanted {
            rest = field_matches(rest, want)?;
        }
        // De-escape the password up to the next unescaped ':'.
        let mut pw = Vec::new();
        let mut i = 0;
        while i < rest.len() && rest[i] != b':' {
            if rest[i] == b'\\' && i + 1 < rest.len() {
                i += 1;
            }
            pw.push(rest[i]);
            i += 1;
        }
        Some(pw)
    })
}

/// libpq's `pwdfMatchesString`: the rest of the line after a field matching `want`.
fn field_matches<'a>(line: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    if line.starts_with(b"*:") {
        return Some(&line[2..]);
    }
    let (mut i, mut w) = (0, 0);
    while i < line.len() {
        let mut escaped = false;
        if line[i] == b'\\' {
            i += 1;
            escaped = true;
            if i >= line.len() {
                return None;
            }
        }
        if line[i] == b':' && !escaped && w == want.len() {
            return Some(&line[i + 1..]);
        }
        if w == want.len() || line[i] != want[w] {
            return None;
        }
        i += 1;
        w += 1;
    }
    None
}

/// The password for `wanted` (host, port, database, user) from a `.pgpass` text.
#[cfg(test)]
fn pgpass_lookup(text: &str, wanted: [&str; 4]) -> Option<String> {
    let wanted = wanted.map(str::as_bytes);
    pgpass_lookup_bytes(text.as_bytes(), wanted).map(|pw| String::from_utf8(pw).unwrap())
}

#[cfg(test)]
mod tests;
