//! An in-memory implementation of the storage ports: the repositories, the leases of every
//! queue, and the WAL and host metrics stores.
//!
//! It honours the same contracts as the PostgreSQL adapter (the contract suites run against
//! both), so use-case and worker tests can run on its real semantics without a database. State
//! lives behind one mutex: every method is atomic, like a transaction. As in the database, every
//! source is an item of the [`Queue::WAL_SAMPLING`] queue from its creation to its deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::{
    ChartHistory, ChartWindow, CleanupKind, CleanupTask, CleanupTaskId, Destination, DestinationId, DestinationPatch,
    NewDestination, NewPipeline, NewSource, Page, PageRequest, Patch, Pipeline, PipelineDetails, PipelineId,
    PipelineMetadata, PipelinePatch, PipelineSummary, SampledBucket, SlotBucket, SlotName, Source, SourceConnection,
    SourceId, SourcePatch, SourceWalState, SystemSample, Timestamp, Transition, WalMonitorStatus,
};

use crate::EntityKind;
use crate::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use crate::outbound::{
    ConnectionSettingsError, DestinationRepository, MetadataHealth, PipelineRepository, RepositoryError, SecretCipher,
    SecretSlot, SourcePipeline, SourceRepository, StoredConnection,
};
use crate::wal::{
    SampleOutcome, SystemHistoryQuery, SystemMetricsRepository, WalHistoryEntry, WalHistoryQuery, WalMetricsRepository,
};

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    sources: BTreeMap<SourceId, (Source, Option<Vec<u8>>)>,
    destinations: BTreeMap<DestinationId, (Destination, Option<Vec<u8>>)>,
    pipelines: BTreeMap<PipelineId, Pipeline>,
    /// Cleanup tasks recorded by deletes (connection settings are not kept here).
    cleanup_tasks: Vec<CleanupTask>,
    /// Every queue's items, by (queue, item).
    leases: BTreeMap<(Queue, i64), LeaseRow>,
    /// The latest WAL state per source.
    wal_states: BTreeMap<SourceId, SourceWalState>,
    /// WAL history rows, by insertion order (the id breaks ties of `recorded_at`).
    wal_history: Vec<(u64, WalHistoryEntry)>,
    /// Host samples, by insertion order.
    system: Vec<(u64, SystemSample)>,
    next_row: u64,
}

/// One queued item.
#[derive(Debug, Clone, Default)]
struct LeaseRow {
    due_at: Option<Timestamp>,
    lease: Option<(LeaseOwner, Timestamp)>,
}

impl LeaseRow {
    fn claimable(&self, now: Timestamp) -> bool {
        self.due_at.is_none_or(|due| due <= now) && self.lease.as_ref().is_none_or(|(_, expires)| *expires <= now)
    }

    fn held_by(&self, owner: &LeaseOwner) -> bool {
        self.lease.as_ref().is_some_and(|(held, _)| held == owner)
    }
}

impl State {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_row(&mut self) -> u64 {
        self.next_row += 1;
        self.next_row
    }

    /// Completes `owner`'s leased `items` of `queue`; the items completed.
    fn complete(&mut self, queue: Queue, owner: &LeaseOwner, items: &[(i64, Next)]) -> Vec<i64> {
        let mut completed = Vec::new();
        for (item, next) in items {
            let Some(row) = self.leases.get_mut(&(queue, *item)) else { continue };
            if !row.held_by(owner) {
                continue;
            }
            match next {
                Next::DueAt(due) => {
                    row.due_at = Some(*due);
                    row.lease = None;
                }
                Next::Done => {
                    self.leases.remove(&(queue, *item));
                }
            }
            completed.push(*item);
        }
        completed
    }

    fn users_of(&self, matches: impl Fn(&Pipeline) -> bool) -> Vec<PipelineSummary> {
        self.pipelines
            .values()
            .filter(|p| matches(p))
            .map(|p| PipelineSummary { id: p.id, name: p.name.clone() })
            .collect()
    }

