//! Encryption of stored secrets: XChaCha20-Poly1305 with keys derived from `SECRET_KEYS`
//! (newest first), each value recording the id of the key that sealed it.

use std::fmt;

use chacha20poly1305::aead::{Aead, Generate, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rosetta_domain::Secret;
use rosetta_ports::outbound::{CipherError, SecretCipher, SecretSlot};
use sha2::Sha256;

/// The format before key ids: `1 || nonce || ciphertext`. Still opened (by trying every
/// configured key); `rotate-secrets` and start-up rewrite such values in the current format.
const LEGACY_FORMAT: u8 = 1;
/// The current format: `2 || key id (8 bytes) || nonce || ciphertext`.
const FORMAT_VERSION: u8 = 2;
/// A key id: enough bytes that two configured keys never collide by chance.
const KEY_ID_LEN: usize = 8;
/// XChaCha20's nonce: 24 bytes, large enough to pick at random for every seal.
const NONCE_LEN: usize = 24;
/// Poly1305's tag.
const TAG_LEN: usize = 16;
/// HKDF salt and info: bind the derived key to this use, so the same `SECRET_KEY` used for
/// something else never yields the same key.
const HKDF_SALT: &[u8] = b"rosetta/secret-cipher";
const HKDF_INFO: &[u8] = b"rosetta/v1/xchacha20poly1305";
/// A key's id is derived with another label, so it says nothing about the encryption key.
const KEY_ID_INFO: &[u8] = b"rosetta/v1/key-id";

/// Why a [`XChaChaSecretCipher`] could not be built. Never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// No key was given.
    #[error("at least one secret key is required")]
    NoKey,
    /// A configured key is too short to be a credible secret.
    #[error("secret key {position} must be at least {min_chars} characters long")]
    TooShort {
        /// Its position in the list, from 1 (the newest).
        position: usize,
        /// The minimum length, in characters.
        min_chars: usize,
    },
    /// The same key is listed twice.
    #[error("secret key {position} repeats an earlier key")]
    Duplicate {
        /// Its position in the list, from 1.
        position: usize,
    },
    /// HKDF refused to derive the encryption key.
    #[error("the encryption key cannot be derived from the secret key")]
    Derivation,
}

/// One configured key: its id and its AEAD.
struct CipherKey {
    id: [u8; KEY_ID_LEN],
    aead: XChaCha20Poly1305,
}

/// Seals secrets with XChaCha20-Poly1305 as `version || key id || nonce || ciphertext` under
/// the newest key, authenticating [`SecretSlot::associated_data`] so a value only opens in the
/// row and column it was sealed for; opens values of any configured key.
pub struct XChaChaSecretCipher {
    /// Newest first; never empty.
    keys: Vec<CipherKey>,
}

impl XChaChaSecretCipher {
    /// The shortest accepted key, in characters.
    pub const MIN_SECRET_KEY_CHARS: usize = 32;

    /// A cipher with one key (`SECRET_KEY`).
    pub fn new(secret_key: &str) -> Result<Self, SecretKeyError> {
        Self::with_keys(&[secret_key])
    }

    /// A cipher with `keys`, newest first (`SECRET_KEYS`): the first seals, all open. Each
    /// encryption key is derived with HKDF-SHA256, which turns any long passphrase into a
    /// uniformly random 256-bit key; its id with another HKDF label.
    pub fn with_keys(keys: &[&str]) -> Result<Self, SecretKeyError> {
        if keys.is_empty() {
            return Err(SecretKeyError::NoKey);
        }
        let mut derived: Vec<CipherKey> = Vec::with_capacity(keys.len());
        for (index, secret_key) in keys.iter().enumerate() {
            let position = index + 1;
            if secret_key.chars().count() < Self::MIN_SECRET_KEY_CHARS {
                return Err(SecretKeyError::TooShort { position, min_chars: Self::MIN_SECRET_KEY_CHARS });
            }
            let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), secret_key.as_bytes());
            let mut key = Key::default();
            hkdf.expand(HKDF_INFO, &mut key).map_err(|_| SecretKeyError::Derivation)?;
            let mut id = [0u8; KEY_ID_LEN];
            hkdf.expand(KEY_ID_INFO, &mut id).map_err(|_| SecretKeyError::Derivation)?;
            if derived.iter().any(|earlier| earlier.id == id) {
                return Err(SecretKeyError::Duplicate { position });
            }
            derived.push(CipherKey { id, aead: XChaCha20Poly1305::new(&key) });
        }
        Ok(Self { keys: derived })
    }

    /// The configured keys' ids, newest first (hex; safe to log).
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|key| hex(&key.id)).collect()
    }

    fn newest(&self) -> &CipherKey {
        // `with_keys` refuses an empty list.
        &self.keys[0]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens `nonce || ciphertext` with `aead`.
fn decrypt(aead: &XChaCha20Poly1305, body: &[u8], aad: &[u8]) -> Result<Secret, CipherError> {
    let (nonce, ciphertext) = body.split_at_checked(NONCE_LEN).ok_or(CipherError::Tampered)?;
    let nonce = XNonce::try_from(nonce).map_err(|_| CipherError::Tampered)?;
    let plaintext = aead.decrypt(&nonce, Payload { msg: ciphertext, aad }).map_err(|_| CipherError::Tampered)?;
    let text = String::from_utf8(plaintext).map_err(|_| CipherError::Tampered)?;
    Secret::parse(text).map_err(|_| CipherError::Tampered)
}

impl fmt::Debug for XChaChaSecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XChaChaSecretCipher").field("key_ids", &self.key_ids()).finish()
    }
}

