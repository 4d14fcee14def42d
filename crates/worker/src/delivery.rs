//! Delivery: the job of the [`Queue::NOTIFICATION_DELIVERY`] queue, one item per pending
//! delivery of an alert transition to a channel. Every process runs it; the lease makes each
//! attempt one process's, and a process that dies mid-attempt leaves a lease that expires, so the
//! delivery is sent again by another (at least once, never lost; every attempt carries the
//! delivery's id).

use std::sync::Arc;

use async_trait::async_trait;
use rosetta_domain::{AfterAttempt, RetryPolicy, SendResult};
use rosetta_ports::alerts::{DeliveryAttempt, DeliveryStore, Message, Notifier, PendingDelivery};
use rosetta_ports::jobs::{LeaseOwner, Next, Queue};
use rosetta_ports::outbound::Clock;

use crate::runner::{Job, log_repository_error};

/// The delivery job.
pub struct Delivering {
    deliveries: Arc<dyn DeliveryStore>,
    notifier: Arc<dyn Notifier>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for Delivering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivering").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl Delivering {
    /// Sends deliveries through `notifier`, retrying under `policy`.
    pub fn new(
        deliveries: Arc<dyn DeliveryStore>,
        notifier: Arc<dyn Notifier>,
        clock: Arc<dyn Clock>,
        policy: RetryPolicy,
    ) -> Self {
        Self { deliveries, notifier, clock, policy }
    }
}

/// One attempt's outcome.
#[derive(Debug)]
pub struct Attempted {
    attempt: DeliveryAttempt,
}

#[async_trait]
impl Job for Delivering {
    type Item = PendingDelivery;
    type Outcome = Attempted;

    fn queue(&self) -> Queue {
        Queue::NOTIFICATION_DELIVERY
    }

    async fn prepare(&self, items: Vec<i64>) -> Vec<(i64, PendingDelivery)> {
        match self.deliveries.pending(&items).await {
            Ok(pending) => pending.into_iter().map(|p| (p.delivery.id.get(), p)).collect(),
            Err(error) => {
                log_repository_error(Queue::NOTIFICATION_DELIVERY, "reading deliveries", &error);
                Vec::new()
            }
        }
    }

    async fn run(&self, pending: PendingDelivery) -> Attempted {
        let attempts = pending.delivery.attempts.saturating_add(1);
        let (result, after, kind) = match &pending.target {
            Ok(target) => {
                let message = Message::Alert {
                    delivery: pending.delivery.id,
                    notification_type: pending.delivery.notification_type,
                    alert: Box::new(pending.alert.clone()),
                };
                let result = self.notifier.send(target, &message, self.clock.now()).await;
                let after = self.policy.after(&result, attempts, pending.delivery.created_at, self.clock.now());
                (result, after, target.channel.kind.as_str())
            }
            // Its secrets do not open (another key, a copied row): retrying cannot help.
            Err(problem) => (
                SendResult { status_code: None, error: Some(problem.clone()), duration_ms: 0 },
                AfterAttempt::Failed,
                "unknown",
            ),
        };
        let (next, delivered, outcome) = match after {
            AfterAttempt::Delivered => (Next::Done, true, "delivered"),
            AfterAttempt::Failed => (Next::Done, false, "failed"),
            AfterAttempt::RetryAt(at) => (Next::DueAt(at), false, "retrying"),
        };
        metrics::counter!("rosetta_notifications_total", "kind" => kind, "outcome" => outcome).increment(1);
        if !delivered {
            tracing::warn!(
                delivery_id = %pending.delivery.id,
                channel_id = %pending.delivery.channel_id,
                attempts,
                status_code = result.status_code,
                error = result.error.as_deref().unwrap_or(""),
                outcome,
                "notification not delivered"
            );
        }
        Attempted {
            attempt: DeliveryAttempt {
                id: pending.delivery.id,
                result,
                attempts,
                next,
                delivered,
                at: self.clock.now(),
            },
        }
    }

    fn failed(&self, outcome: &Attempted) -> bool {
        !outcome.attempt.delivered
    }

    async fn record(&self, owner: &LeaseOwner, outcomes: Vec<Attempted>) {
        let attempts: Vec<DeliveryAttempt> = outcomes.into_iter().map(|outcome| outcome.attempt).collect();
        let count = attempts.len();
        match self.deliveries.record(owner, attempts).await {
            Ok(recorded) if recorded.len() < count => tracing::debug!(
                dropped = count - recorded.len(),
                "delivery attempts dropped: their lease was taken over or the delivery is gone"
            ),
            Ok(_) => {}
            Err(error) => log_repository_error(Queue::NOTIFICATION_DELIVERY, "recording deliveries", &error),
        }
    }
}
