//! The WAL store and its sampling leases at scale and under concurrency, against PostgreSQL:
//! claimers in separate pools (as separate server processes would be) never share a source, and
//! batches of 1 000 are one round trip's work. (The index plans are checked in `src/wal.rs` and
//! `src/lease.rs`, next to the statements they explain.)

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rosetta_domain::{Lsn, PageLimit, SlotSample, SlotType, SourceId, Timestamp, WalSample, WalStatus};
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Queue};
use rosetta_ports::testing::fixed_time;
use rosetta_ports::wal::{SampleOutcome, WalHistoryQuery, WalMetricsRepository};
use rosetta_postgres_adapter::{PostgresLeaseStore, PostgresStore, PostgresWalMetricsRepository};

const LEASE: Duration = Duration::from_secs(60);

fn at(seconds: i64) -> Timestamp {
    fixed_time(0) + chrono::Duration::seconds(seconds)
}

/// What one server process uses: the sampling leases and the WAL store, over one pool.
#[derive(Clone)]
struct Process {
    leases: PostgresLeaseStore,
    wal: PostgresWalMetricsRepository,
}

impl Process {
    fn new(store: PostgresStore) -> Self {
        Self { leases: PostgresLeaseStore::new(store.clone()), wal: PostgresWalMetricsRepository::new(store) }
    }

    async fn claim(&self, owner: &str, now: Timestamp, lease: Duration, limit: u32) -> Vec<SourceId> {
        let claimed =
            self.leases.claim(Queue::WAL_SAMPLING, &LeaseOwner::new(owner), now, lease, limit).await.expect("claim");
        claimed.into_iter().map(SourceId::new).collect()
    }

    async fn record(&self, owner: &str, outcomes: Vec<SampleOutcome>, next: Timestamp) -> Vec<SourceId> {
        self.wal.record_outcomes(&LeaseOwner::new(owner), outcomes, next).await.expect("record")
    }
}

/// Inserts `count` sources in one statement and returns their ids.
async fn insert_sources(url: &str, count: i64) -> Vec<SourceId> {
    let client = support::raw_client(url).await;
    let rows = client
        .query(
            "INSERT INTO sources (name, pg_host, pg_port, pg_database, pg_username, publication_name,
                                  replication_id, created_at, updated_at)
             SELECT 's' || g, 'db.internal', 5432, 'orders', 'replicator', 'cdc_pub', 7, now(), now()
             FROM generate_series(1, $1::int8) g
             RETURNING id",
            &[&count],
        )
        .await
        .unwrap_or_else(|e| panic!("inserting sources: {e}"));
    rows.iter().map(|row| SourceId::new(row.get(0))).collect()
}

/// A realistic sample: three slots, one of them idle.
fn sample(sampled_at: Timestamp, current: u64) -> WalSample {
    let slot = |name: &str, slot_type, active, restart: u64| SlotSample {
        slot_name: name.to_owned(),
        slot_type,
        active,
        temporary: false,
        restart_lsn: Some(Lsn::from_bytes(restart)),
        confirmed_flush_lsn: (slot_type == SlotType::Logical).then_some(Lsn::from_bytes(restart + 512)),
        wal_status: Some(WalStatus::Reserved),
        safe_wal_size_bytes: Some(1 << 30),
        conflicting: Some(false),
        inactive_since: (!active).then_some(sampled_at),
        synced: None,
        invalidation_reason: None,
    };
    WalSample {
        sampled_at,
        in_recovery: false,
        current_lsn: Lsn::from_bytes(current),
        wal_dir_bytes: Some(1 << 30),
        slots: vec![
            slot("cdc_orders", SlotType::Logical, true, current - 4_096),
            slot("cdc_billing", SlotType::Logical, false, current - (64 << 20)),
            slot("standby", SlotType::Physical, true, current - 1_024),
        ],
    }
}

/// One outcome per source, every tenth a failure.
fn outcomes(ids: &[SourceId], attempted_at: Timestamp) -> Vec<SampleOutcome> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| SampleOutcome {
            source_id: *id,
            attempted_at,
            result: if i % 10 == 0 {
                Err("could not connect to server: Connection refused".to_owned())
            } else {
                Ok(sample(attempted_at, (5 << 32) + i as u64 * 1_000_000))
            },
        })
        .collect()
}

