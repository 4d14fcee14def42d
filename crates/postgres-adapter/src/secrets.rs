//! Sealing secrets for their row, the one place the repositories touch plaintext.

use rosetta_domain::{Patch, Secret};
use rosetta_ports::outbound::{CipherError, SecretCipher, SecretSlot};

/// The slot of a source's password.
pub(crate) fn source_password_slot(source_id: i64) -> SecretSlot {
    SecretSlot { table: "sources", column: "pg_password", row_id: source_id }
}

/// The slot of a destination's private-key passphrase.
pub(crate) fn destination_passphrase_slot(destination_id: i64) -> SecretSlot {
    SecretSlot { table: "destinations", column: "snowflake_private_key_passphrase", row_id: destination_id }
}

/// A secret patch as a change of the sealed column: `None` keeps it, `Some(None)` clears it,
/// `Some(Some(bytes))` stores a new sealed value.
pub(crate) fn seal_patch(
    cipher: &dyn SecretCipher,
    patch: &Patch<Secret>,
    slot: SecretSlot,
) -> Result<Option<Option<Vec<u8>>>, CipherError> {
    match patch {
        Patch::Keep => Ok(None),
        Patch::Clear => Ok(Some(None)),
        Patch::Set(secret) => cipher.seal(secret, slot).map(|sealed| Some(Some(sealed))),
    }
}
