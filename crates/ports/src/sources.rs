//! Operations on source databases themselves (preflight, catalog, publication, replication
//! slots) and the cleanup tasks that finish a slot's drop when its pipeline is gone.
//!
//! [`SourceOperations`] is implemented by the source-database adapter; every call connects with
//! the source's own settings, is bounded by the adapter's timeout, and never puts a secret in an
//! error.

use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::{
    CleanupTask, CleanupTaskId, LiveSlot, Page, PageRequest, Publication, PublicationName, PublicationTables, SlotName,
    SourceConnection, SourceFacts, SourceId, SourceTable, TableName, Timestamp,
};

use crate::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use crate::outbound::{Clock, ConnectionSettingsError, RepositoryError};

/// Why an operation on a source failed. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The source could not be reached or refused the login (refused, unknown host,
    /// authentication).
    #[error("cannot connect: {message}")]
    Connect {
        /// What happened.
        message: String,
        /// The server's SQLSTATE, when it answered (`28P01`: wrong password).
        sqlstate: Option<String>,
    },
    /// The source answered a statement with an error.
    #[error("{message}")]
    Sql {
        /// What happened.
        message: String,
        /// The server's SQLSTATE.
        sqlstate: String,
    },
    /// The source did not answer within the limit.
    #[error("the source did not answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
}

impl SourceError {
    /// The server's SQLSTATE, if the server answered.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Connect { sqlstate, .. } => sqlstate.as_deref(),
            Self::Sql { sqlstate, .. } => Some(sqlstate),
            Self::Timeout(_) => None,
        }
    }
}

/// Why a publication could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicationError {
    /// These tables do not exist on the source (nothing was changed).
    #[error("tables do not exist: {0:?}")]
    MissingTables(Vec<TableName>),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Why a slot operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// A consumer is attached to the slot (dropping it needs `force`).
    #[error("a consumer is attached to slot {0}")]
    Active(SlotName),
    /// A slot of that name exists but is not a logical slot of this database (physical, or of
    /// another database): it is not this pipeline's to use.
    #[error("slot {0} exists but is not a logical slot of this database")]
    Incompatible(SlotName),
    /// The create statement was sent but no answer came within the limit: the slot may exist.
    #[error("the source did not confirm the slot within {} s; it may exist", .0.as_secs_f64())]
    Uncertain(Duration),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// What creating a slot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotCreation {
    /// The slot was created now.
    Created(LiveSlot),
    /// A logical slot of that name already existed in that database; it was left as it was.
    Existed(LiveSlot),
}

/// What dropping a slot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDrop {
    /// The slot was dropped.
    Dropped,
    /// There was no such slot (already gone).
    Absent,
}

/// Everything Rosetta does to a source database besides sampling its WAL.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceOperations: Send + Sync {
    /// What preflight needs to know, read as the source's role. Errors: the connection failed
    /// (the caller reports it as the `connect` check).
    async fn facts(&self, source: &SourceConnection, publication: &PublicationName)
    -> Result<SourceFacts, SourceError>;

    /// The user tables (system schemas left out), sorted by schema and name, each flagged with
    /// whether `publication` publishes it.
    async fn tables(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<Vec<SourceTable>, SourceError>;

    /// The publication as it is now (`exists: false` when there is none).
    async fn publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<Publication, SourceError>;

    /// Creates `publication`, or alters it to publish exactly `tables`, in one transaction; a
    /// publication that already publishes exactly that is not touched. Returns the publication
    /// after the change. Errors: `MissingTables` (nothing changed).
    async fn set_publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
        tables: &PublicationTables,
    ) -> Result<Publication, PublicationError>;

    /// Drops `publication`; `false` when there was none.
    async fn drop_publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<bool, SourceError>;

    /// Creates the `pgoutput` logical slot `slot` in the source's database, unless a logical slot
    /// of that name exists there already. Errors: `Incompatible`; `Uncertain` when the deadline
    /// passed after the create was sent (a timeout before that is `Source(Timeout)`).
    async fn create_slot(&self, source: &SourceConnection, slot: &SlotName) -> Result<SlotCreation, SlotError>;

    /// The slot as the source reports it now (`None`: no such slot in that database).
    async fn slot(&self, source: &SourceConnection, slot: &SlotName) -> Result<Option<LiveSlot>, SourceError>;

    /// Drops the slot. With `force`, the consumer attached to it is disconnected first (its WAL
    /// sender terminated); without, an attached consumer is `Active` and the slot is kept.
    async fn drop_slot(&self, source: &SourceConnection, slot: &SlotName, force: bool) -> Result<SlotDrop, SlotError>;
}

