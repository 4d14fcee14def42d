//! Ports of the WAL monitor: reading sources' WAL, storing samples, and serving them.

use std::time::Duration;

use async_trait::async_trait;
use rosetta_domain::{
    ChartHistory, ChartWindow, PageLimit, SourceConnection, SourceId, SourceWalState, SystemSample, Timestamp,
    WalMonitorStatus, WalSample,
};

use crate::jobs::LeaseOwner;
use crate::outbound::RepositoryError;

/// Why a source could not be sampled. Messages never contain the source's password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Connect and query together took longer than the allowed time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be established (refused, authentication, TLS…).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Connected, but the monitoring query failed.
    #[error("query failed: {0}")]
    Query(String),
}

/// Reads a source's WAL position, WAL on disk and replication slots.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SourceProbe: Send + Sync {
    /// Takes one sample of `source`, spending at most `timeout` on connecting and querying
    /// together. Implementations reuse a connection between calls and re-establish it after a
    /// failure. A role without `pg_monitor` yields `wal_dir_bytes = None`, not an error.
    async fn sample(&self, source: &SourceConnection, timeout: Duration) -> Result<WalSample, ProbeError>;

    /// Closes connections not used since `idle_since` (deleted or re-pointed sources).
    fn close_idle(&self, idle_since: std::time::Instant);

    /// How many connections to sources are open now.
    fn open_connections(&self) -> usize;
}

/// The outcome of sampling one source once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleOutcome {
    /// The source.
    pub source_id: SourceId,
    /// When the attempt finished.
    pub attempted_at: Timestamp,
    /// The sample, or the error text (secrets removed).
    pub result: Result<WalSample, String>,
}

/// One history row: a source at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalHistoryEntry {
    /// The source.
    pub source_id: SourceId,
    /// When the attempt finished.
    pub recorded_at: Timestamp,
    /// Status of that attempt.
    pub status: WalMonitorStatus,
    /// The sample, when the attempt succeeded.
    pub sample: Option<WalSample>,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Which history rows to read: newest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalHistoryQuery {
    /// Only this source.
    pub source_id: Option<SourceId>,
    /// Only rows recorded at or after this instant.
    pub from: Option<Timestamp>,
    /// Only rows recorded at or before this instant.
    pub to: Option<Timestamp>,
    /// At most this many rows.
    pub limit: PageLimit,
}

/// Which host samples to read: newest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SystemHistoryQuery {
    /// Only samples taken at or after this instant.
    pub from: Option<Timestamp>,
    /// Only samples taken at or before this instant.
    pub to: Option<Timestamp>,
    /// At most this many samples.
    pub limit: PageLimit,
}

/// Stores WAL samples: the latest state per source, and the history.
///
/// Which process samples which source is decided by the leases of
/// [`Queue::WAL_SAMPLING`](crate::jobs::Queue::WAL_SAMPLING) (one item per source, created and
/// removed with the source); recording an outcome completes that source's lease, in the same
/// transaction, so only the process holding it records.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WalMetricsRepository: Send + Sync {
    /// Stores outcomes of sources whose [`Queue::WAL_SAMPLING`](crate::jobs::Queue::WAL_SAMPLING)
    /// lease `owner` holds, in one transaction: one history row each; the latest state (a failure
    /// keeps the last good sample and records the error); and the lease completed, the source due
    /// again at `next_sample_at`. Outcomes of sources no longer leased to `owner` (another process
    /// owns them now), or deleted, are dropped. Returns the sources recorded, in the order given.
    async fn record_outcomes(
        &self,
        owner: &LeaseOwner,
        outcomes: Vec<SampleOutcome>,
        next_sample_at: Timestamp,
    ) -> Result<Vec<SourceId>, RepositoryError>;

    /// The latest state of every source that has one, ordered by source id.
    async fn list_latest(&self) -> Result<Vec<SourceWalState>, RepositoryError>;

    /// The latest state of one source; `Ok(None)` if it exists but was never sampled.
    /// Errors: `NotFound` for an unknown source.
    async fn latest(&self, source_id: SourceId) -> Result<Option<SourceWalState>, RepositoryError>;

    /// History rows, newest first.
    async fn history(&self, query: WalHistoryQuery) -> Result<Vec<WalHistoryEntry>, RepositoryError>;

    /// `source_id`'s history in `window` (rows recorded at `from` and `to` included), aggregated
    /// per bucket of the window ([`ChartWindow::bucket_of`]): per bucket with any attempt, how
    /// many succeeded and failed and the largest WAL on disk; per slot and bucket it was sampled
    /// in, the largest WAL it retained (`None` while it was lost). Maxima, never averages, so a
    /// spike survives any downsampling. Errors: `NotFound` for an unknown source.
    async fn chart_history(&self, source_id: SourceId, window: ChartWindow) -> Result<ChartHistory, RepositoryError>;

    /// Deletes at most `batch` history rows recorded before `cutoff`; returns how many.
    async fn delete_history_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError>;
}