    /// `Conflict{field: "slot_name"}` when another pipeline (not `except`) of `source` names `slot`.
    fn check_slot_name(
        &self,
        except: Option<PipelineId>,
        source: SourceId,
        slot: &SlotName,
    ) -> Result<(), RepositoryError> {
        let taken =
            self.pipelines.values().any(|p| Some(p.id) != except && p.source_id == source && p.slot_name == *slot);
        if taken {
            return Err(RepositoryError::Conflict {
                entity: EntityKind::Pipeline,
                field: "slot_name",
                value: slot.as_str().to_owned(),
            });
        }
        Ok(())
    }

    /// Records the task that drops `pipeline`'s managed slot.
    fn record_cleanup(&mut self, pipeline: &Pipeline, now: Timestamp) -> CleanupTask {
        let task = CleanupTask {
            id: CleanupTaskId::new(self.next_id()),
            kind: CleanupKind::DropSlot,
            source_id: pipeline.source_id,
            slot_name: pipeline.slot_name.clone(),
            attempts: 0,
            last_error: None,
            next_attempt_at: crate::sources::first_cleanup_due(now),
            created_at: now,
        };
        self.leases.insert(
            (Queue::SOURCE_CLEANUP, task.id.get()),
            LeaseRow { due_at: Some(task.next_attempt_at), lease: None },
        );
        self.cleanup_tasks.push(task.clone());
        task
    }

    fn details(&self, pipeline: &Pipeline) -> Result<PipelineDetails, RepositoryError> {
        let corrupt = || RepositoryError::Unexpected("pipeline references a missing row".into());
        Ok(PipelineDetails {
            pipeline: pipeline.clone(),
            source: self.sources.get(&pipeline.source_id).ok_or_else(corrupt)?.0.clone(),
            destination: self.destinations.get(&pipeline.destination_id).ok_or_else(corrupt)?.0.clone(),
        })
    }

    fn check_references(&self, source_id: SourceId, destination_id: DestinationId) -> Result<(), RepositoryError> {
        if !self.sources.contains_key(&source_id) {
            return Err(RepositoryError::MissingReference {
                field: "source_id",
                entity: EntityKind::Source,
                id: source_id.get(),
            });
        }
        if !self.destinations.contains_key(&destination_id) {
            return Err(RepositoryError::MissingReference {
                field: "destination_id",
                entity: EntityKind::Destination,
                id: destination_id.get(),
            });
        }
        Ok(())
    }
}

/// The in-memory store. Clone it to share one store between the three repository traits.
#[derive(Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore").finish_non_exhaustive()
    }
}

impl InMemoryStore {
    /// An empty store that seals secrets with `cipher`.
    pub fn new(cipher: Arc<dyn SecretCipher>) -> Self {
        Self { state: Arc::default(), cipher }
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, RepositoryError> {
        self.state.lock().map_err(|_| RepositoryError::Unexpected("in-memory store poisoned".into()))
    }

    /// Copies source `from`'s sealed password onto source `to`, as an operator with psql could:
    /// sealed values are bound to their row, so `to`'s no longer opens. For tests of what an
    /// unreadable secret does.
    pub fn copy_sealed_password(&self, from: SourceId, to: SourceId) {
        if let Ok(mut state) = self.lock() {
            let sealed = state.sources.get(&from).and_then(|(_, sealed)| sealed.clone());
            if let Some((_, target)) = state.sources.get_mut(&to) {
                *target = sealed;
            }
        }
    }

    fn seal(&self, secret: &rosetta_domain::Secret, slot: SecretSlot) -> Result<Vec<u8>, RepositoryError> {
        self.cipher.seal(secret, slot).map_err(|e| RepositoryError::Unexpected(Box::new(e)))
    }
}

fn page_of<T: Clone>(items: impl ExactSizeIterator<Item = T>, page: PageRequest) -> Page<T> {
    let total = items.len() as u64;
    let skip = usize::try_from(page.skip).unwrap_or(usize::MAX);
    let items = items.skip(skip).take(page.limit.get() as usize).collect();
    Page { items, total }
}

fn name_taken<'a>(mut names: impl Iterator<Item = &'a str>, name: &str) -> bool {
    names.any(|n| n == name)
}

const SOURCE_PASSWORD: fn(SourceId) -> SecretSlot =
    |id| SecretSlot { table: "sources", column: "pg_password", row_id: id.get() };
const DESTINATION_PASSPHRASE: fn(DestinationId) -> SecretSlot =
    |id| SecretSlot { table: "destinations", column: "snowflake_private_key_passphrase", row_id: id.get() };

