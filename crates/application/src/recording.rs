use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::Timestamp;
use rosetta_ports::inbound::ServiceError;
use rosetta_ports::jobs::LeaseOwner;
use rosetta_ports::wal::{SampleOutcome, SampleRecording, WalMetricsRepository};

use crate::alerts::AlertEvaluator;

/// Records what the WAL monitor sampled, and returns what was recorded: the place where
/// everything that must follow a recorded sample happens, in the process that took it.
#[derive(Clone)]
pub struct SampleRecorder {
    wal: Arc<dyn WalMetricsRepository>,
    alerts: Option<AlertEvaluator>,
}

impl std::fmt::Debug for SampleRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleRecorder").finish_non_exhaustive()
    }
}

impl SampleRecorder {
    /// A recorder over the WAL store.
    pub fn new(wal: Arc<dyn WalMetricsRepository>) -> Self {
        Self { wal, alerts: None }
    }

    /// This recorder, evaluating the alert rules of every source it recorded, right after
    /// recording it.
    pub fn with_alerts(self, alerts: AlertEvaluator) -> Self {
        Self { alerts: Some(alerts), ..self }
    }
}

#[async_trait]
impl SampleRecording for SampleRecorder {
    async fn record_samples(
        &self,
        owner: &LeaseOwner,
        outcomes: Vec<SampleOutcome>,
        next_sample_at: Timestamp,
    ) -> Result<Vec<SampleOutcome>, ServiceError> {
        let recorded = self.wal.record_outcomes(owner, outcomes.clone(), next_sample_at).await?;
        if recorded.len() < outcomes.len() {
            tracing::debug!(
                dropped = outcomes.len() - recorded.len(),
                "WAL samples dropped: their lease was taken over or the source is gone"
            );
        }
        // In the order given: the first outcome of each recorded source, then its later ones.
        let recorded: Vec<SampleOutcome> =
            outcomes.into_iter().filter(|outcome| recorded.contains(&outcome.source_id)).collect();
        if let Some(alerts) = &self.alerts {
            // The samples are stored whatever happens here; a failed evaluation is retried by the
            // next sample of each source (evaluation reads state, so nothing is lost, only late).
            if let Err(error) = alerts.evaluate(&recorded).await {
                tracing::error!(error = %error, sources = recorded.len(), "alert evaluation failed");
            }
        }
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use rosetta_domain::SourceId;
    use rosetta_ports::jobs::{LeaseStore, Queue};
    use rosetta_ports::outbound::SourceRepository;
    use rosetta_ports::testing::memory::InMemoryStore;
    use rosetta_ports::testing::{InsecureTestCipher, fixed_time, new_source};

    use super::*;

    fn failure(source_id: SourceId) -> SampleOutcome {
        SampleOutcome { source_id, attempted_at: fixed_time(1), result: Err("refused".into()) }
    }

    #[tokio::test]
    async fn returns_exactly_the_outcomes_whose_lease_was_still_held() {
        let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(1)));
        let a = SourceRepository::create(&store, new_source("a", None), fixed_time(0)).await.unwrap().id;
        let b = SourceRepository::create(&store, new_source("b", None), fixed_time(0)).await.unwrap().id;
        let owner = LeaseOwner::new("me");
        let lease = std::time::Duration::from_secs(60);
        // `me` holds a's lease only; b's is someone else's.
        store.claim(Queue::WAL_SAMPLING, &owner, fixed_time(0), lease, 1).await.unwrap();
        store.claim(Queue::WAL_SAMPLING, &LeaseOwner::new("other"), fixed_time(0), lease, 1).await.unwrap();
        let recorder = SampleRecorder::new(Arc::new(store));
        let recorded = recorder.record_samples(&owner, vec![failure(b), failure(a)], fixed_time(300)).await.unwrap();
        assert_eq!(recorded, vec![failure(a)]);
    }
}
