//! Cleanup: the job of the [`Queue::SOURCE_CLEANUP`] queue, one item per cleanup task (a managed
//! slot to drop whose pipeline is gone). Every process runs it; the lease makes each attempt one
//! process's, so a task runs once per due time whatever the number of processes. Attempts retry
//! with a backoff capped at 5 minutes until the slot is gone or an operator abandons the task.

use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::CleanupTaskId;
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Queue};
use rosetta_ports::outbound::Clock;
use rosetta_ports::sources::{CleanupAttempt, CleanupTaskStore, PendingCleanup, SourceOperations, attempt_cleanup};

use crate::runner::{Job, log_repository_error};

/// The cleanup job.
pub struct Cleaning {
    tasks: Arc<dyn CleanupTaskStore>,
    operations: Arc<dyn SourceOperations>,
    leases: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Cleaning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleaning").finish_non_exhaustive()
    }
}

impl Cleaning {
    /// Runs the tasks of `tasks` through `operations`; a source whose slot went is sampled again
    /// at once (through `leases`), so the monitor stops showing the slot.
    pub fn new(
        tasks: Arc<dyn CleanupTaskStore>,
        operations: Arc<dyn SourceOperations>,
        leases: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { tasks, operations, leases, clock }
    }
}

#[async_trait]
impl Job for Cleaning {
    type Item = PendingCleanup;
    type Outcome = CleanupAttempt;

    fn queue(&self) -> Queue {
        Queue::SOURCE_CLEANUP
    }

    async fn prepare(&self, items: Vec<i64>) -> Vec<(i64, PendingCleanup)> {
        let ids: Vec<CleanupTaskId> = items.into_iter().map(CleanupTaskId::new).collect();
        match self.tasks.pending(&ids).await {
            Ok(pending) => pending.into_iter().map(|p| (p.task.id.get(), p)).collect(),
            Err(error) => {
                log_repository_error(Queue::SOURCE_CLEANUP, "reading cleanup tasks", &error);
                Vec::new()
            }
        }
    }

    async fn run(&self, pending: PendingCleanup) -> CleanupAttempt {
        let attempt =
            attempt_cleanup(self.operations.as_ref(), self.leases.as_ref(), self.clock.as_ref(), &pending).await;
        let task = &pending.task;
        match &attempt.outcome {
            Ok(()) => tracing::info!(
                cleanup_task_id = %task.id,
                source_id = %task.source_id,
                slot_name = %task.slot_name,
                attempts = attempt.attempts,
                "cleanup task done: replication slot dropped"
            ),
            Err(error) => tracing::warn!(
                cleanup_task_id = %task.id,
                source_id = %task.source_id,
                slot_name = %task.slot_name,
                attempts = attempt.attempts,
                error = %error,
                "cleanup task failed; retrying"
            ),
        }
        attempt
    }

    fn failed(&self, outcome: &CleanupAttempt) -> bool {
        outcome.outcome.is_err()
    }

    async fn record(&self, owner: &LeaseOwner, outcomes: Vec<CleanupAttempt>) {
        let count = outcomes.len();
        match self.tasks.record(owner, outcomes).await {
            Ok(recorded) if recorded.len() < count => tracing::debug!(
                dropped = count - recorded.len(),
                "cleanup attempts dropped: their lease was taken over or the task is gone"
            ),
            Ok(_) => {}
            Err(error) => log_repository_error(Queue::SOURCE_CLEANUP, "recording cleanup attempts", &error),
        }
    }
}
