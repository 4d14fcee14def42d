//! Acting on sources: preflight, tables and publication ([`SourceOperator`]), pipelines' slots,
//! and the cleanup tasks that finish a slot's drop ([`SlotCleaner`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{
    CleanupTask, CleanupTaskId, NewSource, Page, PageRequest, PipelineId, PipelineSlot, PipelineStatus, Preflight,
    PreflightSubject, Publication, PublicationTables, SourceConnection, SourceId, SourceTable,
};
use rosetta_ports::EntityKind;
use rosetta_ports::inbound::{CleanupTaskService, ServiceError, SlotCreated, SlotService, SourceOperationsService};
use rosetta_ports::jobs::{LeaseStore, Queue};
use rosetta_ports::outbound::{Clock, PipelineRepository, RepositoryError, SourceRepository};
use rosetta_ports::sources::{
    CleanupTaskStore, PublicationError, SlotCreation, SlotError, SourceError, SourceOperations, attempt_cleanup,
};

/// Runs the cleanup tasks a delete has just recorded, at once, so a reachable source loses the
/// slot before the delete answers; what fails stays with the task for the cleanup job.
#[derive(Clone)]
pub struct SlotCleaner {
    operations: Arc<dyn SourceOperations>,
    tasks: Arc<dyn CleanupTaskStore>,
    leases: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SlotCleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotCleaner").finish_non_exhaustive()
    }
}

impl SlotCleaner {
    /// A cleaner that drops slots through `operations`, records through `tasks`, and has the
    /// WAL monitor resample a source whose slot went (through `leases`).
    pub fn new(
        operations: Arc<dyn SourceOperations>,
        tasks: Arc<dyn CleanupTaskStore>,
        leases: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { operations, tasks, leases, clock }
    }

    /// Attempts each task once now. Never fails the caller: the delete has happened and the task
    /// is stored, so an error here only means the job retries later.
    pub async fn run_now(&self, tasks: Vec<CleanupTask>) {
        if tasks.is_empty() {
            return;
        }
        let ids: Vec<CleanupTaskId> = tasks.iter().map(|t| t.id).collect();
        let pending = match self.tasks.pending(&ids).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(error = %error, "cleanup tasks left to the cleanup job: they could not be read");
                return;
            }
        };
        for pending in pending {
            let attempt =
                attempt_cleanup(self.operations.as_ref(), self.leases.as_ref(), self.clock.as_ref(), &pending).await;
            let task = &pending.task;
            match &attempt.outcome {
                Ok(()) => {
                    tracing::info!(source_id = %task.source_id, slot_name = %task.slot_name, "replication slot dropped")
                }
                Err(error) => tracing::warn!(
                    source_id = %task.source_id,
                    slot_name = %task.slot_name,
                    cleanup_task_id = %task.id,
                    error = %error,
                    "replication slot not dropped now; its cleanup task will retry"
                ),
            }
            if let Err(error) = self.tasks.record_unleased(attempt).await {
                tracing::warn!(cleanup_task_id = %task.id, error = %error, "cleanup attempt not recorded");
            }
        }
    }
}

/// Runs `work` on a task of its own and waits for it: dropping the caller (a client that went
/// away) does not cut it half-way between a change on the source and its record.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::spawn(work).await.map_err(|error| ServiceError::Unexpected(Box::new(error)))?
}

/// Has the WAL monitor sample `source` again now, so a slot created or dropped shows at once
/// rather than an interval later. Best effort: the next regular sample shows it anyway.
async fn resample(leases: &dyn LeaseStore, source: SourceId, now: rosetta_domain::Timestamp) {
    if let Err(error) = leases.expedite(Queue::WAL_SAMPLING, source.get(), now).await {
        tracing::debug!(source_id = %source, error = %error, "source not resampled early");
    }
}

/// The source operations, pipelines' slots and cleanup tasks, over the repositories and the
/// source-database adapter.
#[derive(Clone)]
pub struct SourceOperator {
    sources: Arc<dyn SourceRepository>,
    pipelines: Arc<dyn PipelineRepository>,
    operations: Arc<dyn SourceOperations>,
    tasks: Arc<dyn CleanupTaskStore>,
    leases: Arc<dyn LeaseStore>,
    locks: SlotLocks,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SourceOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOperator").finish_non_exhaustive()
    }
}

/// A source error as the service error of `source`.
fn source_error(source_id: SourceId) -> impl Fn(SourceError) -> ServiceError {
    move |error| ServiceError::Source { source_id, error }
}