/// Six "processes" (own pools) run three intervals over 300 sources: each claims small batches
/// and records them at once, as the sampler does. In every interval the claims are disjoint and
/// cover every source, so each source gets exactly one history row per interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn concurrent_claimers_share_300_sources_without_overlap() {
    let database = support::fresh_database().await;
    let ids = insert_sources(database.url(), 300).await;
    let all: BTreeSet<SourceId> = ids.iter().copied().collect();
    let processes: Vec<Process> =
        (0..6).map(|_| Process::new(support::store(database.url(), 2, Duration::from_secs(10)))).collect();

    for interval in 0..3_i64 {
        let now = at(interval * 300);
        let next = at((interval + 1) * 300);
        let tasks = processes.iter().enumerate().map(|(p, process)| {
            let process = process.clone();
            tokio::spawn(async move {
                let owner = format!("process-{p}");
                let mut mine = Vec::new();
                loop {
                    let claimed = process.claim(&owner, now, LEASE, 20).await;
                    if claimed.is_empty() {
                        return mine;
                    }
                    assert_eq!(process.record(&owner, outcomes(&claimed, now), next).await, claimed);
                    mine.extend(claimed);
                }
            })
        });
        let mut seen = BTreeSet::new();
        let mut shares = Vec::new();
        for task in futures::future::join_all(tasks).await {
            let mine = task.unwrap();
            shares.push(mine.len());
            for id in mine {
                assert!(seen.insert(id), "interval {interval}: {id:?} claimed twice");
            }
        }
        println!("interval {interval}: sources per process {shares:?}");
        assert_eq!(seen, all, "interval {interval}: every source claimed");
        let early = processes[0].claim("late", now + chrono::Duration::seconds(1), LEASE, 1_000).await;
        assert_eq!(early, vec![], "interval {interval}: nothing is due again before the next interval");
    }

    let client = support::raw_client(database.url()).await;
    let per_source: BTreeMap<i64, i64> = client
        .query("SELECT source_id, count(*) FROM wal_metrics GROUP BY source_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(per_source.len(), 300);
    assert!(per_source.values().all(|count| *count == 3), "one history row per source per interval");
    let leased: i64 =
        client.query_one("SELECT count(*) FROM leases WHERE owner IS NOT NULL", &[]).await.unwrap().get(0);
    assert_eq!(leased, 0, "recording released every lease");
}

/// Claiming and recording 1 000 sources are each one transaction of a few statements.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_sources_claim_and_record_in_one_round_each() {
    let database = support::fresh_database().await;
    let ids = insert_sources(database.url(), 1_000).await;
    let process = Process::new(support::store(database.url(), 2, Duration::from_secs(10)));
    let wal = process.wal.clone();

    for round in 0..3_i64 {
        let now = at(round * 300);
        let started = Instant::now();
        let claimed = process.claim("p", now, LEASE, 1_000).await;
        let claim_time = started.elapsed();
        assert_eq!(claimed, ids, "round {round}: every source, in due order");

        let batch = outcomes(&claimed, now + chrono::Duration::seconds(2));
        let started = Instant::now();
        assert_eq!(process.record("p", batch, at((round + 1) * 300)).await, ids);
        let record_time = started.elapsed();
        println!("round {round}: claim of 1000 took {claim_time:?}, record of 1000 outcomes took {record_time:?}");
        assert!(record_time < Duration::from_secs(10), "record of 1000 outcomes took {record_time:?}");
    }

    let latest = wal.list_latest().await.unwrap();
    assert_eq!(latest.len(), 1_000);
    assert_eq!(latest.iter().filter(|state| state.last_sample.is_none()).count(), 100, "never-good sources");
    let newest = WalHistoryQuery { limit: PageLimit::new(1_000).unwrap(), ..Default::default() };
    let started = Instant::now();
    let history = wal.history(newest).await.unwrap();
    println!("history page of 1000 took {:?}", started.elapsed());
    assert_eq!(history.len(), 1_000);
    assert!(history.iter().all(|entry| entry.recorded_at == at(600) + chrono::Duration::seconds(2)));
}

/// A batch recorded while another process took over some of its leases stores exactly the
/// outcomes whose lease it still holds, and the taken-over sources stay leased to the new owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_drops_only_the_taken_over_outcomes() {
    let database = support::fresh_database().await;
    let ids = insert_sources(database.url(), 10).await;
    let process = Process::new(support::store(database.url(), 2, Duration::from_secs(10)));
    assert_eq!(process.claim("a", at(0), Duration::from_secs(30), 5).await, ids[..5]);
    assert_eq!(process.claim("a", at(0), Duration::from_secs(120), 5).await, ids[5..]);
    // a's first five leases expired at 30 s; b takes them.
    assert_eq!(process.claim("b", at(31), LEASE, 100).await, ids[..5]);
    assert_eq!(process.record("a", outcomes(&ids, at(32)), at(300)).await, ids[5..]);

    let recorded: BTreeSet<SourceId> = process.wal.list_latest().await.unwrap().iter().map(|s| s.source_id).collect();
    assert_eq!(recorded, ids[5..].iter().copied().collect());
    let client = support::raw_client(database.url()).await;
    let owners: Vec<Option<String>> = client
        .query("SELECT owner FROM leases WHERE queue = 'wal_sampling' ORDER BY item_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<Option<String>> = (0..10).map(|i| if i < 5 { Some("b".to_owned()) } else { None }).collect();
    assert_eq!(owners, expected);
}

