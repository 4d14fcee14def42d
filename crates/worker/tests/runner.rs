//! The leased-job runner and its jobs on the in-memory store's real lease semantics (the same
//! contract suites as PostgreSQL), on tokio's paused clock: hours of schedule run in
//! milliseconds, deterministically. Only the source probe is scripted — it stands for the
//! databases being sampled.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rosetta_application::SampleRecorder;
use rosetta_domain::{Lsn, SourceConnection, SourceId, SystemSample, Timestamp, WalMonitorStatus, WalSample};
use rosetta_ports::jobs::{LeaseOwner, LeaseStore, Queue};
use rosetta_ports::outbound::{Clock, SourceRepository};
use rosetta_ports::testing::memory::InMemoryStore;
use rosetta_ports::testing::{InsecureTestCipher, fixed_time, new_source};
use rosetta_ports::wal::{
    HostProbe, ProbeError, SourceProbe, SystemHistoryQuery, SystemMetricsRepository, WalHistoryQuery,
    WalMetricsRepository,
};
use rosetta_worker::{HostSampling, Retention, Runner, RunnerSettings, SamplingPorts, SamplingSettings, WalSampling};
use tokio_util::sync::CancellationToken;

/// A clock that follows tokio's (paused) time from a fixed instant.
#[derive(Debug)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Arc<Self> {
        Arc::new(Self { start: tokio::time::Instant::now() })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        fixed_time(0) + chrono::TimeDelta::from_std(self.start.elapsed()).unwrap()
    }
}

/// How the scripted probe answers for a source.
#[derive(Debug, Clone, Copy)]
enum Script {
    Answer,
    /// Hangs until the caller's timeout, like a frozen server.
    Hang,
    /// Refuses this many times, then answers.
    RefuseThenAnswer(u32),
}

#[derive(Debug, Default)]
struct ScriptedProbe {
    scripts: HashMap<SourceId, Script>,
    calls: Mutex<HashMap<SourceId, u32>>,
}

#[async_trait]
impl SourceProbe for ScriptedProbe {
    async fn sample(&self, source: &SourceConnection, timeout: Duration) -> Result<WalSample, ProbeError> {
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let count = calls.entry(source.source_id).or_default();
            *count += 1;
            *count
        };
        let answer = Ok(WalSample {
            sampled_at: fixed_time(0),
            in_recovery: false,
            current_lsn: Lsn::from_bytes(1_000),
            wal_dir_bytes: None,
            slots: vec![],
        });
        match self.scripts.get(&source.source_id).copied().unwrap_or(Script::Answer) {
            Script::Answer => answer,
            Script::Hang => {
                tokio::time::sleep(timeout).await;
                Err(ProbeError::Timeout(timeout))
            }
            Script::RefuseThenAnswer(n) if call <= n => Err(ProbeError::Connect("connection refused".into())),
            Script::RefuseThenAnswer(_) => answer,
        }
    }

    fn close_idle(&self, _idle_since: std::time::Instant) {}

    fn open_connections(&self) -> usize {
        0
    }
}

/// The in-memory store with `count` sources.
async fn store_with_sources(count: usize) -> (InMemoryStore, Vec<SourceId>) {
    let store = InMemoryStore::new(Arc::new(InsecureTestCipher::new(1)));
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(SourceRepository::create(&store, new_source(&format!("s{i}"), None), fixed_time(0)).await.unwrap().id);
    }
    (store, ids)
}

/// A WAL sampling runner of `owner` over `store`.
fn sampling_runner(
    store: &InMemoryStore,
    probe: Arc<ScriptedProbe>,
    clock: Arc<TokioClock>,
    settings: SamplingSettings,
    concurrency: usize,
    owner: &str,
) -> (Runner<WalSampling>, Arc<dyn rosetta_ports::wal::MonitorHeartbeat>) {
    let runner_settings = RunnerSettings {
        concurrency,
        lease: settings.lease(),
        poll: settings.poll(),
        record_batch: 250,
        owner: LeaseOwner::new(owner),
    };
    let ports = SamplingPorts {
        sources: Arc::new(store.clone()),
        probe,
        recording: Arc::new(SampleRecorder::new(Arc::new(store.clone()))),
        clock: clock.clone(),
    };
    // The runner's heartbeat is part of the job's health.
    let heartbeat = Arc::new(rosetta_worker::Heartbeat::default());
    let job = Arc::new(WalSampling::new(ports, settings, Arc::clone(&heartbeat)));
    let health = job.health();
    let runner = Runner::with_heartbeat(job, Arc::new(store.clone()), clock, runner_settings, heartbeat);
    (runner, health)
}

