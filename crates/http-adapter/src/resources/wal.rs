//! `{prefix}/wal-monitor` and `{prefix}/metrics/…`: what the WAL monitor recorded. Every LSN is
//! given twice, as PostgreSQL writes it (`0/16B3748`) and as a byte position, so a client can both
//! read it and do arithmetic. Byte counts a sample could not establish are `null`, never a made-up
//! 0.

use actix_web::{HttpResponse, get, web};
use rosetta_domain::{
    Lsn, PageLimit, PipelineId, SlotSample, SlotType, SourceId, SystemSample, Timestamp, WalMonitorStatus, WalSample,
    WalStatus,
};
use rosetta_ports::wal::{
    ChartRequest, SystemHistoryQuery, WalHistoryEntry, WalHistoryQuery, WalMonitorService, WalReport,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{id_path, timestamp};
use crate::chart::{ChartSize, render_svg};
use crate::error::{ApiError, ErrorBody};
use crate::input::path::Path;
use crate::input::query::{Query, QueryFields, QueryInput, described_query};
use crate::input::values::Pixels;

/// How a source looks to the WAL monitor.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = WalMonitorStatus)]
pub(crate) enum WalMonitorStatusBody {
    /// Reachable, and every (non-temporary) slot has a consumer.
    Active,
    /// Reachable, but a slot has no consumer: its WAL piles up.
    Idle,
    /// The last attempt failed (see `error`); the sample fields keep the last good values.
    Error,
}

impl From<WalMonitorStatus> for WalMonitorStatusBody {
    fn from(status: WalMonitorStatus) -> Self {
        match status {
            WalMonitorStatus::Active => Self::Active,
            WalMonitorStatus::Idle => Self::Idle,
            WalMonitorStatus::Error => Self::Error,
        }
    }
}

/// Physical or logical replication slot.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = SlotType)]
pub(crate) enum SlotTypeBody {
    /// Streaming replication or backups; cluster-wide.
    Physical,
    /// CDC; belongs to one database.
    Logical,
}

impl From<SlotType> for SlotTypeBody {
    fn from(slot_type: SlotType) -> Self {
        match slot_type {
            SlotType::Physical => Self::Physical,
            SlotType::Logical => Self::Logical,
        }
    }
}

/// PostgreSQL's judgement (13+) of whether a slot's WAL is still kept.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = WalStatus)]
pub(crate) enum WalStatusBody {
    /// Within `max_wal_size`.
    Reserved,
    /// Beyond `max_wal_size` but still kept.
    Extended,
    /// No longer guaranteed: removed at the next checkpoint unless the slot catches up.
    Unreserved,
    /// WAL the slot needs is gone: the slot is unusable.
    Lost,
}

impl From<WalStatus> for WalStatusBody {
    fn from(status: WalStatus) -> Self {
        match status {
            WalStatus::Reserved => Self::Reserved,
            WalStatus::Extended => Self::Extended,
            WalStatus::Unreserved => Self::Unreserved,
            WalStatus::Lost => Self::Lost,
        }
    }
}

/// One replication slot as sampled. Byte counts are measured from the sample's `current_lsn`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReplicationSlot)]
pub(crate) struct SlotBody {
    /// Slot name.
    pub slot_name: String,
    /// `physical` or `logical`.
    pub slot_type: SlotTypeBody,
    /// Whether a consumer is attached.
    pub active: bool,
    /// Temporary slots die with their session and never make a source `IDLE`.
    pub temporary: bool,
    /// Oldest WAL the slot pins (`X/Y`); null if never reserved or invalidated.
    #[schema(example = "0/16B3748")]
    pub restart_lsn: Option<String>,
    /// The consumer's acknowledged position (`X/Y`; logical slots).
    #[schema(example = "0/16B3780")]
    pub confirmed_flush_lsn: Option<String>,
    /// WAL the slot makes the disk keep: `current_lsn − restart_lsn`, in bytes. Null when the
    /// slot pins nothing it can still use (never reserved, or lost) — never 0 for a lost slot.
    pub retained_bytes: Option<u64>,
    /// Consumer lag: `current_lsn − confirmed_flush_lsn`, in bytes (logical slots that are not
    /// lost; null otherwise).
    pub confirmed_lag_bytes: Option<u64>,
    /// PostgreSQL's WAL status (13+).
    pub wal_status: Option<WalStatusBody>,
    /// Bytes that can still be written before the slot is lost (13+); negative while
    /// `unreserved`; null without `max_slot_wal_keep_size` or once lost.
    pub safe_wal_size_bytes: Option<i64>,
    /// Logical slot invalidated by a recovery conflict (16+; null before).
    pub conflicting: Option<bool>,
    /// Since when the slot is inactive (17+; RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub inactive_since: Option<String>,
    /// Why PostgreSQL invalidated the slot (17+: `wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`; 18: also `idle_timeout`); null while valid or before 17.
    pub invalidation_reason: Option<String>,
    /// Whether the slot can no longer be used: `wal_status` is `lost`, it is `conflicting`, or
    /// it has an `invalidation_reason`.
    pub lost: bool,
    /// The pipeline of this source whose `slot_name` this is; null for a slot no pipeline names
    /// (and always in history).
    pub pipeline_id: Option<i64>,
}

impl SlotBody {
    fn new(slot: SlotSample, current: Lsn, pipeline_id: Option<PipelineId>) -> Self {
        let lost = slot.is_lost();
        // A lost slot may still report the `restart_lsn` it had; PostgreSQL no longer keeps WAL
        // for it, so a difference would be a number of bytes nothing holds.
        let usable = |bytes: Option<u64>| if lost { None } else { bytes };
        Self {
            retained_bytes: usable(slot.retained_bytes(current)),
            confirmed_lag_bytes: usable(slot.confirmed_lag_bytes(current)),
            slot_type: slot.slot_type.into(),
            active: slot.active,
            temporary: slot.temporary,
            restart_lsn: slot.restart_lsn.map(|lsn| lsn.to_string()),
            confirmed_flush_lsn: slot.confirmed_flush_lsn.map(|lsn| lsn.to_string()),
            wal_status: slot.wal_status.map(Into::into),
            safe_wal_size_bytes: slot.safe_wal_size_bytes,
            conflicting: slot.conflicting,
            inactive_since: slot.inactive_since.map(timestamp),
            invalidation_reason: slot.invalidation_reason.clone(),
            lost,
            pipeline_id: pipeline_id.map(PipelineId::get),
            slot_name: slot.slot_name,
        }
    }
}

/// What one WAL sample read; every field is null when there is no sample (the source was not
/// sampled successfully yet, or — in history — that attempt failed).
#[derive(Debug, Default, Serialize, ToSchema)]
pub(crate) struct WalSampleFields {
    /// When the sample was taken (RFC 3339, UTC; the monitor's clock).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub sampled_at: Option<String>,
    /// Whether the source is a standby.
    pub in_recovery: Option<bool>,
    /// The current WAL position (`X/Y`): the write position on a primary, the receive (else
    /// replay) position on a standby.
    #[schema(example = "0/16B3748")]
    pub current_lsn: Option<String>,
    /// `current_lsn` as a byte position.
    #[schema(example = 23803720)]
    pub current_lsn_bytes: Option<u64>,
    /// WAL on disk (`pg_wal`), in bytes; null where the role may not read it (`pg_monitor`).
    pub wal_dir_bytes: Option<u64>,
    /// The WAL this source makes its disk keep, in bytes: the largest `retained_bytes` of its
    /// slots (lost slots keep nothing), else `wal_dir_bytes`.
    pub size_bytes: Option<u64>,
    /// Every logical slot of the source's database and every physical slot of its cluster.
    pub slots: Option<Vec<SlotBody>>,
}

impl WalSampleFields {
    /// The fields of `sample`; `pipeline_of` names the pipeline of a slot.
    fn new(sample: Option<WalSample>, pipeline_of: impl Fn(&str) -> Option<PipelineId>) -> Self {
        let Some(sample) = sample else { return Self::default() };
        let current = sample.current_lsn;
        let slots: Vec<SlotBody> = sample
            .slots
            .into_iter()
            .map(|slot| {
                let pipeline_id = pipeline_of(&slot.slot_name);
                SlotBody::new(slot, current, pipeline_id)
            })
            .collect();
        // `WalSample::size_bytes`' rule, applied to the slots as shown: a lost slot that still
        // reports a `restart_lsn` holds no WAL, so it must not count here either.
        let size_bytes = slots.iter().filter_map(|slot| slot.retained_bytes).max().or(sample.wal_dir_bytes);
        Self {
            sampled_at: Some(timestamp(sample.sampled_at)),
            in_recovery: Some(sample.in_recovery),
            current_lsn: Some(current.to_string()),
            current_lsn_bytes: Some(current.bytes()),
            wal_dir_bytes: sample.wal_dir_bytes,
            size_bytes,
            slots: Some(slots),
        }
    }
}

/// The latest WAL state of one source. `status` is null (with every sample field) for a source
/// that has not been sampled yet.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SourceWalState)]
pub(crate) struct SourceWalStateBody {
    /// The source.
    pub source_id: i64,
    /// Status after the last attempt; null before the first one.
    pub status: Option<WalMonitorStatusBody>,
    /// The error of the last attempt, if it failed (secrets removed).
    pub error: Option<String>,
    /// When the last attempt finished (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// The last good sample: kept when later attempts fail.
    #[serde(flatten)]
    pub sample: WalSampleFields,
}

impl From<WalReport> for SourceWalStateBody {
    fn from(report: WalReport) -> Self {
        let sample = WalSampleFields::new(report.state.last_sample.clone(), |slot| report.pipeline_of(slot));
        let state = report.state;
        Self {
            source_id: state.source_id.get(),
            status: Some(state.status.into()),
            error: state.error,
            last_attempt_at: state.last_attempt_at.map(timestamp),
            sample,
        }
    }
}

impl SourceWalStateBody {
    /// A source that exists but has not been sampled yet.
    pub(crate) fn not_sampled(source_id: SourceId) -> Self {
        Self {
            source_id: source_id.get(),
            status: None,
            error: None,
            last_attempt_at: None,
            sample: WalSampleFields::default(),
        }
    }
}

/// One WAL history row: a source at one tick. The sample fields are null when that attempt
/// failed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WalHistoryEntry)]
pub(crate) struct WalHistoryEntryBody {
    /// The source.
    pub source_id: i64,
    /// When the attempt finished (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub recorded_at: String,
    /// Status of that attempt.
    pub status: WalMonitorStatusBody,
    /// The error, when it failed (secrets removed).
    pub error: Option<String>,
    /// The sample, when the attempt succeeded.
    #[serde(flatten)]
    pub sample: WalSampleFields,
}

impl From<WalHistoryEntry> for WalHistoryEntryBody {
    fn from(entry: WalHistoryEntry) -> Self {
        Self {
            source_id: entry.source_id.get(),
            recorded_at: timestamp(entry.recorded_at),
            status: entry.status.into(),
            error: entry.error,
            // History says what was sampled; which pipeline names a slot is today's answer.
            sample: WalSampleFields::new(entry.sample, |_| None),
        }
    }
}

/// CPU, memory and swap of the host Rosetta runs on, at one moment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SystemSample)]
pub(crate) struct SystemSampleBody {
    /// When it was taken (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub sampled_at: String,
    /// CPU use over the sampling interval, 0–100 %.
    #[schema(minimum = 0, maximum = 100)]
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Total memory, bytes.
    pub memory_total_bytes: u64,
    /// Swap in use, bytes.
    pub swap_used_bytes: u64,
    /// Total swap, bytes.
    pub swap_total_bytes: u64,
}

impl From<SystemSample> for SystemSampleBody {
    fn from(sample: SystemSample) -> Self {
        Self {
            sampled_at: timestamp(sample.sampled_at),
            cpu_percent: sample.cpu_percent,
            memory_used_bytes: sample.memory_used_bytes,
            memory_total_bytes: sample.memory_total_bytes,
            swap_used_bytes: sample.swap_used_bytes,
            swap_total_bytes: sample.swap_total_bytes,
        }
    }
}

const FROM: &str = "Only rows recorded at or after this instant: RFC 3339 with an offset, e.g. \
                    `2026-01-14T10:00:00Z` (send `+` as `%2B`). A range that ends before it starts is empty.";
const TO: &str = "Only rows recorded at or before this instant: RFC 3339 with an offset.";
const LIMIT: &str = "How many rows to return at most (1–1000), newest first.";

/// The query of `GET /metrics/wal`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalHistoryParams(pub WalHistoryQuery);

impl QueryInput for WalHistoryParams {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let source_id = q.optional::<SourceId>(
            "source_id",
            "Only this source. A source that does not exist yields an empty list, not a 404.",
        );
        let from = q.optional::<Timestamp>("from", FROM);
        let to = q.optional::<Timestamp>("to", TO);
        let limit = q.defaulted("limit", LIMIT, PageLimit::DEFAULT, json!(PageLimit::DEFAULT.get()));
        Some(Self(WalHistoryQuery { source_id, from, to, limit: limit? }))
    }
}

