//! The leased-job runner: the one loop every background job of a queue runs on.
//!
//! A [`Runner`] keeps up to `concurrency` items of its job's queue in flight, and up to three
//! times as many claimed and waiting for a slot. Whenever there is room for a batch and items are
//! known to be due (or every `poll`, to find out), it claims that many more through the
//! [`LeaseStore`] — a continuous stream of claims rather than ticks, so an item that hangs holds
//! one slot until its own deadline and delays no other item, however many there are. Finished
//! items go, as they finish, to a recorder that writes them in batches (the job completes their
//! leases with them), beside the work still in flight. While items are held their leases are
//! renewed. On shutdown it stops claiming, lets the items in flight
//! finish within a grace period, records what finished and releases every lease it holds, so
//! other processes take its items at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rosetta_domain::Timestamp;
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Queue};
use rosetta_ports::outbound::{Clock, RepositoryError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A job: how the items of one queue are prepared, worked on and recorded.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// One claimed item, ready to be worked on.
    type Item: Send + 'static;
    /// What working on an item produced.
    type Outcome: Send + 'static;

    /// The queue whose items this job works on.
    fn queue(&self) -> Queue;

    /// Runs once before the first claim (e.g. to enqueue a job's one standing item).
    async fn start(&self, _owner: &LeaseOwner) {}

    /// The work for a batch of claimed item ids, in as few round trips as possible. Items that
    /// no longer exist are left out (their leases went with them). An error is logged by the job;
    /// the batch's leases then expire and the items are claimed again.
    async fn prepare(&self, items: Vec<i64>) -> Vec<(i64, Self::Item)>;

    /// Works on one item, bounded in time by the job itself.
    async fn run(&self, item: Self::Item) -> Self::Outcome;

    /// Whether an outcome is a failure (for the counts of a [`CycleReport`]).
    fn failed(&self, outcome: &Self::Outcome) -> bool;

    /// Records finished items and completes their leases, in one transaction where the job's
    /// store allows; outcomes whose lease `owner` no longer holds are the store's to drop.
    async fn record(&self, owner: &LeaseOwner, outcomes: Vec<Self::Outcome>);

    /// Called when a cycle ends: everything that was due has been worked on.
    fn cycle_finished(&self, _report: &CycleReport) {}
}

/// How a runner works its queue.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Items in flight at most.
    pub concurrency: usize,
    /// How long a claimed item stays this process's without renewal.
    pub lease: Duration,
    /// How often the runner looks for due items when none are known to be due.
    pub poll: Duration,
    /// Outcomes recorded per transaction, at most (a transaction takes what has finished).
    pub record_batch: usize,
    /// This process's identity in leases.
    pub owner: LeaseOwner,
}

/// What one cycle did: from the first claim after the queue was idle until everything due had
/// been worked on and nothing more was due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Items worked on.
    pub items: usize,
    /// Of which failed.
    pub failed: usize,
    /// Wall time of the cycle.
    pub duration: Duration,
}

/// When the runner last reached its lease store: its loop is alive and can work.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last: Mutex<Option<Timestamp>>,
}

impl Heartbeat {
    /// The last time the runner claimed (whether or not anything was due).
    pub fn last(&self) -> Option<Timestamp> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn beat(&self, at: Timestamp) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }
}

/// The runner of one job.
pub struct Runner<J: Job> {
    job: Arc<J>,
    leases: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
    settings: RunnerSettings,
    heartbeat: Arc<Heartbeat>,
}

impl<J: Job> std::fmt::Debug for Runner<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("queue", &self.job.queue()).field("settings", &self.settings).finish()
    }
}

/// A claim in progress: how many items it asked for, and then the items claimed (how many, and
/// those still there, prepared).
type Claiming<I> = Pin<Box<dyn Future<Output = Result<(usize, Vec<(i64, I)>), RepositoryError>> + Send>>;
type Running<O> = Pin<Box<dyn Future<Output = (i64, O)> + Send>>;