impl SecretCipher for XChaChaSecretCipher {
    fn seal(&self, secret: &Secret, slot: SecretSlot) -> Result<Vec<u8>, CipherError> {
        let key = self.newest();
        let nonce = XNonce::try_generate().map_err(|_| CipherError::Seal)?;
        let aad = slot.associated_data();
        let ciphertext = key
            .aead
            .encrypt(&nonce, Payload { msg: secret.expose().as_bytes(), aad: &aad })
            .map_err(|_| CipherError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_VERSION);
        sealed.extend_from_slice(&key.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    fn open(&self, sealed: &[u8], slot: SecretSlot) -> Result<Secret, CipherError> {
        let aad = slot.associated_data();
        match sealed.split_first() {
            Some((&FORMAT_VERSION, rest)) => {
                let (id, body) = rest.split_at_checked(KEY_ID_LEN).ok_or(CipherError::Tampered)?;
                if body.len() < NONCE_LEN + TAG_LEN {
                    return Err(CipherError::Tampered);
                }
                let key = self.keys.iter().find(|key| key.id == id).ok_or(CipherError::UnknownKey)?;
                decrypt(&key.aead, body, &aad)
            }
            // No key id: whichever configured key opens it sealed it.
            Some((&LEGACY_FORMAT, body)) => {
                self.keys.iter().find_map(|key| decrypt(&key.aead, body, &aad).ok()).ok_or(CipherError::Tampered)
            }
            _ => Err(CipherError::Tampered),
        }
    }

    fn key_id(&self, sealed: &[u8]) -> Option<String> {
        match sealed.split_first() {
            Some((&FORMAT_VERSION, rest)) => rest.get(..KEY_ID_LEN).map(hex),
            _ => None,
        }
    }

    fn current_key_id(&self) -> String {
        hex(&self.newest().id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "an example secret key of more than 32 characters";
    const NEWER: &str = "a newer secret key, also more than 32 characters";

    fn cipher(keys: &[&str]) -> XChaChaSecretCipher {
        XChaChaSecretCipher::with_keys(keys).unwrap_or_else(|e| panic!("{e}"))
    }

    fn slot() -> SecretSlot {
        SecretSlot { table: "sources", column: "pg_password", row_id: 3 }
    }

    fn secret() -> Secret {
        Secret::parse("pw").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rejects_short_missing_and_repeated_keys() {
        let short = "x".repeat(XChaChaSecretCipher::MIN_SECRET_KEY_CHARS - 1);
        assert!(matches!(
            XChaChaSecretCipher::with_keys(&[KEY, &short]),
            Err(SecretKeyError::TooShort { position: 2, min_chars: 32 })
        ));
        assert!(XChaChaSecretCipher::new(&"x".repeat(32)).is_ok());
        assert!(matches!(XChaChaSecretCipher::with_keys(&[]), Err(SecretKeyError::NoKey)));
        assert!(matches!(
            XChaChaSecretCipher::with_keys(&[KEY, NEWER, KEY]),
            Err(SecretKeyError::Duplicate { position: 3 })
        ));
    }

    #[test]
    fn the_same_key_opens_what_it_sealed_after_a_restart() {
        let sealed = cipher(&[KEY]).seal(&secret(), slot()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sealed.len(), 1 + KEY_ID_LEN + NONCE_LEN + 2 + TAG_LEN, "version, key id, nonce, ciphertext, tag");
        assert_eq!(cipher(&[KEY]).open(&sealed, slot()).ok(), Some(secret()));
    }

    #[test]
    fn key_ids_come_from_the_keys_not_their_order() {
        let old_then_new = cipher(&[KEY, NEWER]);
        let new_then_old = cipher(&[NEWER, KEY]);
        let sealed_under_key = old_then_new.seal(&secret(), slot()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old_then_new.key_id(&sealed_under_key), Some(cipher(&[KEY]).current_key_id()));
        assert_eq!(
            new_then_old.open(&sealed_under_key, slot()).ok(),
            Some(secret()),
            "reordering keeps values readable"
        );
        let sealed_under_newer = new_then_old.seal(&secret(), slot()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(new_then_old.key_id(&sealed_under_newer), Some(new_then_old.current_key_id()));
        assert_eq!(cipher(&[KEY]).open(&sealed_under_newer, slot()), Err(CipherError::UnknownKey));
        assert_eq!(new_then_old.key_ids(), vec![cipher(&[NEWER]).current_key_id(), cipher(&[KEY]).current_key_id()]);
        assert!(!format!("{new_then_old:?}").contains("secret key"), "Debug shows ids only");
    }

    #[test]
    fn a_value_of_the_format_before_key_ids_opens_with_any_configured_key() {
        // `1 || nonce || ciphertext`, as the previous version sealed it.
        let current = cipher(&[KEY]).seal(&secret(), slot()).unwrap_or_else(|e| panic!("{e}"));
        let mut legacy = vec![LEGACY_FORMAT];
        legacy.extend_from_slice(&current[1 + KEY_ID_LEN..]);
        assert_eq!(cipher(&[NEWER, KEY]).open(&legacy, slot()).ok(), Some(secret()));
        assert_eq!(cipher(&[NEWER, KEY]).key_id(&legacy), None, "it records no key");
        assert_eq!(cipher(&[NEWER]).open(&legacy, slot()), Err(CipherError::Tampered));
    }

    #[test]
    fn an_unknown_format_version_does_not_open() {
        let mut sealed = cipher(&[KEY]).seal(&secret(), slot()).unwrap_or_else(|e| panic!("{e}"));
        sealed[0] = 3;
        assert_eq!(cipher(&[KEY]).open(&sealed, slot()), Err(CipherError::Tampered));
    }
}