#[async_trait]
impl SourceRepository for InMemoryStore {
    async fn create(&self, new: NewSource, now: Timestamp) -> Result<Source, RepositoryError> {
        let mut state = self.lock()?;
        if name_taken(state.sources.values().map(|(s, _)| s.name.as_str()), new.name.as_str()) {
            return Err(RepositoryError::Conflict {
                entity: EntityKind::Source,
                field: "name",
                value: new.name.into_inner(),
            });
        }
        let id = SourceId::new(state.next_id());
        let sealed = new.pg_password.as_ref().map(|p| self.seal(p, SOURCE_PASSWORD(id))).transpose()?;
        let source = Source {
            id,
            name: new.name,
            pg_host: new.pg_host,
            pg_port: new.pg_port,
            pg_database: new.pg_database,
            pg_username: new.pg_username,
            has_password: sealed.is_some(),
            pg_sslmode: new.pg_sslmode,
            pg_sslrootcert: new.pg_sslrootcert,
            publication_name: new.publication_name,
            replication_id: new.replication_id,
            created_at: now,
            updated_at: now,
        };
        state.sources.insert(id, (source.clone(), sealed));
        // As the database does: every source is an item of the sampling queue, due at once.
        state.leases.insert((Queue::WAL_SAMPLING, id.get()), LeaseRow::default());
        Ok(source)
    }

    async fn get(&self, id: SourceId) -> Result<Source, RepositoryError> {
        let state = self.lock()?;
        let found = state.sources.get(&id).map(|(s, _)| s.clone());
        found.ok_or(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() })
    }

    async fn list(&self, page: PageRequest) -> Result<Page<Source>, RepositoryError> {
        Ok(page_of(self.lock()?.sources.values().map(|(s, _)| s.clone()), page))
    }

    async fn update(&self, id: SourceId, patch: SourcePatch, now: Timestamp) -> Result<Source, RepositoryError> {
        let mut state = self.lock()?;
        let not_found = RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() };
        let (current, _) = state.sources.get(&id).ok_or(not_found)?;
        if let Some(name) = &patch.name {
            let others = state.sources.values().filter(|(s, _)| s.id != id).map(|(s, _)| s.name.as_str());
            if name_taken(others, name.as_str()) {
                return Err(RepositoryError::Conflict {
                    entity: EntityKind::Source,
                    field: "name",
                    value: name.to_string(),
                });
            }
        }
        let mut updated = current.clone();
        patch.apply_to(&mut updated);
        if !patch.is_empty() {
            updated.updated_at = now;
        }
        let sealed = match &patch.pg_password {
            Patch::Set(secret) => Patch::Set(self.seal(secret, SOURCE_PASSWORD(id))?),
            Patch::Clear => Patch::Clear,
            Patch::Keep => Patch::Keep,
        };
        let entry =
            state.sources.get_mut(&id).ok_or(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() })?;
        entry.1 = sealed.apply(entry.1.take());
        entry.0 = updated.clone();
        Ok(updated)
    }

    async fn delete(&self, id: SourceId, cascade: bool, now: Timestamp) -> Result<Vec<CleanupTask>, RepositoryError> {
        let mut state = self.lock()?;
        if !state.sources.contains_key(&id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() });
        }
        let users = state.users_of(|p| p.source_id == id);
        if !users.is_empty() && !cascade {
            return Err(RepositoryError::InUse { entity: EntityKind::Source, id: id.get(), pipelines: users });
        }
        let managed: Vec<Pipeline> =
            state.pipelines.values().filter(|p| p.source_id == id && p.slot_managed).cloned().collect();
        let tasks = managed.iter().map(|p| state.record_cleanup(p, now)).collect();
        state.pipelines.retain(|_, p| p.source_id != id);
        state.sources.remove(&id);
        state.leases.remove(&(Queue::WAL_SAMPLING, id.get()));
        state.wal_states.remove(&id);
        state.wal_history.retain(|(_, entry)| entry.source_id != id);
        Ok(tasks)
    }

    async fn connection(&self, id: SourceId) -> Result<SourceConnection, RepositoryError> {
        let found = self.connections(&[id]).await?.pop();
        let stored = found.ok_or(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() })?;
        stored.settings.map_err(|error| RepositoryError::Unexpected(Box::new(error)))
    }

    async fn connections(&self, ids: &[SourceId]) -> Result<Vec<StoredConnection>, RepositoryError> {
        let state = self.lock()?;
        Ok(ids
            .iter()
            .filter_map(|id| state.sources.get(id).map(|entry| (*id, entry)))
            .map(|(id, (source, sealed))| {
                let password = sealed
                    .as_ref()
                    .map(|bytes| self.cipher.open(bytes, SOURCE_PASSWORD(id)))
                    .transpose()
                    .map_err(|reason| ConnectionSettingsError::UnreadableSecret { column: "pg_password", reason });
                StoredConnection {
                    source_id: id,
                    settings: password.map(|pg_password| SourceConnection {
                        source_id: id,
                        pg_host: source.pg_host.clone(),
                        pg_port: source.pg_port,
                        pg_database: source.pg_database.clone(),
                        pg_username: source.pg_username.clone(),
                        pg_password,
                        pg_sslmode: source.pg_sslmode,
                        pg_sslrootcert: source.pg_sslrootcert.clone(),
                    }),
                }
            })
            .collect())
    }
}

