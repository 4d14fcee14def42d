//! The contract of [`LeaseStore`]: claims, renewals, completions and releases, per queue.
//!
//! The cases use queues of their own (`contract_a`, `contract_b`), into which they enqueue items
//! themselves; the stores' own queues (sources in `wal_sampling`) are covered by the suites of the
//! stores that fill them.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::Timestamp;

use super::fixtures::fixed_time;
use crate::jobs::{LeaseOwner, LeaseStore, Next, Queue};
use crate::outbound::RepositoryError;

/// The lease store of one empty database, plus whatever must stay alive while it is used.
pub struct LeaseStoreBundle {
    /// The leases.
    pub leases: Arc<dyn LeaseStore>,
    /// Dropped after the case that used the bundle.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for LeaseStoreBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseStoreBundle").finish_non_exhaustive()
    }
}

/// Makes a fresh, empty lease store for each contract case.
#[async_trait]
pub trait LeaseStoreFactory: Send + Sync {
    /// A new store with no items in the contract's queues.
    async fn fresh(&self) -> LeaseStoreBundle;
}

const A: Queue = Queue::named("contract_a");
const B: Queue = Queue::named("contract_b");
const LEASE: Duration = Duration::from_secs(60);

fn at(seconds: i64) -> Timestamp {
    fixed_time(0) + chrono::Duration::seconds(seconds)
}

fn owner(name: &str) -> LeaseOwner {
    LeaseOwner::new(name)
}

macro_rules! ok {
    ($case:expr, $call:expr) => {
        $call.await.unwrap_or_else(|e| panic!("[{}] {} failed: {e:?}", $case, stringify!($call)))
    };
}

/// Enqueues `items` into `queue`, due now.
async fn enqueue(case: &str, store: &LeaseStoreBundle, queue: Queue, items: &[i64]) {
    for item in items {
        ok!(case, store.leases.enqueue(queue, *item, None));
    }
}

async fn claim(case: &str, store: &LeaseStoreBundle, queue: Queue, by: &str, now: i64, limit: u32) -> Vec<i64> {
    ok!(case, store.leases.claim(queue, &owner(by), at(now), LEASE, limit))
}

