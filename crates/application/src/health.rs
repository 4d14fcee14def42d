use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rosetta_ports::inbound::{Check, CheckStatus, HealthService, Readiness};
use rosetta_ports::outbound::{MetadataHealth, RepositoryError};

/// Readiness: the metadata database answers within a bound. The WAL monitor is reported as
/// disabled until this build has one.
#[derive(Clone)]
pub struct ReadinessChecker {
    database: Arc<dyn MetadataHealth>,
    timeout: Duration,
}

impl std::fmt::Debug for ReadinessChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessChecker").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl ReadinessChecker {
    /// Checks `database`, giving up after `timeout` (a readiness probe must answer quickly even
    /// when the pool would wait much longer for a connection).
    pub fn new(database: Arc<dyn MetadataHealth>, timeout: Duration) -> Self {
        Self { database, timeout }
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
        Check { status, latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX) }
    }
}

#[async_trait]
impl HealthService for ReadinessChecker {
    async fn readiness(&self) -> Readiness {
        Readiness {
            database: self.check_database().await,
            wal_monitor: Check {
                status: CheckStatus::Disabled("the WAL monitor is not part of this build".into()),
                latency_ms: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use rosetta_ports::outbound::MockMetadataHealth;

    use super::*;

    #[tokio::test]
    async fn an_unavailable_database_makes_the_service_unready() {
        let mut database = MockMetadataHealth::new();
        database.expect_ping().returning(|| Err(RepositoryError::Unavailable("connection refused".into())));
        let readiness = ReadinessChecker::new(Arc::new(database), Duration::from_secs(1)).readiness().await;
        assert_eq!(readiness.database.status, CheckStatus::Unhealthy("metadata database unavailable".into()));
        assert!(!readiness.is_ready());
    }

    #[tokio::test]
    async fn a_healthy_database_makes_the_service_ready() {
        let mut database = MockMetadataHealth::new();
        database.expect_ping().returning(|| Ok(()));
        let readiness = ReadinessChecker::new(Arc::new(database), Duration::from_secs(1)).readiness().await;
        assert_eq!(readiness.database.status, CheckStatus::Healthy);
        assert!(readiness.is_ready());
    }
}
