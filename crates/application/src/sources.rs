use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{NewSource, Page, PageRequest, Source, SourceId, SourcePatch};
use rosetta_ports::inbound::{DeleteMode, ServiceError, SourceService};
use rosetta_ports::outbound::{Clock, SourceRepository};

use crate::source_operations::SlotCleaner;

/// Manages sources through a [`SourceRepository`].
#[derive(Clone)]
pub struct SourceManager {
    repository: Arc<dyn SourceRepository>,
    cleaner: SlotCleaner,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SourceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceManager").finish_non_exhaustive()
    }
}

impl SourceManager {
    /// A manager over `repository`, stamping changes with `clock`.
    /// A cascading delete drops its pipelines' managed slots through `cleaner`.
    pub fn new(repository: Arc<dyn SourceRepository>, cleaner: SlotCleaner, clock: Arc<dyn Clock>) -> Self {
        Self { repository, cleaner, clock }
    }
}

#[async_trait]
impl SourceService for SourceManager {
    async fn create_source(&self, new: NewSource) -> Result<Source, ServiceError> {
        let source = self.repository.create(new, self.clock.now()).await?;
        tracing::info!(source_id = %source.id, source_name = %source.name, "source created");
        Ok(source)
    }

    async fn get_source(&self, id: SourceId) -> Result<Source, ServiceError> {
        Ok(self.repository.get(id).await?)
    }

    async fn list_sources(&self, page: PageRequest) -> Result<Page<Source>, ServiceError> {
        Ok(self.repository.list(page).await?)
    }

    async fn update_source(&self, id: SourceId, patch: SourcePatch) -> Result<Source, ServiceError> {
        let source = self.repository.update(id, patch, self.clock.now()).await?;
        tracing::info!(source_id = %id, "source updated");
        Ok(source)
    }

    async fn delete_source(&self, id: SourceId, mode: DeleteMode) -> Result<(), ServiceError> {
        let tasks = self.repository.delete(id, mode == DeleteMode::Cascade, self.clock.now()).await?;
        tracing::info!(source_id = %id, cascade = mode == DeleteMode::Cascade, "source deleted");
        self.cleaner.run_now(tasks).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rosetta_ports::EntityKind;
    use rosetta_ports::outbound::{MockClock, MockSourceRepository, RepositoryError};
    use rosetta_ports::testing::{fixed_time, new_source};

    use super::*;

    fn clock_at(second: u32) -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_time(second));
        Arc::new(clock)
    }

    #[tokio::test]
    async fn create_stamps_the_clock_time() {
        let mut repository = MockSourceRepository::new();
        repository
            .expect_create()
            .withf(|new, now| new.name.as_str() == "orders" && *now == fixed_time(3))
            .returning(|_, _| Err(RepositoryError::Unavailable("down".into())));
        let manager = SourceManager::new(Arc::new(repository), crate::source_operations::unused_cleaner(), clock_at(3));
        let outcome = manager.create_source(new_source("orders", None)).await;
        assert!(matches!(outcome, Err(ServiceError::Unavailable(_))));
    }

    #[tokio::test]
    async fn delete_passes_the_cascade_mode_and_maps_in_use() {
        let mut repository = MockSourceRepository::new();
        repository.expect_delete().withf(|id, cascade, _| id.get() == 5 && !cascade).returning(|id, _, _| {
            Err(RepositoryError::InUse { entity: EntityKind::Source, id: id.get(), pipelines: vec![] })
        });
        repository.expect_delete().withf(|_, cascade, _| *cascade).returning(|_, _, _| Ok(Vec::new()));
        let manager = SourceManager::new(Arc::new(repository), crate::source_operations::unused_cleaner(), clock_at(0));
        let restricted = manager.delete_source(SourceId::new(5), DeleteMode::Restrict).await;
        assert!(matches!(restricted, Err(ServiceError::InUse { entity: EntityKind::Source, id: 5, .. })));
        manager.delete_source(SourceId::new(5), DeleteMode::Cascade).await.unwrap();
    }
}
