//! The contracts of the WAL monitor's store ports: [`WalMetricsRepository`] (samples and latest
//! state, recorded under the [`Queue::WAL_SAMPLING`] leases that share sampling between
//! processes, one item per source) and [`SystemMetricsRepository`].
//!
//! Every time is passed explicitly (`now`, `attempted_at`, `next_sample_at`), so the cases do
//! not depend on the wall clock; leases are checked against the `now` each call is given.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::{
    ChartWindow, Lsn, PageLimit, SampledBucket, SlotBucket, SlotSample, SlotType, SourceId, SourceWalState,
    SystemSample, Timestamp, WalMonitorStatus, WalSample, WalStatus,
};

use super::fixtures::{fixed_time, new_source};
use crate::EntityKind;
use crate::jobs::{LeaseOwner, LeaseStore, Queue};
use crate::outbound::{RepositoryError, SourceRepository};
use crate::wal::{
    SampleOutcome, SystemHistoryQuery, SystemMetricsRepository, WalHistoryEntry, WalHistoryQuery, WalMetricsRepository,
};

/// The stores of one empty metadata database: sources (WAL rows need a source to belong to),
/// the leases of its sampling queue, WAL metrics and host metrics, plus whatever must stay alive
/// while they are used.
pub struct WalStoreBundle {
    /// Sources, to create and delete the sources samples belong to.
    pub sources: Arc<dyn SourceRepository>,
    /// The leases (of the same database as `wal`).
    pub leases: Arc<dyn LeaseStore>,
    /// WAL samples and latest state.
    pub wal: Arc<dyn WalMetricsRepository>,
    /// Host samples.
    pub system: Arc<dyn SystemMetricsRepository>,
    /// Dropped after the case that used the bundle.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for WalStoreBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalStoreBundle").finish_non_exhaustive()
    }
}

/// Makes a fresh, empty store for each contract case.
#[async_trait]
pub trait WalStoreFactory: Send + Sync {
    /// A new store with no sources and no samples.
    async fn fresh(&self) -> WalStoreBundle;
}

macro_rules! ok {
    ($case:expr, $call:expr) => {
        $call.await.unwrap_or_else(|e| panic!("[{}] {} failed: {e:?}", $case, stringify!($call)))
    };
}

/// The lease the cases claim with unless they say otherwise.
const LEASE: Duration = Duration::from_secs(60);

fn owner(name: &str) -> LeaseOwner {
    LeaseOwner::new(name)
}

/// Claims up to `limit` due sources of the sampling queue for `owner`.
async fn claim(
    store: &WalStoreBundle,
    owner_name: &str,
    now: Timestamp,
    lease: Duration,
    limit: u32,
) -> Result<Vec<SourceId>, RepositoryError> {
    let claimed = store.leases.claim(Queue::WAL_SAMPLING, &owner(owner_name), now, lease, limit).await?;
    Ok(claimed.into_iter().map(SourceId::new).collect())
}

/// `seconds` after a fixed instant (with microseconds, as stores keep them).
fn at(seconds: i64) -> Timestamp {
    fixed_time(0) + chrono::Duration::seconds(seconds)
}

fn limit(n: u32) -> PageLimit {
    PageLimit::new(n).unwrap_or_default()
}