/// What preflight's `connect` check says when reading the facts failed.
fn connect_reason(error: &SourceError) -> String {
    match error {
        SourceError::Sql { message, .. } => format!("connected, but reading the source's settings failed: {message}"),
        other => other.to_string(),
    }
}

/// Serialises the slot changes of one pipeline across this process's HTTP workers (a retried or
/// double-submitted create must not see the other's slot as "existed" and give up ownership of
/// it, and a delete must not record its cleanup before a create finished). Shared by clones.
#[derive(Clone, Default)]
pub struct SlotLocks(Arc<std::sync::Mutex<HashMap<PipelineId, Arc<tokio::sync::Mutex<()>>>>>);

impl std::fmt::Debug for SlotLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotLocks").finish_non_exhaustive()
    }
}

impl SlotLocks {
    /// Waits for, then holds, `pipeline`'s lock until the guard is dropped.
    pub(crate) async fn lock(&self, pipeline: PipelineId) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Locks nobody holds or waits for are forgotten, so the map stays small.
            locks.retain(|_, mutex| Arc::strong_count(mutex) > 1);
            Arc::clone(locks.entry(pipeline).or_default())
        };
        mutex.lock_owned().await
    }
}

impl SourceOperator {
    /// An operator over the stores, the source operations, the leases (to have the monitor
    /// resample a source whose slots changed), the process's slot locks and the clock.
    pub fn new(
        sources: Arc<dyn SourceRepository>,
        pipelines: Arc<dyn PipelineRepository>,
        operations: Arc<dyn SourceOperations>,
        tasks: Arc<dyn CleanupTaskStore>,
        leases: Arc<dyn LeaseStore>,
        locks: SlotLocks,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { sources, pipelines, operations, tasks, leases, locks, clock }
    }

    /// Holds `pipeline`'s slot lock (see [`SlotLocks`]).
    pub(crate) async fn lock(&self, pipeline: PipelineId) -> tokio::sync::OwnedMutexGuard<()> {
        self.locks.lock(pipeline).await
    }

    async fn preflight(&self, connection: &SourceConnection, subject: PreflightSubject<'_>) -> Preflight {
        let facts = self.operations.facts(connection, subject.publication).await;
        let reason = facts.as_ref().err().map(connect_reason);
        Preflight::assess(facts.as_ref().map_err(|_| reason.as_deref().unwrap_or_default()), subject)
    }

