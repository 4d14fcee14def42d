//! TLS for Rosetta's PostgreSQL connections, shared by the source adapter and the metadata
//! database's pools and migrations: libpq's `sslmode` meanings over rustls (the ring provider),
//! and TLS failures explained in an operator's words.
//!
//! | mode | TLS | chain checked | host name checked |
//! |---|---|---|---|
//! | `disable` | never | — | — |
//! | `prefer` | if the server offers it (plain text when it refuses) | no | no |
//! | `require` | always | only with a root certificate (as libpq) | no |
//! | `verify-ca` | always | yes | no |
//! | `verify-full` | always | yes | yes |
//!
//! Roots are the given PEM certificates, or the system's (`/etc/ssl/certs`, via
//! rustls-native-certs) when none are given.

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rosetta_domain::{PgSslMode, PgSslRootCert};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why TLS could not be set up for a connection (before connecting). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    /// The root certificate text holds no certificate rustls accepts.
    #[error("pg_sslrootcert holds no usable certificate: {0}")]
    RootCertificate(String),
    /// `verify-ca` without a root certificate: any certificate from any public CA would pass (the
    /// name is not checked), so it is refused, as libpq refuses it.
    #[error(
        "verify-ca needs a root certificate (the CA that signed the server's certificate); with the system's roots use verify-full"
    )]
    VerifyCaWithoutRoot,
    /// `verify-*` without a root certificate, and the system has no trusted roots.
    #[error("no system root certificates were found; set pg_sslrootcert to the server's CA certificate")]
    NoSystemRoots,
    /// rustls refused the configuration.
    #[error("TLS cannot be configured: {0}")]
    Config(String),
}

/// What a connection needs for TLS: the mode tokio-postgres negotiates with and the rustls
/// connector it hands the handshake to.
#[derive(Clone)]
pub struct TlsSettings {
    /// tokio-postgres's mode: `Disable`, `Prefer` (fall back only when the server refuses TLS)
    /// or `Require`.
    pub negotiation: SslMode,
    /// The rustls connector, verifying as the `sslmode` says.
    pub connector: MakeRustlsConnect,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings").field("negotiation", &self.negotiation).finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// The settings for `mode` with the roots `root_cert` (or the system's when `None` and the
    /// mode verifies). The host name checked by `verify-full` is the one tokio-postgres connects
    /// to.
    pub fn new(mode: PgSslMode, root_cert: Option<&PgSslRootCert>) -> Result<Self, TlsSetupError> {
        if mode == PgSslMode::VerifyCa && root_cert.is_none() {
            return Err(TlsSetupError::VerifyCaWithoutRoot);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = if mode.verifies_chain(root_cert.is_some()) {
            let roots = match root_cert {
                Some(pem) => Arc::new(roots_from_pem(pem)?),
                None => system_roots()?,
            };
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| TlsSetupError::Config(e.to_string()))?;
            Verifier::Chain { webpki, check_host_name: mode == PgSslMode::VerifyFull }
        } else {
            Verifier::None { algorithms: provider.signature_verification_algorithms }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let negotiation = match mode {
            PgSslMode::Disable => SslMode::Disable,
            PgSslMode::Prefer => SslMode::Prefer,
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull => SslMode::Require,
        };
        Ok(Self { negotiation, connector: MakeRustlsConnect::new(config) })
    }
}

/// The certificates of `pem` as a root store.
fn roots_from_pem(pem: &PgSslRootCert) -> Result<RootCertStore, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_str().as_bytes()) {
        let certificate = certificate.map_err(|e| TlsSetupError::RootCertificate(e.to_string()))?;
        roots.add(certificate).map_err(|e| TlsSetupError::RootCertificate(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::RootCertificate("no certificate found".to_owned()));
    }
    Ok(roots)
}

/// The system's trusted roots, read once per process (the files do not change while it runs,
/// and reading them costs milliseconds on every connect otherwise).
fn system_roots() -> Result<Arc<RootCertStore>, TlsSetupError> {
    static ROOTS: OnceLock<Option<Arc<RootCertStore>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            // Unreadable or unparsable files are skipped, as every TLS client does.
            let (added, _ignored) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            (added > 0).then(|| Arc::new(roots))
        })
        .clone()
        .ok_or(TlsSetupError::NoSystemRoots)
}