/// A sample with every field set: an inactive logical slot with all optional columns, a lost
/// physical slot, and an active temporary slot (so the status is `IDLE` unless `all_active`).
fn sample(sampled_at: Timestamp, current: u64, all_active: bool) -> WalSample {
    WalSample {
        sampled_at,
        in_recovery: false,
        current_lsn: Lsn::from_bytes(current),
        wal_dir_bytes: Some(48 << 20),
        slots: vec![
            SlotSample {
                slot_name: "cdc_orders".into(),
                slot_type: SlotType::Logical,
                active: all_active,
                temporary: false,
                restart_lsn: Some(Lsn::from_bytes(current / 2)),
                confirmed_flush_lsn: Some(Lsn::from_bytes(current - 100)),
                wal_status: Some(WalStatus::Extended),
                safe_wal_size_bytes: Some(-4_096),
                conflicting: Some(false),
                inactive_since: (!all_active).then_some(sampled_at - chrono::Duration::seconds(90)),
                synced: None,
                invalidation_reason: None,
            },
            SlotSample {
                slot_name: "standby_1".into(),
                slot_type: SlotType::Physical,
                active: true,
                temporary: false,
                restart_lsn: None,
                confirmed_flush_lsn: None,
                wal_status: Some(WalStatus::Lost),
                safe_wal_size_bytes: None,
                conflicting: None,
                inactive_since: None,
                synced: None,
                invalidation_reason: None,
            },
            SlotSample {
                slot_name: "pg_basebackup_1".into(),
                slot_type: SlotType::Physical,
                active: true,
                temporary: true,
                restart_lsn: Some(Lsn::from_bytes(current)),
                confirmed_flush_lsn: None,
                wal_status: None,
                safe_wal_size_bytes: None,
                conflicting: None,
                inactive_since: None,
                synced: None,
                invalidation_reason: None,
            },
        ],
    }
}

fn success(source_id: SourceId, attempted_at: Timestamp, sample: WalSample) -> SampleOutcome {
    SampleOutcome { source_id, attempted_at, result: Ok(sample) }
}

fn failure(source_id: SourceId, attempted_at: Timestamp, error: &str) -> SampleOutcome {
    SampleOutcome { source_id, attempted_at, result: Err(error.to_owned()) }
}

/// Creates sources `names` in order and returns their ids.
async fn create_sources(case: &str, store: &WalStoreBundle, names: &[&str]) -> Vec<SourceId> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(ok!(case, store.sources.create(new_source(name, None), at(0))).id);
    }
    ids
}

/// One tick of a single monitor: claims every due source at `now`, records `outcomes` (each
/// of which must be for a claimed source) due again right away, and releases the rest.
async fn tick(case: &str, store: &WalStoreBundle, now: Timestamp, outcomes: Vec<SampleOutcome>) {
    let claimed = ok!(case, claim(store, "ticker", now, LEASE, 1_000));
    for outcome in &outcomes {
        assert!(claimed.contains(&outcome.source_id), "[{case}] tick at {now}: {:?} not due", outcome.source_id);
    }
    ok!(case, store.wal.record_outcomes(&owner("ticker"), outcomes, now));
    ok!(case, store.leases.release_all(&owner("ticker")));
}

/// `(source, recorded_at)` of history entries, to compare order and filters at a glance.
fn keys(entries: &[WalHistoryEntry]) -> Vec<(SourceId, Timestamp)> {
    entries.iter().map(|entry| (entry.source_id, entry.recorded_at)).collect()
}

