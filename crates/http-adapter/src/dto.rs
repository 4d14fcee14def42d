//! The JSON shapes of the API: response bodies built from domain values, and the write bodies as
//! documented in OpenAPI (they are read by [`crate::body`], which owns their exact rules).

pub(crate) mod wal;

use chrono::SecondsFormat;
use rosetta_domain::{
    Destination, PipelineDetails, PipelineMetadata, PipelineMetadataStatus, PipelineStatus, Source, Timestamp,
};
use serde::Serialize;
use utoipa::ToSchema;

/// RFC 3339 in UTC with microseconds and `Z`, e.g. `2026-01-14T10:06:33.454666Z`.
fn timestamp(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A source as read: the password is never returned, only whether one is stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Source)]
pub(crate) struct SourceBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    #[schema(example = "orders-primary")]
    pub name: String,
    /// PostgreSQL host.
    pub pg_host: String,
    /// PostgreSQL port.
    #[schema(example = 5432)]
    pub pg_port: u16,
    /// Database to replicate from.
    pub pg_database: String,
    /// Login role.
    pub pg_username: String,
    /// Whether a password is stored.
    pub has_password: bool,
    /// Publication the CDC engine subscribes to.
    pub publication_name: String,
    /// The CDC engine's replication identifier.
    pub replication_id: i64,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub updated_at: String,
}

impl From<Source> for SourceBody {
    fn from(source: Source) -> Self {
        Self {
            id: source.id.get(),
            name: source.name.into_inner(),
            pg_host: source.pg_host.into_inner(),
            pg_port: source.pg_port.get(),
            pg_database: source.pg_database.into_inner(),
            pg_username: source.pg_username.into_inner(),
            has_password: source.has_password,
            publication_name: source.publication_name.into_inner(),
            replication_id: source.replication_id.get(),
            created_at: timestamp(source.created_at),
            updated_at: timestamp(source.updated_at),
        }
    }
}

/// A destination as read: the key passphrase is never returned, only whether one is stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Destination)]
pub(crate) struct DestinationBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    pub name: String,
    /// Snowflake account identifier.
    pub snowflake_account: Option<String>,
    /// Login user.
    pub snowflake_user: Option<String>,
    /// Database.
    pub snowflake_database: Option<String>,
    /// Schema.
    pub snowflake_schema: Option<String>,
    /// Role.
    pub snowflake_role: Option<String>,
    /// Path of the private key on the CDC engine's host.
    pub snowflake_private_key_path: Option<String>,
    /// Host, when not derived from the account.
    pub snowflake_host: Option<String>,
    /// Whether a private-key passphrase is stored.
    pub has_private_key_passphrase: bool,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub updated_at: String,
}

impl From<Destination> for DestinationBody {
    fn from(destination: Destination) -> Self {
        let settings = destination.settings;
        Self {
            id: destination.id.get(),
            name: destination.name.into_inner(),
            snowflake_account: settings.snowflake_account.map(Into::into),
            snowflake_user: settings.snowflake_user.map(Into::into),
            snowflake_database: settings.snowflake_database.map(Into::into),
            snowflake_schema: settings.snowflake_schema.map(Into::into),
            snowflake_role: settings.snowflake_role.map(Into::into),
            snowflake_private_key_path: settings.snowflake_private_key_path.map(Into::into),
            snowflake_host: settings.snowflake_host.map(Into::into),
            has_private_key_passphrase: destination.has_private_key_passphrase,
            created_at: timestamp(destination.created_at),
            updated_at: timestamp(destination.updated_at),
        }
    }
}

/// The desired state of a pipeline.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = PipelineStatus)]
pub(crate) enum PipelineStatusBody {
    /// Replicate.
    Start,
    /// Stop replicating, keep the position.
    Pause,
    /// Re-copy the tables, then replicate.
    Refresh,
}

impl From<PipelineStatus> for PipelineStatusBody {
    fn from(status: PipelineStatus) -> Self {
        match status {
            PipelineStatus::Start => Self::Start,
            PipelineStatus::Pause => Self::Pause,
            PipelineStatus::Refresh => Self::Refresh,
        }
    }
}

/// The observed state of a pipeline.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = PipelineMetadataStatus)]
pub(crate) enum PipelineMetadataStatusBody {
    /// The engine replicates.
    Running,
    /// The engine holds.
    Paused,
    /// The engine stopped on an error (see `last_error`).
    Error,
}

impl From<PipelineMetadataStatus> for PipelineMetadataStatusBody {
    fn from(status: PipelineMetadataStatus) -> Self {
        match status {
            PipelineMetadataStatus::Running => Self::Running,
            PipelineMetadataStatus::Paused => Self::Paused,
            PipelineMetadataStatus::Error => Self::Error,
        }
    }
}

/// The observed runtime state of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PipelineMetadata)]
pub(crate) struct PipelineMetadataBody {
    /// The pipeline this state belongs to.
    pub pipeline_id: i64,
    /// Observed status.
    pub status: PipelineMetadataStatusBody,
    /// The engine's last error.
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_error_at: Option<String>,
    /// When the pipeline was last started (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_start_at: Option<String>,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<PipelineMetadata> for PipelineMetadataBody {
    fn from(metadata: PipelineMetadata) -> Self {
        Self {
            pipeline_id: metadata.pipeline_id.get(),
            status: metadata.status.into(),
            last_error: metadata.last_error,
            last_error_at: metadata.last_error_at.map(timestamp),
            last_start_at: metadata.last_start_at.map(timestamp),
            created_at: timestamp(metadata.created_at),
            updated_at: timestamp(metadata.updated_at),
        }
    }
}

