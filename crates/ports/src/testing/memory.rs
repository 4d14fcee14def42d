//! An in-memory implementation of the repository ports.
//!
//! It honours the same contracts as the PostgreSQL adapter (the contract suites run against
//! both), so use-case tests can run without a database. State lives behind one mutex: every
//! method is atomic, like a transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rosetta_domain::{
    Destination, DestinationId, DestinationPatch, NewDestination, NewPipeline, NewSource, Page, PageRequest, Patch,
    Pipeline, PipelineDetails, PipelineId, PipelineMetadata, PipelinePatch, PipelineSummary, Source, SourceConnection,
    SourceId, SourcePatch, Timestamp, Transition,
};

use crate::EntityKind;
use crate::outbound::{
    ConnectionSettingsError, DestinationRepository, MetadataHealth, PipelineRepository, RepositoryError, SecretCipher,
    SecretSlot, SourceRepository, StoredConnection,
};

#[derive(Debug, Default)]
struct State {
    next_id: i64,
    sources: BTreeMap<SourceId, (Source, Option<Vec<u8>>)>,
    destinations: BTreeMap<DestinationId, (Destination, Option<Vec<u8>>)>,
    pipelines: BTreeMap<PipelineId, Pipeline>,
}

impl State {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn users_of(&self, matches: impl Fn(&Pipeline) -> bool) -> Vec<PipelineSummary> {
        self.pipelines
            .values()
            .filter(|p| matches(p))
            .map(|p| PipelineSummary { id: p.id, name: p.name.clone() })
            .collect()
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
            publication_name: new.publication_name,
            replication_id: new.replication_id,
            created_at: now,
            updated_at: now,
        };
        state.sources.insert(id, (source.clone(), sealed));
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

    async fn delete(&self, id: SourceId, cascade: bool) -> Result<(), RepositoryError> {
        let mut state = self.lock()?;
        if !state.sources.contains_key(&id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() });
        }
        let users = state.users_of(|p| p.source_id == id);
        if !users.is_empty() && !cascade {
            return Err(RepositoryError::InUse { entity: EntityKind::Source, id: id.get(), pipelines: users });
        }
        state.pipelines.retain(|_, p| p.source_id != id);
        state.sources.remove(&id);
        Ok(())
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

    async fn delete(&self, id: DestinationId, cascade: bool) -> Result<(), RepositoryError> {
        let mut state = self.lock()?;
        if !state.destinations.contains_key(&id) {
            return Err(RepositoryError::NotFound { entity: EntityKind::Destination, id: id.get() });
        }
        let users = state.users_of(|p| p.destination_id == id);
        if !users.is_empty() && !cascade {
            return Err(RepositoryError::InUse { entity: EntityKind::Destination, id: id.get(), pipelines: users });
        }
        state.pipelines.retain(|_, p| p.destination_id != id);
        state.destinations.remove(&id);
        Ok(())
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
        let pipeline = Pipeline {
            id,
            name: new.name,
            source_id: new.source_id,
            destination_id: new.destination_id,
            status: new.status,
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

    async fn delete(&self, id: PipelineId) -> Result<(), RepositoryError> {
        let mut state = self.lock()?;
        state
            .pipelines
            .remove(&id)
            .map(|_| ())
            .ok_or(RepositoryError::NotFound { entity: EntityKind::Pipeline, id: id.get() })
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
    use crate::testing::{InsecureTestCipher, RepositoryBundle, RepositoryFactory, repository_contracts};

    struct Factory;

    #[async_trait]
    impl RepositoryFactory for Factory {
        async fn fresh(&self) -> RepositoryBundle {
            let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(7)));
            RepositoryBundle {
                sources: Arc::new(store.clone()),
                destinations: Arc::new(store.clone()),
                pipelines: Arc::new(store),
                guard: None,
            }
        }
    }

    #[test]
    fn an_unreadable_password_costs_only_its_own_row() {
        futures::executor::block_on(async {
            let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(7)));
            let a = SourceRepository::create(
                &store,
                crate::testing::new_source("a", Some("pw-a")),
                crate::testing::fixed_time(0),
            )
            .await
            .unwrap();
            let b = SourceRepository::create(
                &store,
                crate::testing::new_source("b", Some("pw-b")),
                crate::testing::fixed_time(0),
            )
            .await
            .unwrap();
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

    #[test]
    fn the_in_memory_store_honours_the_repository_contracts() {
        futures::executor::block_on(repository_contracts(&Factory));
    }
}
