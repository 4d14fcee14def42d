//! The sampler: the time-driven adapter that samples every source's WAL on schedule.
//!
//! Each server process runs one [`WalSampler`]. A *tick* claims the sources that are due
//! (through [`WalMetricsRepository::claim_due_sources`], which leases them so that several
//! processes sharing one metadata database never sample a source twice in one interval),
//! samples them with bounded concurrency, records every outcome in one transaction per batch,
//! and publishes gauges. A source that hangs or fails only costs its own slot of concurrency for
//! at most its deadline; it never delays or fails another source.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rosetta_domain::{SourceConnection, SourceId, Timestamp, WalSample};
use rosetta_ports::outbound::{Clock, ConnectionSettingsError, RepositoryError, SourceRepository};
use rosetta_ports::wal::{
    HostProbe, MonitorHeartbeat, ProbeError, SampleOutcome, SourceProbe, SystemMetricsRepository, WalMetricsRepository,
};
use tokio::sync::watch;

/// How the sampler behaves.
#[derive(Debug, Clone)]
pub struct SamplerSettings {
    /// Each source is sampled once per interval.
    pub interval: Duration,
    /// Bound on connecting to and querying one source, per attempt.
    pub timeout: Duration,
    /// How many sources are sampled at once (per process).
    pub concurrency: usize,
    /// History older than this is deleted.
    pub retention: Duration,
    /// How often host CPU / memory / swap are sampled.
    pub system_interval: Duration,
    /// This process's identity in source leases (unique per process).
    pub owner: String,
}

