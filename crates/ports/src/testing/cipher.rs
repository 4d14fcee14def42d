//! The contract of [`SecretCipher`] and a transparent cipher for tests of other components.

use rosetta_domain::Secret;

use crate::outbound::{CipherError, SecretCipher, SecretSlot};

const SLOT: SecretSlot = SecretSlot { table: "sources", column: "pg_password", row_id: 1 };

/// Makes the ciphers a [`SecretCipher`] contract case checks.
pub trait CipherFactory: Send + Sync {
    /// A cipher with some key.
    fn cipher(&self) -> Box<dyn SecretCipher>;
    /// The same implementation configured with a different key.
    fn other_key(&self) -> Box<dyn SecretCipher>;
}

#[allow(clippy::unwrap_used)]
fn secret() -> Secret {
    Secret::parse("correct horse battery staple").unwrap()
}

fn sealed(cipher: &dyn SecretCipher) -> Vec<u8> {
    cipher.seal(&secret(), SLOT).unwrap_or_else(|e| panic!("seal failed: {e}"))
}

contract! { $ secret_cipher_contract_tests, testing::cipher, CipherFactory:
    /// A sealed secret opens to itself.
    async fn cipher_round_trips(factory) {
        let cipher = factory.cipher();
        let opened = cipher.open(&sealed(cipher.as_ref()), SLOT).unwrap_or_else(|e| panic!("open of a fresh seal failed: {e}"));
        assert_eq!(opened, secret(), "round trip changed the secret");
    }

    /// Two seals of one secret differ (random nonce), and neither holds the plaintext.
    async fn cipher_seals_are_randomised_and_opaque(factory) {
        let cipher = factory.cipher();
        let (first, second) = (sealed(cipher.as_ref()), sealed(cipher.as_ref()));
        assert_ne!(first, second, "two seals of one secret must differ (random nonce)");
        let plain = secret();
        assert!(
            !first.windows(plain.expose().len()).any(|w| w == plain.expose().as_bytes()),
            "sealed bytes contain the plaintext"
        );
    }

    /// A value sealed for one slot does not open for another (row, column or table).
    async fn cipher_binds_the_value_to_its_slot(factory) {
        let cipher = factory.cipher();
        let bytes = sealed(cipher.as_ref());
        for other_slot in [
            SecretSlot { row_id: 2, ..SLOT },
            SecretSlot { column: "other", ..SLOT },
            SecretSlot { table: "destinations", ..SLOT },
        ] {
            assert!(
                matches!(cipher.open(&bytes, other_slot), Err(CipherError::Tampered)),
                "a value sealed for {SLOT:?} opened for {other_slot:?}"
            );
        }
    }

    /// Another key does not open it, and says the value's key is not configured (not "tampered").
    async fn cipher_refuses_another_key(factory) {
        let cipher = factory.cipher();
        let bytes = sealed(cipher.as_ref());
        let other = factory.other_key();
        assert_eq!(other.open(&bytes, SLOT), Err(CipherError::UnknownKey), "opened with another key");
        assert_eq!(cipher.key_id(&bytes), Some(cipher.current_key_id()), "the value records its key");
        assert_ne!(other.current_key_id(), cipher.current_key_id(), "two keys, two ids");
    }

    /// Tampered or truncated bytes do not open.
    async fn cipher_refuses_tampered_and_truncated_values(factory) {
        let cipher = factory.cipher();
        let bytes = sealed(cipher.as_ref());
        let mut tampered = bytes.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 0x01;
        }
        assert_eq!(cipher.open(&tampered, SLOT), Err(CipherError::Tampered), "tampered bytes opened");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(cipher.open(&bytes[..cut], SLOT), Err(CipherError::Tampered), "truncated bytes opened");
        }
    }
}

/// A cipher for tests of components that only need *a* cipher: it binds the value to the slot
/// and a key byte but does **not** keep anything secret. Never use it outside tests.
#[derive(Debug, Clone, Copy)]
pub struct InsecureTestCipher {
    key: u8,
}

impl InsecureTestCipher {
    /// A test cipher with the given key byte (two different keys cannot open each other's values).
    pub fn new(key: u8) -> Self {
        Self { key }
    }

    fn mask(&self, nonce: u8, index: usize) -> u8 {
        self.key ^ nonce ^ (index as u8).wrapping_mul(31) ^ 0x5a
    }
}

impl SecretCipher for InsecureTestCipher {
    fn seal(&self, secret: &Secret, slot: SecretSlot) -> Result<Vec<u8>, CipherError> {
        use std::sync::atomic::{AtomicU8, Ordering};
        static NONCE: AtomicU8 = AtomicU8::new(1);
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
        let aad = slot.associated_data();
        let mut out = vec![self.key, nonce, u8::try_from(aad.len() % 256).map_err(|_| CipherError::Seal)?];
        out.extend(aad.iter().map(|b| b ^ self.key));
        out.extend(secret.expose().bytes().enumerate().map(|(i, b)| b ^ self.mask(nonce, i)));
        Ok(out)
    }

    fn open(&self, sealed: &[u8], slot: SecretSlot) -> Result<Secret, CipherError> {
        let aad = slot.associated_data();
        let (&[key, nonce, aad_len], rest) = sealed.split_first_chunk::<3>().ok_or(CipherError::Tampered)?;
        if usize::from(aad_len) != aad.len() % 256 || rest.len() <= aad.len() {
            return Err(CipherError::Tampered);
        }
        if key != self.key {
            return Err(CipherError::UnknownKey);
        }
        let (stored_aad, body) = rest.split_at(aad.len());
        if stored_aad.iter().zip(&aad).any(|(s, a)| s ^ self.key != *a) {
            return Err(CipherError::Tampered);
        }
        let plain: Vec<u8> = body.iter().enumerate().map(|(i, b)| b ^ self.mask(nonce, i)).collect();
        let text = String::from_utf8(plain).map_err(|_| CipherError::Tampered)?;
        Secret::parse(text).map_err(|_| CipherError::Tampered)
    }

    fn key_id(&self, sealed: &[u8]) -> Option<String> {
        sealed.first().map(|key| format!("{key:02x}"))
    }

    fn current_key_id(&self) -> String {
        format!("{:02x}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_insecure_test_cipher_binds_to_slot_and_key() {
        // It cannot detect every single-bit tamper (no MAC), so only the binding parts are checked.
        let cipher = InsecureTestCipher::new(1);
        let other = InsecureTestCipher::new(2);
        #[allow(clippy::unwrap_used)]
        let secret = Secret::parse("pw").unwrap();
        let sealed = cipher.seal(&secret, SLOT).unwrap();
        assert_eq!(cipher.open(&sealed, SLOT).unwrap(), secret);
        assert!(cipher.open(&sealed, SecretSlot { row_id: 9, ..SLOT }).is_err());
        assert!(other.open(&sealed, SLOT).is_err());
    }
}
