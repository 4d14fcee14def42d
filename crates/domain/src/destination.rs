use crate::invalid::{InvalidKind, InvalidValue};
use crate::text::{check_length, resource_name, string_value};
use crate::{DestinationId, Patch, Secret, ShortText, Timestamp};

resource_name!(
    /// A destination's unique name: 1–255 letters, digits, `-`, `_`, lower-cased.
    DestinationName
);

string_value!(
    /// A Snowflake account identifier: 1–255 letters, digits, `.` or `-`.
    SnowflakeAccount,
    |value| check_length(&value, 1, 255).and_then(|()| {
        if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            Ok(value)
        } else {
            Err(InvalidValue::new(InvalidKind::PatternMismatch, "may contain only letters, digits, '.' and '-'"))
        }
    })
);

/// The non-secret connection settings of a Snowflake warehouse. Every field is optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnowflakeSettings {
    /// Account identifier.
    pub snowflake_account: Option<SnowflakeAccount>,
    /// Login user.
    pub snowflake_user: Option<ShortText>,
    /// Database.
    pub snowflake_database: Option<ShortText>,
    /// Schema.
    pub snowflake_schema: Option<ShortText>,
    /// Role.
    pub snowflake_role: Option<ShortText>,
    /// Path of the private key file on the CDC engine's host.
    pub snowflake_private_key_path: Option<ShortText>,
    /// Host, when not derived from the account.
    pub snowflake_host: Option<ShortText>,
}

/// A Snowflake warehouse to replicate into, as read back: the key passphrase is never part of
/// it, only whether one is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The destination's identifier.
    pub id: DestinationId,
    /// Unique, lower-cased name.
    pub name: DestinationName,
    /// Connection settings.
    pub settings: SnowflakeSettings,
    /// Whether a private-key passphrase is stored (encrypted).
    pub has_private_key_passphrase: bool,
    /// When the destination was created.
    pub created_at: Timestamp,
    /// When the destination was last changed.
    pub updated_at: Timestamp,
}

/// What it takes to create a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDestination {
    /// Unique name.
    pub name: DestinationName,
    /// Connection settings.
    pub settings: SnowflakeSettings,
    /// Optional private-key passphrase; stored encrypted, never returned.
    pub snowflake_private_key_passphrase: Option<Secret>,
}

/// A partial update of a destination: `name` may be kept or replaced, every other field kept,
/// cleared or replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationPatch {
    /// New name.
    pub name: Option<DestinationName>,
    /// Account identifier.
    pub snowflake_account: Patch<SnowflakeAccount>,
    /// Login user.
    pub snowflake_user: Patch<ShortText>,
    /// Database.
    pub snowflake_database: Patch<ShortText>,
    /// Schema.
    pub snowflake_schema: Patch<ShortText>,
    /// Role.
    pub snowflake_role: Patch<ShortText>,
    /// Private key path.
    pub snowflake_private_key_path: Patch<ShortText>,
    /// Host.
    pub snowflake_host: Patch<ShortText>,
    /// Keep, clear or replace the passphrase.
    pub snowflake_private_key_passphrase: Patch<Secret>,
}

impl DestinationPatch {
    /// Applies the non-secret fields to a destination read back from storage;
    /// `has_private_key_passphrase` follows the passphrase patch; timestamps are left to the caller.
    pub fn apply_to(&self, destination: &mut Destination) {
        if let Some(name) = &self.name {
            destination.name = name.clone();
        }
        let s = &mut destination.settings;
        s.snowflake_account = self.snowflake_account.clone().apply(s.snowflake_account.take());
        s.snowflake_user = self.snowflake_user.clone().apply(s.snowflake_user.take());
        s.snowflake_database = self.snowflake_database.clone().apply(s.snowflake_database.take());
        s.snowflake_schema = self.snowflake_schema.clone().apply(s.snowflake_schema.take());
        s.snowflake_role = self.snowflake_role.clone().apply(s.snowflake_role.take());
        s.snowflake_private_key_path =
            self.snowflake_private_key_path.clone().apply(s.snowflake_private_key_path.take());
        s.snowflake_host = self.snowflake_host.clone().apply(s.snowflake_host.take());
        match self.snowflake_private_key_passphrase {
            Patch::Keep => {}
            Patch::Clear => destination.has_private_key_passphrase = false,
            Patch::Set(_) => destination.has_private_key_passphrase = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_charset() {
        assert!(SnowflakeAccount::parse("xy12345.eu-central-1").is_ok());
        assert!(SnowflakeAccount::parse("").is_err());
        assert!(SnowflakeAccount::parse("acc_1").is_err());
        assert!(SnowflakeAccount::parse("acc 1").is_err());
    }
}