impl SamplerSettings {
    /// How often the sampler looks for due sources: often enough that a source is sampled soon
    /// after it becomes due, at most every second, and at least every 5 s.
    fn poll_every(&self) -> Duration {
        (self.interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// How long one source may take, retries included: never past the next tick.
    fn sample_deadline(&self) -> Duration {
        self.interval.saturating_sub(self.poll_every()).max(self.timeout.min(self.interval))
    }

    /// A lease outlives the sampling of a healthy process (bounded by [`Self::sample_deadline`],
    /// itself at most one interval) plus one poll for recording, and no more: a dead process's
    /// sources are claimable again at most `interval + poll` after it claimed them. A process
    /// that overruns its lease loses its outcomes (`record_outcomes` drops them), never
    /// records a second sample.
    fn lease(&self) -> Duration {
        self.sample_deadline().max(self.interval) + self.poll_every()
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Sources claimed and sampled.
    pub sampled: usize,
    /// Of which failed.
    pub failed: usize,
    /// Wall time of the tick.
    pub duration: Duration,
}

/// Sources claimed per round trip; a tick keeps claiming until nothing is due.
const CLAIM_BATCH: u32 = 500;
/// Outcomes recorded per transaction, about (a transaction takes what has arrived).
const RECORD_BATCH: usize = 250;
/// Batches waiting to be recorded before sampling waits for the recorder.
const RECORD_QUEUE: usize = 16;
/// History rows deleted per statement, so retention never holds long locks.
const RETENTION_BATCH: u32 = 5_000;
/// Retention deletes at most this many batches per tick; the rest waits for the next tick.
const RETENTION_BATCHES_PER_TICK: u32 = 20;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts per source per tick (the deadline may allow fewer).
const MAX_ATTEMPTS: u32 = 3;

/// The ports the sampler drives.
#[derive(Clone)]
pub struct SamplerPorts {
    /// Source connection settings (passwords opened).
    pub sources: Arc<dyn SourceRepository>,
    /// WAL sample storage and coordination.
    pub wal: Arc<dyn WalMetricsRepository>,
    /// Host sample storage.
    pub system: Arc<dyn SystemMetricsRepository>,
    /// Reads a source's WAL.
    pub probe: Arc<dyn SourceProbe>,
    /// Reads the host.
    pub host: Arc<dyn HostProbe>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SamplerPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerPorts").finish_non_exhaustive()
    }
}

/// The sampler of one process.
#[derive(Debug, Clone)]
pub struct WalSampler {
    ports: SamplerPorts,
    settings: SamplerSettings,
    heartbeat: Arc<Heartbeat>,
}

/// When this process last completed a tick, and which of its sources cannot be sampled because
/// of their stored settings: readiness reads it.
#[derive(Debug)]
struct Heartbeat {
    started_at: Timestamp,
    last_tick: Mutex<Option<Timestamp>>,
    interval: Duration,
    unusable: Mutex<BTreeMap<SourceId, String>>,
}

impl Heartbeat {
    /// Records whether `source_id`'s settings were usable at its latest attempt.
    fn settings_usable(&self, source_id: SourceId, unusable: Option<&ConnectionSettingsError>) {
        let mut sources = self.unusable.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match unusable {
            Some(error) => sources.insert(source_id, error.to_string()),
            None => sources.remove(&source_id),
        };
    }
}

impl MonitorHeartbeat for Heartbeat {
    fn last_completed_tick(&self) -> Option<Timestamp> {
        self.last_tick.lock().map(|tick| *tick).unwrap_or(None)
    }

    fn started_at(&self) -> Timestamp {
        self.started_at
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn unusable_sources(&self) -> Vec<(SourceId, String)> {
        let sources = self.unusable.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sources.iter().map(|(id, error)| (*id, error.clone())).collect()
    }
}

impl WalSampler {
    /// A sampler over `ports`.
    pub fn new(ports: SamplerPorts, settings: SamplerSettings) -> Self {
        let heartbeat = Arc::new(Heartbeat {
            started_at: ports.clock.now(),
            last_tick: Mutex::new(None),
            interval: settings.interval,
            unusable: Mutex::default(),
        });
        Self { ports, settings, heartbeat }
    }

    /// The heartbeat readiness checks read.
    pub fn heartbeat(&self) -> Arc<dyn MonitorHeartbeat> {
        Arc::clone(&self.heartbeat) as Arc<dyn MonitorHeartbeat>
    }

    /// Runs until `shutdown` turns true. The first tick starts at once. On shutdown the current
    /// tick may finish within `grace`; otherwise it is cancelled — recording is one transaction
    /// per batch, so a cancelled tick leaves no half-written rows — and this process's leases are
    /// released so other processes take its sources at once.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        tracing::info!(
            owner = %self.settings.owner,
            interval_s = self.settings.interval.as_secs_f64(),
            timeout_s = self.settings.timeout.as_secs_f64(),
            concurrency = self.settings.concurrency,
            "WAL monitor started"
        );
        let host = tokio::spawn(self.clone().run_host_sampler(shutdown.clone()));
        let mut ticker = tokio::time::interval(self.settings.poll_every());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            let tick = self.tick();
            tokio::pin!(tick);
            tokio::select! {
                biased;
                _ = &mut tick => {}
                () = stopped(&mut shutdown) => {
                    if tokio::time::timeout(grace, &mut tick).await.is_err() {
                        tracing::warn!("shutdown: cancelled the WAL monitor tick in progress");
                    }
                    break;
                }
            }
        }
        if let Err(error) = self.ports.wal.release_leases(&self.settings.owner).await {
            tracing::warn!(error = %error, "shutdown: could not release WAL monitor leases");
        }
        host.abort();
        tracing::info!("WAL monitor stopped");
    }