/// Every recorded sample time per source.
async fn sample_times(store: &InMemoryStore) -> BTreeMap<SourceId, Vec<Timestamp>> {
    let query = WalHistoryQuery { limit: rosetta_domain::PageLimit::new(1000).unwrap(), ..Default::default() };
    let mut times: BTreeMap<SourceId, Vec<Timestamp>> = BTreeMap::new();
    let mut ids = Vec::new();
    for skip in (0..).step_by(1000) {
        let page = rosetta_domain::PageRequest { skip, limit: rosetta_domain::PageLimit::new(1000).unwrap() };
        let items = SourceRepository::list(store, page).await.unwrap().items;
        if items.is_empty() {
            break;
        }
        ids.extend(items.iter().map(|s| s.id));
    }
    // The history query pages at 1 000: read per source.
    for id in ids {
        let rows =
            WalMetricsRepository::history(store, WalHistoryQuery { source_id: Some(id), ..query }).await.unwrap();
        times.insert(id, rows.iter().rev().map(|row| row.recorded_at).collect());
    }
    times
}

#[tokio::test(start_paused = true)]
async fn two_thousand_sources_some_hung_and_every_other_on_schedule() {
    let (store, ids) = store_with_sources(2_000).await;
    let hung: Vec<SourceId> = ids.iter().step_by(100).copied().collect();
    let probe = Arc::new(ScriptedProbe {
        scripts: hung.iter().map(|id| (*id, Script::Hang)).collect(),
        ..ScriptedProbe::default()
    });
    let clock = TokioClock::new();
    let settings = SamplingSettings { interval: Duration::from_secs(10), timeout: Duration::from_secs(3) };
    let (runner, _) = sampling_runner(&store, probe, clock, settings, 64, "solo");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    cancel.cancel();
    running.await.unwrap();

    let times = sample_times(&store).await;
    let interval = settings.interval.as_secs_f64();
    let mut worst_gap: f64 = 0.0;
    let mut fewest = usize::MAX;
    for id in ids.iter().filter(|id| !hung.contains(id)) {
        let samples = &times[id];
        fewest = fewest.min(samples.len());
        for pair in samples.windows(2) {
            let gap = (pair[1] - pair[0]).as_seconds_f64();
            assert!(gap >= interval * 0.999, "{id:?} sampled twice within an interval ({gap:.3} s)");
            worst_gap = worst_gap.max(gap);
        }
    }
    println!(
        "2 000 sources, {} hung: every other source sampled at least {fewest} times in 60 s, worst gap {worst_gap:.3} s",
        hung.len()
    );
    // On schedule: sampled again within one poll (2.5 s) of becoming due, however long the hung
    // sources take; six intervals fit in 60 s.
    assert!(worst_gap <= interval + settings.poll().as_secs_f64() + 0.001, "worst gap {worst_gap:.3} s");
    assert!(fewest >= 6, "a healthy source was sampled only {fewest} times");
    for id in &hung {
        let state = store.latest(*id).await.unwrap().unwrap();
        assert_eq!(state.status, WalMonitorStatus::Error);
        assert!(state.error.unwrap().contains("no answer"));
    }
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_with_backoff_within_the_deadline() {
    let (store, ids) = store_with_sources(2).await;
    let probe = Arc::new(ScriptedProbe {
        scripts: HashMap::from([(ids[0], Script::RefuseThenAnswer(2)), (ids[1], Script::RefuseThenAnswer(5))]),
        ..ScriptedProbe::default()
    });
    let clock = TokioClock::new();
    let settings = SamplingSettings { interval: Duration::from_secs(10), timeout: Duration::from_millis(500) };
    let (runner, _) = sampling_runner(&store, Arc::clone(&probe), clock, settings, 8, "solo");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    running.await.unwrap();
    let first = store.latest(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.status, WalMonitorStatus::Active, "the third attempt succeeds");
    // 200 ms + 400 ms of backoff between the three attempts.
    assert_eq!(first.last_attempt_at, Some(fixed_time(0) + chrono::Duration::milliseconds(600)));
    let second = store.latest(ids[1]).await.unwrap().unwrap();
    assert_eq!(second.status, WalMonitorStatus::Error, "gives up after 3 attempts");
    assert_eq!(probe.calls.lock().unwrap()[&ids[1]], 3);
}

#[tokio::test(start_paused = true)]
async fn unusable_settings_cost_only_their_source_and_are_reported() {
    let (store, ids) = store_with_sources(3).await;
    // A password whose sealed form belongs to another row: it will not decrypt.
    let unusable =
        SourceRepository::create(&store, new_source("unusable", Some("pw")), fixed_time(0)).await.unwrap().id;
    let donor = SourceRepository::create(&store, new_source("donor", Some("pw2")), fixed_time(0)).await.unwrap().id;
    store.copy_sealed_password(donor, unusable);
    let clock = TokioClock::new();
    let settings = SamplingSettings { interval: Duration::from_secs(10), timeout: Duration::from_secs(1) };
    let (runner, health) = sampling_runner(&store, Arc::new(ScriptedProbe::default()), clock, settings, 8, "solo");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(25)).await;
    cancel.cancel();
    running.await.unwrap();
    let state = store.latest(unusable).await.unwrap().unwrap();
    assert!(state.error.unwrap().starts_with("cannot decrypt pg_password"));
    for id in ids.iter().chain([&donor]) {
        let rows =
            WalMetricsRepository::history(&store, WalHistoryQuery { source_id: Some(*id), ..Default::default() })
                .await
                .unwrap();
        assert_eq!(rows.len(), 3, "{id:?} sampled at 0, 10 and 20 s");
    }
    assert_eq!(health.unusable_sources().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [unusable]);
}

