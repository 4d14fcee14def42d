//! Certificate chains for TLS tests, made in-process with rcgen: a CA and server certificates it
//! signs, written where a throwaway cluster serves them.

use std::fs;
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::HarnessError;

/// A certificate authority for one test: its PEM certificate is what a client trusts.
#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct ServerCertificate {
    /// The certificate, followed by nothing else (the CA is not needed by the server).
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// A new CA named `name` (its common name).
    pub fn new(name: &str) -> Result<Self, HarnessError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(tls_error)?;
        Ok(Self { issuer: CertifiedIssuer::self_signed(params, key).map_err(tls_error)? })
    }

    /// The CA's certificate (PEM), what a client configures as its root.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses, as subject alternative
    /// names), signed by this CA.
    pub fn server_certificate(&self, names: &[&str]) -> Result<ServerCertificate, HarnessError> {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, "rosetta test server");
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        Ok(ServerCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

impl ServerCertificate {
    /// Writes `server.crt` and `server.key` into `dir`, the key readable by its owner only
    /// (the server refuses a key others can read).
    pub(crate) fn write_to(&self, dir: &Path) -> Result<(), HarnessError> {
        use std::os::unix::fs::PermissionsExt as _;
        let key = dir.join("server.key");
        fs::write(dir.join("server.crt"), &self.cert_pem).map_err(|e| HarnessError::io("writing server.crt", e))?;
        fs::write(&key, &self.key_pem).map_err(|e| HarnessError::io("writing server.key", e))?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(|e| HarnessError::io("chmod 600 server.key", e))
    }
}

fn tls_error(error: rcgen::Error) -> HarnessError {
    HarnessError::io("making a test certificate", std::io::Error::other(error.to_string()))
}