/// Which part of a source's history a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartRequest {
    /// Where it starts; default: a day before `to`.
    pub from: Option<Timestamp>,
    /// Where it ends; default: now.
    pub to: Option<Timestamp>,
    /// At most this many points per line.
    pub points: u32,
}

impl ChartRequest {
    /// The range shown when `from` is not given: the last day.
    pub const DEFAULT_SPAN: chrono::TimeDelta = chrono::TimeDelta::days(1);
}

/// Stores host CPU / memory / swap samples.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SystemMetricsRepository: Send + Sync {
    /// Stores one sample.
    async fn record(&self, sample: SystemSample) -> Result<(), RepositoryError>;
    /// Samples, newest first.
    async fn history(&self, query: SystemHistoryQuery) -> Result<Vec<SystemSample>, RepositoryError>;
    /// Deletes at most `batch` samples taken before `cutoff`; returns how many.
    async fn delete_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepositoryError>;
}

/// Reads the host's CPU, memory and swap.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait HostProbe: Send + Sync {
    /// A sample; CPU use is measured since the previous call.
    fn sample(&self, now: Timestamp) -> SystemSample;
}

/// How the WAL monitor of this process is doing, for readiness.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait MonitorHeartbeat: Send + Sync {
    /// When this process last reached the metadata store to look for due sources (whether or not
    /// any were due): the monitor's loop is alive and can work.
    fn last_completed_tick(&self) -> Option<Timestamp>;
    /// When the monitor started.
    fn started_at(&self) -> Timestamp;
    /// The sampling interval.
    fn interval(&self) -> Duration;
    /// The sources whose latest attempt by this process could not even be tried because their
    /// stored settings cannot be used (a password that does not decrypt), with why; by id.
    fn unusable_sources(&self) -> Vec<(SourceId, String)>;
}

/// Recording what the monitor sampled: the hook where everything that follows a sample (alert
/// evaluation) happens, in the process that took it.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SampleRecording: Send + Sync {
    /// Records `outcomes` of sources leased to `owner`, due again at `next_sample_at`, and returns
    /// the outcomes that were recorded (those whose lease `owner` still held), in order.
    /// Errors: `Unavailable` when the metadata store is.
    async fn record_samples(
        &self,
        owner: &LeaseOwner,
        outcomes: Vec<SampleOutcome>,
        next_sample_at: Timestamp,
    ) -> Result<Vec<SampleOutcome>, crate::inbound::ServiceError>;
}

/// A source's latest WAL state with the pipelines that name slots on it (to tell which slot
/// belongs to which pipeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReport {
    /// The state.
    pub state: SourceWalState,
    /// The source's pipelines, by id.
    pub pipelines: Vec<crate::outbound::SourcePipeline>,
}

impl WalReport {
    /// The pipeline that names slot `slot_name` on this source, if any.
    pub fn pipeline_of(&self, slot_name: &str) -> Option<rosetta_domain::PipelineId> {
        self.pipelines.iter().find(|p| p.slot_name.as_str() == slot_name).map(|p| p.pipeline_id)
    }
}

/// Serving what the monitor recorded.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WalMonitorService: Send + Sync {
    /// The latest state of every sampled source, by source id.
    async fn list_wal_states(&self) -> Result<Vec<WalReport>, crate::inbound::ServiceError>;
    /// The latest state of one source (`None`: not sampled yet). Errors: `NotFound`.
    async fn get_wal_state(&self, source_id: SourceId) -> Result<Option<WalReport>, crate::inbound::ServiceError>;
    /// WAL history, newest first.
    async fn wal_history(&self, query: WalHistoryQuery) -> Result<Vec<WalHistoryEntry>, crate::inbound::ServiceError>;
    /// The WAL chart of one source: retained WAL per slot and WAL on disk over the requested
    /// range, downsampled to `points` buckets, with the source's `slot_retained_bytes`
    /// thresholds. Errors: `NotFound`; `InvalidQuery` for a range that ends before it starts,
    /// spans too long, or too many points.
    async fn wal_chart(
        &self,
        source_id: SourceId,
        request: ChartRequest,
    ) -> Result<rosetta_domain::WalChart, crate::inbound::ServiceError>;
    /// Host history, newest first.
    async fn system_history(
        &self,
        query: SystemHistoryQuery,
    ) -> Result<Vec<SystemSample>, crate::inbound::ServiceError>;
}
