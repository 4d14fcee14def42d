use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rosetta_ports::inbound::{Check, CheckStatus, HealthService, Readiness};
use rosetta_ports::outbound::{Clock, MetadataHealth, RepositoryError};
use rosetta_ports::wal::MonitorHeartbeat;

/// Readiness: the metadata database answers within a bound, and the WAL monitor (when this
/// process runs one) completed a tick recently.
#[derive(Clone)]
pub struct ReadinessChecker {
    database: Arc<dyn MetadataHealth>,
    timeout: Duration,
    monitor: Option<Arc<dyn MonitorHeartbeat>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ReadinessChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessChecker").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ReadinessChecker {
    /// Checks `database`, giving up after `timeout` (a readiness probe must answer quickly even
    /// when the pool would wait much longer for a connection), and the monitor's heartbeat
    /// (`None`: the monitor is disabled in this process).
    pub fn new(
        database: Arc<dyn MetadataHealth>,
        timeout: Duration,
        monitor: Option<Arc<dyn MonitorHeartbeat>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { database, timeout, monitor, clock }
    }

    async fn check_database(&self) -> Check {
        let started = Instant::now();
        let status = match tokio::time::timeout(self.timeout, self.database.ping()).await {
            Ok(Ok(())) => CheckStatus::Healthy,
            Ok(Err(RepositoryError::Unavailable(cause))) => {
                tracing::warn!(error = %cause, "readiness: metadata database unavailable");
                CheckStatus::Unhealthy("metadata database unavailable".into())
            }
            Ok(Err(error)) => {
                tracing::error!(error = ?error, "readiness: metadata database check failed");
                CheckStatus::Unhealthy("metadata database check failed".into())
            }
            Err(_) => CheckStatus::Unhealthy(format!("metadata database did not answer within {:?}", self.timeout)),
        };
        Check {
            status,
            latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            last_tick_age_seconds: None,
        }
    }

    /// Healthy while ticks keep completing: a tick may legitimately take up to one interval
    /// (sampling with retries is bounded by it), so staleness starts after two intervals plus a
    /// minute of slack for a slow metadata database.
    fn check_monitor(&self) -> Check {
        let Some(monitor) = &self.monitor else {
            return Check {
                status: CheckStatus::Disabled("WAL_MONITOR_ENABLED=false".into()),
                latency_ms: 0,
                last_tick_age_seconds: None,
            };
        };
        let now = self.clock.now();
        let stale_after = monitor.interval().saturating_mul(2) + Duration::from_secs(60);
        let age = |since: rosetta_domain::Timestamp| (now - since).to_std().unwrap_or_default();
        let unusable = monitor.unusable_sources();
        let healthy = if unusable.is_empty() {
            CheckStatus::Healthy
        } else {
            let listed: Vec<String> = unusable.iter().map(|(id, error)| format!("source {id}: {error}")).collect();
            CheckStatus::Degraded(format!(
                "{} source(s) cannot be sampled until their stored settings are fixed: {}",
                unusable.len(),
                listed.join("; ")
            ))
        };
        let (status, last_tick_age_seconds) = match monitor.last_completed_tick() {
            Some(tick) if age(tick) <= stale_after => (healthy, Some(age(tick).as_secs())),
            Some(tick) => (
                CheckStatus::Unhealthy(format!("no WAL monitor tick completed for {} s", age(tick).as_secs())),
                Some(age(tick).as_secs()),
            ),
            None if age(monitor.started_at()) <= stale_after => (healthy, None),
            None => (CheckStatus::Unhealthy("the WAL monitor has not completed a tick since start".into()), None),
        };
        Check { status, latency_ms: 0, last_tick_age_seconds }
    }
}

#[async_trait]
impl HealthService for ReadinessChecker {
    async fn readiness(&self) -> Readiness {
        Readiness { database: self.check_database().await, wal_monitor: self.check_monitor() }
    }
}

#[cfg(test)]
mod tests {
    use rosetta_ports::outbound::{MockClock, MockMetadataHealth};
    use rosetta_ports::testing::fixed_time;
    use rosetta_ports::wal::MockMonitorHeartbeat;

    use super::*;

