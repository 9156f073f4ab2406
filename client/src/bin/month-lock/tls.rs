//! TLS as libpq does it (`sslmode`, `sslrootcert`), with rustls.
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (default) | if the server offers it | chain, only if a root certificate file exists |
//! | `require` | always | chain, only if a root certificate file exists (libpq's rule) |
//! | `verify-ca` | always | chain against the root certificate(s) |
//! | `verify-full` | always | chain, and the host name (or IP address) the CLI connected to |

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use month_lock_client::tokio_postgres::config::SslMode as DriverSslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values this CLI supports (`allow` is not: the driver cannot try plain
/// first and TLS second).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err("sslmode \"allow\" is not supported; use \"prefer\" or \"disable\"".into()),
            other => {
                return Err(format!(
                    "invalid sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }
}

/// Where the root certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCert {
    pub path: PathBuf,
    /// Named by `sslrootcert`/`PGSSLROOTCERT` (else the default `~/.postgresql/root.crt`).
    pub explicit: bool,
}

/// The TLS part of the connection settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
}

impl TlsSettings {
    /// What the driver is told: whether to ask for TLS and whether to insist.
    pub fn driver_mode(&self) -> DriverSslMode {
        match self.mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }

    /// The rustls connector for these settings.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let verify = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull);
        // A root file named explicitly must exist; the default one is used if present, as libpq does.
        let roots = match &self.root_cert {
            Some(root) if root.explicit || root.path.exists() => Some(load_roots(&root.path)?),
            _ if verify => {
                let shown = self
                    .root_cert
                    .as_ref()
                    .map_or("~/.postgresql/root.crt".into(), |r| {
                        r.path.display().to_string()
                    });
                return Err(format!(
                    "root certificate file \"{shown}\" does not exist; either provide the file \
                     (PGSSLROOTCERT or sslrootcert) or change sslmode to disable server certificate verification"
                ));
            }
            _ => None,
        };
        let config = match (self.mode, roots) {
            (mode, Some((roots, ders))) => {
                let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("TLS set-up: {e}"))?;
                let full = mode == SslMode::VerifyFull;
                let inner: Arc<dyn ServerCertVerifier> = if full {
                    chain
                } else {
                    Arc::new(ChainOnly(chain))
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(RootsAsServers {
                        inner,
                        roots: ders,
                        check_name: full,
                    }))
                    .with_no_client_auth()
            }
            (_, None) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The root file's certificates, as a store and as they were read.
fn load_roots(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), String> {
    let shown = path.display();
    if !path.exists() {
        return Err(format!("root certificate file \"{shown}\" does not exist"));
    }
    let mut roots = RootCertStore::empty();
    let mut ders = Vec::new();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read root certificate file \"{shown}\": {e}"))?
    {
        let cert =
            cert.map_err(|e| format!("cannot read root certificate file \"{shown}\": {e}"))?;
        roots
            .add(cert.clone())
            .map_err(|e| format!("bad certificate in \"{shown}\": {e}"))?;
        ders.push(cert);
    }
    if roots.is_empty() {
        return Err(format!(
            "no certificates in root certificate file \"{shown}\""
        ));
    }
    Ok((roots, ders))
}

/// libpq (OpenSSL) accepts a server certificate that is itself in the root file, e.g. a
/// self-signed certificate (CA:TRUE, as `openssl req -x509` makes it) used as `root.crt`;
/// webpki refuses a CA certificate as an end entity. So: a server certificate byte-identical
/// to one of the roots is trusted as that root (and, for `verify-full`, must still carry the
/// host name); everything else goes through `inner`.
#[derive(Debug)]
struct RootsAsServers {
    inner: Arc<dyn ServerCertVerifier>,
    roots: Vec<CertificateDer<'static>>,
    check_name: bool,
}

impl ServerCertVerifier for RootsAsServers {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let outcome = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if outcome.is_ok() || !self.roots.iter().any(|r| r.as_ref() == end_entity.as_ref()) {
            return outcome;
        }
        if self.check_name {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&parsed, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain is checked before the name, so a name error means the chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a root file: encryption without authentication of the server
/// (libpq's behaviour); the handshake signatures are still checked.
struct NoVerification(Arc<CryptoProvider>);

impl fmt::Debug for NoVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoVerification")
    }
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_values_as_libpq_spells_them() {
        assert_eq!("verify-full".parse(), Ok(SslMode::VerifyFull));
        assert_eq!("verify-ca".parse(), Ok(SslMode::VerifyCa));
        assert_eq!("disable".parse(), Ok(SslMode::Disable));
        assert!("allow"
            .parse::<SslMode>()
            .unwrap_err()
            .contains("not supported"));
        assert!("verify_full".parse::<SslMode>().is_err());
        assert_eq!(SslMode::default(), SslMode::Prefer);
    }

    #[test]
    fn verification_without_a_root_file_is_refused_with_libpqs_advice() {
        let settings = TlsSettings {
            mode: SslMode::VerifyFull,
            root_cert: Some(RootCert {
                path: "/nonexistent/root.crt".into(),
                explicit: false,
            }),
        };
        let err = settings.connector().err().unwrap();
        assert!(
            err.contains("\"/nonexistent/root.crt\" does not exist"),
            "{err}"
        );
        let require = TlsSettings {
            mode: SslMode::Require,
            ..settings
        };
        assert!(
            require.connector().is_ok(),
            "require without a root file: encryption only"
        );
    }
}