contract! { $ wal_store_contract_tests, testing::wal, WalStoreFactory:
    /// wal: new sources are claimed once, in id order, up to the limit.
    async fn wal_new_sources_are_claimed_once_in_id_order_up_to_the_limit(factory) {
        let case = "wal: new sources are claimed once, in id order, up to the limit";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2", "s3"]).await;
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 2)), ids[..2], "[{case}] first two");
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 10)), ids[2..], "[{case}] the rest");
        assert_eq!(ok!(case, claim(&store, "b", at(0), LEASE, 10)), vec![], "[{case}] other owner");
        assert_eq!(ok!(case, claim(&store, "a", at(1), LEASE, 10)), vec![], "[{case}] same owner");
        assert_eq!(ok!(case, claim(&store, "a", at(1), LEASE, 0)), vec![], "[{case}] limit 0");
        let late = create_sources(case, &store, &["s4"]).await;
        assert_eq!(ok!(case, claim(&store, "b", at(2), LEASE, 10)), late, "[{case}] a new source");
    }

    /// wal: an expired lease is taken over by another owner.
    async fn wal_an_expired_lease_is_taken_over_by_another_owner(factory) {
        let case = "wal: an expired lease is taken over by another owner";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1"]).await;
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 10)), ids, "[{case}] a claims");
        assert_eq!(ok!(case, claim(&store, "b", at(59), LEASE, 10)), vec![], "[{case}] still leased");
        assert_eq!(ok!(case, claim(&store, "b", at(61), LEASE, 10)), ids, "[{case}] b takes over");
        assert_eq!(ok!(case, claim(&store, "a", at(62), LEASE, 10)), vec![], "[{case}] b holds it");
    }

    /// wal: recording sets when the source is due again and releases the lease.
    async fn wal_recording_sets_when_the_source_is_due_again_and_releases_the_lease(factory) {
        let case = "wal: recording sets when the source is due again and releases the lease";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2"]).await;
        let long = Duration::from_secs(3_600);
        assert_eq!(ok!(case, claim(&store, "a", at(0), long, 10)), ids, "[{case}] claim");
        let outcomes = vec![success(ids[0], at(1), sample(at(1), 10_000, true)), failure(ids[1], at(1), "refused")];
        ok!(case, store.wal.record_outcomes(&owner("a"), outcomes, at(300)));
        assert_eq!(ok!(case, claim(&store, "b", at(299), LEASE, 10)), vec![], "[{case}] not yet due");
        // Before the one-hour lease expires: only a released lease makes them claimable.
        assert_eq!(ok!(case, claim(&store, "b", at(301), LEASE, 10)), ids, "[{case}] due again");
    }

    /// wal: claims return the oldest due first, never-sampled sources before all.
    async fn wal_claims_return_the_oldest_due_first_never_sampled_sources_before_all(factory) {
        let case = "wal: claims return the oldest due first, never-sampled sources before all";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2", "s3"]).await;
        ok!(case, claim(&store, "a", at(0), LEASE, 10));
        ok!(case, store.wal.record_outcomes(&owner("a"), vec![success(ids[2], at(1), sample(at(1), 900, true))], at(10)));
        ok!(case, store.wal.record_outcomes(&owner("a"), vec![failure(ids[0], at(1), "timeout")], at(20)));
        ok!(case, store.leases.release_all(&owner("a")));
        assert_eq!(
            ok!(case, claim(&store, "b", at(30), LEASE, 10)),
            vec![ids[1], ids[2], ids[0]],
            "[{case}] order"
        );
    }

    /// wal: release_leases frees only that owner's sources.
    async fn wal_release_leases_frees_only_that_owners_sources(factory) {
        let case = "wal: release_leases frees only that owner's sources";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2"]).await;
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 1)), ids[..1], "[{case}] a");
        assert_eq!(ok!(case, claim(&store, "b", at(0), LEASE, 1)), ids[1..], "[{case}] b");
        ok!(case, store.leases.release_all(&owner("a")));
        ok!(case, store.leases.release_all(&owner("nobody")));
        assert_eq!(ok!(case, claim(&store, "c", at(1), LEASE, 10)), ids[..1], "[{case}] a's source");
        assert!(ok!(case, store.wal.latest(ids[0])).is_none(), "[{case}] releasing records nothing");
    }

    /// wal: concurrent claimers never get the same source.
    async fn wal_concurrent_claimers_never_get_the_same_source(factory) {
        let case = "wal: concurrent claimers never get the same source";
        let store = factory.fresh().await;
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let ids = create_sources(case, &store, &names).await;
        let claimers = (0..8).map(|i| {
            let store = &store;
            async move {
                let owner = format!("owner-{i}");
                let mut mine = Vec::new();
                loop {
                    let claimed = claim(store, &owner, at(0), LEASE, 3).await?;
                    if claimed.is_empty() {
                        return Ok::<_, RepositoryError>(mine);
                    }
                    mine.extend(claimed);
                }
            }
        });
        let mut seen = BTreeSet::new();
        for claimed in futures::future::join_all(claimers).await {
            let claimed = claimed.unwrap_or_else(|e| panic!("[{case}] claim failed: {e:?}"));
            for id in claimed {
                assert!(seen.insert(id), "[{case}] {id:?} claimed twice");
            }
        }
        assert_eq!(seen, ids.into_iter().collect(), "[{case}] every source claimed");
    }

    /// wal: a failure keeps the last good sample, a success clears the error.
    async fn wal_a_failure_keeps_the_last_good_sample_a_success_clears_the_error(factory) {
        let case = "wal: a failure keeps the last good sample, a success clears the error";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1"]).await;
        let first = sample(at(10), 1 << 33, false);
        tick(case, &store, at(10), vec![success(ids[0], at(10), first.clone())]).await;
        let idle = SourceWalState {
            source_id: ids[0],
            status: WalMonitorStatus::Idle,
            last_sample: Some(first.clone()),
            error: None,
            last_attempt_at: Some(at(10)),
        };
        assert_eq!(ok!(case, store.wal.latest(ids[0])), Some(idle.clone()), "[{case}] after success");
        assert_eq!(ok!(case, store.wal.list_latest()), vec![idle], "[{case}] listed");

        tick(case, &store, at(20), vec![failure(ids[0], at(20), "connection refused")]).await;
        let failed = SourceWalState {
            source_id: ids[0],
            status: WalMonitorStatus::Error,
            last_sample: Some(first.clone()),
            error: Some("connection refused".into()),
            last_attempt_at: Some(at(20)),
        };
        assert_eq!(ok!(case, store.wal.latest(ids[0])), Some(failed), "[{case}] after failure");

        let second = sample(at(30), (1 << 33) + 5_000, true);
        tick(case, &store, at(30), vec![success(ids[0], at(30), second.clone())]).await;
        let active = SourceWalState {
            source_id: ids[0],
            status: WalMonitorStatus::Active,
            last_sample: Some(second.clone()),
            error: None,
            last_attempt_at: Some(at(30)),
        };
        assert_eq!(ok!(case, store.wal.latest(ids[0])), Some(active), "[{case}] after recovery");

        let history = ok!(case, store.wal.history(WalHistoryQuery { source_id: Some(ids[0]), ..Default::default() }));
        let expected = vec![
            WalHistoryEntry {
                source_id: ids[0],
                recorded_at: at(30),
                status: WalMonitorStatus::Active,
                sample: Some(second),
                error: None,
            },
            WalHistoryEntry {
                source_id: ids[0],
                recorded_at: at(20),
                status: WalMonitorStatus::Error,
                sample: None,
                error: Some("connection refused".into()),
            },
            WalHistoryEntry {
                source_id: ids[0],
                recorded_at: at(10),
                status: WalMonitorStatus::Idle,
                sample: Some(first),
                error: None,
            },
        ];
        assert_eq!(history, expected, "[{case}] one history row per attempt, newest first");
    }

    /// wal: outcomes of a lease taken over, or never held, are dropped.
    async fn wal_outcomes_of_a_lease_taken_over_or_never_held_are_dropped(factory) {
        let case = "wal: outcomes of a lease taken over, or never held, are dropped";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2", "s3"]).await;
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 2)), ids[..2], "[{case}] a claims");
        assert_eq!(ok!(case, claim(&store, "b", at(61), LEASE, 2)), ids[..2], "[{case}] b takes over");
        let late = vec![
            success(ids[0], at(62), sample(at(62), 5_000, true)),
            failure(ids[1], at(62), "late"),
            // s3 was never claimed by a.
            failure(ids[2], at(62), "never claimed"),
        ];
        assert_eq!(ok!(case, store.wal.record_outcomes(&owner("a"), late, at(400))), vec![], "[{case}] nothing recorded");
        for id in &ids {
            assert_eq!(ok!(case, store.wal.latest(*id)), None, "[{case}] {id:?} has no state");
        }
        assert!(ok!(case, store.wal.history(WalHistoryQuery::default())).is_empty(), "[{case}] no history");
        assert_eq!(
            ok!(case, claim(&store, "c", at(63), LEASE, 10)),
            ids[2..],
            "[{case}] b's leases survive a's late record"
        );
        let recorded = ok!(case, store.wal.record_outcomes(&owner("b"), vec![failure(ids[0], at(64), "b's")], at(400)));
        assert_eq!(recorded, ids[..1], "[{case}] the owner's outcome is recorded");
        let state = ok!(case, store.wal.latest(ids[0]));
        assert_eq!(state.and_then(|s| s.error), Some("b's".to_owned()), "[{case}] the owner's outcome is kept");
    }

    /// wal: a deleted source's outcome is dropped, the batch's others are kept.
    async fn wal_a_deleted_sources_outcome_is_dropped_the_batchs_others_are_kept(factory) {
        let case = "wal: a deleted source's outcome is dropped, the batch's others are kept";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2"]).await;
        assert_eq!(ok!(case, claim(&store, "a", at(0), LEASE, 10)), ids, "[{case}] claim");
        ok!(case, store.sources.delete(ids[1], false, fixed_time(9)));
        let outcomes = vec![
            success(ids[0], at(1), sample(at(1), 7_000, true)),
            success(ids[1], at(1), sample(at(1), 7_000, true)),
        ];
        let recorded = ok!(case, store.wal.record_outcomes(&owner("a"), outcomes, at(300)));
        assert_eq!(recorded, ids[..1], "[{case}] recorded");
        let history = ok!(case, store.wal.history(WalHistoryQuery::default()));
        assert_eq!(keys(&history), vec![(ids[0], at(1))], "[{case}] history");
        assert!(
            matches!(
                store.wal.latest(ids[1]).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Source, id }) if id == ids[1].get()
            ),
            "[{case}] deleted source"
        );
        ok!(case, store.wal.record_outcomes(&owner("a"), Vec::new(), at(300)));
    }

    /// wal: deleting a source removes its state and history.
    async fn wal_deleting_a_source_removes_its_state_and_history(factory) {
        let case = "wal: deleting a source removes its state and history";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2"]).await;
        tick(
            case,
            &store,
            at(10),
            vec![success(ids[0], at(10), sample(at(10), 1_000, true)), failure(ids[1], at(10), "down")],
        )
        .await;
        ok!(case, store.sources.delete(ids[0], false, fixed_time(9)));
        let listed: Vec<SourceId> = ok!(case, store.wal.list_latest()).iter().map(|s| s.source_id).collect();
        assert_eq!(listed, ids[1..], "[{case}] latest states");
        let history = ok!(case, store.wal.history(WalHistoryQuery::default()));
        assert_eq!(keys(&history), vec![(ids[1], at(10))], "[{case}] history");
        let of_deleted = WalHistoryQuery { source_id: Some(ids[0]), ..Default::default() };
        assert!(ok!(case, store.wal.history(of_deleted)).is_empty(), "[{case}] history of the deleted source");
        assert_eq!(ok!(case, claim(&store, "a", at(20), LEASE, 10)), ids[1..], "[{case}] claims");
    }

    /// wal: latest is NotFound for an unknown source and None before the first record.
    async fn wal_latest_is_notfound_for_an_unknown_source_and_none_before_the_first_record(factory) {
        let case = "wal: latest is NotFound for an unknown source and None before the first record";
        let store = factory.fresh().await;
        assert!(
            matches!(
                store.wal.latest(SourceId::new(424_242)).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Source, id: 424_242 })
            ),
            "[{case}] unknown"
        );
        let ids = create_sources(case, &store, &["s1"]).await;
        assert_eq!(ok!(case, store.wal.latest(ids[0])), None, "[{case}] never claimed");
        ok!(case, claim(&store, "a", at(0), LEASE, 10));
        assert_eq!(ok!(case, store.wal.latest(ids[0])), None, "[{case}] claimed, not recorded");
        assert!(ok!(case, store.wal.list_latest()).is_empty(), "[{case}] nothing listed");
    }

    /// wal: list_latest holds only attempted sources, by id.
    async fn wal_list_latest_holds_only_attempted_sources_by_id(factory) {
        let case = "wal: list_latest holds only attempted sources, by id";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2", "s3"]).await;
        tick(
            case,
            &store,
            at(10),
            vec![success(ids[2], at(10), sample(at(10), 3_000, true)), failure(ids[0], at(11), "auth failed")],
        )
        .await;
        let listed = ok!(case, store.wal.list_latest());
        let summary: Vec<_> =
            listed.iter().map(|s| (s.source_id, s.status, s.last_sample.is_some(), s.error.clone())).collect();
        assert_eq!(
            summary,
            vec![
                (ids[0], WalMonitorStatus::Error, false, Some("auth failed".to_owned())),
                (ids[2], WalMonitorStatus::Active, true, None),
            ],
            "[{case}] listed"
        );
    }

    /// wal: history filters by source and inclusive time range, newest first, limited.
    async fn wal_history_filters_by_source_and_inclusive_time_range_newest_first_limited(factory) {
        let case = "wal: history filters by source and inclusive time range, newest first, limited";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1", "s2", "s3"]).await;
        let (s1, s2) = (ids[0], ids[1]);
        let ok_at = |id, t| success(id, at(t), sample(at(t), 1_000 + u64::try_from(t).unwrap_or(0), true));
        tick(case, &store, at(10), vec![ok_at(s1, 10), failure(s2, at(11), "x")]).await;
        tick(case, &store, at(20), vec![ok_at(s1, 20)]).await;
        tick(case, &store, at(30), vec![ok_at(s1, 30), ok_at(s2, 31)]).await;
        tick(case, &store, at(40), vec![ok_at(s2, 40)]).await;
        let query = |source_id, from: Option<i64>, to: Option<i64>, n| WalHistoryQuery {
            source_id,
            from: from.map(at),
            to: to.map(at),
            limit: limit(n),
        };
        let read = async |q| keys(&ok!(case, store.wal.history(q)));
        assert_eq!(
            read(query(None, None, None, 100)).await,
            vec![(s2, at(40)), (s2, at(31)), (s1, at(30)), (s1, at(20)), (s2, at(11)), (s1, at(10))],
            "[{case}] all"
        );
        assert_eq!(
            read(query(Some(s1), None, None, 100)).await,
            vec![(s1, at(30)), (s1, at(20)), (s1, at(10))],
            "[{case}] s1"
        );
        assert_eq!(read(query(Some(s1), Some(20), None, 100)).await, vec![(s1, at(30)), (s1, at(20))], "[{case}] from");
        assert_eq!(read(query(Some(s1), None, Some(20), 100)).await, vec![(s1, at(20)), (s1, at(10))], "[{case}] to");
        assert_eq!(
            read(query(None, Some(11), Some(31), 100)).await,
            vec![(s2, at(31)), (s1, at(30)), (s1, at(20)), (s2, at(11))],
            "[{case}] range without a source"
        );
        assert_eq!(read(query(None, None, None, 2)).await, vec![(s2, at(40)), (s2, at(31))], "[{case}] limit");
        assert_eq!(read(query(Some(s2), Some(12), None, 1)).await, vec![(s2, at(40))], "[{case}] everything at once");
        assert_eq!(read(query(Some(ids[2]), None, None, 100)).await, vec![], "[{case}] a source without history");
        assert_eq!(read(query(None, Some(41), None, 100)).await, vec![], "[{case}] after the last row");
    }

    /// wal: delete_history_before deletes strictly older rows, at most a batch at a time.
    async fn wal_delete_history_before_deletes_strictly_older_rows_at_most_a_batch_at_a_time(factory) {
        let case = "wal: delete_history_before deletes strictly older rows, at most a batch at a time";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["s1"]).await;
        for t in 1..=7 {
            tick(case, &store, at(t), vec![failure(ids[0], at(t), "down")]).await;
        }
        assert_eq!(ok!(case, store.wal.delete_history_before(at(6), 0)), 0, "[{case}] batch 0");
        assert_eq!(ok!(case, store.wal.delete_history_before(at(6), 2)), 2, "[{case}] first batch");
        assert_eq!(ok!(case, store.wal.delete_history_before(at(6), 2)), 2, "[{case}] second batch");
        assert_eq!(ok!(case, store.wal.delete_history_before(at(6), 2)), 1, "[{case}] the last older row");
        assert_eq!(ok!(case, store.wal.delete_history_before(at(6), 2)), 0, "[{case}] nothing left");
        let left = ok!(case, store.wal.history(WalHistoryQuery::default()));
        assert_eq!(keys(&left), vec![(ids[0], at(7)), (ids[0], at(6))], "[{case}] rows at or after the cutoff stay");
        assert_eq!(
            ok!(case, store.wal.latest(ids[0])).and_then(|s| s.last_attempt_at),
            Some(at(7)),
            "[{case}] retention leaves the latest state alone"
        );
    }

    /// wal: chart history keeps each bucket's maxima and counts, within the window, per source.
    async fn wal_chart_history_keeps_each_buckets_maxima_and_counts_within_the_window(factory) {
        let case = "wal: chart history keeps each bucket's maxima and counts, within the window, per source";
        let store = factory.fresh().await;
        let ids = create_sources(case, &store, &["charted", "other"]).await;
        let (charted, other) = (ids[0], ids[1]);
        let window = ChartWindow::new(at(0), at(100), 10).unwrap_or_else(|e| panic!("[{case}] window: {e}"));
        let with_wal_dir = |t: i64, current: u64, wal_dir: Option<u64>| {
            let mut sample = sample(at(t), current, false);
            sample.wal_dir_bytes = wal_dir;
            sample
        };
        // Bucket 0: two samples (the second a spike) and a failure; bucket 2: only a failure;
        // bucket 4: a sample that could not read pg_wal; `to` itself falls in bucket 9.
        tick(case, &store, at(-1), vec![success(charted, at(-1), with_wal_dir(-1, 90_000, Some(1)))]).await;
        tick(case, &store, at(1), vec![success(charted, at(1), with_wal_dir(1, 1_000, Some(7 << 20)))]).await;
        tick(case, &store, at(3), vec![success(charted, at(3), with_wal_dir(3, 3_000, Some(5 << 20)))]).await;
        tick(case, &store, at(5), vec![failure(charted, at(5), "cannot connect")]).await;
        tick(case, &store, at(25), vec![failure(charted, at(25), "cannot connect")]).await;
        tick(case, &store, at(45), vec![success(charted, at(45), with_wal_dir(45, 2_000, None))]).await;
        tick(
            case,
            &store,
            at(100),
            vec![
                success(charted, at(100), with_wal_dir(100, 4_000, Some(9 << 20))),
                success(other, at(100), with_wal_dir(100, 80_000, Some(1))),
            ],
        )
        .await;
        tick(case, &store, at(101), vec![success(charted, at(101), with_wal_dir(101, 70_000, Some(1)))]).await;

        let mut history = ok!(case, store.wal.chart_history(charted, window));
        assert_eq!(history.window, window, "[{case}] window");
        history.samples.sort_by_key(|bucket| bucket.bucket);
        assert_eq!(
            history.samples,
            vec![
                SampledBucket { bucket: 0, succeeded: 2, failed: 1, wal_dir_bytes: Some(7 << 20) },
                SampledBucket { bucket: 2, succeeded: 0, failed: 1, wal_dir_bytes: None },
                SampledBucket { bucket: 4, succeeded: 1, failed: 0, wal_dir_bytes: None },
                SampledBucket { bucket: 9, succeeded: 1, failed: 0, wal_dir_bytes: Some(9 << 20) },
            ],
            "[{case}] samples per bucket"
        );
        history.slots.sort_by(|a, b| (a.bucket, &a.slot_name).cmp(&(b.bucket, &b.slot_name)));
        let slot = |name: &str, bucket, retained_bytes| SlotBucket { slot_name: name.to_owned(), bucket, retained_bytes };
        assert_eq!(
            history.slots,
            vec![
                // cdc_orders retains current / 2: the spike (3 000 → 1 500) is the bucket's value.
                slot("cdc_orders", 0, Some(1_500)),
                slot("pg_basebackup_1", 0, Some(0)),
                slot("standby_1", 0, None),
                slot("cdc_orders", 4, Some(1_000)),
                slot("pg_basebackup_1", 4, Some(0)),
                slot("standby_1", 4, None),
                slot("cdc_orders", 9, Some(2_000)),
                slot("pg_basebackup_1", 9, Some(0)),
                slot("standby_1", 9, None),
            ],
            "[{case}] slots per bucket (a lost slot holds nothing)"
        );

        let empty = ChartWindow::new(at(200), at(300), 10).unwrap_or_else(|e| panic!("[{case}] window: {e}"));
        let nothing = ok!(case, store.wal.chart_history(charted, empty));
        assert!(nothing.samples.is_empty() && nothing.slots.is_empty(), "[{case}] an empty range: {nothing:?}");
        let missing = SourceId::new(other.get() + 1_000);
        assert!(
            matches!(
                store.wal.chart_history(missing, window).await,
                Err(RepositoryError::NotFound { entity: EntityKind::Source, .. })
            ),
            "[{case}] an unknown source"
        );
    }

    /// system: record, read newest first with filters, delete in batches.
    async fn system_record_read_newest_first_with_filters_delete_in_batches(factory) {
        let case = "system: record, read newest first with filters, delete in batches";
        let store = factory.fresh().await;
        let host = |t: i64, cpu: f64| SystemSample {
            sampled_at: at(t),
            cpu_percent: cpu,
            memory_used_bytes: 3 << 30,
            memory_total_bytes: 16 << 30,
            swap_used_bytes: 0,
            swap_total_bytes: 2 << 30,
        };
        for (t, cpu) in [(1, 12.5), (2, 0.0), (3, 99.75)] {
            ok!(case, store.system.record(host(t, cpu)));
        }
        let query = |from: Option<i64>, to: Option<i64>, n| SystemHistoryQuery {
            from: from.map(at),
            to: to.map(at),
            limit: limit(n),
        };
        assert_eq!(
            ok!(case, store.system.history(query(None, None, 100))),
            vec![host(3, 99.75), host(2, 0.0), host(1, 12.5)],
            "[{case}] all, newest first"
        );
        let times = async |q| ok!(case, store.system.history(q)).iter().map(|s| s.sampled_at).collect::<Vec<_>>();
        assert_eq!(times(query(Some(2), None, 100)).await, vec![at(3), at(2)], "[{case}] from");
        assert_eq!(times(query(None, Some(2), 100)).await, vec![at(2), at(1)], "[{case}] to");
        assert_eq!(times(query(None, None, 1)).await, vec![at(3)], "[{case}] limit");
        assert_eq!(ok!(case, store.system.delete_before(at(3), 0)), 0, "[{case}] batch 0");
        assert_eq!(ok!(case, store.system.delete_before(at(3), 1)), 1, "[{case}] first batch");
        assert_eq!(ok!(case, store.system.delete_before(at(3), 10)), 1, "[{case}] the rest");
        assert_eq!(ok!(case, store.system.delete_before(at(3), 10)), 0, "[{case}] nothing left");
        assert_eq!(times(query(None, None, 100)).await, vec![at(3)], "[{case}] the cutoff's own sample stays");
    }
}
