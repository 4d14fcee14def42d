//! WAL sampling: the job of the [`Queue::WAL_SAMPLING`] queue (one item per source).
//!
//! A claimed batch's connection settings are read in one round trip; each source is sampled
//! through the [`SourceProbe`] with capped-backoff retries, never past its deadline (shorter
//! than the interval); outcomes are recorded through the [`SampleRecording`] use case, which
//! completes their leases (the source is due again one interval later) and is where what follows
//! a sample happens. Each source's gauges are kept (see [`SourceGauges`]) as it is sampled.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rosetta_domain::{SourceConnection, SourceId, Timestamp, WalSample};
use rosetta_ports::jobs::{LeaseOwner, Queue};
use rosetta_ports::outbound::{Clock, ConnectionSettingsError, SourceRepository};
use rosetta_ports::wal::{MonitorHeartbeat, SampleOutcome, SampleRecording, SourceProbe};

use crate::gauges::SourceGauges;
use crate::runner::{CycleReport, Heartbeat, Job, in_claim_order, log_repository_error};

/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts per source per interval (the deadline may allow fewer).
const MAX_ATTEMPTS: u32 = 3;

/// How sources are sampled.
#[derive(Debug, Clone, Copy)]
pub struct SamplingSettings {
    /// Each source is sampled once per interval.
    pub interval: Duration,
    /// Bound on connecting to and querying one source, per attempt.
    pub timeout: Duration,
}

impl SamplingSettings {
    /// How often the runner looks for due sources: often enough that a source is sampled soon
    /// after it becomes due, at most every 200 ms and at least every 5 s.
    pub fn poll(&self) -> Duration {
        (self.interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// How long one source may take, retries included: never past its next due time.
    pub fn deadline(&self) -> Duration {
        self.interval.saturating_sub(self.poll()).max(self.timeout.min(self.interval))
    }

    /// A lease outlives a sample (bounded by [`Self::deadline`]) plus one poll for recording;
    /// the runner renews it besides. A dead process's sources are claimable again within about
    /// one interval.
    pub fn lease(&self) -> Duration {
        self.deadline().max(self.interval) + self.poll()
    }
}

/// The ports WAL sampling drives.
#[derive(Clone)]
pub struct SamplingPorts {
    /// Source connection settings (passwords opened).
    pub sources: Arc<dyn SourceRepository>,
    /// Reads a source's WAL.
    pub probe: Arc<dyn SourceProbe>,
    /// Records what was sampled (the use case).
    pub recording: Arc<dyn SampleRecording>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SamplingPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplingPorts").finish_non_exhaustive()
    }
}

/// One source to sample: its settings, or why they cannot be used.
#[derive(Debug)]
pub struct SourceToSample {
    source_id: SourceId,
    settings: Result<SourceConnection, ConnectionSettingsError>,
}

/// The WAL sampling job.
#[derive(Debug)]
pub struct WalSampling {
    ports: SamplingPorts,
    settings: SamplingSettings,
    health: Arc<MonitorHealth>,
    gauges: Arc<SourceGauges>,
}

impl WalSampling {
    /// The job over `ports`; `heartbeat` is its runner's. Each source's gauges are kept for
    /// three intervals after its last attempt.
    pub fn new(ports: SamplingPorts, settings: SamplingSettings, heartbeat: Arc<Heartbeat>) -> Self {
        let health = Arc::new(MonitorHealth {
            started_at: ports.clock.now(),
            interval: settings.interval,
            heartbeat,
            unusable: Mutex::default(),
        });
        let gauges = Arc::new(SourceGauges::new(settings.interval.saturating_mul(3)));
        Self { ports, settings, health, gauges }
    }

    /// The gauges of the sources this job samples, for `/metrics`.
    pub fn gauges(&self) -> Arc<SourceGauges> {
        Arc::clone(&self.gauges)
    }

    /// The monitor's health, for readiness.
    pub fn health(&self) -> Arc<dyn MonitorHeartbeat> {
        Arc::clone(&self.health) as Arc<dyn MonitorHeartbeat>
    }