#[async_trait]
impl DestinationRepository for InMemoryStore {
    async fn create(&self, new: NewDestination, now: Timestamp) -> Result<Destination, RepositoryError> {
        let mut state = self.lock()?;
        if name_taken(state.destinations.values().map(|(d, _)| d.name.as_str()), new.name.as_str()) {
            return Err(RepositoryError::Conflict {
                entity: EntityKind::Destination,
                field: "name",
                value: new.name.into_inner(),
            });
        }
        let id = DestinationId::new(state.next_id());
        let sealed = new
            .snowflake_private_key_passphrase
            .as_ref()
            .map(|p| self.seal(p, DESTINATION_PASSPHRASE(id)))
            .transpose()?;
        let destination = Destination {
            id,
            name: new.name,
            settings: new.settings,
            has_private_key_passphrase: sealed.is_some(),
            created_at: now,
            updated_at: now,
        };
        state.destinations.insert(id, (destination.clone(), sealed));
        Ok(destination)
    }

    async fn get(&self, id: DestinationId) -> Result<Destination, RepositoryError> {
        let state = self.lock()?;
        let found = state.destinations.get(&id).map(|(d, _)| d.clone());
        found.ok_or(RepositoryError::NotFound { entity: EntityKind::Destination, id: id.get() })
    }

    async fn list(&self, page: PageRequest) -> Result<Page<Destination>, RepositoryError> {
        Ok(page_of(self.lock()?.destinations.values().map(|(d, _)| d.clone()), page))
    }

    async fn update(
        &self,
        id: DestinationId,
        patch: DestinationPatch,
        now: Timestamp,
    ) -> Result<Destination, RepositoryError> {
        let mut state = self.lock()?;
        let not_found = || RepositoryError::NotFound { entity: EntityKind::Destination, id: id.get() };
        let (current, _) = state.destinations.get(&id).ok_or_else(not_found)?;
        if let Some(name) = &patch.name {
            let others = state.destinations.values().filter(|(d, _)| d.id != id).map(|(d, _)| d.name.as_str());
            if name_taken(others, name.as_str()) {
                return Err(RepositoryError::Conflict {
                    entity: EntityKind::Destination,
                    field: "name",
                    value: name.to_string(),
                });
            }
        }
        let mut updated = current.clone();
        patch.apply_to(&mut updated);
        if patch != DestinationPatch::default() {
            updated.updated_at = now;
        }
        let sealed = match &patch.snowflake_private_key_passphrase {
            Patch::Set(secret) => Patch::Set(self.seal(secret, DESTINATION_PASSPHRASE(id))?),
            Patch::Clear => Patch::Clear,
            Patch::Keep => Patch::Keep,
        };
        let entry = state.destinations.get_mut(&id).ok_or_else(not_found)?;
        entry.1 = sealed.apply(entry.1.take());
        entry.0 = updated.clone();
        Ok(updated)
    }