/// A pipeline with its source, destination and observed state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pipeline)]
pub(crate) struct PipelineBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    pub name: String,
    /// Source id.
    pub source_id: i64,
    /// Destination id.
    pub destination_id: i64,
    /// Desired status.
    pub status: PipelineStatusBody,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The source.
    pub source: SourceBody,
    /// The destination.
    pub destination: DestinationBody,
    /// The observed state.
    pub pipeline_metadata: PipelineMetadataBody,
}

impl From<PipelineDetails> for PipelineBody {
    fn from(details: PipelineDetails) -> Self {
        let pipeline = details.pipeline;
        Self {
            id: pipeline.id.get(),
            name: pipeline.name.into_inner(),
            source_id: pipeline.source_id.get(),
            destination_id: pipeline.destination_id.get(),
            status: pipeline.status.into(),
            created_at: timestamp(pipeline.created_at),
            updated_at: timestamp(pipeline.updated_at),
            source: details.source.into(),
            destination: details.destination.into(),
            pipeline_metadata: pipeline.metadata.into(),
        }
    }
}

// The write bodies below exist for the OpenAPI document only: `crate::body` reads requests
// strictly (all problems at once, no coercion), which serde cannot. A test checks that both agree
// on the field names.

/// The body of `POST /sources`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct SourceCreate {
    /// Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$", example = "orders-primary")]
    name: String,
    /// PostgreSQL host: 1–255 characters, no whitespace.
    #[schema(min_length = 1, max_length = 255, example = "db.internal")]
    pg_host: String,
    /// PostgreSQL port.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535, default = 5432)]
    pg_port: u16,
    /// Database: 1–255 characters.
    #[schema(min_length = 1, max_length = 255)]
    pg_database: String,
    /// Login role: 1–255 characters.
    #[schema(min_length = 1, max_length = 255)]
    pg_username: String,
    /// Login password (write-only: never returned).
    #[serde(default)]
    #[schema(write_only, min_length = 1, max_length = 1024)]
    pg_password: Option<String>,
    /// Publication: a PostgreSQL identifier of at most 63 bytes.
    #[schema(max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_]*$", example = "rosetta_pub")]
    publication_name: String,
    /// The CDC engine's replication identifier.
    #[schema(minimum = 0)]
    replication_id: i64,
}

/// The body of `PUT`/`PATCH /sources/{id}`: every field optional (omitted = unchanged);
/// `pg_password: null` removes the password.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct SourceUpdate {
    /// Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// PostgreSQL host.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pg_host: String,
    /// PostgreSQL port.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pg_port: u16,
    /// Database.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pg_database: String,
    /// Login role.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pg_username: String,
    /// Login password (write-only); `null` removes it.
    #[serde(default)]
    #[schema(write_only, min_length = 1, max_length = 1024)]
    pg_password: Option<String>,
    /// Publication: a PostgreSQL identifier.
    #[serde(default)]
    #[schema(max_length = 63, pattern = "^[A-Za-z_][A-Za-z0-9_]*$")]
    publication_name: String,
    /// The CDC engine's replication identifier.
    #[serde(default)]
    #[schema(minimum = 0)]
    replication_id: i64,
}

/// The body of `POST /destinations`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct DestinationCreate {
    /// Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$", example = "warehouse")]
    name: String,
    /// Snowflake account: letters, digits, `.`, `-`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9.-]+$")]
    snowflake_account: Option<String>,
    /// Login user.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_user: Option<String>,
    /// Database.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_database: Option<String>,
    /// Schema.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_schema: Option<String>,
    /// Role.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_role: Option<String>,
    /// Path of the private key on the CDC engine's host.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_private_key_path: Option<String>,
    /// Host.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_host: Option<String>,
    /// Private-key passphrase (write-only: never returned).
    #[serde(default)]
    #[schema(write_only, min_length = 1, max_length = 1024)]
    snowflake_private_key_passphrase: Option<String>,
}

/// The body of `PUT`/`PATCH /destinations/{id}`: every field optional (omitted = unchanged);
/// `null` clears any field but `name`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct DestinationUpdate {
    /// Unique name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// Snowflake account.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9.-]+$")]
    snowflake_account: Option<String>,
    /// Login user.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_user: Option<String>,
    /// Database.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_database: Option<String>,
    /// Schema.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_schema: Option<String>,
    /// Role.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_role: Option<String>,
    /// Private key path.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_private_key_path: Option<String>,
    /// Host.
    #[serde(default)]
    #[schema(max_length = 255)]
    snowflake_host: Option<String>,
    /// Private-key passphrase (write-only); `null` removes it.
    #[serde(default)]
    #[schema(write_only, min_length = 1, max_length = 1024)]
    snowflake_private_key_passphrase: Option<String>,
}

/// The body of `POST /pipelines`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct PipelineCreate {
    /// Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$", example = "orders")]
    name: String,
    /// An existing source (else 422 on this field).
    source_id: i64,
    /// An existing destination (else 422 on this field).
    destination_id: i64,
    /// Desired status; `START` when omitted.
    #[serde(default)]
    #[schema(default = "START")]
    status: PipelineStatusBody,
}

/// The body of `PUT`/`PATCH /pipelines/{id}`: every field optional (omitted = unchanged). A
/// `status` has exactly the effect of the matching action.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a schema only: `crate::body` reads these bodies")]
pub(crate) struct PipelineUpdate {
    /// Unique name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_-]+$")]
    name: String,
    /// An existing source.
    #[serde(default)]
    source_id: i64,
    /// An existing destination.
    #[serde(default)]
    destination_id: i64,
    /// Requested status.
    #[serde(default)]
    status: PipelineStatusBody,
}
