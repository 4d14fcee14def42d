//! `{prefix}/wal-monitor` and `{prefix}/metrics/…`: what the WAL monitor recorded.

use actix_web::{HttpResponse, get, web};
use rosetta_domain::SourceId;
use rosetta_ports::wal::WalMonitorService;

use crate::dto::wal::{SourceWalStateBody, SystemSampleBody, WalHistoryEntryBody};
use crate::error::{ApiError, ErrorBody};
use crate::params::{Id, SystemHistory, SystemHistoryParams, WalHistory, WalHistoryParams};

/// WAL history: one row per source per tick, newest first.
#[utoipa::path(
    tag = "wal-monitor",
    params(WalHistoryParams),
    responses(
        (status = 200, description = "History rows, newest first (`[]` for an unknown source)",
            body = [WalHistoryEntryBody]),
        (status = 422, description = "Invalid `source_id`, `from`, `to` or `limit`, or `from` after `to`",
            body = ErrorBody),
    )
)]
#[get("/metrics/wal")]
pub(crate) async fn wal_history(
    wal: web::Data<dyn WalMonitorService>,
    query: WalHistory,
) -> Result<HttpResponse, ApiError> {
    let entries = wal.wal_history(query.0).await?;
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
    params(("source_id" = i64, Path, description = "Source id")),
    responses(
        (status = 200, description = "The latest state", body = SourceWalStateBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/wal-monitor/sources/{source_id}")]
pub(crate) async fn get_wal_state(
    wal: web::Data<dyn WalMonitorService>,
    source_id: Id<SourceId>,
) -> Result<HttpResponse, ApiError> {
    let body = match wal.get_wal_state(source_id.0).await? {
        Some(state) => SourceWalStateBody::from(state),
        None => SourceWalStateBody::not_sampled(source_id.0),
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Host CPU, memory and swap history, newest first.
#[utoipa::path(
    tag = "wal-monitor",
    params(SystemHistoryParams),
    responses(
        (status = 200, description = "Host samples, newest first", body = [SystemSampleBody]),
        (status = 422, description = "Invalid `from`, `to` or `limit`, or `from` after `to`", body = ErrorBody),
    )
)]
#[get("/metrics/system")]
pub(crate) async fn system_history(
    wal: web::Data<dyn WalMonitorService>,
    query: SystemHistory,
) -> Result<HttpResponse, ApiError> {
    let samples = wal.system_history(query.0).await?;
    Ok(HttpResponse::Ok().json(samples.into_iter().map(SystemSampleBody::from).collect::<Vec<_>>()))
}