    /// How to reach source `id`. Stored settings that cannot be used (a password whose key is
    /// not configured, or that does not open) are the source's error, naming why — not a fault
    /// of the service.
    async fn connection(&self, id: SourceId) -> Result<SourceConnection, ServiceError> {
        let stored = self.sources.connections(&[id]).await?.pop();
        let stored = stored.ok_or(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() })?;
        stored.settings.map_err(|error| ServiceError::Source {
            source_id: id,
            error: SourceError::Connect {
                message: format!(
                    "{error}; add the key that sealed it back to SECRET_KEYS, or set the source's pg_password again"
                ),
                sqlstate: None,
            },
        })
    }

    /// The pipeline's slot name and managed flag, and how to reach its source.
    async fn slot_of(&self, id: PipelineId) -> Result<(PipelineSlot, SourceConnection), ServiceError> {
        let details = self.pipelines.get(id).await?;
        let connection = self.connection(details.source.id).await?;
        let slot =
            PipelineSlot { slot_name: details.pipeline.slot_name, managed: details.pipeline.slot_managed, live: None };
        Ok((slot, connection))
    }

    /// Creates the pipeline's slot; the body of [`SlotService::create_slot`], also used by
    /// provisioning. The caller holds the pipeline's slot lock and runs this on a task of its own,
    /// so a client that goes away cannot cut it between the source's answer and its record.
    pub(crate) async fn create_pipeline_slot(&self, id: PipelineId) -> Result<SlotCreated, ServiceError> {
        let (slot, connection) = self.slot_of(id).await?;
        let source_id = connection.source_id;
        // A deleted pipeline's task would drop the slot this one is about to use.
        if let Some(task) = self.tasks.find(source_id, &slot.slot_name).await? {
            return Err(ServiceError::Refused(format!(
                "cleanup task {} is still to drop replication slot '{}' on this source (its pipeline was deleted); \
                 abandon it (DELETE /cleanup-tasks/{}) or give this pipeline another slot_name",
                task.id, slot.slot_name, task.id
            )));
        }
        let was_managed = slot.managed;
        // Ownership is recorded before the slot exists: a crash between the two can leave a
        // managed flag without a slot (dropping it then finds nothing), never a slot Rosetta
        // made without the flag that makes it drop it.
        if !was_managed {
            self.pipelines.set_slot_managed(id, true, self.clock.now()).await?;
        }
        let outcome = self.operations.create_slot(&connection, &slot.slot_name).await;
        if outcome.is_ok() {
            resample(self.leases.as_ref(), source_id, self.clock.now()).await;
        }
        // Kept when the slot is (or may be) ours; given back when it was someone else's or
        // nothing was made.
        let ours = matches!(&outcome, Ok(SlotCreation::Created(_)) | Err(SlotError::Uncertain(_)));
        if !was_managed && !ours {
            self.pipelines.set_slot_managed(id, false, self.clock.now()).await?;
        }
        match outcome {
            Ok(SlotCreation::Created(live)) => {
                tracing::info!(pipeline_id = %id, slot_name = %slot.slot_name, "replication slot created");
                // Deleted meanwhile by another process (which found no slot yet to drop).
                if let Err(ServiceError::NotFound { .. }) = self.pipelines.get(id).await.map_err(ServiceError::from) {
                    self.drop_orphan(&connection, &slot.slot_name).await;
                    return Err(ServiceError::NotFound { entity: rosetta_ports::EntityKind::Pipeline, id: id.get() });
                }
                Ok(SlotCreated { slot: PipelineSlot { managed: true, live: Some(live), ..slot }, created: true })
            }
            Ok(SlotCreation::Existed(live)) => Ok(SlotCreated {
                slot: PipelineSlot { managed: was_managed, live: Some(live), ..slot },
                created: false,
            }),
            Err(error) => Err(slot_error(source_id, error)),
        }
    }

    /// Drops a slot made for a pipeline that was deleted while it was being made.
    async fn drop_orphan(&self, connection: &SourceConnection, slot: &rosetta_domain::SlotName) {
        match self.operations.drop_slot(connection, slot, false).await {
            Ok(_) => tracing::warn!(slot_name = %slot, "slot of a pipeline deleted while it was created: dropped"),
            Err(error) => tracing::error!(
                source_id = %connection.source_id,
                slot_name = %slot,
                error = %error,
                "slot of a pipeline deleted while it was created could not be dropped; drop it by hand"
            ),
        }
    }
}

fn slot_error(source_id: SourceId, error: SlotError) -> ServiceError {
    match error {
        SlotError::Active(slot) => ServiceError::Refused(format!(
            "a consumer is attached to replication slot '{slot}'; stop it, or retry with ?force=true to disconnect it"
        )),
        SlotError::Incompatible(slot) => ServiceError::Refused(format!(
            "a replication slot named '{slot}' exists on the source but is not a logical slot of this database; \
             give the pipeline another slot_name"
        )),
        SlotError::Uncertain(limit) => ServiceError::Source { source_id, error: SourceError::Timeout(limit) },
        SlotError::Source(error) => ServiceError::Source { source_id, error },
    }
}

#[async_trait]
impl SourceOperationsService for SourceOperator {
    async fn validate_settings(&self, settings: NewSource) -> Result<Preflight, ServiceError> {
        // Not saved: it has no id yet.
        let connection = SourceConnection {
            source_id: SourceId::new(0),
            pg_host: settings.pg_host,
            pg_port: settings.pg_port,
            pg_database: settings.pg_database,
            pg_username: settings.pg_username,
            pg_password: settings.pg_password,
            pg_sslmode: settings.pg_sslmode,
            pg_sslrootcert: settings.pg_sslrootcert,
        };
        let subject = PreflightSubject { username: &connection.pg_username, publication: &settings.publication_name };
        Ok(self.preflight(&connection, subject).await)
    }

    async fn validate_source(&self, id: SourceId) -> Result<Preflight, ServiceError> {
        let source = self.sources.get(id).await?;
        let subject = PreflightSubject { username: &source.pg_username, publication: &source.publication_name };
        match self.connection(id).await {
            Ok(connection) => Ok(self.preflight(&connection, subject).await),
            // Settings that cannot be used fail the `connect` check, as an unreachable source does.
            Err(ServiceError::Source { error, .. }) => Ok(Preflight::assess(Err(&connect_reason(&error)), subject)),
            Err(other) => Err(other),
        }
    }

