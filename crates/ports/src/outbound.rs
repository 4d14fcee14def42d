//! Outbound ports: what the use cases need from storage and the environment.
//!
//! Every repository method is atomic: it either fully happens or not at all, and concurrent calls
//! never corrupt each other (two creates with the same name: one succeeds, one gets `Conflict`).

use async_trait::async_trait;
use rosetta_domain::{
    CleanupTask, Destination, DestinationId, DestinationPatch, NewDestination, NewPipeline, NewSource, Page,
    PageRequest, PipelineDetails, PipelineId, PipelinePatch, PipelineStatus, PipelineSummary, Secret, SlotName, Source,
    SourceConnection, SourceId, SourcePatch, Timestamp,
};

use crate::{BoxError, EntityKind};

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// No entity of that kind has that id.
    #[error("{entity} with id '{id}' not found")]
    NotFound {
        /// The kind looked for.
        entity: EntityKind,
        /// The id looked for.
        id: i64,
    },
    /// A unique field already holds that value in another entity.
    #[error("{entity} with {field} '{value}' already exists")]
    Conflict {
        /// The kind written.
        entity: EntityKind,
        /// The unique field (`name`).
        field: &'static str,
        /// The clashing value.
        value: String,
    },
    /// The entity cannot be deleted because pipelines still use it (and no cascade was asked).
    #[error("{entity} with id '{id}' is used by {} pipeline(s)", pipelines.len())]
    InUse {
        /// The kind to delete.
        entity: EntityKind,
        /// Its id.
        id: i64,
        /// Every pipeline that references it, ordered by id.
        pipelines: Vec<PipelineSummary>,
    },
    /// A reference field names an entity that does not exist.
    #[error("{field} refers to {entity} with id '{id}', which does not exist")]
    MissingReference {
        /// The referencing field (`source_id`, `destination_id`).
        field: &'static str,
        /// The kind referred to.
        entity: EntityKind,
        /// The missing id.
        id: i64,
    },
    /// The store cannot be reached or has no free connection within its timeout. Retrying later
    /// may succeed.
    #[error("metadata store unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (a bug, corrupt data, a failed decryption). Not retryable.
    #[error("unexpected metadata store error")]
    Unexpected(#[source] BoxError),
}

/// Stores sources. Passwords are stored sealed by a [`SecretCipher`] bound to the row and are
/// never part of a [`Source`]; only [`SourceRepository::connection`] opens them.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceRepository: Send + Sync {
    /// Inserts a source with `created_at = updated_at = now`.
    /// Errors: `Conflict{field: "name"}` when the name is taken.
    async fn create(&self, new: NewSource, now: Timestamp) -> Result<Source, RepositoryError>;

    /// Reads one source. Errors: `NotFound`.
    async fn get(&self, id: SourceId) -> Result<Source, RepositoryError>;

    /// Reads a page of sources ordered by id ascending, with the total count.
    async fn list(&self, page: PageRequest) -> Result<Page<Source>, RepositoryError>;

    /// Applies a partial update; `updated_at = now` unless the patch is empty.
    /// Errors: `NotFound`, `Conflict{field: "name"}`.
    async fn update(&self, id: SourceId, patch: SourcePatch, now: Timestamp) -> Result<Source, RepositoryError>;

    /// Deletes a source. Without `cascade`, a source still referenced by pipelines is kept and
    /// `InUse` names them; with `cascade`, those pipelines and their metadata are deleted in the
    /// same transaction, and a cleanup task (due at [`crate::sources::first_cleanup_due`]) is
    /// recorded for each of their managed slots, which it returns. Errors: `NotFound`, `InUse`.
    async fn delete(&self, id: SourceId, cascade: bool, now: Timestamp) -> Result<Vec<CleanupTask>, RepositoryError>;

    /// Everything needed to log in to the source, with the password opened.
    /// Errors: `NotFound`; `Unexpected` when the stored settings cannot be used (see
    /// [`ConnectionSettingsError`]).
    async fn connection(&self, id: SourceId) -> Result<SourceConnection, RepositoryError>;

    /// [`SourceRepository::connection`] for many sources in one round trip (the WAL monitor
    /// reads hundreds per tick). Ids that do not exist are left out; the order is unspecified.
    /// A source whose stored settings cannot be used (a password that does not decrypt, a row
    /// written around the API) is returned with its own error: one bad row never hides the
    /// others. Errors: only failures of the store itself.
    async fn connections(&self, ids: &[SourceId]) -> Result<Vec<StoredConnection>, RepositoryError>;
}