#[tokio::test(start_paused = true)]
async fn two_runners_share_the_sources_and_one_takes_over_when_the_other_dies() {
    let (store, ids) = store_with_sources(50).await;
    let clock = TokioClock::new();
    let settings = SamplingSettings { interval: Duration::from_secs(10), timeout: Duration::from_secs(1) };
    let probe = Arc::new(ScriptedProbe::default());
    let (first, _) = sampling_runner(&store, Arc::clone(&probe), clock.clone(), settings, 4, "first");
    let (second, _) = sampling_runner(&store, probe, clock.clone(), settings, 4, "second");
    let cancel = CancellationToken::new();
    let first = tokio::spawn(first.run(cancel.clone(), Duration::from_secs(1)));
    let second = tokio::spawn(second.run(cancel.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(35)).await;
    // The second process dies: it releases nothing.
    second.abort();
    let died_at = clock.now();
    tokio::time::sleep(Duration::from_secs(40)).await;
    cancel.cancel();
    first.await.unwrap();

    let times = sample_times(&store).await;
    for id in &ids {
        let samples = &times[id];
        for pair in samples.windows(2) {
            let gap = (pair[1] - pair[0]).as_seconds_f64();
            assert!(gap >= 9.999, "{id:?} sampled twice within an interval ({gap:.3} s)");
        }
        let after = samples
            .iter()
            .filter(|at| **at > died_at + chrono::Duration::seconds(settings.lease().as_secs() as i64 + 3))
            .count();
        let offsets: Vec<f64> = samples.iter().map(|at| (*at - fixed_time(0)).as_seconds_f64()).collect();
        assert!(
            after >= 2,
            "{id:?} is sampled by the survivor after the lease expired: {offsets:?}, died at {died_at}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_items_in_flight_finish_records_them_and_releases_every_lease() {
    let (store, ids) = store_with_sources(3).await;
    let probe =
        Arc::new(ScriptedProbe { scripts: HashMap::from([(ids[0], Script::Hang)]), ..ScriptedProbe::default() });
    let clock = TokioClock::new();
    let settings = SamplingSettings { interval: Duration::from_secs(60), timeout: Duration::from_secs(30) };
    let (runner, _) = sampling_runner(&store, probe, clock.clone(), settings, 8, "stopping");
    let cancel = CancellationToken::new();
    let running = tokio::spawn(runner.run(cancel.clone(), Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let asked = tokio::time::Instant::now();
    cancel.cancel();
    running.await.unwrap();
    assert!(asked.elapsed() <= Duration::from_millis(150), "stopped after {:?}", asked.elapsed());
    assert!(store.latest(ids[1]).await.unwrap().is_some(), "what finished was recorded");
    assert!(store.latest(ids[0]).await.unwrap().is_none(), "the hung sample was abandoned");
    // Released: another process claims the hung source at once, not after the lease.
    let claimed = store
        .claim(Queue::WAL_SAMPLING, &LeaseOwner::new("next"), clock.now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed, [ids[0].get()]);
}

#[tokio::test(start_paused = true)]
async fn retention_runs_once_per_period_whichever_process_holds_it() {
    let (store, ids) = store_with_sources(1).await;
    let clock = TokioClock::new();
    let owner = LeaseOwner::new("a");
    // Five attempts recorded 0..4 days ago (written straight into the store).
    for day in (0..5).rev() {
        store.claim(Queue::WAL_SAMPLING, &owner, clock.now(), Duration::from_secs(60), 1).await.unwrap();
        let at = clock.now() - chrono::Duration::days(day);
        let outcome =
            rosetta_ports::wal::SampleOutcome { source_id: ids[0], attempted_at: at, result: Err("x".into()) };
        store.record_outcomes(&owner, vec![outcome], clock.now()).await.unwrap();
        store
            .record(SystemSample {
                sampled_at: at,
                cpu_percent: 1.0,
                memory_used_bytes: 1,
                memory_total_bytes: 2,
                swap_used_bytes: 0,
                swap_total_bytes: 0,
            })
            .await
            .unwrap();
    }
    let runner = |name: &str| {
        let job = Arc::new(Retention::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            clock.clone(),
            Duration::from_secs(2 * 86_400 + 60),
            Duration::from_secs(60),
        ));
        let settings = RunnerSettings {
            concurrency: 1,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            record_batch: 1,
            owner: LeaseOwner::new(name),
        };
        Runner::new(job, Arc::new(store.clone()), clock.clone(), settings)
    };
    let cancel = CancellationToken::new();
    let a = tokio::spawn(runner("a").run(cancel.clone(), Duration::from_secs(1)));
    let b = tokio::spawn(runner("b").run(cancel.clone(), Duration::from_secs(1)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    a.await.unwrap();
    b.await.unwrap();
    let left = WalMetricsRepository::history(&store, WalHistoryQuery::default()).await.unwrap();
    assert_eq!(left.len(), 3, "the rows of the last two days and today stay");
    let hosts = SystemMetricsRepository::history(&store, SystemHistoryQuery::default()).await.unwrap();
    assert_eq!(hosts.len(), 3, "the same for host samples");
    // One run in 5 s although both runners poll every second: the item is due once a minute.
    let claimed =
        store.claim(Queue::RETENTION, &LeaseOwner::new("c"), clock.now(), Duration::from_secs(1), 1).await.unwrap();
    assert!(claimed.is_empty(), "retention is not due again before its period");
}

#[tokio::test(start_paused = true)]
async fn host_sampling_records_a_sample_every_period() {
    #[derive(Debug)]
    struct FixedHost;
    impl HostProbe for FixedHost {
        fn sample(&self, now: Timestamp) -> SystemSample {
            SystemSample {
                sampled_at: now,
                cpu_percent: 5.0,
                memory_used_bytes: 1,
                memory_total_bytes: 2,
                swap_used_bytes: 0,
                swap_total_bytes: 0,
            }
        }
    }
    let (store, _) = store_with_sources(0).await;
    let clock = TokioClock::new();
    let sampling = HostSampling::new(Arc::new(FixedHost), Arc::new(store.clone()), clock, Duration::from_secs(10));
    let cancel = CancellationToken::new();
    let running = tokio::spawn(sampling.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(35)).await;
    cancel.cancel();
    running.await.unwrap();
    let samples = SystemMetricsRepository::history(&store, SystemHistoryQuery::default()).await.unwrap();
    assert_eq!(samples.len(), 4, "at 0, 10, 20 and 30 s");
}