/// The query of `GET /metrics/system`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemHistoryParams(pub SystemHistoryQuery);

impl QueryInput for SystemHistoryParams {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let from = q.optional::<Timestamp>("from", FROM);
        let to = q.optional::<Timestamp>("to", TO);
        let limit = q.defaulted("limit", LIMIT, PageLimit::DEFAULT, json!(PageLimit::DEFAULT.get()));
        Some(Self(SystemHistoryQuery { from, to, limit: limit? }))
    }
}

/// The query of `GET /wal-monitor/sources/{source_id}/chart.svg`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChartParams {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    size: ChartSize,
}

impl QueryInput for ChartParams {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let from = q.optional::<Timestamp>(
            "from",
            "Start of the range (RFC 3339 with an offset; send `+` as `%2B`); default: a day before `to`. \
             Must be before `to`; the range may span at most 400 days.",
        );
        let to = q.optional::<Timestamp>("to", "End of the range (RFC 3339 with an offset); default: now.");
        let width = q.defaulted(
            "width",
            "Width in pixels; each line has at most one point per pixel of the plot (the maximum of its bucket).",
            Pixels::<320, 4_000>(800),
            json!(800),
        );
        let height = q.defaulted("height", "Height in pixels.", Pixels::<160, 2_000>(320), json!(320));
        Some(Self { from, to, size: ChartSize { width: width?.0, height: height?.0 } })
    }
}