    /// One tick: sample every due source, record outcomes, apply retention.
    pub async fn tick(&self) -> TickReport {
        let started = Instant::now();
        let mut report = TickReport::default();
        loop {
            let now = self.ports.clock.now();
            let claimed = match self
                .ports
                .wal
                .claim_due_sources(&self.settings.owner, now, self.settings.lease(), CLAIM_BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    log_repository_error("claiming due sources", &error);
                    return report;
                }
            };
            if claimed.is_empty() {
                break;
            }
            let next_sample_at = now + chrono_duration(self.settings.interval);
            let batch = claimed.len();
            report.sampled += batch;
            // One round trip for the whole batch's connection settings, so the monitor never
            // competes with API requests for more than a couple of pooled connections. A source
            // whose settings cannot be used gets its own error; the others are sampled.
            let mut settings: HashMap<SourceId, Result<SourceConnection, ConnectionSettingsError>> =
                match self.ports.sources.connections(&claimed).await {
                    Ok(found) => found.into_iter().map(|c| (c.source_id, c.settings)).collect(),
                    Err(error) => {
                        // The leases expire and the sources are claimed again.
                        log_repository_error("reading the sources' connection settings", &error);
                        return report;
                    }
                };
            // Outcomes are recorded as they arrive, so a source that hangs until its deadline
            // delays nobody else's history row. Sampling and recording run side by side: the
            // samples in flight keep being polled while a batch is written (a bounded channel
            // between them), so recording never stalls sampling nor waits on it.
            let outcomes = futures::stream::iter(claimed)
                .map(|source_id| self.sample_one(source_id, settings.remove(&source_id)))
                .buffer_unordered(self.settings.concurrency.max(1))
                .ready_chunks(RECORD_BATCH);
            let (to_record, mut recording) = tokio::sync::mpsc::channel::<Vec<SampleOutcome>>(RECORD_QUEUE);
            let sample = async {
                let mut failed = 0;
                let mut outcomes = std::pin::pin!(outcomes);
                while let Some(chunk) = outcomes.next().await {
                    failed += chunk.iter().filter(|o| o.result.is_err()).count();
                    if to_record.send(chunk).await.is_err() {
                        break;
                    }
                }
                drop(to_record);
                failed
            };
            let record = async {
                while let Some(mut chunk) = recording.recv().await {
                    // Whatever else finished meanwhile goes into the same transaction.
                    while chunk.len() < RECORD_BATCH
                        && let Ok(more) = recording.try_recv()
                    {
                        chunk.extend(more);
                    }
                    if let Err(error) =
                        self.ports.wal.record_outcomes(&self.settings.owner, chunk, next_sample_at).await
                    {
                        log_repository_error("recording WAL samples", &error);
                    }
                }
            };
            let (failed, ()) = tokio::join!(sample, record);
            report.failed += failed;
            if batch < CLAIM_BATCH as usize {
                break;
            }
        }
        self.apply_retention().await;
        report.duration = started.elapsed();
        if let Ok(mut last) = self.heartbeat.last_tick.lock() {
            *last = Some(self.ports.clock.now());
        }
        // `Instant` counts from boot: shortly after boot there is nothing that old to close.
        if let Some(idle_since) = Instant::now().checked_sub(self.settings.interval.saturating_mul(3)) {
            self.ports.probe.close_idle(idle_since);
        }
        metrics::histogram!("rosetta_worker_tick_duration_seconds").record(report.duration.as_secs_f64());
        metrics::gauge!("rosetta_worker_open_connections").set(self.ports.probe.open_connections() as f64);
        metrics::gauge!("rosetta_worker_last_tick_timestamp_seconds")
            .set(self.ports.clock.now().timestamp_millis() as f64 / 1000.0);
        if report.sampled > 0 {
            tracing::debug!(
                sampled = report.sampled,
                failed = report.failed,
                duration_ms = report.duration.as_millis() as u64,
                "WAL monitor tick"
            );
        }
        report
    }

    /// Samples one source with retries and capped backoff, never past its deadline.
    /// `connection` is `None` when the source was deleted after it was claimed, and an error
    /// when its stored settings cannot be used (then nothing is tried: no attempt could work).
    async fn sample_one(
        &self,
        source_id: SourceId,
        connection: Option<Result<SourceConnection, ConnectionSettingsError>>,
    ) -> SampleOutcome {
        let deadline = Instant::now() + self.settings.sample_deadline();
        self.heartbeat.settings_usable(source_id, connection.as_ref().and_then(|c| c.as_ref().err()));
        let result = match connection {
            Some(Err(unusable)) => Err(unusable.to_string()),
            Some(Ok(connection)) => {
                let mut backoff = FIRST_BACKOFF;
                let mut attempt = 1;
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let timeout = self.settings.timeout.min(remaining);
                    match self.ports.probe.sample(&connection, timeout).await {
                        Ok(sample) => break Ok(sample),
                        Err(error) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if attempt >= MAX_ATTEMPTS || left <= backoff + Duration::from_millis(100) {
                                break Err(error.to_string());
                            }
                            tracing::debug!(source_id = %source_id, attempt, error = %error, "WAL sample failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            attempt += 1;
                        }
                    }
                }
            }
            None => Err(ProbeError::Connect("the source was deleted".into()).to_string()),
        };
        publish(source_id, &result);
        SampleOutcome {
            source_id,
            attempted_at: self.ports.clock.now(),
            result: result.inspect_err(|error| {
                tracing::warn!(source_id = %source_id, error = %error, "WAL sample failed");
            }),
        }
    }

    async fn apply_retention(&self) {
        let cutoff = self.ports.clock.now() - chrono_duration(self.settings.retention);
        for _ in 0..RETENTION_BATCHES_PER_TICK {
            match self.ports.wal.delete_history_before(cutoff, RETENTION_BATCH).await {
                Ok(deleted) if deleted < u64::from(RETENTION_BATCH) => break,
                Ok(_) => {}
                Err(error) => {
                    log_repository_error("deleting old WAL history", &error);
                    break;
                }
            }
        }
        match self.ports.system.delete_before(cutoff, RETENTION_BATCH).await {
            Ok(_) => {}
            Err(error) => log_repository_error("deleting old host metrics", &error),
        }
    }

    async fn run_host_sampler(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.settings.system_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stopped(&mut shutdown) => return,
                _ = ticker.tick() => {}
            }
            let host = Arc::clone(&self.ports.host);
            let now = self.ports.clock.now();
            // sysinfo reads /proc synchronously.
            let sample = match tokio::task::spawn_blocking(move || host.sample(now)).await {
                Ok(sample) => sample,
                Err(error) => {
                    tracing::warn!(error = %error, "host sampling failed");
                    continue;
                }
            };
            if let Err(error) = self.ports.system.record(sample).await {
                log_repository_error("recording host metrics", &error);
            }
        }
    }
}

