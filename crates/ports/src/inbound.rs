//! Inbound ports: the use cases driving adapters (HTTP) call. One trait per resource.

use async_trait::async_trait;
use rosetta_domain::{
    CleanupTask, CleanupTaskId, Destination, DestinationId, DestinationPatch, NewDestination, NewPipeline, NewSource,
    Page, PageRequest, PipelineDetails, PipelineId, PipelinePatch, PipelineSlot, PipelineStatus, PipelineSummary,
    Preflight, Publication, PublicationTables, Source, SourceId, SourcePatch, SourceTable,
};

use crate::outbound::RepositoryError;
use crate::sources::SourceError;
use crate::{BoxError, EntityKind};

/// Why a use case failed. Driving adapters map each variant to their own error form (HTTP status
/// and body); `Unavailable` and `Unexpected` carry a cause for the log, never for the client.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The entity does not exist.
    #[error("{entity} with id '{id}' not found")]
    NotFound {
        /// Kind.
        entity: EntityKind,
        /// Id.
        id: i64,
    },
    /// A unique field clashes with another entity.
    #[error("{entity} with {field} '{value}' already exists")]
    Conflict {
        /// Kind.
        entity: EntityKind,
        /// Field.
        field: &'static str,
        /// Value.
        value: String,
    },
    /// The entity is still used by pipelines.
    #[error("{entity} with id '{id}' is still used by pipelines")]
    InUse {
        /// Kind.
        entity: EntityKind,
        /// Id.
        id: i64,
        /// The pipelines using it.
        pipelines: Vec<PipelineSummary>,
    },
    /// A reference field names a missing entity (an input error on that field).
    #[error("{entity} with id '{id}' does not exist")]
    MissingReference {
        /// The referencing field.
        field: &'static str,
        /// The kind referred to.
        entity: EntityKind,
        /// The missing id.
        id: i64,
    },
    /// An input value breaks a rule that only the use case can check (settings that must fit
    /// with stored ones): an input error on that field.
    #[error("{field}: {error}")]
    InvalidInput {
        /// The body field at fault.
        field: &'static str,
        /// What is wrong with it.
        error: rosetta_domain::InvalidValue,
    },
    /// A query parameter breaks a rule that only the use case can check (a range against the
    /// clock): an input error on that parameter.
    #[error("{parameter}: {error}")]
    InvalidQuery {
        /// The query parameter at fault.
        parameter: &'static str,
        /// What is wrong with it.
        error: rosetta_domain::InvalidValue,
    },
    /// The request cannot be done in the current state (a consumer is attached to the slot, a
    /// started pipeline uses the publication); the text says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// Tables named in the body do not exist on the source (an input error on `tables`).
    #[error("tables do not exist: {}", .0.join(", "))]
    MissingTables(Vec<String>),
    /// The source has no publication of that name.
    #[error("Publication '{name}' not found")]
    PublicationNotFound {
        /// The publication's name.
        name: String,
    },
    /// The source itself failed (refused, authentication, a SQL error, no answer in time).
    #[error("source {source_id}: {error}")]
    Source {
        /// The source.
        source_id: SourceId,
        /// What failed (secrets removed).
        error: SourceError,
    },
    /// A dependency is temporarily unavailable; retry later.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else (a bug, corrupt data). Not retryable.
    #[error("unexpected error")]
    Unexpected(#[source] BoxError),
}

impl From<rosetta_domain::InvalidRuleSettings> for ServiceError {
    fn from(invalid: rosetta_domain::InvalidRuleSettings) -> Self {
        Self::InvalidInput { field: invalid.field, error: invalid.error }
    }
}

impl From<rosetta_domain::InvalidChannel> for ServiceError {
    fn from(invalid: rosetta_domain::InvalidChannel) -> Self {
        Self::InvalidInput { field: invalid.field, error: invalid.error }
    }
}

impl From<RepositoryError> for ServiceError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::NotFound { entity, id } => Self::NotFound { entity, id },
            RepositoryError::Conflict { entity, field, value } => Self::Conflict { entity, field, value },
            RepositoryError::InUse { entity, id, pipelines } => Self::InUse { entity, id, pipelines },
            RepositoryError::MissingReference { field, entity, id } => Self::MissingReference { field, entity, id },
            RepositoryError::Unavailable(source) => Self::Unavailable(source),
            RepositoryError::Unexpected(source) => Self::Unexpected(source),
        }
    }
}