described_query!(WalHistoryParams, SystemHistoryParams, ChartParams);
id_path!(
    /// `/wal-monitor/sources/{source_id}`.
    WalSourcePath(SourceId),
    "source_id",
    "Source id"
);

/// WAL history: one row per source per tick, newest first.
#[utoipa::path(
    tag = "wal-monitor",
    params(WalHistoryParams),
    responses(
        (status = 200, description = "History rows, newest first (`[]` for an unknown source or an empty range)",
            body = [WalHistoryEntryBody]),
        (status = 422, description = "Invalid `source_id`, `from`, `to` or `limit`", body = ErrorBody),
    )
)]
#[get("/metrics/wal")]
pub(crate) async fn wal_history(
    wal: web::Data<dyn WalMonitorService>,
    query: Query<WalHistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let entries = wal.wal_history(query.0.0).await?;
    Ok(HttpResponse::Ok().json(entries.into_iter().map(WalHistoryEntryBody::from).collect::<Vec<_>>()))
}

/// The latest WAL state of every sampled source, by source id.
#[utoipa::path(
    tag = "wal-monitor",
    responses((status = 200, description = "One state per sampled source", body = [SourceWalStateBody]))
)]
#[get("/wal-monitor")]
pub(crate) async fn list_wal_states(wal: web::Data<dyn WalMonitorService>) -> Result<HttpResponse, ApiError> {
    let states = wal.list_wal_states().await?;
    Ok(HttpResponse::Ok().json(states.into_iter().map(SourceWalStateBody::from).collect::<Vec<_>>()))
}

