//! Leased work: the queues of background work every server process shares.
//!
//! A queue holds items (an id each: a source to sample, a delivery to send, a cleanup task to
//! run), each due at some time. A process *claims* due items with a lease — the item is its own
//! until the lease expires — works on them, and *completes* them, which schedules each item's
//! next run (or removes it) and releases the lease. Claims by concurrent processes never overlap,
//! so each item is worked on once per due time in total; a process that dies leaves leases that
//! simply expire, and its items are claimed by the others. Times are the callers' `now`, so the
//! processes' clocks must agree to well within a lease.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::Timestamp;

use crate::outbound::RepositoryError;

/// A queue of leased work, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Queue(&'static str);

impl Queue {
    /// One item per source: its next WAL sample. Items come and go with the sources.
    pub const WAL_SAMPLING: Queue = Queue("wal_sampling");
    /// One item: deleting history older than the retention period.
    pub const RETENTION: Queue = Queue("retention");
    /// One item per pending delivery of an alert transition to a channel, due at its next
    /// attempt. Items come with the deliveries and go when they are delivered or given up.
    pub const NOTIFICATION_DELIVERY: Queue = Queue("notification_delivery");
    /// One item per cleanup task (a slot to drop on a source), due at its next attempt. Items
    /// come with the tasks and go when they are done or abandoned.
    pub const SOURCE_CLEANUP: Queue = Queue("source_cleanup");

    /// A queue named `name`: lower-case letters and `_`, 1–63 of them (checked by the stores).
    pub const fn named(name: &'static str) -> Queue {
        Queue(name)
    }

    /// The queue's name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Who holds a lease: one server process. Unique per process, readable in the database
/// (`host:pid:random`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseOwner(String);

impl LeaseOwner {
    /// An owner named `name` (1–255 characters).
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The owner's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What completing a leased item does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It is due again at this time.
    DueAt(Timestamp),
    /// It is done: removed from its queue.
    Done,
}

/// The leases of every queue.
///
/// An item is *due* when its due time has passed (or it has none: due now, before any item with
/// one), and *claimable* when it is due and not leased, or its lease expired. Completing an item
/// requires the caller's lease to still be the item's: a lease that expired but that nobody took
/// over still counts (no one else worked on the item).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Adds `item` to `queue`, due at `due` (`None`: now). An item already queued keeps its due
    /// time and lease.
    async fn enqueue(&self, queue: Queue, item: i64, due: Option<Timestamp>) -> Result<(), RepositoryError>;

    /// Makes `item` due by `now` at the latest (an item scheduled later is moved to `now`, one due
    /// earlier keeps its time); its lease, if any, is kept, and an item not queued stays so. How
    /// a change that the next run should see soon (a slot created on a source) asks for it.
    async fn expedite(&self, queue: Queue, item: i64, now: Timestamp) -> Result<(), RepositoryError>;

    /// Leases up to `limit` claimable items of `queue` to `owner` until `now + lease` and returns
    /// them, the oldest due first (items without a due time before all).
    async fn claim(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<i64>, RepositoryError>;

    /// Extends `owner`'s leases on `items` to `now + lease`; returns the items whose lease was
    /// still `owner`'s (the others were taken over or are gone).
    async fn renew(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[i64],
        now: Timestamp,
        lease: Duration,
    ) -> Result<Vec<i64>, RepositoryError>;

    /// Completes `owner`'s leased `items`, each with its [`Next`], and releases their leases;
    /// returns the items completed. Items no longer leased to `owner` (taken over, or gone) are
    /// left alone: their outcome is not `owner`'s to record.
    async fn complete(
        &self,
        queue: Queue,
        owner: &LeaseOwner,
        items: &[(i64, Next)],
    ) -> Result<Vec<i64>, RepositoryError>;

    /// Releases every lease of `owner`, in every queue, without changing when the items are due
    /// (shutdown: other processes take them at once).
    async fn release_all(&self, owner: &LeaseOwner) -> Result<(), RepositoryError>;
}
