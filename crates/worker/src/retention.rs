//! Retention: the job of the [`Queue::RETENTION`] queue, whose one standing item means "delete
//! the WAL and host history older than the retention period". Leased like every job, so one
//! process at a time does it; it deletes in bounded batches, so it never holds long locks, and
//! what is left waits for its next run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use rosetta_ports::outbound::Clock;
use rosetta_ports::wal::{SystemMetricsRepository, WalMetricsRepository};

use crate::runner::{Job, log_repository_error};
use crate::sampling::chrono_duration;

/// The one item of the retention queue.
const ITEM: i64 = 1;
/// Rows deleted per statement, so retention never holds long locks.
const BATCH: u32 = 5_000;
/// Statements per run and table; the rest waits for the next run.
const BATCHES_PER_RUN: u32 = 20;

/// The retention job.
pub struct Retention {
    wal: Arc<dyn WalMetricsRepository>,
    system: Arc<dyn SystemMetricsRepository>,
    leases: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
    /// History older than this is deleted.
    keep: Duration,
    /// How often it runs.
    every: Duration,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention").field("keep", &self.keep).field("every", &self.every).finish_non_exhaustive()
    }
}

impl Retention {
    /// Deletes history older than `keep`, every `every`.
    pub fn new(
        wal: Arc<dyn WalMetricsRepository>,
        system: Arc<dyn SystemMetricsRepository>,
        leases: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
        keep: Duration,
        every: Duration,
    ) -> Self {
        Self { wal, system, leases, clock, keep, every }
    }
}

/// How many history rows one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// WAL history rows.
    pub wal: u64,
    /// Host samples.
    pub system: u64,
}

#[async_trait]
impl Job for Retention {
    type Item = ();
    type Outcome = Deleted;

    fn queue(&self) -> Queue {
        Queue::RETENTION
    }

    async fn start(&self, _owner: &LeaseOwner) {
        if let Err(error) = self.leases.enqueue(Queue::RETENTION, ITEM, None).await {
            log_repository_error(Queue::RETENTION, "queueing retention", &error);
        }
    }

    async fn prepare(&self, items: Vec<i64>) -> Vec<(i64, ())> {
        items.into_iter().map(|item| (item, ())).collect()
    }

    async fn run(&self, (): ()) -> Deleted {
        let cutoff = self.clock.now() - chrono_duration(self.keep);
        let mut deleted = Deleted::default();
        for _ in 0..BATCHES_PER_RUN {
            match self.wal.delete_history_before(cutoff, BATCH).await {
                Ok(rows) => {
                    deleted.wal += rows;
                    if rows < u64::from(BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    log_repository_error(Queue::RETENTION, "deleting old WAL history", &error);
                    break;
                }
            }
        }
        for _ in 0..BATCHES_PER_RUN {
            match self.system.delete_before(cutoff, BATCH).await {
                Ok(rows) => {
                    deleted.system += rows;
                    if rows < u64::from(BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    log_repository_error(Queue::RETENTION, "deleting old host metrics", &error);
                    break;
                }
            }
        }
        if deleted != Deleted::default() {
            tracing::info!(wal_rows = deleted.wal, host_rows = deleted.system, "deleted history past its retention");
        }
        deleted
    }

    fn failed(&self, _outcome: &Deleted) -> bool {
        false
    }

    async fn record(&self, owner: &LeaseOwner, outcomes: Vec<Deleted>) {
        let next = Next::DueAt(self.clock.now() + chrono_duration(self.every));
        let items: Vec<(i64, Next)> = outcomes.iter().map(|_| (ITEM, next)).collect();
        if let Err(error) = self.leases.complete(Queue::RETENTION, owner, &items).await {
            log_repository_error(Queue::RETENTION, "completing retention", &error);
        }
    }
}