/// The latest WAL state of one source; `status: null` (and null sample fields) before its first
/// sample.
#[utoipa::path(
    tag = "wal-monitor",
    params(WalSourcePath),
    responses(
        (status = 200, description = "The latest state", body = SourceWalStateBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/wal-monitor/sources/{source_id}")]
pub(crate) async fn get_wal_state(
    wal: web::Data<dyn WalMonitorService>,
    path: Path<WalSourcePath>,
) -> Result<HttpResponse, ApiError> {
    let source_id = path.0.0;
    let body = match wal.get_wal_state(source_id).await? {
        Some(state) => SourceWalStateBody::from(state),
        None => SourceWalStateBody::not_sampled(source_id),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// A chart of one source's WAL as SVG: retained WAL per slot (one line each, named in the
/// legend) and WAL on disk over the range, byte axis in binary units, time axis in UTC, the
/// `slot_retained_bytes` thresholds as dashed lines, gaps (shaded) where samples failed. Each line
/// is downsampled in the database to at most one point per pixel, keeping each bucket's maximum,
/// so a spike is never averaged away. A range without samples draws an empty chart saying so.
#[utoipa::path(
    tag = "wal-monitor",
    params(WalSourcePath, ChartParams),
    responses(
        (status = 200, description = "The chart", content_type = "image/svg+xml", body = String),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "Invalid id, `from`, `to`, `width` or `height`, or `from` not before `to`",
            body = ErrorBody),
    )
)]
#[get("/wal-monitor/sources/{source_id}/chart.svg")]
pub(crate) async fn wal_chart(
    wal: web::Data<dyn WalMonitorService>,
    path: Path<WalSourcePath>,
    query: Query<ChartParams>,
) -> Result<HttpResponse, ApiError> {
    let source_id = path.0.0;
    let params = query.0;
    let request = ChartRequest { from: params.from, to: params.to, points: params.size.points() };
    let chart = wal.wal_chart(source_id, request).await?;
    let title = format!("Source {source_id}: retained WAL per slot and WAL on disk");
    let svg = render_svg(&chart, params.size, &title).map_err(|error| {
        tracing::error!(error = %error, "chart drawing failed");
        ApiError::internal()
    })?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(svg))
}

/// Host CPU, memory and swap history, newest first.
#[utoipa::path(
    tag = "wal-monitor",
    params(SystemHistoryParams),
    responses(
        (status = 200, description = "Host samples, newest first", body = [SystemSampleBody]),
        (status = 422, description = "Invalid `from`, `to` or `limit`", body = ErrorBody),
    )
)]
#[get("/metrics/system")]
pub(crate) async fn system_history(
    wal: web::Data<dyn WalMonitorService>,
    query: Query<SystemHistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let samples = wal.system_history(query.0.0).await?;
    Ok(HttpResponse::Ok().json(samples.into_iter().map(SystemSampleBody::from).collect::<Vec<_>>()))
}