/// A cleanup task ready to run: the task and the connection settings it kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCleanup {
    /// The task.
    pub task: CleanupTask,
    /// How to reach its source, or why the kept settings cannot be used.
    pub connection: Result<SourceConnection, ConnectionSettingsError>,
}

/// What one attempt at a cleanup task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupAttempt {
    /// The task.
    pub id: CleanupTaskId,
    /// `Ok`: done (the task goes); `Err`: why not (secrets removed).
    pub outcome: Result<(), String>,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// When it is tried next, if it failed (`Next::Done` on success).
    pub next: Next,
}

/// Stores cleanup tasks. Tasks are created by the deletes that need them
/// ([`crate::outbound::PipelineRepository::delete`], [`crate::outbound::SourceRepository::delete`])
/// in the deleting transaction, and are queued on [`crate::jobs::Queue::SOURCE_CLEANUP`] from
/// the moment they exist until they are done or abandoned.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait CleanupTaskStore: Send + Sync {
    /// A page of the tasks, oldest first, with the total count.
    async fn list(&self, page: PageRequest) -> Result<Page<CleanupTask>, RepositoryError>;

    /// The tasks among `ids` with their connection settings (gone ones left out).
    async fn pending(&self, ids: &[CleanupTaskId]) -> Result<Vec<PendingCleanup>, RepositoryError>;

    /// Records the job's attempts and completes their leases, in one transaction; attempts
    /// whose lease `owner` no longer holds are dropped. Returns the tasks recorded.
    async fn record(&self, owner: &LeaseOwner, attempts: Vec<CleanupAttempt>) -> Result<Vec<i64>, RepositoryError>;

    /// Records an attempt made outside the job (by the request that created the task, before its
    /// first due time): a success removes the task, a failure sets its error and next attempt.
    async fn record_unleased(&self, attempt: CleanupAttempt) -> Result<(), RepositoryError>;

    /// The task, if any, still to drop slot `slot` on source `source`.
    async fn find(&self, source: SourceId, slot: &SlotName) -> Result<Option<CleanupTask>, RepositoryError>;

    /// Abandons a task: it is deleted without being done. Errors: `NotFound`.
    async fn abandon(&self, id: CleanupTaskId) -> Result<(), RepositoryError>;
}

/// When a task created at `now` is first due to the job: late enough that the deleting request's
/// own attempt (bounded by the source timeout) has finished, so the two rarely overlap; early
/// enough that a process dying right after the delete delays the drop by little.
pub fn first_cleanup_due(now: Timestamp) -> Timestamp {
    now + chrono::Duration::seconds(60)
}

/// One attempt at a cleanup task, as both the cleanup job and the deleting request make it:
/// drop the slot (without `force`: a consumer still attached is waited out, never cut off), and
/// on failure retry at [`rosetta_domain::cleanup_retry_at`]. A task is never given up by
/// itself — a slot left behind is what it exists to prevent — only abandoned by an operator.
/// Once the slot is gone, the source's next WAL sample is brought forward through `leases`
/// (best effort: if that fails, the regular sample shows the change an interval later).
pub async fn attempt_cleanup(
    operations: &dyn SourceOperations,
    leases: &dyn LeaseStore,
    clock: &dyn Clock,
    pending: &PendingCleanup,
) -> CleanupAttempt {
    let task = &pending.task;
    let attempts = task.attempts.saturating_add(1);
    let outcome = match &pending.connection {
        Ok(connection) => match operations.drop_slot(connection, &task.slot_name, false).await {
            Ok(SlotDrop::Dropped | SlotDrop::Absent) => Ok(()),
            Err(error) => Err(error.to_string()),
        },
        Err(problem) => Err(problem.to_string()),
    };
    let next = match outcome {
        Ok(()) => {
            let _best_effort = leases.expedite(Queue::WAL_SAMPLING, task.source_id.get(), clock.now()).await;
            Next::Done
        }
        Err(_) => Next::DueAt(rosetta_domain::cleanup_retry_at(attempts, clock.now())),
    };
    CleanupAttempt { id: task.id, outcome, attempts, next }
}