    async fn list_tables(&self, id: SourceId) -> Result<Vec<SourceTable>, ServiceError> {
        let source = self.sources.get(id).await?;
        let connection = self.connection(id).await?;
        self.operations.tables(&connection, &source.publication_name).await.map_err(source_error(id))
    }

    async fn get_publication(&self, id: SourceId) -> Result<Publication, ServiceError> {
        let source = self.sources.get(id).await?;
        let connection = self.connection(id).await?;
        self.operations.publication(&connection, &source.publication_name).await.map_err(source_error(id))
    }

    async fn set_publication(&self, id: SourceId, tables: PublicationTables) -> Result<Publication, ServiceError> {
        let source = self.sources.get(id).await?;
        let connection = self.connection(id).await?;
        match self.operations.set_publication(&connection, &source.publication_name, &tables).await {
            Ok(publication) => {
                tracing::info!(source_id = %id, publication = %source.publication_name, "publication set");
                Ok(publication)
            }
            Err(PublicationError::MissingTables(missing)) => {
                Err(ServiceError::MissingTables(missing.iter().map(ToString::to_string).collect()))
            }
            Err(PublicationError::Source(error)) => Err(ServiceError::Source { source_id: id, error }),
        }
    }

    async fn drop_publication(&self, id: SourceId) -> Result<(), ServiceError> {
        let source = self.sources.get(id).await?;
        let started: Vec<String> = self
            .pipelines
            .pipelines_of(Some(id))
            .await?
            .into_iter()
            .filter(|p| p.status == PipelineStatus::Start)
            .map(|p| p.pipeline_id.to_string())
            .collect();
        if !started.is_empty() {
            return Err(ServiceError::Refused(format!(
                "pipelines of this source are started (ids {}); pause them before dropping the publication",
                started.join(", ")
            )));
        }
        let connection = self.connection(id).await?;
        let dropped =
            self.operations.drop_publication(&connection, &source.publication_name).await.map_err(source_error(id))?;
        if !dropped {
            return Err(ServiceError::PublicationNotFound { name: source.publication_name.into_inner() });
        }
        tracing::info!(source_id = %id, publication = %source.publication_name, "publication dropped");
        Ok(())
    }
}

#[async_trait]
impl SlotService for SourceOperator {
    async fn create_slot(&self, pipeline: PipelineId) -> Result<SlotCreated, ServiceError> {
        let this = self.clone();
        detached(async move {
            let _held = this.lock(pipeline).await;
            this.create_pipeline_slot(pipeline).await
        })
        .await
    }

    async fn get_slot(&self, pipeline: PipelineId) -> Result<PipelineSlot, ServiceError> {
        let (slot, connection) = self.slot_of(pipeline).await?;
        let live =
            self.operations.slot(&connection, &slot.slot_name).await.map_err(source_error(connection.source_id))?;
        Ok(PipelineSlot { live, ..slot })
    }

    async fn drop_slot(&self, pipeline: PipelineId, force: bool) -> Result<(), ServiceError> {
        let _held = self.lock(pipeline).await;
        let (slot, connection) = self.slot_of(pipeline).await?;
        self.operations
            .drop_slot(&connection, &slot.slot_name, force)
            .await
            .map_err(|error| slot_error(connection.source_id, error))?;
        resample(self.leases.as_ref(), connection.source_id, self.clock.now()).await;
        if slot.managed {
            self.pipelines.set_slot_managed(pipeline, false, self.clock.now()).await?;
        }
        tracing::info!(pipeline_id = %pipeline, slot_name = %slot.slot_name, force, "replication slot dropped");
        Ok(())
    }
}

#[async_trait]
impl CleanupTaskService for SourceOperator {
    async fn list_cleanup_tasks(&self, page: PageRequest) -> Result<Page<CleanupTask>, ServiceError> {
        Ok(self.tasks.list(page).await?)
    }

    async fn abandon_cleanup_task(&self, id: CleanupTaskId) -> Result<(), ServiceError> {
        self.tasks.abandon(id).await?;
        tracing::warn!(cleanup_task_id = %id, "cleanup task abandoned: its slot, if any, stays on the source");
        Ok(())
    }
}

/// A cleaner whose stores are mocks without expectations: for tests where nothing is cleaned.
#[cfg(test)]
pub(crate) fn unused_cleaner() -> SlotCleaner {
    use rosetta_ports::sources::{MockCleanupTaskStore, MockSourceOperations};
    SlotCleaner::new(
        Arc::new(MockSourceOperations::new()),
        Arc::new(MockCleanupTaskStore::new()),
        Arc::new(rosetta_ports::jobs::MockLeaseStore::new()),
        Arc::new(crate::SystemClock),
    )
}