contract! { $ lease_contract_tests, testing::leases, LeaseStoreFactory:
    /// Expediting moves a later due time to now, keeps an earlier one, and queues nothing new.
    async fn leases_expediting_makes_an_item_due_now_at_the_latest(factory) {
        let case = "leases: expediting";
        let store = factory.fresh().await;
        ok!(case, store.leases.enqueue(A, 1, Some(at(100))));
        ok!(case, store.leases.enqueue(A, 2, Some(at(1))));
        assert_eq!(claim(case, &store, A, "a", 5, 10).await, [2], "[{case}] only the early one is due");
        ok!(case, store.leases.expedite(A, 1, at(5)));
        ok!(case, store.leases.expedite(A, 3, at(5)));
        assert_eq!(claim(case, &store, A, "a", 5, 10).await, [1], "[{case}] expedited; nothing new queued");
        ok!(case, store.leases.complete(A, &owner("a"), &[(2, Next::DueAt(at(50)))]));
        ok!(case, store.leases.expedite(A, 2, at(60)));
        assert_eq!(claim(case, &store, A, "b", 49, 10).await, Vec::<i64>::new(), "[{case}] an earlier time is kept");
        assert_eq!(claim(case, &store, A, "b", 50, 10).await, [2], "[{case}] due at its own time");
    }

    /// Enqueued items are claimed once, in id order, up to the limit.
    async fn leases_items_are_claimed_once_in_order_up_to_the_limit(factory) {
        let case = "leases: items are claimed once, in order, up to the limit";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[3, 1, 2]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 2).await, [1, 2], "[{case}] first two, by id");
        assert_eq!(claim(case, &store, A, "a", 0, 10).await, [3], "[{case}] the rest");
        assert_eq!(claim(case, &store, A, "b", 0, 10).await, Vec::<i64>::new(), "[{case}] another owner");
        assert_eq!(claim(case, &store, A, "a", 1, 10).await, Vec::<i64>::new(), "[{case}] the same owner");
        assert_eq!(claim(case, &store, A, "a", 1, 0).await, Vec::<i64>::new(), "[{case}] limit 0");
        enqueue(case, &store, A, &[4]).await;
        assert_eq!(claim(case, &store, A, "b", 2, 10).await, [4], "[{case}] a new item");
    }

    /// An expired lease is taken over by another owner, and then held by it.
    async fn leases_an_expired_lease_is_taken_over(factory) {
        let case = "leases: an expired lease is taken over";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 10).await, [1], "[{case}] a claims");
        assert_eq!(claim(case, &store, A, "b", 59, 10).await, Vec::<i64>::new(), "[{case}] still leased");
        assert_eq!(claim(case, &store, A, "b", 61, 10).await, [1], "[{case}] b takes over");
        assert_eq!(claim(case, &store, A, "a", 62, 10).await, Vec::<i64>::new(), "[{case}] b holds it");
    }

    /// Completing schedules each item's next due time and releases its lease at once.
    async fn leases_completing_schedules_the_next_due_time_and_releases(factory) {
        let case = "leases: completing schedules the next due time and releases";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2]).await;
        let long = Duration::from_secs(3_600);
        assert_eq!(ok!(case, store.leases.claim(A, &owner("a"), at(0), long, 10)), [1, 2], "[{case}] claim");
        let completed = ok!(case, store.leases.complete(A, &owner("a"), &[(1, Next::DueAt(at(300))), (2, Next::DueAt(at(200)))]));
        assert_eq!(completed.into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([1, 2]), "[{case}] completed");
        assert_eq!(claim(case, &store, A, "b", 199, 10).await, Vec::<i64>::new(), "[{case}] not yet due");
        assert_eq!(claim(case, &store, A, "b", 250, 10).await, [2], "[{case}] 2 due, though a's lease was long");
        assert_eq!(claim(case, &store, A, "c", 301, 10).await, [1], "[{case}] 1 due");
    }

    /// Claims return the oldest due first, and items never scheduled before all.
    async fn leases_claims_return_the_oldest_due_first_unscheduled_before_all(factory) {
        let case = "leases: the oldest due first, unscheduled before all";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2, 3]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 10).await, [1, 2, 3], "[{case}] claim");
        ok!(case, store.leases.complete(A, &owner("a"), &[(3, Next::DueAt(at(10))), (1, Next::DueAt(at(20)))]));
        ok!(case, store.leases.release_all(&owner("a")));
        assert_eq!(claim(case, &store, A, "b", 30, 10).await, [2, 3, 1], "[{case}] order");
        ok!(case, store.leases.enqueue(A, 4, Some(at(40))));
        ok!(case, store.leases.release_all(&owner("b")));
        assert_eq!(claim(case, &store, A, "c", 39, 10).await, [2, 3, 1], "[{case}] 4 is not due yet");
        ok!(case, store.leases.release_all(&owner("c")));
        assert_eq!(claim(case, &store, A, "c", 40, 10).await, [2, 3, 1, 4], "[{case}] 4 is due");
    }

    /// Completing an item whose lease another owner took over does nothing.
    async fn leases_completing_a_lease_taken_over_changes_nothing(factory) {
        let case = "leases: completing a lease taken over changes nothing";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 1).await, [1], "[{case}] a claims 1");
        assert_eq!(claim(case, &store, A, "b", 61, 10).await, [1, 2], "[{case}] b takes 1 over, and 2");
        let completed = ok!(case, store.leases.complete(A, &owner("a"), &[(1, Next::Done), (2, Next::Done), (9, Next::Done)]));
        assert_eq!(completed, Vec::<i64>::new(), "[{case}] none was a's");
        assert_eq!(claim(case, &store, A, "c", 62, 10).await, Vec::<i64>::new(), "[{case}] b still holds both");
        let completed = ok!(case, store.leases.complete(A, &owner("b"), &[(1, Next::DueAt(at(100)))]));
        assert_eq!(completed, [1], "[{case}] b completes its own");
    }

    /// A lease that expired but that nobody took over still completes.
    async fn leases_an_expired_lease_nobody_took_over_still_completes(factory) {
        let case = "leases: an expired lease nobody took over still completes";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 1).await, [1], "[{case}] claim");
        let completed = ok!(case, store.leases.complete(A, &owner("a"), &[(1, Next::DueAt(at(500)))]));
        assert_eq!(completed, [1], "[{case}] completed after its expiry");
        assert_eq!(claim(case, &store, A, "b", 400, 10).await, Vec::<i64>::new(), "[{case}] scheduled, not due");
    }

    /// A done item leaves its queue; enqueued again, it is due again.
    async fn leases_done_items_leave_the_queue(factory) {
        let case = "leases: done items leave the queue";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 10).await, [1, 2], "[{case}] claim");
        ok!(case, store.leases.complete(A, &owner("a"), &[(1, Next::Done), (2, Next::Done)]));
        assert_eq!(claim(case, &store, A, "b", 1_000_000, 10).await, Vec::<i64>::new(), "[{case}] gone for good");
        enqueue(case, &store, A, &[2]).await;
        assert_eq!(claim(case, &store, A, "b", 1, 10).await, [2], "[{case}] back");
    }

    /// Enqueueing an item already queued keeps its due time and its lease.
    async fn leases_enqueueing_a_queued_item_keeps_its_schedule_and_lease(factory) {
        let case = "leases: enqueueing a queued item keeps its schedule and lease";
        let store = factory.fresh().await;
        ok!(case, store.leases.enqueue(A, 1, Some(at(100))));
        ok!(case, store.leases.enqueue(A, 1, None));
        assert_eq!(claim(case, &store, A, "a", 50, 10).await, Vec::<i64>::new(), "[{case}] still due at 100");
        assert_eq!(claim(case, &store, A, "a", 100, 10).await, [1], "[{case}] due");
        ok!(case, store.leases.enqueue(A, 1, None));
        assert_eq!(claim(case, &store, A, "b", 101, 10).await, Vec::<i64>::new(), "[{case}] a's lease kept");
    }

    /// Renewing extends only the owner's own leases and says which were still its own.
    async fn leases_renew_extends_only_the_owners_leases(factory) {
        let case = "leases: renew extends only the owner's leases";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2, 3]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 2).await, [1, 2], "[{case}] a claims");
        assert_eq!(claim(case, &store, A, "b", 0, 10).await, [3], "[{case}] b claims");
        let renewed = ok!(case, store.leases.renew(A, &owner("a"), &[1, 2, 3, 9], at(50), LEASE));
        assert_eq!(renewed.into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([1, 2]), "[{case}] a's own");
        assert_eq!(claim(case, &store, A, "c", 61, 10).await, [3], "[{case}] a's renewed, b's expired");
        let renewed = ok!(case, store.leases.renew(A, &owner("b"), &[3], at(62), LEASE));
        assert_eq!(renewed, Vec::<i64>::new(), "[{case}] b's was taken over");
        assert_eq!(claim(case, &store, A, "c", 111, 10).await, [1, 2], "[{case}] renewed until 110");
    }

    /// Releasing frees every lease of that owner, in every queue, and nobody else's.
    async fn leases_release_all_frees_only_that_owners_leases_in_every_queue(factory) {
        let case = "leases: release_all frees only that owner's leases";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1, 2]).await;
        enqueue(case, &store, B, &[1]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 1).await, [1], "[{case}] a in A");
        assert_eq!(claim(case, &store, B, "a", 0, 1).await, [1], "[{case}] a in B");
        assert_eq!(claim(case, &store, A, "b", 0, 1).await, [2], "[{case}] b in A");
        ok!(case, store.leases.release_all(&owner("a")));
        ok!(case, store.leases.release_all(&owner("nobody")));
        assert_eq!(claim(case, &store, A, "c", 1, 10).await, [1], "[{case}] a's item in A");
        assert_eq!(claim(case, &store, B, "c", 1, 10).await, [1], "[{case}] a's item in B");
    }

    /// Queues are separate: an item id in one says nothing about the same id in another.
    async fn leases_queues_are_separate(factory) {
        let case = "leases: queues are separate";
        let store = factory.fresh().await;
        enqueue(case, &store, A, &[1]).await;
        assert_eq!(claim(case, &store, B, "a", 0, 10).await, Vec::<i64>::new(), "[{case}] nothing in B");
        enqueue(case, &store, B, &[1]).await;
        assert_eq!(claim(case, &store, A, "a", 0, 10).await, [1], "[{case}] A's item");
        assert_eq!(claim(case, &store, B, "b", 0, 10).await, [1], "[{case}] B's item, though A's is leased");
        ok!(case, store.leases.complete(A, &owner("a"), &[(1, Next::Done)]));
        let renewed = ok!(case, store.leases.renew(B, &owner("b"), &[1], at(1), LEASE));
        assert_eq!(renewed, [1], "[{case}] B's item is untouched by A's completion");
    }

    /// Concurrent claimers never get the same item, and together get them all.
    async fn leases_concurrent_claimers_never_get_the_same_item(factory) {
        let case = "leases: concurrent claimers never get the same item";
        let store = factory.fresh().await;
        let items: Vec<i64> = (1..=40).collect();
        enqueue(case, &store, A, &items).await;
        let claimers = (0..8).map(|i| {
            let leases = Arc::clone(&store.leases);
            async move {
                let owner = owner(&format!("owner-{i}"));
                let mut mine = Vec::new();
                loop {
                    let claimed = leases.claim(A, &owner, at(0), LEASE, 3).await?;
                    if claimed.is_empty() {
                        return Ok::<_, RepositoryError>(mine);
                    }
                    mine.extend(claimed);
                }
            }
        });
        let mut seen = BTreeSet::new();
        for claimed in futures::future::join_all(claimers).await {
            for item in claimed.unwrap_or_else(|e| panic!("[{case}] claim failed: {e:?}")) {
                assert!(seen.insert(item), "[{case}] {item} claimed twice");
            }
        }
        assert_eq!(seen, items.into_iter().collect(), "[{case}] every item claimed");
    }
}
