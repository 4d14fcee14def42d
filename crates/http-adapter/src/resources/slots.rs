//! `{prefix}/pipelines/{id}/slot` and `{prefix}/cleanup-tasks`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use rosetta_domain::{CleanupTask, CleanupTaskId, PipelineSlot};
use rosetta_ports::inbound::{CleanupTaskService, SlotService};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::pipelines::PipelinePath;
use super::wal::WalStatusBody;
use super::{ListQuery, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::path::Path;
use crate::input::query::{Query, QueryFields, QueryInput, described_query};

/// A pipeline's replication slot, read live from its source.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PipelineSlot)]
pub(crate) struct SlotStateBody {
    /// The pipeline's slot name.
    pub slot_name: String,
    /// Whether the slot exists (a logical slot of the source's database).
    pub exists: bool,
    /// Whether a consumer is attached.
    pub active: bool,
    /// Its output plugin (`pgoutput`).
    pub plugin: Option<String>,
    /// Oldest WAL it pins (`X/Y`).
    pub restart_lsn: Option<String>,
    /// The consumer's acknowledged position (`X/Y`).
    pub confirmed_flush_lsn: Option<String>,
    /// WAL it makes the disk keep, in bytes.
    pub retained_bytes: Option<u64>,
    /// PostgreSQL's WAL status.
    pub wal_status: Option<WalStatusBody>,
    /// Whether Rosetta created it, and so drops it with the pipeline.
    pub managed: bool,
}

impl From<PipelineSlot> for SlotStateBody {
    fn from(slot: PipelineSlot) -> Self {
        let live = slot.live;
        Self {
            slot_name: slot.slot_name.into_inner(),
            exists: live.is_some(),
            active: live.as_ref().is_some_and(|l| l.active),
            plugin: live.as_ref().and_then(|l| l.plugin.clone()),
            restart_lsn: live.as_ref().and_then(|l| l.restart_lsn).map(|lsn| lsn.to_string()),
            confirmed_flush_lsn: live.as_ref().and_then(|l| l.confirmed_flush_lsn).map(|lsn| lsn.to_string()),
            retained_bytes: live.as_ref().and_then(|l| l.retained_bytes),
            wal_status: live.as_ref().and_then(|l| l.wal_status).map(Into::into),
            managed: slot.managed,
        }
    }
}

/// A cleanup task: a managed slot to drop whose pipeline is gone.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CleanupTask)]
pub(crate) struct CleanupTaskBody {
    /// Identifier.
    pub id: i64,
    /// `drop_slot`.
    #[schema(example = "drop_slot")]
    pub kind: &'static str,
    /// The source (it may have been deleted since).
    pub source_id: i64,
    /// The slot to drop.
    pub slot_name: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    /// When it was recorded.
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<CleanupTask> for CleanupTaskBody {
    fn from(task: CleanupTask) -> Self {
        Self {
            id: task.id.get(),
            kind: task.kind.as_str(),
            source_id: task.source_id.get(),
            slot_name: task.slot_name.into_inner(),
            attempts: task.attempts,
            last_error: task.last_error,
            next_attempt_at: timestamp(task.next_attempt_at),
            created_at: timestamp(task.created_at),
        }
    }
}

/// The query of a slot drop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotDropQuery(pub bool);

impl QueryInput for SlotDropQuery {
    fn read(q: &mut QueryFields) -> Option<Self> {
        q.defaulted(
            "force",
            "Disconnect an attached consumer (terminate its WAL sender) first. Without it, a slot in use is \
             refused with 409.",
            false,
            json!(false),
        )
        .map(Self)
    }
}

described_query!(SlotDropQuery);
id_path!(
    /// `/cleanup-tasks/{id}`.
    CleanupTaskPath(CleanupTaskId),
    "id",
    "Cleanup task id"
);

/// Creates the pipeline's `pgoutput` logical slot on its source (201, managed); a logical slot
/// of that name that already exists in the database is left as it is (200, `managed` unchanged).
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 201, description = "Created", body = SlotStateBody),
        (status = 200, description = "It existed already", body = SlotStateBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "A slot of that name that is not a logical slot of the database", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/slot")]
pub(crate) async fn create_pipeline_slot(
    req: HttpRequest,
    slots: web::Data<dyn SlotService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    let outcome = slots.create_slot(path.0.0).await?;
    let body = SlotStateBody::from(outcome.slot);
    if outcome.created {
        Ok(HttpResponse::Created().insert_header((actix_web::http::header::LOCATION, req.path().to_owned())).json(body))
    } else {
        Ok(HttpResponse::Ok().json(body))
    }
}

/// The pipeline's slot, read live from its source.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The slot (`exists: false` when the source has none)", body = SlotStateBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[get("/pipelines/{id}/slot")]
pub(crate) async fn get_pipeline_slot(
    slots: web::Data<dyn SlotService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SlotStateBody::from(slots.get_slot(path.0.0).await?)))
}

/// Drops the pipeline's slot (also one Rosetta did not create: this is an explicit request).
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath, SlotDropQuery),
    responses(
        (status = 204, description = "Dropped, or there was none"),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "A consumer is attached (use `force=true`)", body = ErrorBody),
        (status = 422, description = "The id or `force` is invalid", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[delete("/pipelines/{id}/slot")]
pub(crate) async fn delete_pipeline_slot(
    slots: web::Data<dyn SlotService>,
    path: Path<PipelinePath>,
    query: Query<SlotDropQuery>,
) -> Result<HttpResponse, ApiError> {
    slots.drop_slot(path.0.0, query.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The cleanup tasks still to do, oldest first.
#[utoipa::path(
    tag = "cleanup-tasks",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, ordered by id", body = [CleanupTaskBody], headers(
            ("X-Total-Count" = u64, description = "Number of tasks"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/cleanup-tasks")]
pub(crate) async fn list_cleanup_tasks(
    req: HttpRequest,
    tasks: web::Data<dyn CleanupTaskService>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = tasks.list_cleanup_tasks(paging).await?;
    Ok(page(&req, paging, list, CleanupTaskBody::from))
}

/// Abandons a cleanup task: it is deleted without being done (its slot, if any, stays).
#[utoipa::path(
    tag = "cleanup-tasks",
    params(CleanupTaskPath),
    responses(
        (status = 204, description = "Abandoned"),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[delete("/cleanup-tasks/{id}")]
pub(crate) async fn delete_cleanup_task(
    tasks: web::Data<dyn CleanupTaskService>,
    path: Path<CleanupTaskPath>,
) -> Result<HttpResponse, ApiError> {
    tasks.abandon_cleanup_task(path.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
