use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{NewPipeline, Page, PageRequest, PipelineDetails, PipelineId, PipelinePatch, PipelineStatus};
use rosetta_ports::inbound::{PipelineService, ServiceError};
use rosetta_ports::outbound::{Clock, PipelineRepository};

use crate::source_operations::{SlotCleaner, SourceOperator, detached};

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

impl PipelineManager {
    /// Creates the pipeline and, with `provision`, its slot; a pipeline whose slot cannot be had
    /// goes again.
    async fn create(&self, new: NewPipeline, provision: bool) -> Result<PipelineDetails, ServiceError> {
        let details = self.repository.create(new, self.clock.now()).await?;
        if !provision {
            return Ok(details);
        }
        let id = details.pipeline.id;
        // The slot's default name needs the pipeline's id, so the pipeline comes first and goes
        // again if its slot cannot be had; deleting it drops a slot the failed attempt may have
        // made after all (a timeout after the create was sent).
        let _held = self.operator.lock(id).await;
        if let Err(error) = self.operator.create_pipeline_slot(id).await {
            match self.repository.delete(id, self.clock.now()).await {
                Ok(task) => self.cleaner.run_now(task.into_iter().collect()).await,
                Err(undo) => tracing::error!(pipeline_id = %id, error = %undo, "pipeline kept after its slot failed"),
            }
            return Err(error);
        }
        Ok(self.repository.get(id).await?)
    }
}

#[async_trait]
impl PipelineService for PipelineManager {
    async fn create_pipeline(&self, new: NewPipeline, provision: bool) -> Result<PipelineDetails, ServiceError> {
        let this = self.clone();
        let details = detached(async move { this.create(new, provision).await }).await?;
        tracing::info!(
            pipeline_id = %details.pipeline.id,
            pipeline_name = %details.pipeline.name,
            status = %details.pipeline.status,
            slot_managed = details.pipeline.slot_managed,
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
        // A move is checked and made while no slot of the pipeline is being created or dropped.
        let _held = match patch.source_id {
            Some(_) => Some(self.operator.lock(id).await),
            None => None,
        };
        if let Some(source) = patch.source_id {
            // The slot Rosetta made lives on the current source: moving the pipeline would leave
            // it there with nothing to drop it.
            let current = self.repository.get(id).await?.pipeline;
            if current.slot_managed && current.source_id != source {
                return Err(ServiceError::Refused(format!(
                    "pipeline {id} owns replication slot '{}' on source {}; drop it (DELETE \
                     /pipelines/{id}/slot) before moving the pipeline to another source",
                    current.slot_name, current.source_id
                )));
            }
        }
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
        let this = self.clone();
        detached(async move {
            let _held = this.operator.lock(id).await;
            let task = this.repository.delete(id, this.clock.now()).await?;
            tracing::info!(pipeline_id = %id, "pipeline deleted");
            this.cleaner.run_now(task.into_iter().collect()).await;
            Ok(())
        })
        .await
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
    async fn a_pipeline_that_owns_its_slot_does_not_move_to_another_source() {
        let (store, source, destination) = store_with_source_and_destination().await;
        let other = SourceRepository::create(&store, new_source("other", None), fixed_time(0)).await.unwrap().id;
        let store = Arc::new(store);
        let operator = crate::source_operations::operator_over(
            store.clone(),
            store.clone(),
            Default::default(),
            Default::default(),
        );
        let manager = PipelineManager::new(
            store.clone(),
            operator,
            crate::source_operations::unused_cleaner(),
            Arc::new(SystemClock),
        );
        let id = manager
            .create_pipeline(new_pipeline("p", source, destination, PipelineStatus::Start), false)
            .await
            .unwrap()
            .pipeline
            .id;
        let move_to = |source_id| PipelinePatch { source_id: Some(source_id), ..PipelinePatch::default() };
        PipelineRepository::set_slot_managed(store.as_ref(), id, true, fixed_time(1)).await.unwrap();
        let refused = manager.update_pipeline(id, move_to(other)).await;
        assert!(
            matches!(refused, Err(ServiceError::Refused(ref reason)) if reason.contains("rosetta_")),
            "{refused:?}"
        );
        manager.update_pipeline(id, move_to(source)).await.expect("staying on its source is fine");
        PipelineRepository::set_slot_managed(store.as_ref(), id, false, fixed_time(2)).await.unwrap();
        assert_eq!(manager.update_pipeline(id, move_to(other)).await.unwrap().pipeline.source_id, other);
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
