use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{NewPipeline, Page, PageRequest, PipelineDetails, PipelineId, PipelinePatch, PipelineStatus};
use rosetta_ports::inbound::{PipelineService, ServiceError};
use rosetta_ports::outbound::{Clock, PipelineRepository};

use crate::source_operations::{SlotCleaner, SourceOperator};

/// Manages pipelines and their lifecycle through a [`PipelineRepository`]; the lifecycle rule
/// itself is `rosetta_domain::Pipeline::request`, applied by the repository inside its
/// transaction. Slots are provisioned through the [`SourceOperator`] and dropped with the
/// pipeline through the [`SlotCleaner`].
#[derive(Clone)]
pub struct PipelineManager {
    repository: Arc<dyn PipelineRepository>,
    operator: SourceOperator,
    cleaner: SlotCleaner,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PipelineManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineManager").finish_non_exhaustive()
    }
}

impl PipelineManager {
    /// A manager over `repository`, stamping changes with `clock`.
    pub fn new(
        repository: Arc<dyn PipelineRepository>,
        operator: SourceOperator,
        cleaner: SlotCleaner,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repository, operator, cleaner, clock }
    }
}

#[async_trait]
impl PipelineService for PipelineManager {
    async fn create_pipeline(&self, new: NewPipeline, provision: bool) -> Result<PipelineDetails, ServiceError> {
        let mut details = self.repository.create(new, self.clock.now()).await?;
        if provision {
            let id = details.pipeline.id;
            // The slot's default name needs the pipeline's id, so the pipeline comes first and
            // goes again if its slot cannot be had; deleting it drops a slot the failed attempt
            // may have made after all (a timeout).
            if let Err(error) = self.operator.create_pipeline_slot(id).await {
                match self.repository.delete(id, self.clock.now()).await {
                    Ok(task) => self.cleaner.run_now(task.into_iter().collect()).await,
                    Err(undo) => {
                        tracing::error!(pipeline_id = %id, error = %undo, "pipeline kept after its slot failed")
                    }
                }
                return Err(error);
            }
            details = self.repository.get(id).await?;
        }
        tracing::info!(
            pipeline_id = %details.pipeline.id,
            pipeline_name = %details.pipeline.name,
            status = %details.pipeline.status,
            "pipeline created"
        );
        Ok(details)
    }

    async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineDetails, ServiceError> {
        Ok(self.repository.get(id).await?)
    }

    async fn list_pipelines(&self, page: PageRequest) -> Result<Page<PipelineDetails>, ServiceError> {
        Ok(self.repository.list(page).await?)
    }

    async fn update_pipeline(&self, id: PipelineId, patch: PipelinePatch) -> Result<PipelineDetails, ServiceError> {
        let details = self.repository.update(id, patch, self.clock.now()).await?;
        tracing::info!(pipeline_id = %id, status = %details.pipeline.status, "pipeline updated");
        Ok(details)
    }

    async fn set_pipeline_status(
        &self,
        id: PipelineId,
        status: PipelineStatus,
    ) -> Result<PipelineDetails, ServiceError> {
        // An action is exactly a status-only update, so both paths share one rule.
        self.update_pipeline(id, PipelinePatch { status: Some(status), ..PipelinePatch::default() }).await
    }

    async fn delete_pipeline(&self, id: PipelineId) -> Result<(), ServiceError> {
        let task = self.repository.delete(id, self.clock.now()).await?;
        tracing::info!(pipeline_id = %id, "pipeline deleted");
        self.cleaner.run_now(task.into_iter().collect()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rosetta_domain::{DestinationId, PipelineMetadataStatus, SourceId};
    use rosetta_ports::EntityKind;
    use rosetta_ports::outbound::{DestinationRepository, SourceRepository};
    use rosetta_ports::testing::memory::InMemoryStore;
    use rosetta_ports::testing::{InsecureTestCipher, fixed_time, new_destination, new_pipeline, new_source};

    use super::*;
    use crate::SystemClock;

    fn manager(store: InMemoryStore) -> PipelineManager {
        let store = Arc::new(store);
        let operator = crate::source_operations::operator_over(
            store.clone(),
            store.clone(),
            Default::default(),
            Default::default(),
        );
        PipelineManager::new(store, operator, crate::source_operations::unused_cleaner(), Arc::new(SystemClock))
    }

    async fn store_with_source_and_destination() -> (InMemoryStore, SourceId, DestinationId) {
        let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(1)));
        let source = SourceRepository::create(&store, new_source("s", None), fixed_time(0)).await.unwrap();
        let destination =
            DestinationRepository::create(&store, new_destination("d", None), fixed_time(0)).await.unwrap();
        (store, source.id, destination.id)
    }

    #[tokio::test]
    async fn actions_drive_the_lifecycle() {
        let (store, source, destination) = store_with_source_and_destination().await;
        let manager = manager(store);
        let created = manager
            .create_pipeline(new_pipeline("p", source, destination, PipelineStatus::Pause), false)
            .await
            .unwrap();
        assert_eq!(created.pipeline.metadata.status, PipelineMetadataStatus::Paused);
        let id = created.pipeline.id;
        let started = manager.set_pipeline_status(id, PipelineStatus::Start).await.unwrap();
        assert_eq!(started.pipeline.metadata.status, PipelineMetadataStatus::Running);
        assert!(started.pipeline.metadata.last_start_at.is_some());
        let again = manager.set_pipeline_status(id, PipelineStatus::Start).await.unwrap();
        assert_eq!(again, started, "starting twice changes nothing");
        let refreshed = manager.set_pipeline_status(id, PipelineStatus::Refresh).await.unwrap();
        assert_eq!(refreshed.pipeline.status, PipelineStatus::Refresh);
    }

    #[tokio::test]
    async fn a_missing_reference_is_an_input_error_on_that_field() {
        let (store, source, _) = store_with_source_and_destination().await;
        let manager = manager(store);
        let outcome = manager
            .create_pipeline(new_pipeline("p", source, DestinationId::new(404), PipelineStatus::Start), false)
            .await;
        assert!(matches!(
            outcome,
            Err(ServiceError::MissingReference { field: "destination_id", entity: EntityKind::Destination, id: 404 })
        ));
    }

    #[tokio::test]
    async fn actions_on_missing_pipelines_are_not_found() {
        let (store, _, _) = store_with_source_and_destination().await;
        let manager = manager(store);
        let outcome = manager.set_pipeline_status(PipelineId::new(9), PipelineStatus::Pause).await;
        assert!(matches!(outcome, Err(ServiceError::NotFound { entity: EntityKind::Pipeline, id: 9 })));
    }
}
