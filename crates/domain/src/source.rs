use std::num::NonZeroU16;

use crate::invalid::{InvalidKind, InvalidValue};
use crate::text::{check_length, check_no_control, resource_name, string_value};
use crate::{Patch, PgSslMode, PgSslRootCert, Secret, SourceId, Timestamp};

resource_name!(
    /// A source's unique name: 1–255 letters, digits, `-`, `_`, lower-cased.
    SourceName
);

string_value!(
    /// The host name or address of a source's PostgreSQL server: 1–255 characters, no
    /// whitespace or control characters.
    PgHost,
    |value| check_length(&value, 1, 255).and_then(|()| {
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(InvalidValue::new(InvalidKind::PatternMismatch, "must not contain whitespace or control characters"))
        } else {
            Ok(value)
        }
    })
);

string_value!(
    /// The database to replicate from: 1–255 characters, no control characters.
    PgDatabase,
    |value| check_length(&value, 1, 255).and_then(|()| check_no_control(&value)).map(|()| value)
);

string_value!(
    /// The role Rosetta and the CDC engine log in as: 1–255 characters, no control characters.
    PgUsername,
    |value| check_length(&value, 1, 255).and_then(|()| check_no_control(&value)).map(|()| value)
);

string_value!(
    /// A PostgreSQL publication: an unquoted identifier `[A-Za-z_][A-Za-z0-9_]*` of at most 63
    /// bytes (PostgreSQL's `NAMEDATALEN - 1`), so it can be used in SQL without quoting.
    PublicationName,
    |value| {
        let mut chars = value.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if value.is_empty() {
            Err(InvalidValue::new(InvalidKind::TooShort, "must not be empty"))
        } else if value.len() > 63 {
            Err(InvalidValue::new(InvalidKind::TooLong, "must be at most 63 bytes"))
        } else if !well_formed {
            Err(InvalidValue::new(
                InvalidKind::PatternMismatch,
                "must be a PostgreSQL identifier: a letter or '_' followed by letters, digits or '_'",
            ))
        } else {
            Ok(value)
        }
    }
);

/// The TCP port of a source's PostgreSQL server: 1–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "i64", into = "u16"))]
pub struct PgPort(NonZeroU16);

impl PgPort {
    /// PostgreSQL's default port, used when a source is created without one.
    pub const DEFAULT: Self = Self(NonZeroU16::new(5432).expect("5432 is not zero"));

    /// Parses a port in 1–65535.
    pub fn new(port: i64) -> Result<Self, InvalidValue> {
        if port < 1 {
            return Err(InvalidValue::new(InvalidKind::TooSmall, "must be at least 1"));
        }
        u16::try_from(port)
            .ok()
            .and_then(NonZeroU16::new)
            .map(Self)
            .ok_or_else(|| InvalidValue::new(InvalidKind::TooLarge, "must be at most 65535"))
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl Default for PgPort {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<i64> for PgPort {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<PgPort> for u16 {
    fn from(value: PgPort) -> u16 {
        value.get()
    }
}

/// The CDC engine's replication identifier for a source: a non-negative integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "i64", into = "i64"))]
pub struct ReplicationId(i64);

impl ReplicationId {
    /// Parses a replication id (≥ 0).
    pub fn new(value: i64) -> Result<Self, InvalidValue> {
        if value < 0 {
            return Err(InvalidValue::new(InvalidKind::TooSmall, "must be at least 0"));
        }
        Ok(Self(value))
    }

    /// The identifier.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for ReplicationId {
    type Error = InvalidValue;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ReplicationId> for i64 {
    fn from(value: ReplicationId) -> i64 {
        value.0
    }
}

/// A PostgreSQL database to replicate from, as read back: the password is never part of it,
/// only whether one is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The source's identifier.
    pub id: SourceId,
    /// Unique, lower-cased name.
    pub name: SourceName,
    /// Server host.
    pub pg_host: PgHost,
    /// Server port.
    pub pg_port: PgPort,
    /// Database name.
    pub pg_database: PgDatabase,
    /// Login role.
    pub pg_username: PgUsername,
    /// Whether a password is stored (encrypted) for this source.
    pub has_password: bool,
    /// How connections to the source use TLS.
    pub pg_sslmode: PgSslMode,
    /// The roots trusted when verifying the server (`None`: the system's roots).
    pub pg_sslrootcert: Option<PgSslRootCert>,
    /// The publication the CDC engine subscribes to.
    pub publication_name: PublicationName,
    /// The CDC engine's replication identifier.
    pub replication_id: ReplicationId,
    /// When the source was created.
    pub created_at: Timestamp,
    /// When the source was last changed.
    pub updated_at: Timestamp,
}

/// What it takes to create a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Unique name.
    pub name: SourceName,
    /// Server host.
    pub pg_host: PgHost,
    /// Server port.
    pub pg_port: PgPort,
    /// Database name.
    pub pg_database: PgDatabase,
    /// Login role.
    pub pg_username: PgUsername,
    /// Optional login password; stored encrypted, never returned.
    pub pg_password: Option<Secret>,
    /// How connections to the source use TLS.
    pub pg_sslmode: PgSslMode,
    /// The roots trusted when verifying the server (`None`: the system's roots).
    pub pg_sslrootcert: Option<PgSslRootCert>,
    /// Publication name.
    pub publication_name: PublicationName,
    /// Replication identifier.
    pub replication_id: ReplicationId,
}

/// A partial update of a source. `None` keeps a field; `pg_password` may also be cleared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcePatch {
    /// New name.
    pub name: Option<SourceName>,
    /// New host.
    pub pg_host: Option<PgHost>,
    /// New port.
    pub pg_port: Option<PgPort>,
    /// New database.
    pub pg_database: Option<PgDatabase>,
    /// New login role.
    pub pg_username: Option<PgUsername>,
    /// Keep, clear or replace the password.
    pub pg_password: Patch<Secret>,
    /// New TLS mode.
    pub pg_sslmode: Option<PgSslMode>,
    /// Keep, clear (use the system's roots) or replace the trusted roots.
    pub pg_sslrootcert: Patch<PgSslRootCert>,
    /// New publication name.
    pub publication_name: Option<PublicationName>,
    /// New replication id.
    pub replication_id: Option<ReplicationId>,
}

impl SourcePatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.pg_host.is_none()
            && self.pg_port.is_none()
            && self.pg_database.is_none()
            && self.pg_username.is_none()
            && self.pg_password.is_keep()
            && self.pg_sslmode.is_none()
            && self.pg_sslrootcert.is_keep()
            && self.publication_name.is_none()
            && self.replication_id.is_none()
    }