/// Whether a delete may take the pipelines that use the entity with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteMode {
    /// Refuse when pipelines still use the entity.
    #[default]
    Restrict,
    /// Delete those pipelines (and their metadata) in the same transaction.
    Cascade,
}

/// Managing sources.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceService: Send + Sync {
    /// Creates a source. Errors: `Conflict`.
    async fn create_source(&self, new: NewSource) -> Result<Source, ServiceError>;
    /// Reads a source. Errors: `NotFound`.
    async fn get_source(&self, id: SourceId) -> Result<Source, ServiceError>;
    /// Lists sources by id.
    async fn list_sources(&self, page: PageRequest) -> Result<Page<Source>, ServiceError>;
    /// Partially updates a source. Errors: `NotFound`, `Conflict`.
    async fn update_source(&self, id: SourceId, patch: SourcePatch) -> Result<Source, ServiceError>;
    /// Deletes a source; with `DeleteMode::Cascade` its pipelines go too and their managed slots
    /// are dropped (what cannot be dropped now is left to a cleanup task).
    /// Errors: `NotFound`, `InUse` (with `DeleteMode::Restrict`).
    async fn delete_source(&self, id: SourceId, mode: DeleteMode) -> Result<(), ServiceError>;
}

/// Acting on a source database: preflight, its tables and its publication. Every call connects
/// with the source's settings and is bounded in time.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceOperationsService: Send + Sync {
    /// Preflight of settings that are not saved. Never fails because of the source: an
    /// unreachable source is a failed `connect` check.
    async fn validate_settings(&self, settings: NewSource) -> Result<Preflight, ServiceError>;
    /// Preflight of a saved source. Errors: `NotFound`.
    async fn validate_source(&self, id: SourceId) -> Result<Preflight, ServiceError>;
    /// The source's user tables. Errors: `NotFound`, `Source`.
    async fn list_tables(&self, id: SourceId) -> Result<Vec<SourceTable>, ServiceError>;
    /// The source's publication. Errors: `NotFound`, `Source`.
    async fn get_publication(&self, id: SourceId) -> Result<Publication, ServiceError>;
    /// Creates the publication or alters it to publish exactly `tables` (idempotent).
    /// Errors: `NotFound`, `MissingTables`, `Source`.
    async fn set_publication(&self, id: SourceId, tables: PublicationTables) -> Result<Publication, ServiceError>;
    /// Drops the publication. Errors: `NotFound`, `PublicationNotFound`, `Refused` (a pipeline
    /// of the source is started), `Source`.
    async fn drop_publication(&self, id: SourceId) -> Result<(), ServiceError>;
}

/// What creating a pipeline's slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotCreated {
    /// The slot afterwards.
    pub slot: PipelineSlot,
    /// Whether it was created now (else it existed and was left alone).
    pub created: bool,
}

/// Pipelines' replication slots on their sources.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SlotService: Send + Sync {
    /// Creates the pipeline's slot (managed), or adopts an existing logical slot of that name
    /// (its `managed` unchanged). Errors: `NotFound`, `Refused` (a slot of that name that is not
    /// a logical slot of the database), `Source`.
    async fn create_slot(&self, pipeline: PipelineId) -> Result<SlotCreated, ServiceError>;
    /// The pipeline's slot, read live. Errors: `NotFound`, `Source`.
    async fn get_slot(&self, pipeline: PipelineId) -> Result<PipelineSlot, ServiceError>;
    /// Drops the pipeline's slot; with `force`, its consumer is disconnected first.
    /// Errors: `NotFound`, `Refused` (a consumer is attached and no `force`), `Source`.
    async fn drop_slot(&self, pipeline: PipelineId, force: bool) -> Result<(), ServiceError>;
}

/// The cleanup tasks that finish what deletes could not (a slot on a source that was down).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait CleanupTaskService: Send + Sync {
    /// A page of tasks, oldest first.
    async fn list_cleanup_tasks(&self, page: PageRequest) -> Result<Page<CleanupTask>, ServiceError>;
    /// Abandons a task: it is deleted without being done. Errors: `NotFound`.
    async fn abandon_cleanup_task(&self, id: CleanupTaskId) -> Result<(), ServiceError>;
}

