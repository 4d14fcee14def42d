//! Sealing secrets for their row, the one place the repositories touch plaintext.

use rosetta_domain::{
    Patch, PgDatabase, PgHost, PgPort, PgSslMode, PgSslRootCert, PgUsername, Secret, SourceConnection, SourceId,
};
use rosetta_ports::outbound::{CipherError, ConnectionSettingsError, SecretCipher, SecretSlot};

use crate::error::{CorruptRow, StoredRow};

/// Login settings as a row stores them, the password sealed.
#[derive(Debug)]
pub(crate) struct StoredLogin {
    pub(crate) pg_host: String,
    pub(crate) pg_port: i32,
    pub(crate) pg_database: String,
    pub(crate) pg_username: String,
    pub(crate) pg_password_sealed: Option<Vec<u8>>,
    pub(crate) pg_sslmode: String,
    pub(crate) pg_sslrootcert: Option<String>,
}

impl StoredLogin {
    /// The settings of `source_id` with the password opened from `slot`, or why they cannot be
    /// used (`row` names the row in the error).
    pub(crate) fn open(
        self,
        row: StoredRow,
        source_id: SourceId,
        slot: SecretSlot,
        cipher: &dyn SecretCipher,
    ) -> Result<SourceConnection, ConnectionSettingsError> {
        let corrupt = |error: CorruptRow| ConnectionSettingsError::Corrupt(error.to_string());
        let pg_host = row.field("pg_host", PgHost::parse(self.pg_host)).map_err(corrupt)?;
        let pg_port = row.field("pg_port", PgPort::new(i64::from(self.pg_port))).map_err(corrupt)?;
        let pg_database = row.field("pg_database", PgDatabase::parse(self.pg_database)).map_err(corrupt)?;
        let pg_username = row.field("pg_username", PgUsername::parse(self.pg_username)).map_err(corrupt)?;
        let pg_sslmode = row.field("pg_sslmode", PgSslMode::parse(&self.pg_sslmode)).map_err(corrupt)?;
        let pg_sslrootcert = self
            .pg_sslrootcert
            .map(|pem| row.field("pg_sslrootcert", PgSslRootCert::parse(pem)))
            .transpose()
            .map_err(corrupt)?;
        let pg_password = self
            .pg_password_sealed
            .map(|sealed| cipher.open(&sealed, slot))
            .transpose()
            .map_err(|reason| ConnectionSettingsError::UnreadableSecret { column: "pg_password", reason })?;
        Ok(SourceConnection {
            source_id,
            pg_host,
            pg_port,
            pg_database,
            pg_username,
            pg_password,
            pg_sslmode,
            pg_sslrootcert,
        })
    }
}

/// The slot of a source's password.
pub(crate) fn source_password_slot(source_id: i64) -> SecretSlot {
    SecretSlot { table: "sources", column: "pg_password", row_id: source_id }
}

/// The slot of a cleanup task's copy of its source's password.
pub(crate) fn cleanup_password_slot(task_id: i64) -> SecretSlot {
    SecretSlot { table: "cleanup_tasks", column: "pg_password", row_id: task_id }
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