    fn clock_at(second: u32) -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_time(second));
        Arc::new(clock)
    }

    fn healthy_database() -> Arc<MockMetadataHealth> {
        let mut database = MockMetadataHealth::new();
        database.expect_ping().returning(|| Ok(()));
        Arc::new(database)
    }

    fn heartbeat(last: Option<u32>, interval_seconds: u64) -> Arc<MockMonitorHeartbeat> {
        let mut heartbeat = MockMonitorHeartbeat::new();
        heartbeat.expect_last_completed_tick().return_const(last.map(fixed_time));
        heartbeat.expect_started_at().return_const(fixed_time(0));
        heartbeat.expect_interval().return_const(Duration::from_secs(interval_seconds));
        heartbeat.expect_unusable_sources().returning(Vec::new);
        Arc::new(heartbeat)
    }

    #[tokio::test]
    async fn an_unavailable_database_makes_the_service_unready() {
        let mut database = MockMetadataHealth::new();
        database.expect_ping().returning(|| Err(RepositoryError::Unavailable("connection refused".into())));
        let checker = ReadinessChecker::new(Arc::new(database), Duration::from_secs(1), None, clock_at(0));
        let readiness = checker.readiness().await;
        assert_eq!(readiness.database.status, CheckStatus::Unhealthy("metadata database unavailable".into()));
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn a_recent_tick_is_healthy_and_reports_its_age() {
        let checker = ReadinessChecker::new(
            healthy_database(),
            Duration::from_secs(1),
            Some(heartbeat(Some(10), 1)),
            clock_at(40),
        );
        let readiness = checker.readiness().await;
        assert_eq!(readiness.wal_monitor.status, CheckStatus::Healthy);
        assert_eq!(readiness.wal_monitor.last_tick_age_seconds, Some(30));
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn a_stale_monitor_makes_the_service_unready() {
        // With a 1 s interval the monitor is stale after 2 × 1 s + 60 s = 62 s.
        let fresh =
            ReadinessChecker::new(healthy_database(), Duration::from_secs(1), Some(heartbeat(None, 1)), clock_at(59));
        assert_eq!(fresh.readiness().await.wal_monitor.status, CheckStatus::Healthy);
        let mut stale_heartbeat = MockMonitorHeartbeat::new();
        stale_heartbeat.expect_last_completed_tick().return_const(Some(fixed_time(0) - chrono::Duration::minutes(5)));
        stale_heartbeat.expect_started_at().return_const(fixed_time(0) - chrono::Duration::minutes(10));
        stale_heartbeat.expect_interval().return_const(Duration::from_secs(1));
        stale_heartbeat.expect_unusable_sources().returning(Vec::new);
        let stale = ReadinessChecker::new(
            healthy_database(),
            Duration::from_secs(1),
            Some(Arc::new(stale_heartbeat)),
            clock_at(0),
        );
        let readiness = stale.readiness().await;
        assert!(matches!(readiness.wal_monitor.status, CheckStatus::Unhealthy(_)));
        assert_eq!(readiness.wal_monitor.last_tick_age_seconds, Some(300));
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn unusable_sources_degrade_the_monitor_check_but_keep_the_service_ready() {
        let mut heartbeat = MockMonitorHeartbeat::new();
        heartbeat.expect_last_completed_tick().return_const(Some(fixed_time(10)));
        heartbeat.expect_started_at().return_const(fixed_time(0));
        heartbeat.expect_interval().return_const(Duration::from_secs(1));
        heartbeat.expect_unusable_sources().returning(|| {
            vec![(rosetta_domain::SourceId::new(3), "cannot decrypt pg_password: it does not open".to_owned())]
        });
        let checker =
            ReadinessChecker::new(healthy_database(), Duration::from_secs(1), Some(Arc::new(heartbeat)), clock_at(11));
        let readiness = checker.readiness().await;
        match &readiness.wal_monitor.status {
            CheckStatus::Degraded(message) => {
                assert!(message.contains("source 3: cannot decrypt pg_password"), "{message}");
            }
            other => panic!("expected Degraded, got {other:?}"),
        }
        assert!(readiness.is_ready());
    }

    #[tokio::test]
    async fn a_disabled_monitor_does_not_make_the_service_unready() {
        let checker = ReadinessChecker::new(healthy_database(), Duration::from_secs(1), None, clock_at(0));
        let readiness = checker.readiness().await;
        assert!(matches!(readiness.wal_monitor.status, CheckStatus::Disabled(_)));
        assert!(readiness.is_ready());
    }
}