/// Publishes a source's gauges (label `source_id`; per slot also `slot_name`, `slot_type`).
fn publish(source_id: SourceId, result: &Result<WalSample, String>) {
    let source = source_id.to_string();
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("rosetta_worker_samples_total", "outcome" => outcome).increment(1);
    let status = match result {
        Ok(sample) => sample.status(),
        Err(_) => {
            metrics::counter!("rosetta_worker_errors_total", "source_id" => source.clone()).increment(1);
            rosetta_domain::WalMonitorStatus::Error
        }
    };
    for candidate in [
        rosetta_domain::WalMonitorStatus::Active,
        rosetta_domain::WalMonitorStatus::Idle,
        rosetta_domain::WalMonitorStatus::Error,
    ] {
        metrics::gauge!("rosetta_wal_source_status", "source_id" => source.clone(), "status" => candidate.as_str())
            .set(if candidate == status { 1.0 } else { 0.0 });
    }
    let Ok(sample) = result else { return };
    metrics::gauge!("rosetta_wal_current_lsn_bytes", "source_id" => source.clone())
        .set(sample.current_lsn.bytes() as f64);
    if let Some(bytes) = sample.wal_dir_bytes {
        metrics::gauge!("rosetta_wal_dir_bytes", "source_id" => source.clone()).set(bytes as f64);
    }
    if let Some(bytes) = sample.size_bytes() {
        metrics::gauge!("rosetta_wal_size_bytes", "source_id" => source.clone()).set(bytes as f64);
    }
    for slot in &sample.slots {
        let labels = [
            ("source_id", source.clone()),
            ("slot_name", slot.slot_name.clone()),
            ("slot_type", slot.slot_type.as_str().to_owned()),
        ];
        metrics::gauge!("rosetta_wal_slot_active", &labels).set(if slot.active { 1.0 } else { 0.0 });
        metrics::gauge!("rosetta_wal_slot_lost", &labels).set(if slot.is_lost() { 1.0 } else { 0.0 });
        // A lost slot retains nothing usable: its gauge is not set rather than set to 0.
        if let Some(bytes) = slot.retained_bytes(sample.current_lsn) {
            metrics::gauge!("rosetta_wal_slot_retained_bytes", &labels).set(bytes as f64);
        }
        if let Some(bytes) = slot.confirmed_lag_bytes(sample.current_lsn) {
            metrics::gauge!("rosetta_wal_slot_confirmed_lag_bytes", &labels).set(bytes as f64);
        }
        if let Some(bytes) = slot.safe_wal_size_bytes {
            metrics::gauge!("rosetta_wal_slot_safe_wal_size_bytes", &labels).set(bytes as f64);
        }
    }
}