/// An operator over the given stores and mocks.
#[cfg(test)]
pub(crate) fn operator_over(
    sources: Arc<dyn SourceRepository>,
    pipelines: Arc<dyn PipelineRepository>,
    operations: rosetta_ports::sources::MockSourceOperations,
    tasks: rosetta_ports::sources::MockCleanupTaskStore,
) -> SourceOperator {
    // Resampling requests go nowhere: these tests are not about the monitor.
    let leases = Arc::new(rosetta_ports::testing::memory::InMemoryStore::new(Arc::new(
        rosetta_ports::testing::InsecureTestCipher::new(9),
    )));
    SourceOperator::new(
        sources,
        pipelines,
        Arc::new(operations),
        Arc::new(tasks),
        leases,
        SlotLocks::default(),
        Arc::new(crate::SystemClock),
    )
}

#[cfg(test)]
mod tests {
    use rosetta_domain::{LiveSlot, PipelineStatus};
    use rosetta_ports::inbound::PipelineService;
    use rosetta_ports::jobs::Next;
    use rosetta_ports::outbound::DestinationRepository;
    use rosetta_ports::sources::{MockCleanupTaskStore, MockSourceOperations, PendingCleanup, SlotDrop};
    use rosetta_ports::testing::memory::InMemoryStore;
    use rosetta_ports::testing::{InsecureTestCipher, fixed_time, new_destination, new_pipeline, new_source};

    use super::*;
    use crate::{PipelineManager, SystemClock};

    /// A task store with no pending task.
    fn no_tasks() -> MockCleanupTaskStore {
        let mut tasks = MockCleanupTaskStore::new();
        tasks.expect_find().returning(|_, _| Ok(None));
        tasks
    }

    fn live() -> LiveSlot {
        LiveSlot {
            active: false,
            plugin: Some("pgoutput".into()),
            restart_lsn: None,
            confirmed_flush_lsn: None,
            retained_bytes: None,
            wal_status: None,
        }
    }

    async fn store() -> (Arc<InMemoryStore>, SourceId, rosetta_domain::DestinationId) {
        let store = Arc::new(InMemoryStore::new(Arc::new(InsecureTestCipher::new(1))));
        let source = SourceRepository::create(store.as_ref(), new_source("s", None), fixed_time(0)).await.unwrap();
        let destination =
            DestinationRepository::create(store.as_ref(), new_destination("d", None), fixed_time(0)).await.unwrap();
        (store, source.id, destination.id)
    }

    #[tokio::test]
    async fn a_failed_provision_leaves_no_pipeline_and_a_created_one_is_managed() {
        let (store, source, destination) = store().await;
        let mut operations = MockSourceOperations::new();
        let mut calls = 0;
        operations.expect_create_slot().returning(move |_, _| {
            calls += 1;
            if calls == 1 {
                Err(SlotError::Source(SourceError::Connect { message: "refused".into(), sqlstate: None }))
            } else {
                Ok(SlotCreation::Created(live()))
            }
        });
        let operator = operator_over(store.clone(), store.clone(), operations, no_tasks());
        let manager = PipelineManager::new(store.clone(), operator, unused_cleaner(), Arc::new(SystemClock));
        let failed = manager.create_pipeline(new_pipeline("p", source, destination, PipelineStatus::Start), true).await;
        assert!(matches!(failed, Err(ServiceError::Source { .. })), "{failed:?}");
        assert_eq!(PipelineRepository::list(store.as_ref(), PageRequest::default()).await.unwrap().total, 0);
        let created =
            manager.create_pipeline(new_pipeline("p", source, destination, PipelineStatus::Start), true).await.unwrap();
        assert!(created.pipeline.slot_managed);
    }

