use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{Destination, DestinationId, DestinationPatch, NewDestination, Page, PageRequest};
use rosetta_ports::inbound::{DeleteMode, DestinationService, ServiceError};
use rosetta_ports::outbound::{Clock, DestinationRepository};

use crate::source_operations::SlotCleaner;

/// Manages destinations through a [`DestinationRepository`].
#[derive(Clone)]
pub struct DestinationManager {
    repository: Arc<dyn DestinationRepository>,
    cleaner: SlotCleaner,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DestinationManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationManager").finish_non_exhaustive()
    }
}

impl DestinationManager {
    /// A manager over `repository`, stamping changes with `clock`.
    /// A cascading delete drops its pipelines' managed slots through `cleaner`.
    pub fn new(repository: Arc<dyn DestinationRepository>, cleaner: SlotCleaner, clock: Arc<dyn Clock>) -> Self {
        Self { repository, cleaner, clock }
    }
}

#[async_trait]
impl DestinationService for DestinationManager {
    async fn create_destination(&self, new: NewDestination) -> Result<Destination, ServiceError> {
        let destination = self.repository.create(new, self.clock.now()).await?;
        tracing::info!(destination_id = %destination.id, destination_name = %destination.name, "destination created");
        Ok(destination)
    }

    async fn get_destination(&self, id: DestinationId) -> Result<Destination, ServiceError> {
        Ok(self.repository.get(id).await?)
    }

    async fn list_destinations(&self, page: PageRequest) -> Result<Page<Destination>, ServiceError> {
        Ok(self.repository.list(page).await?)
    }

    async fn update_destination(
        &self,
        id: DestinationId,
        patch: DestinationPatch,
    ) -> Result<Destination, ServiceError> {
        let destination = self.repository.update(id, patch, self.clock.now()).await?;
        tracing::info!(destination_id = %id, "destination updated");
        Ok(destination)
    }

    async fn delete_destination(&self, id: DestinationId, mode: DeleteMode) -> Result<(), ServiceError> {
        let tasks = self.repository.delete(id, mode == DeleteMode::Cascade, self.clock.now()).await?;
        tracing::info!(destination_id = %id, cascade = mode == DeleteMode::Cascade, "destination deleted");
        self.cleaner.run_now(tasks).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rosetta_ports::EntityKind;
    use rosetta_ports::testing::memory::InMemoryStore;
    use rosetta_ports::testing::{InsecureTestCipher, new_destination};

    use super::*;
    use crate::SystemClock;

    #[tokio::test]
    async fn duplicate_names_surface_as_conflicts() {
        let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(1)));
        let manager =
            DestinationManager::new(Arc::new(store), crate::source_operations::unused_cleaner(), Arc::new(SystemClock));
        manager.create_destination(new_destination("wh", None)).await.unwrap();
        let clash = manager.create_destination(new_destination("WH", None)).await;
        assert!(matches!(
            clash,
            Err(ServiceError::Conflict { entity: EntityKind::Destination, field: "name", ref value }) if value == "wh"
        ));
    }
}