/// One source's connection settings as [`SourceRepository::connections`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    /// The source.
    pub source_id: SourceId,
    /// Its settings, or why they cannot be used.
    pub settings: Result<SourceConnection, ConnectionSettingsError>,
}

/// Why a source's stored connection settings cannot be used. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionSettingsError {
    /// A sealed secret does not open.
    #[error("cannot decrypt {column}: {reason}")]
    UnreadableSecret {
        /// The column (`pg_password`).
        column: &'static str,
        /// Why.
        reason: CipherError,
    },
    /// A stored value breaks an invariant (the row was written around the API).
    #[error("the stored connection settings are invalid: {0}")]
    Corrupt(String),
}

/// Stores destinations. Private-key passphrases are stored sealed, like source passwords.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DestinationRepository: Send + Sync {
    /// Inserts a destination with `created_at = updated_at = now`.
    /// Errors: `Conflict{field: "name"}`.
    async fn create(&self, new: NewDestination, now: Timestamp) -> Result<Destination, RepositoryError>;

    /// Reads one destination. Errors: `NotFound`.
    async fn get(&self, id: DestinationId) -> Result<Destination, RepositoryError>;

    /// Reads a page of destinations ordered by id ascending, with the total count.
    async fn list(&self, page: PageRequest) -> Result<Page<Destination>, RepositoryError>;

    /// Applies a partial update; `updated_at = now` unless the patch is empty.
    /// Errors: `NotFound`, `Conflict{field: "name"}`.
    async fn update(
        &self,
        id: DestinationId,
        patch: DestinationPatch,
        now: Timestamp,
    ) -> Result<Destination, RepositoryError>;

    /// Deletes a destination; same rules as [`SourceRepository::delete`] (a cascade records the
    /// cleanup tasks of its pipelines' managed slots and returns them).
    async fn delete(
        &self,
        id: DestinationId,
        cascade: bool,
        now: Timestamp,
    ) -> Result<Vec<CleanupTask>, RepositoryError>;
}

/// Stores pipelines together with their one metadata row. Reads return the pipeline with its
/// source and destination in a constant number of round trips, whatever the page size.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PipelineRepository: Send + Sync {
    /// Inserts a pipeline and its metadata ([`rosetta_domain::PipelineMetadata::initial`]) in one
    /// transaction. Errors: `MissingReference{field: "source_id" | "destination_id"}`,
    /// `Conflict{field: "name"}`.
    async fn create(&self, new: NewPipeline, now: Timestamp) -> Result<PipelineDetails, RepositoryError>;

    /// Reads one pipeline. Errors: `NotFound`.
    async fn get(&self, id: PipelineId) -> Result<PipelineDetails, RepositoryError>;

    /// Reads a page of pipelines ordered by id ascending, with the total count.
    async fn list(&self, page: PageRequest) -> Result<Page<PipelineDetails>, RepositoryError>;

    /// Applies a partial update in one transaction, holding the pipeline's row so concurrent
    /// updates serialise. A `status` is applied through [`rosetta_domain::Pipeline::request`]
    /// (desired status and metadata change together; a request already satisfied changes
    /// nothing). `updated_at = now` when a pipeline column changed.
    /// Errors: `NotFound`, `MissingReference`, `Conflict{field: "name"}`.
    async fn update(
        &self,
        id: PipelineId,
        patch: PipelinePatch,
        now: Timestamp,
    ) -> Result<PipelineDetails, RepositoryError>;

    /// Deletes a pipeline and its metadata; when its slot is managed, records a cleanup task that
    /// drops it (due at [`crate::sources::first_cleanup_due`]) in the same transaction and
    /// returns it. Errors: `NotFound`.
    async fn delete(&self, id: PipelineId, now: Timestamp) -> Result<Option<CleanupTask>, RepositoryError>;

    /// Records whether Rosetta created the pipeline's slot. Errors: `NotFound`.
    async fn set_slot_managed(&self, id: PipelineId, managed: bool, now: Timestamp) -> Result<(), RepositoryError>;

    /// The pipelines of `source` (every source when `None`), ordered by id, each with the slot
    /// it names and its desired status.
    async fn pipelines_of(&self, source: Option<SourceId>) -> Result<Vec<SourcePipeline>, RepositoryError>;
}