/// Sources deleted while their outcomes are being recorded: recording locks the sources before
/// `wal_monitor` (the order the delete's cascade uses), so the two never deadlock; the deleted
/// sources' outcomes are dropped and nothing of them is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_sources_while_recording_never_deadlocks() {
    use rosetta_ports::outbound::SourceRepository;

    let database = support::fresh_database().await;
    let store = support::store(database.url(), 8, Duration::from_secs(10));
    let sources = support::repositories(&store).sources;
    let process = Process::new(store);
    let mut kept = BTreeSet::new();
    for round in 0..8_i64 {
        let ids = insert_sources(database.url(), 200).await;
        let now = at(round * 300);
        // The survivors of earlier rounds are due again too.
        let claimed = process.claim("a", now, LEASE, 1_000).await;
        assert_eq!(claimed.len(), kept.len() + 200);
        let doomed: Vec<SourceId> = ids.iter().rev().step_by(2).copied().collect();
        kept.extend(ids.iter().filter(|id| !doomed.contains(id)).copied());
        let record = {
            let process = process.clone();
            tokio::spawn(async move {
                for chunk in claimed.chunks(20) {
                    process.record("a", outcomes(chunk, now), at((round + 1) * 300)).await;
                }
            })
        };
        let delete = {
            let sources = sources.clone();
            tokio::spawn(async move {
                for id in doomed {
                    sources.delete(id, false, chrono::Utc::now()).await.unwrap();
                }
            })
        };
        record.await.unwrap();
        delete.await.unwrap();
        // Names are reused by the next round's insert; clear the survivors' names out of the way.
        let client = support::raw_client(database.url()).await;
        client.execute("UPDATE sources SET name = 'r' || id", &[]).await.unwrap();
    }
    let latest: BTreeSet<SourceId> = process.wal.list_latest().await.unwrap().iter().map(|s| s.source_id).collect();
    assert_eq!(latest, kept, "exactly the surviving sources have a state");
    let client = support::raw_client(database.url()).await;
    let orphans: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM wal_metrics m WHERE NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = m.source_id))
                  + (SELECT count(*) FROM wal_monitor w WHERE NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = w.source_id))
                  + (SELECT count(*) FROM leases l WHERE l.queue = 'wal_sampling'
                       AND NOT EXISTS (SELECT 1 FROM sources s WHERE s.id = l.item_id))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

/// Sources created and deleted while other processes claim: their sampling items come and go
/// with them, and claims never fail or leave an item of a deleted source behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_skip_sources_deleted_while_they_run() {
    use rosetta_ports::outbound::SourceRepository;
    use rosetta_ports::testing::new_source;

    let database = support::fresh_database().await;
    let store = support::store(database.url(), 8, Duration::from_secs(10));
    let sources = support::repositories(&store).sources;
    let process = Process::new(store);
    let churn = tokio::spawn(async move {
        for i in 0..300 {
            let source = sources.create(new_source(&format!("churn-{i}"), None), at(0)).await.unwrap();
            sources.delete(source.id, false, chrono::Utc::now()).await.unwrap();
        }
    });
    let claimers: Vec<_> = (0..3)
        .map(|c| {
            let process = process.clone();
            tokio::spawn(async move {
                let owner = format!("claimer-{c}");
                let mut claims = 0;
                for _ in 0..300 {
                    process.claim(&owner, at(0), LEASE, 100).await;
                    process.leases.release_all(&LeaseOwner::new(owner.as_str())).await.unwrap();
                    claims += 1;
                }
                claims
            })
        })
        .collect();
    churn.await.unwrap();
    for claimer in claimers {
        assert_eq!(claimer.await.unwrap(), 300);
    }
    let client = support::raw_client(database.url()).await;
    let items: i64 = client.query_one("SELECT count(*) FROM leases", &[]).await.unwrap().get(0);
    assert_eq!(items, 0, "every deleted source's item went with it");
}