/// Managing destinations.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait DestinationService: Send + Sync {
    /// Creates a destination. Errors: `Conflict`.
    async fn create_destination(&self, new: NewDestination) -> Result<Destination, ServiceError>;
    /// Reads a destination. Errors: `NotFound`.
    async fn get_destination(&self, id: DestinationId) -> Result<Destination, ServiceError>;
    /// Lists destinations by id.
    async fn list_destinations(&self, page: PageRequest) -> Result<Page<Destination>, ServiceError>;
    /// Partially updates a destination. Errors: `NotFound`, `Conflict`.
    async fn update_destination(&self, id: DestinationId, patch: DestinationPatch)
    -> Result<Destination, ServiceError>;
    /// Deletes a destination. Errors: `NotFound`, `InUse` (with `DeleteMode::Restrict`).
    async fn delete_destination(&self, id: DestinationId, mode: DeleteMode) -> Result<(), ServiceError>;
}

/// Managing pipelines and their lifecycle.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PipelineService: Send + Sync {
    /// Creates a pipeline and its metadata. With `provision`, its slot is created on the source
    /// first, and if that fails no pipeline is kept. Errors: `MissingReference`, `Conflict`
    /// (name, or a slot name another pipeline of the source uses), and with `provision` those of
    /// [`SlotService::create_slot`].
    async fn create_pipeline(&self, new: NewPipeline, provision: bool) -> Result<PipelineDetails, ServiceError>;
    /// Reads a pipeline with its source, destination and metadata. Errors: `NotFound`.
    async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineDetails, ServiceError>;
    /// Lists pipelines by id, each with source, destination and metadata.
    async fn list_pipelines(&self, page: PageRequest) -> Result<Page<PipelineDetails>, ServiceError>;
    /// Partially updates a pipeline; a `status` acts like the matching lifecycle action.
    /// Errors: `NotFound`, `MissingReference`, `Conflict`.
    async fn update_pipeline(&self, id: PipelineId, patch: PipelinePatch) -> Result<PipelineDetails, ServiceError>;
    /// Start, pause or refresh a pipeline (idempotent). Errors: `NotFound`.
    async fn set_pipeline_status(
        &self,
        id: PipelineId,
        status: PipelineStatus,
    ) -> Result<PipelineDetails, ServiceError>;
    /// Deletes a pipeline and its metadata, and drops its managed slot; when the slot cannot be
    /// dropped now (source unreachable, consumer attached) the pipeline is still deleted and a
    /// cleanup task finishes the drop. Errors: `NotFound`.
    async fn delete_pipeline(&self, id: PipelineId) -> Result<(), ServiceError>;
}

/// The outcome of one readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    /// Working.
    Healthy,
    /// Not working; the text says why and is safe to show (no secrets, no SQL).
    Unhealthy(String),
    /// Not running in this process by configuration or because it does not exist yet; does not
    /// make the service unready.
    Disabled(String),
    /// Working, but part of its work fails for a reason an operator must fix (a source whose
    /// stored password cannot be decrypted); the text says which and why. Does not make the
    /// service unready: everything else keeps being served.
    Degraded(String),
}

/// One named readiness check with how long it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Outcome.
    pub status: CheckStatus,
    /// Duration of the check in milliseconds.
    pub latency_ms: u64,
    /// WAL monitor only: seconds since this process last completed a tick (`None` before the
    /// first one).
    pub last_tick_age_seconds: Option<u64>,
}

/// The readiness of the service: no check may be `Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The metadata database.
    pub database: Check,
    /// The WAL monitor.
    pub wal_monitor: Check,
}

impl Readiness {
    /// Whether the service can serve traffic.
    pub fn is_ready(&self) -> bool {
        [&self.database, &self.wal_monitor].iter().all(|check| !matches!(check.status, CheckStatus::Unhealthy(_)))
    }
}

/// Readiness of the service and its dependencies.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait HealthService: Send + Sync {
    /// Runs every readiness check (bounded in time).
    async fn readiness(&self) -> Readiness;
}