    /// Samples `connection` with retries and capped backoff, never past the deadline.
    async fn sample(&self, connection: &SourceConnection) -> Result<WalSample, String> {
        let deadline = Instant::now() + self.settings.deadline();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.settings.timeout.min(remaining);
            match self.ports.probe.sample(connection, timeout).await {
                Ok(sample) => return Ok(sample),
                Err(error) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if attempt >= MAX_ATTEMPTS || left <= backoff + Duration::from_millis(100) {
                        return Err(error.to_string());
                    }
                    tracing::debug!(source_id = %connection.source_id, attempt, error = %error, "WAL sample failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    }
}

#[async_trait]
impl Job for WalSampling {
    type Item = SourceToSample;
    type Outcome = SampleOutcome;

    fn queue(&self) -> Queue {
        Queue::WAL_SAMPLING
    }

    async fn prepare(&self, items: Vec<i64>) -> Vec<(i64, SourceToSample)> {
        let ids: Vec<SourceId> = items.iter().copied().map(SourceId::new).collect();
        // One round trip for the whole batch, so the monitor never competes with API requests
        // for more than a couple of pooled connections. A source whose settings cannot be used
        // gets its own error; the others are sampled.
        match self.ports.sources.connections(&ids).await {
            Ok(found) => {
                let found: HashMap<i64, SourceToSample> = found
                    .into_iter()
                    .map(|stored| {
                        let item = SourceToSample { source_id: stored.source_id, settings: stored.settings };
                        (stored.source_id.get(), item)
                    })
                    .collect();
                in_claim_order(&items, found)
            }
            Err(error) => {
                log_repository_error(Queue::WAL_SAMPLING, "reading the sources' connection settings", &error);
                Vec::new()
            }
        }
    }

    async fn run(&self, item: SourceToSample) -> SampleOutcome {
        let source_id = item.source_id;
        self.health.settings_usable(source_id, item.settings.as_ref().err());
        let result = match &item.settings {
            // Nothing is tried: no attempt could work until the settings are fixed.
            Err(unusable) => Err(unusable.to_string()),
            Ok(connection) => self.sample(connection).await,
        };
        metrics::counter!("rosetta_wal_monitor_samples_total", "outcome" => if result.is_ok() { "ok" } else { "error" })
            .increment(1);
        self.gauges.record(source_id, &result);
        if let Err(error) = &result {
            tracing::warn!(source_id = %source_id, error = %error, "WAL sample failed");
        }
        SampleOutcome { source_id, attempted_at: self.ports.clock.now(), result }
    }

    fn failed(&self, outcome: &SampleOutcome) -> bool {
        outcome.result.is_err()
    }

    async fn record(&self, owner: &LeaseOwner, outcomes: Vec<SampleOutcome>) {
        let next_sample_at = self.ports.clock.now() + chrono_duration(self.settings.interval);
        if let Err(error) = self.ports.recording.record_samples(owner, outcomes, next_sample_at).await {
            tracing::warn!(error = %error, "recording WAL samples failed; their leases expire and they are sampled again");
        }
    }

    fn cycle_finished(&self, report: &CycleReport) {
        // `Instant` counts from boot: shortly after boot there is nothing that old to close.
        if let Some(idle_since) = Instant::now().checked_sub(self.settings.interval.saturating_mul(3)) {
            self.ports.probe.close_idle(idle_since);
        }
        metrics::histogram!("rosetta_wal_monitor_tick_duration_seconds").record(report.duration.as_secs_f64());
        metrics::gauge!("rosetta_wal_monitor_open_connections").set(self.ports.probe.open_connections() as f64);
        metrics::gauge!("rosetta_wal_monitor_last_tick_timestamp_seconds")
            .set(self.ports.clock.now().timestamp_millis() as f64 / 1000.0);
        tracing::debug!(
            sampled = report.items,
            failed = report.failed,
            duration_ms = report.duration.as_millis() as u64,
            "WAL monitor tick"
        );
    }
}

/// The WAL monitor's health, for readiness: its runner's heartbeat, and the sources whose latest
/// attempt by this process could not even be tried because their settings cannot be used.
#[derive(Debug)]
struct MonitorHealth {
    started_at: Timestamp,
    interval: Duration,
    heartbeat: Arc<Heartbeat>,
    unusable: Mutex<BTreeMap<SourceId, String>>,
}

impl MonitorHealth {
    fn settings_usable(&self, source_id: SourceId, unusable: Option<&ConnectionSettingsError>) {
        let mut sources = self.unusable.lock().unwrap_or_else(PoisonError::into_inner);
        match unusable {
            Some(error) => sources.insert(source_id, error.to_string()),
            None => sources.remove(&source_id),
        };
    }
}

impl MonitorHeartbeat for MonitorHealth {
    fn last_completed_tick(&self) -> Option<Timestamp> {
        self.heartbeat.last()
    }

    fn started_at(&self) -> Timestamp {
        self.started_at
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn unusable_sources(&self) -> Vec<(SourceId, String)> {
        let sources = self.unusable.lock().unwrap_or_else(PoisonError::into_inner);
        sources.iter().map(|(id, error)| (*id, error.clone())).collect()
    }
}

pub(crate) fn chrono_duration(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}
