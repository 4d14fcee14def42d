use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use rosetta_domain::{SourceId, SystemSample};
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::outbound::{PipelineRepository, SourcePipeline};
use rosetta_ports::wal::{
    SystemHistoryQuery, SystemMetricsRepository, WalHistoryEntry, WalHistoryQuery, WalMetricsRepository,
    WalMonitorService, WalReport,
};

/// Serves what the WAL monitor recorded (the sampling itself is the `rosetta-worker` task).
#[derive(Clone)]
pub struct WalMonitorReader {
    wal: Arc<dyn WalMetricsRepository>,
    system: Arc<dyn SystemMetricsRepository>,
    pipelines: Arc<dyn PipelineRepository>,
}

impl std::fmt::Debug for WalMonitorReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalMonitorReader").finish_non_exhaustive()
    }
}

impl WalMonitorReader {
    /// A reader over the WAL and host metrics stores; `pipelines` says which pipeline names
    /// which slot.
    pub fn new(
        wal: Arc<dyn WalMetricsRepository>,
        system: Arc<dyn SystemMetricsRepository>,
        pipelines: Arc<dyn PipelineRepository>,
    ) -> Self {
        Self { wal, system, pipelines }
    }
}

#[async_trait]
impl WalMonitorService for WalMonitorReader {
    async fn list_wal_states(&self) -> Result<Vec<WalReport>, ServiceError> {
        let states = self.wal.list_latest().await?;
        let mut by_source: HashMap<SourceId, Vec<SourcePipeline>> = HashMap::new();
        for pipeline in self.pipelines.pipelines_of(None).await? {
            by_source.entry(pipeline.source_id).or_default().push(pipeline);
        }
        Ok(states
            .into_iter()
            .map(|state| {
                let pipelines = by_source.remove(&state.source_id).unwrap_or_default();
                WalReport { state, pipelines }
            })
            .collect())
    }

    async fn get_wal_state(&self, source_id: SourceId) -> Result<Option<WalReport>, ServiceError> {
        let Some(state) = self.wal.latest(source_id).await? else { return Ok(None) };
        let pipelines = self.pipelines.pipelines_of(Some(source_id)).await?;
        Ok(Some(WalReport { state, pipelines }))
    }

    async fn wal_history(&self, query: WalHistoryQuery) -> Result<Vec<WalHistoryEntry>, ServiceError> {
        Ok(self.wal.history(query).await?)
    }

    async fn system_history(&self, query: SystemHistoryQuery) -> Result<Vec<SystemSample>, ServiceError> {
        Ok(self.system.history(query).await?)
    }
}

#[cfg(test)]
mod tests {
    use rosetta_ports::EntityKind;
    use rosetta_ports::outbound::RepositoryError;
    use rosetta_ports::wal::{MockSystemMetricsRepository, MockWalMetricsRepository};

    use super::*;

    #[tokio::test]
    async fn an_unknown_source_is_not_found() {
        let mut wal = MockWalMetricsRepository::new();
        wal.expect_latest().returning(|id| Err(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() }));
        let reader = WalMonitorReader::new(
            Arc::new(wal),
            Arc::new(MockSystemMetricsRepository::new()),
            Arc::new(rosetta_ports::outbound::MockPipelineRepository::new()),
        );
        let outcome = reader.get_wal_state(SourceId::new(4)).await;
        assert!(matches!(outcome, Err(ServiceError::NotFound { entity: EntityKind::Source, id: 4 })));
    }
}