    async fn delete(
        &self,
        id: DestinationId,
        cascade: bool,
        now: Timestamp,
    ) -> Result<Vec<CleanupTask>, RepositoryError> {
        let mut state = self.lock()?;
        if !state.destinations.contains_key(&id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Destination, id: id.get() });
        }
        let users = state.users_of(|p| p.destination_id == id);
        if !users.is_empty() && !cascade {
            return Err(RepositoryError::InUse { entity: EntityKind::Destination, id: id.get(), pipelines: users });
        }
        let managed: Vec<Pipeline> =
            state.pipelines.values().filter(|p| p.destination_id == id && p.slot_managed).cloned().collect();
        let tasks = managed.iter().map(|p| state.record_cleanup(p, now)).collect();
        state.pipelines.retain(|_, p| p.destination_id != id);
        state.destinations.remove(&id);
        Ok(tasks)
    }
}

#[async_trait]
impl PipelineRepository for InMemoryStore {
    async fn create(&self, new: NewPipeline, now: Timestamp) -> Result<PipelineDetails, RepositoryError> {
        let mut state = self.lock()?;
        state.check_references(new.source_id, new.destination_id)?;
        if name_taken(state.pipelines.values().map(|p| p.name.as_str()), new.name.as_str()) {
            return Err(RepositoryError::Conflict {
                entity: EntityKind::Pipeline,
                field: "name",
                value: new.name.into_inner(),
            });
        }
        let id = PipelineId::new(state.next_id());
        let slot_name = new.slot_name.unwrap_or_else(|| SlotName::for_pipeline(id));
        state.check_slot_name(None, new.source_id, &slot_name)?;
        let pipeline = Pipeline {
            id,
            name: new.name,
            source_id: new.source_id,
            destination_id: new.destination_id,
            status: new.status,
            slot_name,
            slot_managed: false,
            metadata: PipelineMetadata::initial(id, new.status, now),
            created_at: now,
            updated_at: now,
        };
        let details = state.details(&pipeline)?;
        state.pipelines.insert(id, pipeline);
        Ok(details)
    }

    async fn get(&self, id: PipelineId) -> Result<PipelineDetails, RepositoryError> {
        let state = self.lock()?;
        let pipeline =
            state.pipelines.get(&id).ok_or(RepositoryError::NotFound { entity: EntityKind::Pipeline, id: id.get() })?;
        state.details(pipeline)
    }

    async fn list(&self, page: PageRequest) -> Result<Page<PipelineDetails>, RepositoryError> {
        let state = self.lock()?;
        let listed = page_of(state.pipelines.values(), page);
        let items = listed.items.into_iter().map(|p| state.details(p)).collect::<Result<_, _>>()?;
        Ok(Page { items, total: listed.total })
    }

    async fn update(
        &self,
        id: PipelineId,
        patch: PipelinePatch,
        now: Timestamp,
    ) -> Result<PipelineDetails, RepositoryError> {
        let mut state = self.lock()?;
        let mut pipeline = state
            .pipelines
            .get(&id)
            .cloned()
            .ok_or(RepositoryError::NotFound { entity: EntityKind::Pipeline, id: id.get() })?;
        let mut changed = false;
        if let Some(name) = patch.name {
            let others = state.pipelines.values().filter(|p| p.id != id).map(|p| p.name.as_str());
            if name_taken(others, name.as_str()) {
                return Err(RepositoryError::Conflict {
                    entity: EntityKind::Pipeline,
                    field: "name",
                    value: name.into_inner(),
                });
            }
            changed |= pipeline.name != name;
            pipeline.name = name;
        }
        let source_id = patch.source_id.unwrap_or(pipeline.source_id);
        let destination_id = patch.destination_id.unwrap_or(pipeline.destination_id);
        state.check_references(source_id, destination_id)?;
        state.check_slot_name(Some(id), source_id, &pipeline.slot_name)?;
        changed |= (source_id, destination_id) != (pipeline.source_id, pipeline.destination_id);
        pipeline.source_id = source_id;
        pipeline.destination_id = destination_id;
        if let Some(requested) = patch.status
            && let Transition::Changed { status, metadata } = pipeline.request(requested, now)
        {
            changed |= status != pipeline.status;
            pipeline.status = status;
            pipeline.metadata = metadata;
        }
        if changed {
            pipeline.updated_at = now;
        }
        let details = state.details(&pipeline)?;
        state.pipelines.insert(id, pipeline);
        Ok(details)
    }

