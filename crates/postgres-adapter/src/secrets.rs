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

/// The slot of a notification channel's URL.
pub(crate) fn url_slot(channel_id: i64) -> SecretSlot {
    SecretSlot { table: "notification_channels", column: "url", row_id: channel_id }
}

/// The slot of a webhook channel's signing secret.
pub(crate) fn signing_secret_slot(channel_id: i64) -> SecretSlot {
    SecretSlot { table: "notification_channels", column: "signing_secret", row_id: channel_id }
}

/// A column of sealed values: where it is and the slot each row's value is bound to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealedColumn {
    /// The table.
    pub(crate) table: &'static str,
    /// The `bytea` column holding the sealed values (null: none stored).
    pub(crate) column: &'static str,
    /// The slot of row `id`'s value.
    pub(crate) slot: fn(i64) -> SecretSlot,
}

/// Every column of sealed values, so key rotation cannot miss one: a test compares it with the
/// schema's `bytea` columns.
pub(crate) const SEALED_COLUMNS: [SealedColumn; 5] = [
    SealedColumn { table: "sources", column: "pg_password_sealed", slot: source_password_slot },
    SealedColumn {
        table: "destinations",
        column: "snowflake_private_key_passphrase_sealed",
        slot: destination_passphrase_slot,
    },
    SealedColumn { table: "notification_channels", column: "url_sealed", slot: url_slot },
    SealedColumn { table: "notification_channels", column: "signing_secret_sealed", slot: signing_secret_slot },
    SealedColumn { table: "cleanup_tasks", column: "pg_password_sealed", slot: cleanup_password_slot },
];

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
