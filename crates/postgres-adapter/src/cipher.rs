//! Encryption of stored secrets: XChaCha20-Poly1305 with a key derived from `SECRET_KEY`.

use std::fmt;

use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rosetta_domain::Secret;
use rosetta_ports::outbound::{CipherError, SecretCipher, SecretSlot};
use sha2::Sha256;

/// First byte of every sealed value, so the format (algorithm, key derivation) can change later
/// while old values stay readable.
const FORMAT_VERSION: u8 = 1;
/// XChaCha20's nonce: 24 bytes, large enough to pick at random for every seal.
const NONCE_LEN: usize = 24;
/// HKDF salt and info: bind the derived key to this use, so the same `SECRET_KEY` used for
/// something else never yields the same key.
const HKDF_SALT: &[u8] = b"rosetta/secret-cipher";
const HKDF_INFO: &[u8] = b"rosetta/v1/xchacha20poly1305";

/// Why a [`XChaChaSecretCipher`] could not be built. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// The configured key is too short to be a credible secret.
    #[error("the secret key must be at least {min_chars} characters long")]
    TooShort {
        /// The minimum length, in characters.
        min_chars: usize,
    },
    /// HKDF refused to derive the encryption key.
    #[error("the encryption key cannot be derived from the secret key")]
    Derivation,
}

/// Seals secrets with XChaCha20-Poly1305 as `version (1 byte) || nonce (24 bytes) || ciphertext`,
/// authenticating [`SecretSlot::associated_data`] so a value only opens in the row and column it
/// was sealed for.
pub struct XChaChaSecretCipher {
    aead: XChaCha20Poly1305,
}

impl XChaChaSecretCipher {
    /// The shortest accepted `SECRET_KEY`, in characters.
    pub const MIN_SECRET_KEY_CHARS: usize = 32;

    /// Derives the encryption key from the configured `SECRET_KEY` with HKDF-SHA256, which
    /// turns any long passphrase into a uniformly random 256-bit key.
    pub fn new(secret_key: &str) -> Result<Self, SecretKeyError> {
        if secret_key.chars().count() < Self::MIN_SECRET_KEY_CHARS {
            return Err(SecretKeyError::TooShort { min_chars: Self::MIN_SECRET_KEY_CHARS });
        }
        let mut key = Key::default();
        Hkdf::<Sha256>::new(Some(HKDF_SALT), secret_key.as_bytes())
            .expand(HKDF_INFO, &mut key)
            .map_err(|_| SecretKeyError::Derivation)?;
        Ok(Self { aead: XChaCha20Poly1305::new(&key) })
    }
}

impl fmt::Debug for XChaChaSecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XChaChaSecretCipher").finish_non_exhaustive()
    }
}

impl SecretCipher for XChaChaSecretCipher {
    fn seal(&self, secret: &Secret, slot: SecretSlot) -> Result<Vec<u8>, CipherError> {
        let nonce = XNonce::try_generate().map_err(|_| CipherError::Seal)?;
        let aad = slot.associated_data();
        let ciphertext = self
            .aead
            .encrypt(&nonce, Payload { msg: secret.expose().as_bytes(), aad: &aad })
            .map_err(|_| CipherError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open(&self, sealed: &[u8], slot: SecretSlot) -> Result<Secret, CipherError> {
        let Some((&FORMAT_VERSION, rest)) = sealed.split_first() else {
            return Err(CipherError::Open);
        };
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or(CipherError::Open)?;
        let nonce = XNonce::try_from(nonce).map_err(|_| CipherError::Open)?;
        let aad = slot.associated_data();
        let plaintext =
            self.aead.decrypt(&nonce, Payload { msg: ciphertext, aad: &aad }).map_err(|_| CipherError::Open)?;
        let text = String::from_utf8(plaintext).map_err(|_| CipherError::Open)?;
        Secret::parse(text).map_err(|_| CipherError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "an example secret key of more than 32 characters";

    fn cipher(key: &str) -> XChaChaSecretCipher {
        XChaChaSecretCipher::new(key).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rejects_short_keys() {
        let short = "x".repeat(XChaChaSecretCipher::MIN_SECRET_KEY_CHARS - 1);
        assert!(matches!(XChaChaSecretCipher::new(&short), Err(SecretKeyError::TooShort { min_chars: 32 })));
        assert!(XChaChaSecretCipher::new(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn the_same_key_opens_what_it_sealed_after_a_restart() {
        let slot = SecretSlot { table: "sources", column: "pg_password", row_id: 3 };
        let secret = Secret::parse("pw").unwrap_or_else(|e| panic!("{e}"));
        let sealed = cipher(KEY).seal(&secret, slot).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 2 + 16, "version, nonce, ciphertext, tag");
        assert_eq!(cipher(KEY).open(&sealed, slot).ok(), Some(secret));
    }

    #[test]
    fn an_unknown_format_version_does_not_open() {
        let slot = SecretSlot { table: "sources", column: "pg_password", row_id: 3 };
        let secret = Secret::parse("pw").unwrap_or_else(|e| panic!("{e}"));
        let mut sealed = cipher(KEY).seal(&secret, slot).unwrap_or_else(|e| panic!("{e}"));
        sealed[0] = 2;
        assert!(matches!(cipher(KEY).open(&sealed, slot), Err(CipherError::Open)));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", cipher(KEY)), "XChaChaSecretCipher { .. }");
    }
}