    async fn delete(&self, id: PipelineId, now: Timestamp) -> Result<Option<CleanupTask>, RepositoryError> {
        let mut state = self.lock()?;
        let pipeline = state
            .pipelines
            .remove(&id)
            .ok_or(RepositoryError::NotFound { entity: EntityKind::Pipeline, id: id.get() })?;
        Ok(pipeline.slot_managed.then(|| state.record_cleanup(&pipeline, now)))
    }

    async fn set_slot_managed(&self, id: PipelineId, managed: bool, now: Timestamp) -> Result<(), RepositoryError> {
        let mut state = self.lock()?;
        let pipeline = state
            .pipelines
            .get_mut(&id)
            .ok_or(RepositoryError::NotFound { entity: EntityKind::Pipeline, id: id.get() })?;
        if pipeline.slot_managed != managed {
            pipeline.slot_managed = managed;
            pipeline.updated_at = now;
        }
        Ok(())
    }

    async fn pipelines_of(&self, source: Option<SourceId>) -> Result<Vec<SourcePipeline>, RepositoryError> {
        let state = self.lock()?;
        Ok(state
            .pipelines
            .values()
            .filter(|p| source.is_none_or(|s| s == p.source_id))
            .map(|p| SourcePipeline {
                pipeline_id: p.id,
                source_id: p.source_id,
                slot_name: p.slot_name.clone(),
                status: p.status,
            })
            .collect())
    }
}

#[async_trait]
impl LeaseStore for InMemoryStore {
    async fn enqueue(&self, queue: Queue, item: i64, due: Option<Timestamp>) -> Result<(), RepositoryError> {
        self.lock()?.leases.entry((queue, item)).or_insert(LeaseRow { due_at: due, lease: None });
        Ok(())
    }

    async fn expedite(&self, queue: Queue, item: i64, now: Timestamp) -> Result<(), RepositoryError> {
        if let Some(row) = self.lock()?.leases.get_mut(&(queue, item))
            && row.due_at.is_some_and(|due| due > now)
        {
            row.due_at = Some(now);
        }
        Ok(())
    }

