use std::sync::Arc;

use async_trait::async_trait;
use std::collections::HashMap;

use rosetta_domain::{AlertRule, ChartThresholds, ChartWindow, SourceId, SystemSample, WalChart};
use rosetta_ports::alerts::AlertStore;
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::outbound::{Clock, PipelineRepository, SourcePipeline};
use rosetta_ports::wal::{
    ChartRequest, SystemHistoryQuery, SystemMetricsRepository, WalHistoryEntry, WalHistoryQuery, WalMetricsRepository,
    WalMonitorService, WalReport,
};

/// Serves what the WAL monitor recorded (the sampling itself is the `rosetta-worker` task).
#[derive(Clone)]
pub struct WalMonitorReader {
    wal: Arc<dyn WalMetricsRepository>,
    system: Arc<dyn SystemMetricsRepository>,
    pipelines: Arc<dyn PipelineRepository>,
    alerts: Arc<dyn AlertStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for WalMonitorReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalMonitorReader").finish_non_exhaustive()
    }
}

impl WalMonitorReader {
    /// A reader over the WAL and host metrics stores; `pipelines` says which pipeline names
    /// which slot, `alerts` which thresholds a chart shows, `clock` where a chart ends by default.
    pub fn new(
        wal: Arc<dyn WalMetricsRepository>,
        system: Arc<dyn SystemMetricsRepository>,
        pipelines: Arc<dyn PipelineRepository>,
        alerts: Arc<dyn AlertStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { wal, system, pipelines, alerts, clock }
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

    async fn wal_chart(&self, source_id: SourceId, request: ChartRequest) -> Result<WalChart, ServiceError> {
        let to = request.to.unwrap_or_else(|| self.clock.now());
        let from = request.from.unwrap_or(to - ChartRequest::DEFAULT_SPAN);
        let window = ChartWindow::new(from, to, request.points).map_err(|invalid| ServiceError::InvalidQuery {
            // The buckets are the points the client asked for with `width`.
            parameter: if invalid.field == "buckets" { "width" } else { invalid.field },
            error: invalid.error,
        })?;
        let history = self.wal.chart_history(source_id, window).await?;
        let rules = self.alerts.source_rules(source_id).await?;
        let thresholds = rules
            .iter()
            .map(|rule| rule.settings)
            .find(|settings| settings.rule() == AlertRule::SlotRetainedBytes && settings.enabled())
            .map(|settings| ChartThresholds { warning: settings.warning(), critical: settings.critical() })
            .unwrap_or_default();
        Ok(WalChart::new(history, thresholds))
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
    use crate::SystemClock;

    #[tokio::test]
    async fn an_unknown_source_is_not_found() {
        let mut wal = MockWalMetricsRepository::new();
        wal.expect_latest().returning(|id| Err(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() }));
        let reader = WalMonitorReader::new(
            Arc::new(wal),
            Arc::new(MockSystemMetricsRepository::new()),
            Arc::new(rosetta_ports::outbound::MockPipelineRepository::new()),
            Arc::new(rosetta_ports::alerts::MockAlertStore::new()),
            Arc::new(SystemClock),
        );
        let outcome = reader.get_wal_state(SourceId::new(4)).await;
        assert!(matches!(outcome, Err(ServiceError::NotFound { entity: EntityKind::Source, id: 4 })));
    }

    fn noon() -> rosetta_domain::Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-01-14T12:00:00Z").map(|t| t.to_utc()).unwrap()
    }

    /// A clock that does not move.
    struct Stopped(rosetta_domain::Timestamp);

    impl Clock for Stopped {
        fn now(&self) -> rosetta_domain::Timestamp {
            self.0
        }
    }

    fn reader(wal: MockWalMetricsRepository, alerts: rosetta_ports::alerts::MockAlertStore) -> WalMonitorReader {
        WalMonitorReader::new(
            Arc::new(wal),
            Arc::new(MockSystemMetricsRepository::new()),
            Arc::new(rosetta_ports::outbound::MockPipelineRepository::new()),
            Arc::new(alerts),
            Arc::new(Stopped(noon())),
        )
    }

    #[tokio::test]
    async fn a_chart_defaults_to_the_last_day_and_draws_the_enabled_slot_thresholds() {
        let now = noon();
        let mut wal = MockWalMetricsRepository::new();
        wal.expect_chart_history()
            .returning(|_, window| Ok(rosetta_domain::ChartHistory { window, samples: Vec::new(), slots: Vec::new() }));
        let mut alerts = rosetta_ports::alerts::MockAlertStore::new();
        alerts.expect_source_rules().returning(|_| {
            let lag = AlertRule::SlotRetainedBytes.defaults();
            Ok(vec![rosetta_ports::alerts::SourceRule { settings: lag, overridden: false }])
        });
        let chart = reader(wal, alerts)
            .wal_chart(SourceId::new(1), ChartRequest { from: None, to: None, points: 300 })
            .await
            .unwrap();
        assert_eq!((chart.window.from(), chart.window.to()), (now - ChartRequest::DEFAULT_SPAN, now));
        assert_eq!(chart.window.buckets(), 300);
        let defaults = AlertRule::SlotRetainedBytes.defaults();
        assert_eq!(chart.thresholds, ChartThresholds { warning: defaults.warning(), critical: defaults.critical() });
        assert!(chart.thresholds.warning.is_some());
    }

    #[tokio::test]
    async fn a_chart_of_a_reversed_range_or_no_points_is_an_input_error_on_its_parameter() {
        let now = noon();
        let chart = |from, points| async move {
            reader(MockWalMetricsRepository::new(), rosetta_ports::alerts::MockAlertStore::new())
                .wal_chart(SourceId::new(1), ChartRequest { from, to: None, points })
                .await
        };
        let later = Some(now + chrono::TimeDelta::seconds(1));
        assert!(matches!(chart(later, 10).await, Err(ServiceError::InvalidQuery { parameter: "from", .. })));
        assert!(matches!(chart(None, 0).await, Err(ServiceError::InvalidQuery { parameter: "width", .. })));
    }
}