    /// Applies the non-secret fields of the patch to a source read back from storage.
    /// `has_password` follows the password patch; timestamps are left to the caller.
    pub fn apply_to(&self, source: &mut Source) {
        if let Some(name) = &self.name {
            source.name = name.clone();
        }
        if let Some(host) = &self.pg_host {
            source.pg_host = host.clone();
        }
        if let Some(port) = self.pg_port {
            source.pg_port = port;
        }
        if let Some(database) = &self.pg_database {
            source.pg_database = database.clone();
        }
        if let Some(username) = &self.pg_username {
            source.pg_username = username.clone();
        }
        match self.pg_password {
            Patch::Keep => {}
            Patch::Clear => source.has_password = false,
            Patch::Set(_) => source.has_password = true,
        }
        if let Some(mode) = self.pg_sslmode {
            source.pg_sslmode = mode;
        }
        match &self.pg_sslrootcert {
            Patch::Keep => {}
            Patch::Clear => source.pg_sslrootcert = None,
            Patch::Set(root) => source.pg_sslrootcert = Some(root.clone()),
        }
        if let Some(publication) = &self.publication_name {
            source.publication_name = publication.clone();
        }
        if let Some(replication_id) = self.replication_id {
            source.replication_id = replication_id;
        }
    }
}

/// Everything needed to connect to a source, including its decrypted password. Only the WAL
/// monitor and other components that must log in to the source ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConnection {
    /// The source this connection belongs to.
    pub source_id: SourceId,
    /// Server host.
    pub pg_host: PgHost,
    /// Server port.
    pub pg_port: PgPort,
    /// Database name.
    pub pg_database: PgDatabase,
    /// Login role.
    pub pg_username: PgUsername,
    /// Login password, if one is stored.
    pub pg_password: Option<Secret>,
    /// How the connection uses TLS.
    pub pg_sslmode: PgSslMode,
    /// The roots trusted when verifying the server (`None`: the system's roots).
    pub pg_sslrootcert: Option<PgSslRootCert>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_bounded() {
        assert_eq!(SourceName::parse("Orders-DB_1").unwrap().as_str(), "orders-db_1");
        assert_eq!(SourceName::parse("").unwrap_err().kind, InvalidKind::TooShort);
        assert!(SourceName::parse("a".repeat(255)).is_ok());
        assert_eq!(SourceName::parse("a".repeat(256)).unwrap_err().kind, InvalidKind::TooLong);
        assert_eq!(SourceName::parse("has space").unwrap_err().kind, InvalidKind::PatternMismatch);
        assert_eq!(SourceName::parse("dot.name").unwrap_err().kind, InvalidKind::PatternMismatch);
    }

    #[test]
    fn port_bounds() {
        assert_eq!(PgPort::new(0).unwrap_err().kind, InvalidKind::TooSmall);
        assert_eq!(PgPort::new(-1).unwrap_err().kind, InvalidKind::TooSmall);
        assert_eq!(PgPort::new(65536).unwrap_err().kind, InvalidKind::TooLarge);
        assert_eq!(PgPort::new(1).unwrap().get(), 1);
        assert_eq!(PgPort::new(65535).unwrap().get(), 65535);
        assert_eq!(PgPort::default().get(), 5432);
    }

    #[test]
    fn publication_names_are_identifiers() {
        assert!(PublicationName::parse("cdc_pub").is_ok());
        assert!(PublicationName::parse("_p1").is_ok());
        assert!(PublicationName::parse("a".repeat(63)).is_ok());
        assert_eq!(PublicationName::parse("a".repeat(64)).unwrap_err().kind, InvalidKind::TooLong);
        for bad in ["1pub", "pub'x", "pub x", "pub-x", "pub\"", "é"] {
            assert_eq!(PublicationName::parse(bad).unwrap_err().kind, InvalidKind::PatternMismatch, "{bad}");
        }
        assert_eq!(PublicationName::parse("").unwrap_err().kind, InvalidKind::TooShort);
    }

    #[test]
    fn host_rejects_whitespace_and_bounds() {
        assert!(PgHost::parse("db.example.com").is_ok());
        assert!(PgHost::parse("db example").is_err());
        assert!(PgHost::parse("").is_err());
        assert!(PgHost::parse("h".repeat(256)).is_err());
    }

    #[test]
    fn replication_id_is_non_negative() {
        assert!(ReplicationId::new(-1).is_err());
        assert_eq!(ReplicationId::new(0).unwrap().get(), 0);
    }
}