    async fn claim(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<i64>, RepositoryError> {
        let mut state = self.lock()?;
        let mut due: Vec<(Option<Timestamp>, i64)> = state
            .leases
            .iter()
            .filter(|((q, _), row)| *q == queue && row.claimable(now))
            .map(|((_, item), row)| (row.due_at, *item))
            .collect();
        // `None` (never scheduled) sorts before every time, as NULLS FIRST does.
        due.sort();
        due.truncate(limit as usize);
        let expires = lease_expiry(now, lease);
        for (_, item) in &due {
            if let Some(row) = state.leases.get_mut(&(queue, *item)) {
                row.lease = Some((owner.clone(), expires));
            }
        }
        Ok(due.into_iter().map(|(_, item)| item).collect())
    }

    async fn renew(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<i64>, RepositoryError> {
        let mut state = self.lock()?;
        let expires = lease_expiry(now, lease);
        let mut renewed = Vec::new();
        for item in items {
            if let Some(row) = state.leases.get_mut(&(queue, *item))
                && row.held_by(owner)
            {
                row.lease = Some((owner.clone(), expires));
                renewed.push(*item);
            }
        }
        Ok(renewed)
    }

    async fn complete(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[(i64, Next)],
    ) -> Result<Vec<i64>, RepositoryError> {
        Ok(self.lock()?.complete(queue, owner, items))
    }

    async fn release_all(&self, owner: &LeaseOwner) -> Result<(), RepositoryError> {
        for row in self.lock()?.leases.values_mut().filter(|row| row.held_by(owner)) {
            row.lease = None;
        }
        Ok(())
    }
}

/// `now + lease`, saturating (an absurd lease never expires).
fn lease_expiry(now: Timestamp, lease: Duration) -> Timestamp {
    chrono::TimeDelta::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(Timestamp::MAX_UTC)
}

#[async_trait]
impl WalMetricsRepository for InMemoryStore {
    async fn record_outcomes(
        &self,
        owner: &LeaseOwner,
        outcomes: Vec<SampleOutcome>,
        next_sample_at: Timestamp,
    ) -> Result<Vec<SourceId>, RepositoryError> {
        let mut state = self.lock()?;
        // The latest attempt of each source (the later one in the batch on a tie) sets its state.
        let mut latest: BTreeMap<SourceId, &SampleOutcome> = BTreeMap::new();
        for outcome in &outcomes {
            let keep = latest.get(&outcome.source_id).is_none_or(|kept| kept.attempted_at <= outcome.attempted_at);
            if keep {
                latest.insert(outcome.source_id, outcome);
            }
        }
        let leased: Vec<(i64, Next)> = latest
            .keys()
            .filter(|id| state.sources.contains_key(id))
            .map(|id| (id.get(), Next::DueAt(next_sample_at)))
            .collect();
        let recorded: BTreeSet<SourceId> =
            state.complete(Queue::WAL_SAMPLING, owner, &leased).into_iter().map(SourceId::new).collect();
        for (id, outcome) in latest.iter().filter(|(id, _)| recorded.contains(id)) {
            let previous = state.wal_states.get(id).and_then(|s| s.last_sample.clone());
            let new_state = match &outcome.result {
                Ok(sample) => SourceWalState {
                    source_id: *id,
                    status: sample.status(),
                    last_sample: Some(sample.clone()),
                    error: None,
                    last_attempt_at: Some(outcome.attempted_at),
                },
                Err(error) => SourceWalState {
                    source_id: *id,
                    status: WalMonitorStatus::Error,
                    last_sample: previous,
                    error: Some(error.clone()),
                    last_attempt_at: Some(outcome.attempted_at),
                },
            };
            state.wal_states.insert(*id, new_state);
        }
        let mut order = Vec::new();
        for outcome in outcomes.into_iter().filter(|o| recorded.contains(&o.source_id)) {
            if !order.contains(&outcome.source_id) {
                order.push(outcome.source_id);
            }
            let row = state.next_row();
            let entry = match outcome.result {
                Ok(sample) => WalHistoryEntry {
                    source_id: outcome.source_id,
                    recorded_at: outcome.attempted_at,
                    status: sample.status(),
                    sample: Some(sample),
                    error: None,
                },
                Err(error) => WalHistoryEntry {
                    source_id: outcome.source_id,
                    recorded_at: outcome.attempted_at,
                    status: WalMonitorStatus::Error,
                    sample: None,
                    error: Some(error),
                },
            };
            state.wal_history.push((row, entry));
        }
        Ok(order)
    }

    async fn list_latest(&self) -> Result<Vec<SourceWalState>, RepositoryError> {
        Ok(self.lock()?.wal_states.values().cloned().collect())
    }

    async fn latest(&self, source_id: SourceId) -> Result<Option<SourceWalState>, RepositoryError> {
        let state = self.lock()?;
        if !state.sources.contains_key(&source_id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Source, id: source_id.get() });
        }
        Ok(state.wal_states.get(&source_id).cloned())
    }

    async fn history(&self, query: WalHistoryQuery) -> Result<Vec<WalHistoryEntry>, RepositoryError> {
        let state = self.lock()?;
        let mut rows: Vec<&(u64, WalHistoryEntry)> = state
            .wal_history
            .iter()
            .filter(|(_, e)| query.source_id.is_none_or(|id| e.source_id == id))
            .filter(|(_, e)| query.from.is_none_or(|from| e.recorded_at >= from))
            .filter(|(_, e)| query.to.is_none_or(|to| e.recorded_at <= to))
            .collect();
        rows.sort_by(|(a_row, a), (b_row, b)| (b.recorded_at, b_row).cmp(&(a.recorded_at, a_row)));
        Ok(rows.into_iter().take(query.limit.get() as usize).map(|(_, e)| e.clone()).collect())
    }