impl<J: Job> Runner<J> {
    /// A runner of `job`, claiming through `leases`.
    pub fn new(job: Arc<J>, leases: Arc<dyn LeaseStore>, clock: Arc<dyn Clock>, settings: RunnerSettings) -> Self {
        Self::with_heartbeat(job, leases, clock, settings, Arc::default())
    }

    /// [`Runner::new`] beating `heartbeat` (which the job may read, as WAL sampling's health does).
    pub fn with_heartbeat(
        job: Arc<J>,
        leases: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
        settings: RunnerSettings,
        heartbeat: Arc<Heartbeat>,
    ) -> Self {
        Self { job, leases, clock, settings, heartbeat }
    }

    /// The job this runner runs.
    pub fn job(&self) -> &Arc<J> {
        &self.job
    }

    /// The runner's heartbeat, for readiness.
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        Arc::clone(&self.heartbeat)
    }

    /// Items the runner holds at most: in flight, plus claimed and waiting for a slot. Claiming
    /// ahead keeps the slots busy while a claim is under way, and a claim of many items costs
    /// the store about as much as a claim of a few (the scan over the queue's due head).
    fn capacity(&self) -> usize {
        self.settings.concurrency.max(1) * 8
    }

    /// Room (capacity minus items held) at or above which the runner claims again while items
    /// are known to be due: half the capacity, so a claim fetches a batch instead of one item
    /// per finish, and the items waiting never run out before the claim returns.
    fn claim_threshold(&self) -> usize {
        self.capacity() / 2
    }

    /// Runs until `cancel`; then lets the items in flight finish within `grace` and releases
    /// every lease of this process.
    pub async fn run(self, cancel: CancellationToken, grace: Duration) {
        let queue = self.job.queue();
        let owner = self.settings.owner.clone();
        self.job.start(&owner).await;
        // Room for a whole batch: while a transaction runs, what finishes meanwhile waits here
        // for the next, so a slow store gets fewer, larger transactions instead of stalling
        // the items in flight.
        let room = self.settings.record_batch.max(self.capacity());
        let (outcomes, mut finished) = mpsc::channel::<J::Outcome>(room);
        let record = {
            let job = Arc::clone(&self.job);
            let owner = owner.clone();
            let batch = self.settings.record_batch.max(1);
            async move {
                while let Some(first) = finished.recv().await {
                    let mut outcomes = vec![first];
                    // Whatever else finished meanwhile goes into the same transaction.
                    while outcomes.len() < batch
                        && let Ok(more) = finished.try_recv()
                    {
                        outcomes.push(more);
                    }
                    job.record(&owner, outcomes).await;
                }
            }
        };
        let work = self.work(cancel, grace, outcomes);
        tokio::join!(work, record);
        if let Err(error) = self.leases.release_all(&owner).await {
            tracing::warn!(%queue, error = %error, "shutdown: could not release leases");
        }
        tracing::info!(%queue, "runner stopped");
    }

    /// The claim loop; every finished outcome goes to `outcomes`.
    async fn work(&self, cancel: CancellationToken, grace: Duration, outcomes: mpsc::Sender<J::Outcome>) {
        let queue = self.job.queue();
        let concurrency = self.settings.concurrency.max(1);
        let mut in_flight: FuturesUnordered<Running<J::Outcome>> = FuturesUnordered::new();
        // Claimed, waiting for a slot (their leases are renewed like those in flight).
        let mut ready: VecDeque<(i64, J::Item)> = VecDeque::new();
        let mut leased: HashSet<i64> = HashSet::new();
        let mut claiming: Option<(usize, Claiming<J::Item>)> = None;
        let mut more_due = true;
        let mut poll = tokio::time::interval(self.settings.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renew = tokio::time::interval(self.settings.lease / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.reset();
        let mut cycle: Option<(Instant, usize, usize)> = None;
        loop {
            while in_flight.len() < concurrency
                && let Some((item, work)) = ready.pop_front()
            {
                let job = Arc::clone(&self.job);
                in_flight.push(Box::pin(async move { (item, job.run(work).await) }));
            }
            let held = in_flight.len() + ready.len();
            let room = self.capacity().saturating_sub(held);
            let wanted = more_due && (room >= self.claim_threshold() || held == 0);
            if claiming.is_none() && room > 0 && wanted {
                claiming = Some((room, self.claim(room)));
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                Some((item, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    leased.remove(&item);
                    if let Some((_, items, failed)) = &mut cycle {
                        *items += 1;
                        *failed += usize::from(self.job.failed(&outcome));
                    }
                    if outcomes.send(outcome).await.is_err() {
                        break;
                    }
                }
                claimed = async {
                    match claiming.as_mut() {
                        Some((asked, claim)) => (*asked, claim.await),
                        None => std::future::pending().await,
                    }
                }, if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        (asked, Ok((count, claimed))) => {
                            // A full claim means more may be due: claim again as slots free up.
                            more_due = count >= asked;
                            if !claimed.is_empty() && cycle.is_none() {
                                cycle = Some((Instant::now(), 0, 0));
                            }
                            for (item, work) in claimed {
                                leased.insert(item);
                                ready.push_back((item, work));
                            }
                        }
                        (_, Err(error)) => {
                            more_due = false;
                            log_repository_error(queue, "claiming due items", &error);
                        }
                    }
                }
                _ = poll.tick() => more_due = true,
                _ = renew.tick(), if !leased.is_empty() => {
                    let items: Vec<i64> = leased.iter().copied().collect();
                    let now = self.clock.now();
                    if let Err(error) = self.leases.renew(queue, &self.settings.owner, &items, now, self.settings.lease).await {
                        log_repository_error(queue, "renewing leases", &error);
                    }
                }
            }
            if in_flight.is_empty()
                && ready.is_empty()
                && claiming.is_none()
                && !more_due
                && let Some((started, items, failed)) = cycle.take()
            {
                let report = CycleReport { items, failed, duration: started.elapsed() };
                metrics::histogram!("rosetta_worker_cycle_duration_seconds", "queue" => queue.name())
                    .record(report.duration.as_secs_f64());
                // With the histogram's count: items per cycle; and which cycles covered an item.
                metrics::counter!("rosetta_worker_cycle_items_total", "queue" => queue.name())
                    .increment(report.items as u64);
                self.job.cycle_finished(&report);
            }
        }
        // Shutdown: no more claims; what is in flight may finish within the grace period.
        let finish = async {
            while let Some((_, outcome)) = in_flight.next().await {
                if outcomes.send(outcome).await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(grace, finish).await.is_err() {
            tracing::warn!(%queue, "shutdown: abandoned the items still in flight");
        }
    }

    /// Claims up to `limit` due items and prepares them.
    fn claim(&self, limit: usize) -> Claiming<J::Item> {
        let job = Arc::clone(&self.job);
        let leases = Arc::clone(&self.leases);
        let clock = Arc::clone(&self.clock);
        let heartbeat = Arc::clone(&self.heartbeat);
        let (owner, lease) = (self.settings.owner.clone(), self.settings.lease);
        Box::pin(async move {
            let now = clock.now();
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            let claimed = leases.claim(job.queue(), &owner, now, lease, limit).await?;
            heartbeat.beat(now);
            let count = claimed.len();
            metrics::counter!("rosetta_worker_claimed_total", "queue" => job.queue().name()).increment(count as u64);
            if claimed.is_empty() {
                return Ok((0, Vec::new()));
            }
            Ok((count, job.prepare(claimed).await))
        })
    }
}

/// Logs a store failure of a background loop: an outage as a warning, anything else as an error.
pub(crate) fn log_repository_error(queue: Queue, action: &str, error: &RepositoryError) {
    match error {
        RepositoryError::Unavailable(cause) => {
            tracing::warn!(%queue, error = %cause, "{action}: metadata database unavailable");
        }
        other => tracing::error!(%queue, error = ?other, "{action} failed"),
    }
}

/// Ids in `claimed` mapped to the prepared values found for them, in claim order.
pub(crate) fn in_claim_order<T>(claimed: &[i64], mut found: HashMap<i64, T>) -> Vec<(i64, T)> {
    claimed.iter().filter_map(|id| found.remove(id).map(|value| (*id, value))).collect()
}