/// How the server's certificate is checked.
#[derive(Debug)]
enum Verifier {
    /// `prefer` / `require` without roots: encrypted, but anyone may be on the other end (as
    /// libpq). The handshake signatures are still checked, so the session key is the server's.
    None { algorithms: WebPkiSupportedAlgorithms },
    /// `verify-ca` / `verify-full` (and `require` with roots): a chain to a trusted root, and the
    /// host name when `check_host_name`.
    Chain { webpki: Arc<WebPkiServerVerifier>, check_host_name: bool },
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self {
            Self::None { .. } => Ok(ServerCertVerified::assertion()),
            Self::Chain { webpki, check_host_name } => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                    // The name is checked after the chain, so this error means the chain is
                    // trusted: all `verify-ca` asks.
                    Err(rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
                    )) if !check_host_name => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self {
            Self::None { algorithms } => rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms),
            Self::Chain { webpki, .. } => webpki.verify_tls12_signature(message, cert, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self {
            Self::None { algorithms } => rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms),
            Self::Chain { webpki, .. } => webpki.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match self {
            Self::None { algorithms } => algorithms.supported_schemes(),
            Self::Chain { webpki, .. } => webpki.supported_verify_schemes(),
        }
    }
}

/// A TLS failure of a connection attempt, in an operator's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The certificate does not chain to a trusted root (or its signature is wrong).
    NotTrusted,
    /// The certificate does not name the host connected to (`verify-full`).
    HostNameMismatch,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotValidYet,
    /// The mode requires TLS and the server does not offer it.
    ServerRefusesTls,
    /// Any other handshake failure (protocol, cipher…), as rustls says it.
    Handshake(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotTrusted => {
                "certificate not trusted: the server's certificate does not chain to a trusted root \
                 (give the server's CA certificate as the root certificate)"
            }
            Self::HostNameMismatch => {
                "host name mismatch: the server's certificate does not name the host connected to \
                 (connect by a name the certificate carries, or use verify-ca)"
            }
            Self::Expired => "certificate expired: the server's certificate is no longer valid",
            Self::NotValidYet => "certificate not valid yet: check the server's and this host's clocks",
            Self::ServerRefusesTls => {
                "server does not support TLS: turn on ssl on the server, or use sslmode prefer or disable"
            }
            Self::Handshake(reason) => return write!(f, "TLS handshake failed: {reason}"),
        })
    }
}

impl TlsFailure {
    /// The TLS cause of a failed connection attempt, found anywhere in its error chain; `None`
    /// when TLS is not why it failed.
    pub fn of(error: &tokio_postgres::Error) -> Option<Self> {
        let mut current: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(error) = current {
            if let Some(rustls) = error.downcast_ref::<rustls::Error>() {
                return Some(Self::from_rustls(rustls));
            }
            // `io::Error::source` skips the error it wraps (its Display shows that error), so
            // the rustls error inside a handshake's I/O error is reached through `get_ref`.
            if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref)
                && let Some(rustls) = inner.downcast_ref::<rustls::Error>()
            {
                return Some(Self::from_rustls(rustls));
            }
            // tokio-postgres's own words when `Require` meets a server that answers "no TLS".
            if error.to_string() == "server does not support TLS" {
                return Some(Self::ServerRefusesTls);
            }
            current = error.source();
        }
        None
    }

    fn from_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(certificate) => match certificate {
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    Self::HostNameMismatch
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => Self::NotValidYet,
                CertificateError::UnknownIssuer
                | CertificateError::BadSignature
                | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
                | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => Self::NotTrusted,
                other => Self::Handshake(format!("invalid certificate: {other:?}")),
            },
            other => Self::Handshake(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_builds_with_system_or_given_roots() {
        for mode in [PgSslMode::Disable, PgSslMode::Prefer, PgSslMode::Require] {
            let settings = TlsSettings::new(mode, None).map_err(|e| e.to_string());
            assert!(settings.is_ok(), "{mode}: {settings:?}");
        }
        assert_eq!(TlsSettings::new(PgSslMode::Disable, None).map(|s| s.negotiation).ok(), Some(SslMode::Disable));
        assert_eq!(TlsSettings::new(PgSslMode::Prefer, None).map(|s| s.negotiation).ok(), Some(SslMode::Prefer));
        assert_eq!(TlsSettings::new(PgSslMode::VerifyFull, None).map(|s| s.negotiation).ok(), Some(SslMode::Require));
        // The system's roots without the name check would trust any public CA's certificate.
        assert_eq!(TlsSettings::new(PgSslMode::VerifyCa, None).err(), Some(TlsSetupError::VerifyCaWithoutRoot));
    }

    #[test]
    fn failures_read_as_their_cause() {
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(TlsFailure::from_rustls(&name), TlsFailure::HostNameMismatch);
        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(TlsFailure::from_rustls(&issuer), TlsFailure::NotTrusted);
        assert!(TlsFailure::NotTrusted.to_string().starts_with("certificate not trusted"));
        assert!(TlsFailure::HostNameMismatch.to_string().starts_with("host name mismatch"));
        assert!(TlsFailure::ServerRefusesTls.to_string().starts_with("server does not support TLS"));
    }
}