/// A pipeline as seen from its source: the slot it names there and its desired status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePipeline {
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// Its source.
    pub source_id: SourceId,
    /// The slot it names on that source.
    pub slot_name: SlotName,
    /// Its desired status.
    pub status: PipelineStatus,
}

/// The health of the metadata database, for readiness checks.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait MetadataHealth: Send + Sync {
    /// Runs a trivial query. Errors: `Unavailable` when the database cannot answer.
    async fn ping(&self) -> Result<(), RepositoryError>;
}

/// The current time. Implementations return UTC truncated to microseconds, the precision the
/// store keeps, so a value read back equals the value written.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Which stored secret a sealed value belongs to. The cipher binds the sealed bytes to it, so a
/// value copied to another row or column fails to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSlot {
    /// The table (`sources`, `destinations`, `cleanup_tasks`).
    pub table: &'static str,
    /// The column (`pg_password`, `snowflake_private_key_passphrase`).
    pub column: &'static str,
    /// The row's id.
    pub row_id: i64,
}

impl SecretSlot {
    /// The associated data an AEAD cipher authenticates for this slot.
    pub fn associated_data(&self) -> Vec<u8> {
        format!("rosetta/v1/{}/{}/{}", self.table, self.column, self.row_id).into_bytes()
    }
}

/// Why a secret could not be sealed or opened. Never carries the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// The value records the key that sealed it, and that key is not configured (it was removed
    /// from `SECRET_KEYS` before `rotate-secrets` moved the value to a newer one).
    #[error("its key is not configured")]
    UnknownKey,
    /// The value does not open with its key: malformed, truncated, tampered with, or copied from
    /// another row or column. (A value of the format before key ids were recorded that no
    /// configured key opens is reported so too.)
    #[error("it does not open with its key (tampered with, truncated, or copied from another row)")]
    Tampered,
    /// Sealing failed.
    #[error("secret cannot be sealed")]
    Seal,
}

/// Authenticated encryption of secrets at rest, under one or more keys: the newest seals, any
/// configured key opens what it sealed.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait SecretCipher: Send + Sync {
    /// Encrypts `secret` for `slot` under the newest key. Two seals of the same secret differ
    /// (random nonce).
    fn seal(&self, secret: &Secret, slot: SecretSlot) -> Result<Vec<u8>, CipherError>;

    /// Decrypts bytes made by [`SecretCipher::seal`] for the same `slot` with a key still
    /// configured. Errors: `UnknownKey` when the value's key is not configured, `Tampered` for
    /// anything else that does not open.
    fn open(&self, sealed: &[u8], slot: SecretSlot) -> Result<Secret, CipherError>;

    /// The id of the key that sealed `sealed` (derived from the key, so it survives reordering
    /// `SECRET_KEYS`), or `None` when the value does not record one (an older format).
    fn key_id(&self, sealed: &[u8]) -> Option<String>;

    /// The newest key's id: what [`SecretCipher::seal`] records now.
    fn current_key_id(&self) -> String;
}