    async fn chart_history(&self, source_id: SourceId, window: ChartWindow) -> Result<ChartHistory, RepositoryError> {
        let state = self.lock()?;
        if !state.sources.contains_key(&source_id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Source, id: source_id.get() });
        }
        let mut samples: BTreeMap<u32, SampledBucket> = BTreeMap::new();
        let mut slots: BTreeMap<(String, u32), Option<u64>> = BTreeMap::new();
        for (_, entry) in state.wal_history.iter().filter(|(_, e)| e.source_id == source_id) {
            let Some(bucket) = window.bucket_of(entry.recorded_at) else { continue };
            let counts =
                samples.entry(bucket).or_insert(SampledBucket { bucket, succeeded: 0, failed: 0, wal_dir_bytes: None });
            let Some(sample) = &entry.sample else {
                counts.failed += 1;
                continue;
            };
            counts.succeeded += 1;
            counts.wal_dir_bytes = counts.wal_dir_bytes.max(sample.wal_dir_bytes);
            for slot in &sample.slots {
                let held = slots.entry((slot.slot_name.clone(), bucket)).or_insert(None);
                *held = (*held).max(slot.retained_bytes(sample.current_lsn));
            }
        }
        Ok(ChartHistory {
            window,
            samples: samples.into_values().collect(),
            slots: slots
                .into_iter()
                .map(|((slot_name, bucket), retained_bytes)| SlotBucket { slot_name, bucket, retained_bytes })
                .collect(),
        })
    }

    async fn delete_history_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError> {
        let mut state = self.lock()?;
        let mut older: Vec<(Timestamp, u64)> = state
            .wal_history
            .iter()
            .filter(|(_, e)| e.recorded_at < cutoff)
            .map(|(row, e)| (e.recorded_at, *row))
            .collect();
        older.sort();
        older.truncate(batch as usize);
        let doomed: BTreeSet<u64> = older.into_iter().map(|(_, row)| row).collect();
        state.wal_history.retain(|(row, _)| !doomed.contains(row));
        Ok(doomed.len() as u64)
    }
}

#[async_trait]
impl SystemMetricsRepository for InMemoryStore {
    async fn record(&self, sample: SystemSample) -> Result<(), RepositoryError> {
        let mut state = self.lock()?;
        let row = state.next_row();
        state.system.push((row, sample));
        Ok(())
    }

    async fn history(&self, query: SystemHistoryQuery) -> Result<Vec<SystemSample>, RepositoryError> {
        let state = self.lock()?;
        let mut rows: Vec<&(u64, SystemSample)> = state
            .system
            .iter()
            .filter(|(_, s)| query.from.is_none_or(|from| s.sampled_at >= from))
            .filter(|(_, s)| query.to.is_none_or(|to| s.sampled_at <= to))
            .collect();
        rows.sort_by(|(a_row, a), (b_row, b)| (b.sampled_at, b_row).cmp(&(a.sampled_at, a_row)));
        Ok(rows.into_iter().take(query.limit.get() as usize).map(|(_, s)| s.clone()).collect())
    }

    async fn delete_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError> {
        let mut state = self.lock()?;
        let mut older: Vec<(Timestamp, u64)> =
            state.system.iter().filter(|(_, s)| s.sampled_at < cutoff).map(|(row, s)| (s.sampled_at, *row)).collect();
        older.sort();
        older.truncate(batch as usize);
        let doomed: BTreeSet<u64> = older.into_iter().map(|(_, row)| row).collect();
        state.system.retain(|(row, _)| !doomed.contains(row));
        Ok(doomed.len() as u64)
    }
}

#[async_trait]
impl MetadataHealth for InMemoryStore {
    async fn ping(&self) -> Result<(), RepositoryError> {
        self.lock().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{InsecureTestCipher, fixed_time, new_source};

    #[test]
    fn an_unreadable_password_costs_only_its_own_row() {
        futures::executor::block_on(async {
            let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(7)));
            let a = SourceRepository::create(&store, new_source("a", Some("pw-a")), fixed_time(0)).await.unwrap();
            let b = SourceRepository::create(&store, new_source("b", Some("pw-b")), fixed_time(0)).await.unwrap();
            {
                let mut state = store.state.lock().unwrap();
                let copied = state.sources[&a.id].1.clone();
                state.sources.get_mut(&b.id).unwrap().1 = copied;
            }
            let batch = store.connections(&[a.id, b.id]).await.unwrap();
            assert!(batch[0].settings.is_ok());
            assert!(matches!(
                batch[1].settings,
                Err(ConnectionSettingsError::UnreadableSecret { column: "pg_password", .. })
            ));
        });
    }
}