/// Resolves once shutdown is requested (or the sender is gone). The guard `wait_for` returns is
/// dropped at once: it is not `Send`.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn log_repository_error(action: &str, error: &RepositoryError) {
    match error {
        RepositoryError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "WAL monitor: {action}: metadata database unavailable")
        }
        other => tracing::error!(error = ?other, "WAL monitor: {action} failed"),
    }
}

fn chrono_duration(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use rosetta_domain::{Lsn, SystemSample};
    use rosetta_ports::outbound::{MockClock, MockSourceRepository, StoredConnection};
    use rosetta_ports::testing::{fixed_time, new_source};
    use rosetta_ports::wal::{MockHostProbe, MockSystemMetricsRepository, MockWalMetricsRepository};

    use super::*;

    /// How the scripted probe answers for one source.
    #[derive(Clone, Copy)]
    enum Script {
        Answer,
        /// Hangs until the caller's timeout, like a frozen server.
        Hang,
        Refuse,
        /// Refuses this many times, then answers.
        RefuseThenAnswer(u32),
    }

    struct ScriptedProbe {
        scripts: HashMap<i64, Script>,
        calls: Mutex<HashMap<i64, u32>>,
    }

    #[async_trait]
    impl SourceProbe for ScriptedProbe {
        async fn sample(&self, source: &SourceConnection, timeout: Duration) -> Result<WalSample, ProbeError> {
            let id = source.source_id.get();
            let call = {
                let mut calls = self.calls.lock().unwrap();
                let count = calls.entry(id).or_default();
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
            match self.scripts.get(&id).copied().unwrap_or(Script::Answer) {
                Script::Answer => answer,
                Script::Hang => {
                    tokio::time::sleep(timeout).await;
                    Err(ProbeError::Timeout(timeout))
                }
                Script::Refuse => Err(ProbeError::Connect("connection refused".into())),
                Script::RefuseThenAnswer(n) if call <= n => Err(ProbeError::Connect("connection refused".into())),
                Script::RefuseThenAnswer(_) => answer,
            }
        }

        fn close_idle(&self, _idle_since: Instant) {}

        fn open_connections(&self) -> usize {
            0
        }
    }

    fn settings(interval: Duration, timeout: Duration) -> SamplerSettings {
        SamplerSettings {
            interval,
            timeout,
            concurrency: 8,
            retention: Duration::from_secs(7 * 24 * 3600),
            system_interval: Duration::from_secs(3600),
            owner: "test-owner".into(),
        }
    }

    /// Recorded outcomes with the moment each batch was recorded.
    type Recorded = Arc<Mutex<Vec<(Instant, SampleOutcome)>>>;

    static LEASES_RELEASED: AtomicU32 = AtomicU32::new(0);

    fn sampler(ids: Vec<i64>, scripts: HashMap<i64, Script>, settings: SamplerSettings) -> (WalSampler, Recorded) {
        let mut sources = MockSourceRepository::new();
        sources.expect_connections().returning(|ids| {
            let new = new_source("s", Some("pw"));
            Ok(ids
                .iter()
                .map(|&id| StoredConnection {
                    source_id: id,
                    // Source 13's stored password does not decrypt.
                    settings: if id.get() == 13 {
                        Err(ConnectionSettingsError::UnreadableSecret {
                            column: "pg_password",
                            reason: rosetta_ports::outbound::CipherError::Open,
                        })
                    } else {
                        Ok(SourceConnection {
                            source_id: id,
                            pg_host: new.pg_host.clone(),
                            pg_port: new.pg_port,
                            pg_database: new.pg_database.clone(),
                            pg_username: new.pg_username.clone(),
                            pg_password: new.pg_password.clone(),
                        })
                    },
                })
                .collect())
        });
        let mut wal = MockWalMetricsRepository::new();
        let claims = AtomicU32::new(0);
        wal.expect_claim_due_sources().returning(move |_, _, _, _| {
            // Everything is due once; afterwards nothing is.
            Ok(if claims.fetch_add(1, Ordering::SeqCst) == 0 {
                ids.iter().copied().map(SourceId::new).collect()
            } else {
                vec![]
            })
        });
        let recorded: Recorded = Arc::default();
        let sink = Arc::clone(&recorded);
        wal.expect_record_outcomes().returning(move |owner, outcomes, _| {
            assert_eq!(owner, "test-owner");
            let now = Instant::now();
            sink.lock().unwrap().extend(outcomes.into_iter().map(|o| (now, o)));
            Ok(())
        });
        wal.expect_delete_history_before().returning(|_, _| Ok(0));
        wal.expect_release_leases().returning(|_| {
            LEASES_RELEASED.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let mut system = MockSystemMetricsRepository::new();
        system.expect_delete_before().returning(|_, _| Ok(0));
        system.expect_record().returning(|_| Ok(()));
        let mut host = MockHostProbe::new();
        host.expect_sample().returning(|now| SystemSample {
            sampled_at: now,
            cpu_percent: 1.0,
            memory_used_bytes: 1,
            memory_total_bytes: 2,
            swap_used_bytes: 0,
            swap_total_bytes: 0,
        });
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| fixed_time(0));
        let ports = SamplerPorts {
            sources: Arc::new(sources),
            wal: Arc::new(wal),
            system: Arc::new(system),
            probe: Arc::new(ScriptedProbe { scripts, calls: Mutex::default() }),
            host: Arc::new(host),
            clock: Arc::new(clock),
        };
        (WalSampler::new(ports, settings), recorded)
    }

    #[tokio::test]
    async fn a_hanging_source_delays_and_fails_no_other_source() {
        let scripts = HashMap::from([(2, Script::Hang), (3, Script::Refuse)]);
        let (sampler, recorded) =
            sampler(vec![1, 2, 3, 4], scripts, settings(Duration::from_secs(2), Duration::from_millis(300)));
        let started = Instant::now();
        let report = sampler.tick().await;
        assert_eq!((report.sampled, report.failed), (4, 2));
        let recorded = recorded.lock().unwrap();
        let at = |id: i64| recorded.iter().find(|(_, o)| o.source_id.get() == id).unwrap();
        assert!(at(1).1.result.is_ok() && at(4).1.result.is_ok());
        assert!(at(3).1.result.as_ref().unwrap_err().contains("refused"));
        assert!(at(2).1.result.as_ref().unwrap_err().contains("no answer"));
        // The healthy sources were recorded long before the hanging one gave up.
        assert!(at(1).0 < at(2).0 && at(1).0.duration_since(started) < Duration::from_millis(250));
        // The hanging source is bounded by its deadline (retries included), not the default timeout.
        assert!(at(2).0.duration_since(started) < Duration::from_secs(2), "{:?}", at(2).0.duration_since(started));
    }

    #[tokio::test]
    async fn unusable_settings_cost_only_their_source_and_are_reported() {
        let (sampler, recorded) =
            sampler(vec![12, 13, 14], HashMap::new(), settings(Duration::from_secs(2), Duration::from_millis(300)));
        let report = sampler.tick().await;
        assert_eq!((report.sampled, report.failed), (3, 1));
        let recorded = recorded.lock().unwrap();
        let result = |id: i64| recorded.iter().find(|(_, o)| o.source_id.get() == id).unwrap().1.result.clone();
        assert!(result(12).is_ok() && result(14).is_ok(), "the others are sampled");
        let error = result(13).unwrap_err();
        assert!(error.starts_with("cannot decrypt pg_password"), "{error}");
        let unusable = sampler.heartbeat().unusable_sources();
        assert_eq!(unusable.iter().map(|(id, _)| id.get()).collect::<Vec<_>>(), [13]);
    }

    #[tokio::test]
    async fn failures_are_retried_with_backoff_within_the_deadline() {
        let scripts = HashMap::from([(1, Script::RefuseThenAnswer(2)), (2, Script::RefuseThenAnswer(5))]);
        let (sampler, recorded) =
            sampler(vec![1, 2], scripts, settings(Duration::from_secs(10), Duration::from_millis(500)));
        let started = Instant::now();
        let report = sampler.tick().await;
        assert_eq!((report.sampled, report.failed), (2, 1));
        let recorded = recorded.lock().unwrap();
        assert!(recorded.iter().any(|(_, o)| o.source_id.get() == 1 && o.result.is_ok()), "third attempt succeeds");
        assert!(recorded.iter().any(|(_, o)| o.source_id.get() == 2 && o.result.is_err()), "gives up after 3 attempts");
        // 200 ms + 400 ms of backoff between three attempts.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(3), "took {elapsed:?}");
    }

    #[tokio::test]
    async fn retries_never_push_a_sample_past_the_next_tick() {
        let scripts = HashMap::from([(1, Script::Hang)]);
        let (sampler, recorded) = sampler(vec![1], scripts, settings(Duration::from_secs(1), Duration::from_secs(30)));
        let started = Instant::now();
        sampler.tick().await;
        assert!(started.elapsed() < Duration::from_millis(1_300), "took {:?}", started.elapsed());
        assert!(recorded.lock().unwrap()[0].1.result.is_err());
    }

    #[tokio::test]
    async fn shutdown_cancels_the_tick_and_releases_leases() {
        let scripts = HashMap::from([(1, Script::Hang)]);
        let (sampler, _) = sampler(vec![1], scripts, settings(Duration::from_secs(60), Duration::from_secs(30)));
        let heartbeat = sampler.heartbeat();
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(sampler.run(stopped, Duration::from_millis(100)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(heartbeat.last_completed_tick(), None, "the tick is still waiting for the hanging source");
        let asked = Instant::now();
        stop.send(true).unwrap();
        let released_before = LEASES_RELEASED.load(Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(2), running).await.expect("stops promptly").unwrap();
        assert!(asked.elapsed() < Duration::from_secs(1), "stopped after {:?}", asked.elapsed());
        assert!(LEASES_RELEASED.load(Ordering::SeqCst) > released_before, "leases released on shutdown");
    }

    #[tokio::test]
    async fn a_completed_tick_beats_the_heartbeat() {
        let (sampler, _) = sampler(vec![1], HashMap::new(), settings(Duration::from_secs(1), Duration::from_secs(1)));
        assert_eq!(sampler.heartbeat().last_completed_tick(), None);
        sampler.tick().await;
        assert_eq!(sampler.heartbeat().last_completed_tick(), Some(fixed_time(0)));
    }
}