    #[tokio::test]
    async fn a_slot_a_pending_cleanup_task_will_drop_is_not_taken() {
        let (store, source, destination) = store().await;
        let pipeline = PipelineRepository::create(
            store.as_ref(),
            new_pipeline("p", source, destination, PipelineStatus::Start),
            fixed_time(1),
        )
        .await
        .unwrap();
        let mut tasks = MockCleanupTaskStore::new();
        let slot_name = pipeline.pipeline.slot_name.clone();
        tasks.expect_find().returning(move |source_id, slot| {
            Ok(Some(rosetta_domain::CleanupTask {
                id: CleanupTaskId::new(12),
                kind: rosetta_domain::CleanupKind::DropSlot,
                source_id,
                slot_name: slot.clone(),
                attempts: 3,
                last_error: Some("refused".into()),
                next_attempt_at: fixed_time(5),
                created_at: fixed_time(0),
            }))
        });
        // No create is attempted (the mock has no expectation for it).
        let operator = operator_over(store.clone(), store.clone(), MockSourceOperations::new(), tasks);
        let refused = operator.create_slot(pipeline.pipeline.id).await;
        assert!(
            matches!(&refused, Err(ServiceError::Refused(reason)) if reason.contains("cleanup task 12") && reason.contains(slot_name.as_str())),
            "{refused:?}"
        );
        assert!(!PipelineRepository::get(store.as_ref(), pipeline.pipeline.id).await.unwrap().pipeline.slot_managed);
    }

    #[tokio::test]
    async fn an_adopted_slot_stays_unmanaged() {
        let (store, source, destination) = store().await;
        let pipeline = PipelineRepository::create(
            store.as_ref(),
            new_pipeline("p", source, destination, PipelineStatus::Start),
            fixed_time(1),
        )
        .await
        .unwrap();
        let mut operations = MockSourceOperations::new();
        operations.expect_create_slot().returning(|_, _| Ok(SlotCreation::Existed(live())));
        let operator = operator_over(store.clone(), store.clone(), operations, no_tasks());
        let outcome = operator.create_slot(pipeline.pipeline.id).await.unwrap();
        assert!(!outcome.created && !outcome.slot.managed);
        assert!(!PipelineRepository::get(store.as_ref(), pipeline.pipeline.id).await.unwrap().pipeline.slot_managed);
    }

    #[tokio::test]
    async fn run_now_drops_and_records_success_and_failure() {
        let (store, source, destination) = store().await;
        let mut ids = Vec::new();
        for name in ["a", "b"] {
            let p = PipelineRepository::create(
                store.as_ref(),
                new_pipeline(name, source, destination, PipelineStatus::Start),
                fixed_time(1),
            )
            .await
            .unwrap();
            PipelineRepository::set_slot_managed(store.as_ref(), p.pipeline.id, true, fixed_time(1)).await.unwrap();
            ids.push(p.pipeline.id);
        }
        let tasks = SourceRepository::delete(store.as_ref(), source, true, fixed_time(2)).await.unwrap();
        assert_eq!(tasks.len(), 2);
        let connection = SourceRepository::connection(store.as_ref(), source).await;
        assert!(connection.is_err(), "the source is gone; the tasks keep their own settings");
        let mut operations = MockSourceOperations::new();
        let refused = tasks[1].slot_name.clone();
        operations.expect_drop_slot().returning(move |_, slot, force| {
            assert!(!force, "a cleanup never disconnects a consumer");
            if *slot == refused { Err(SlotError::Active(slot.clone())) } else { Ok(SlotDrop::Dropped) }
        });
        let mut store_mock = MockCleanupTaskStore::new();
        let pending: Vec<PendingCleanup> = tasks
            .iter()
            .map(|task| PendingCleanup {
                task: task.clone(),
                connection: Ok(SourceConnection {
                    source_id: source,
                    pg_host: rosetta_domain::PgHost::parse("localhost").unwrap(),
                    pg_port: rosetta_domain::PgPort::default(),
                    pg_database: rosetta_domain::PgDatabase::parse("db").unwrap(),
                    pg_username: rosetta_domain::PgUsername::parse("u").unwrap(),
                    pg_password: None,
                    pg_sslmode: rosetta_domain::PgSslMode::Prefer,
                    pg_sslrootcert: None,
                }),
            })
            .collect();
        store_mock.expect_pending().returning(move |_| Ok(pending.clone()));
        let first = tasks[0].id;
        store_mock.expect_record_unleased().times(2).returning(move |attempt| {
            if attempt.id == first {
                assert_eq!((attempt.outcome.clone(), attempt.next, attempt.attempts), (Ok(()), Next::Done, 1));
            } else {
                assert!(attempt.outcome.as_ref().is_err_and(|e| e.contains("consumer")));
                assert!(matches!(attempt.next, Next::DueAt(_)));
            }
            Ok(())
        });
        SlotCleaner::new(Arc::new(operations), Arc::new(store_mock), store.clone(), Arc::new(SystemClock))
            .run_now(tasks)
            .await;
    }
}
