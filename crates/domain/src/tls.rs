//! How Rosetta secures a connection to a PostgreSQL server: libpq's `sslmode` and a trusted
//! root certificate (PEM).

use std::fmt;
use std::str::FromStr;

use crate::invalid::{InvalidKind, InvalidValue};

/// How a connection to a PostgreSQL server uses TLS, with libpq's `sslmode` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum PgSslMode {
    /// Plain text only.
    Disable,
    /// TLS when the server offers it, plain text when it refuses TLS (not when a TLS handshake
    /// fails); the certificate is not checked. The default, as in libpq.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked unless a root certificate is given (then
    /// as `VerifyCa`, as libpq does when a root file exists).
    Require,
    /// TLS with a certificate chain to `pg_sslrootcert` (required: with the system's roots any
    /// public CA's certificate would pass); the host name is not checked.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl PgSslMode {
    /// Every mode, in libpq's order.
    pub const ALL: [Self; 5] = [Self::Disable, Self::Prefer, Self::Require, Self::VerifyCa, Self::VerifyFull];

    /// libpq's name (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Parses libpq's name; anything else names the accepted values.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == value).ok_or_else(|| {
            InvalidValue::new(
                InvalidKind::PatternMismatch,
                "must be one of disable, prefer, require, verify-ca, verify-full",
            )
        })
    }

    /// Whether a connection in this mode may be plain text.
    pub fn allows_plain_text(self) -> bool {
        matches!(self, Self::Disable | Self::Prefer)
    }

    /// Whether the server's certificate chain is checked, given whether a root certificate is
    /// configured (`require` with a root certificate checks it, as libpq does).
    pub fn verifies_chain(self, has_root_cert: bool) -> bool {
        match self {
            Self::Disable | Self::Prefer => false,
            Self::Require => has_root_cert,
            Self::VerifyCa | Self::VerifyFull => true,
        }
    }
}

impl fmt::Display for PgSslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PgSslMode {
    type Err = InvalidValue;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

/// One or more X.509 certificates in PEM (`-----BEGIN CERTIFICATE-----` blocks), trusted as
/// roots when verifying a server: at most [`PgSslRootCert::MAX_CHARS`], every block well-formed
/// base64 holding a DER structure. Text outside the blocks (bundle comments) is allowed, as in
/// the files cloud providers publish.
#[derive(Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "String", into = "String"))]
pub struct PgSslRootCert {
    pem: String,
    certificates: usize,
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

impl PgSslRootCert {
    /// The longest accepted PEM text, in characters: a region's CA bundle is a few KiB; a
    /// provider's global bundle of every region may need to be cut to the region in use.
    pub const MAX_CHARS: usize = 60_000;

    /// Parses PEM text, returning what is wrong with it.
    pub fn parse(pem: impl Into<String>) -> Result<Self, InvalidValue> {
        let pem: String = pem.into();
        if pem.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                InvalidKind::TooLong,
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        let mut certificates = 0;
        let mut rest = pem.as_str();
        while let Some(start) = rest.find(BEGIN) {
            let after = &rest[start + BEGIN.len()..];
            let end = after
                .find(END)
                .ok_or_else(|| not_pem(format!("certificate {} has no '{END}' line", certificates + 1)))?;
            let der = decode_base64(&after[..end])
                .ok_or_else(|| not_pem(format!("certificate {} is not valid base64", certificates + 1)))?;
            // Every X.509 certificate is a DER SEQUENCE (tag 0x30).
            if der.first() != Some(&0x30) || der.len() < 64 {
                return Err(not_pem(format!("certificate {} is not an X.509 certificate", certificates + 1)));
            }
            certificates += 1;
            rest = &after[end + END.len()..];
        }
        if certificates == 0 {
            return Err(not_pem(format!("must hold at least one PEM certificate ('{BEGIN}' … '{END}')")));
        }
        Ok(Self { pem, certificates })
    }

    /// The PEM text as given.
    pub fn as_str(&self) -> &str {
        &self.pem
    }

    /// How many certificates it holds (≥ 1).
    pub fn certificates(&self) -> usize {
        self.certificates
    }
}

fn not_pem(message: String) -> InvalidValue {
    InvalidValue::new(InvalidKind::PatternMismatch, message)
}

/// Decodes standard base64 with padding, ignoring whitespace (PEM wraps lines); `None` when
/// any other character appears or the length or padding is wrong.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(byte: u8) -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if symbols.is_empty() || !symbols.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    let last = symbols.len() / 4 - 1;
    for (index, quad) in symbols.chunks_exact(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && index != last) {
            return None;
        }
        let mut bits = 0u32;
        for &symbol in &quad[..4 - padding] {
            bits = (bits << 6) | value(symbol)?;
        }
        bits <<= 6 * padding as u32;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

impl fmt::Debug for PgSslRootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSslRootCert").field("certificates", &self.certificates).finish_non_exhaustive()
    }
}

impl TryFrom<String> for PgSslRootCert {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<PgSslRootCert> for String {
    fn from(value: PgSslRootCert) -> String {
        value.pem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real self-signed certificate (CN=rosetta-test), made with openssl.
    const CERT: &str = include_str!("../testdata/self-signed.pem");

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in PgSslMode::ALL {
            assert_eq!(PgSslMode::parse(mode.as_str()).ok(), Some(mode));
        }
        assert_eq!(PgSslMode::default(), PgSslMode::Prefer);
        let error = PgSslMode::parse("allow").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("verify-full"), "{error}");
        assert!(PgSslMode::Require.verifies_chain(true) && !PgSslMode::Require.verifies_chain(false));
        assert!(PgSslMode::VerifyCa.verifies_chain(false) && !PgSslMode::Prefer.verifies_chain(true));
    }

    #[test]
    fn a_bundle_of_certificates_with_comments_parses() {
        let bundle = format!("# a comment\n{CERT}\nanother comment\n{CERT}");
        let root = PgSslRootCert::parse(bundle).map_err(|e| e.to_string());
        assert_eq!(root.map(|r| r.certificates()), Ok(2));
        assert_eq!(format!("{:?}", PgSslRootCert::parse(CERT).ok()), "Some(PgSslRootCert { certificates: 1, .. })");
    }

    #[test]
    fn broken_pem_is_refused_with_the_reason() {
        let cases = [
            ("hello", "at least one PEM certificate"),
            ("-----BEGIN CERTIFICATE-----\nMIIB", "no '-----END CERTIFICATE-----' line"),
            ("-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----", "not valid base64"),
            ("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----", "not an X.509 certificate"),
            ("-----BEGIN CERTIFICATE-----\naGVsbG8\n-----END CERTIFICATE-----", "not valid base64"),
        ];
        for (pem, expected) in cases {
            let message = PgSslRootCert::parse(pem).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(expected), "{pem:?}: {message}");
        }
        let long = format!("{CERT}{}", " ".repeat(PgSslRootCert::MAX_CHARS));
        assert!(PgSslRootCert::parse(long).is_err());
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVs\nbG8h"), Some(b"hello!".to_vec()));
        assert_eq!(decode_base64("aGVsbA=="), Some(b"hell".to_vec()));
        assert_eq!(decode_base64("aG=sbG8h"), None);
        assert_eq!(decode_base64("aGVsbA==aGVs"), None);
        assert_eq!(decode_base64(""), None);
    }
}
