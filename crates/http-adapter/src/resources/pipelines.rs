//! `{prefix}/pipelines` and the lifecycle actions.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{
    DestinationId, NewPipeline, PipelineDetails, PipelineId, PipelineMetadata, PipelineMetadataStatus, PipelineName,
    PipelinePatch, PipelineStatus, SlotName, SourceId,
};
use rosetta_ports::inbound::PipelineService;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::destinations::DestinationBody;
use super::sources::SourceBody;
use super::{ListQuery, created, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::Path;
use crate::input::query::Query;

/// The desired state of a pipeline.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = PipelineStatus)]
pub(crate) enum PipelineStatusBody {
    /// Replicate.
    Start,
    /// Stop replicating, keep the position.
    Pause,
    /// Re-copy the tables, then replicate.
    Refresh,
}

impl From<PipelineStatus> for PipelineStatusBody {
    fn from(status: PipelineStatus) -> Self {
        match status {
            PipelineStatus::Start => Self::Start,
            PipelineStatus::Pause => Self::Pause,
            PipelineStatus::Refresh => Self::Refresh,
        }
    }
}

/// The observed state of a pipeline.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(as = PipelineMetadataStatus)]
pub(crate) enum PipelineMetadataStatusBody {
    /// The engine replicates.
    Running,
    /// The engine holds.
    Paused,
    /// The engine stopped on an error (see `last_error`).
    Error,
}

impl From<PipelineMetadataStatus> for PipelineMetadataStatusBody {
    fn from(status: PipelineMetadataStatus) -> Self {
        match status {
            PipelineMetadataStatus::Running => Self::Running,
            PipelineMetadataStatus::Paused => Self::Paused,
            PipelineMetadataStatus::Error => Self::Error,
        }
    }
}

/// The observed runtime state of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PipelineMetadata)]
pub(crate) struct PipelineMetadataBody {
    /// The pipeline this state belongs to.
    pub pipeline_id: i64,
    /// Observed status.
    pub status: PipelineMetadataStatusBody,
    /// The engine's last error.
    pub last_error: Option<String>,
    /// When the last error happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_error_at: Option<String>,
    /// When the pipeline was last started (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub last_start_at: Option<String>,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<PipelineMetadata> for PipelineMetadataBody {
    fn from(metadata: PipelineMetadata) -> Self {
        Self {
            pipeline_id: metadata.pipeline_id.get(),
            status: metadata.status.into(),
            last_error: metadata.last_error,
            last_error_at: metadata.last_error_at.map(timestamp),
            last_start_at: metadata.last_start_at.map(timestamp),
            created_at: timestamp(metadata.created_at),
            updated_at: timestamp(metadata.updated_at),
        }
    }
}

/// A pipeline with its source, destination and observed state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Pipeline)]
pub(crate) struct PipelineBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    pub name: String,
    /// Source id.
    pub source_id: i64,
    /// Destination id.
    pub destination_id: i64,
    /// Desired status.
    pub status: PipelineStatusBody,
    /// The replication slot on the source it reads through (unique per source).
    #[schema(example = "rosetta_1")]
    pub slot_name: String,
    /// Whether Rosetta created that slot (and so drops it with the pipeline). Read-only.
    pub slot_managed: bool,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The source.
    pub source: SourceBody,
    /// The destination.
    pub destination: DestinationBody,
    /// The observed state.
    pub pipeline_metadata: PipelineMetadataBody,
}

impl From<PipelineDetails> for PipelineBody {
    fn from(details: PipelineDetails) -> Self {
        let pipeline = details.pipeline;
        Self {
            id: pipeline.id.get(),
            name: pipeline.name.into_inner(),
            source_id: pipeline.source_id.get(),
            destination_id: pipeline.destination_id.get(),
            status: pipeline.status.into(),
            slot_name: pipeline.slot_name.into_inner(),
            slot_managed: pipeline.slot_managed,
            created_at: timestamp(pipeline.created_at),
            updated_at: timestamp(pipeline.updated_at),
            source: details.source.into(),
            destination: details.destination.into(),
            pipeline_metadata: pipeline.metadata.into(),
        }
    }
}

const NAME: &str = "Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.";
const SOURCE: &str = "An existing source (else 422 on this field).";
const DESTINATION: &str = "An existing destination (else 422 on this field).";

/// A pipeline to create, and whether to create its slot first.
#[derive(Debug)]
pub(crate) struct PipelineCreation {
    pipeline: NewPipeline,
    provision: bool,
}

impl WriteBody for PipelineCreation {
    fn read(f: &mut Fields) -> Option<Self> {
        let pipeline = NewPipeline::read(f);
        let provision = f.defaulted(
            "provision",
            "Create the pipeline's slot on the source first; if that fails, no pipeline is created.",
            false,
            json!(false),
        );
        Some(Self { pipeline: pipeline?, provision: provision? })
    }
}

impl WriteBody for NewPipeline {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required::<PipelineName>("name", NAME);
        let source_id = f.required::<SourceId>("source_id", SOURCE);
        let destination_id = f.required::<DestinationId>("destination_id", DESTINATION);
        let status = f.defaulted(
            "status",
            "Desired status; `START` when omitted.",
            PipelineStatus::default(),
            json!(PipelineStatus::default().as_str()),
        );
        let slot_name = f.optional::<SlotName>(
            "slot_name",
            "Its replication slot: 1–63 of `[a-z0-9_]`, unique per source; `rosetta_<pipeline id>` when omitted.",
        );
        Some(Self { name: name?, source_id: source_id?, destination_id: destination_id?, status: status?, slot_name })
    }
}

impl WriteBody for PipelinePatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", NAME),
            source_id: f.optional("source_id", SOURCE),
            destination_id: f.optional("destination_id", DESTINATION),
            status: f.optional("status", "Requested status: exactly the effect of the matching action."),
        })
    }
}

described_body!(PipelineCreate for PipelineCreation, "The body of `POST /pipelines`.");
described_body!(
    PipelineUpdate for PipelinePatch,
    "The body of `PUT`/`PATCH /pipelines/{id}`: every field optional (omitted = unchanged). A `status` has exactly \
     the effect of the matching action."
);
id_path!(
    /// `/pipelines/{id}`.
    PipelinePath(PipelineId),
    "id",
    "Pipeline id"
);

/// Creates a pipeline (and its metadata: `RUNNING`, or `PAUSED` when created with `PAUSE`).
#[utoipa::path(
    tag = "pipelines",
    request_body = PipelineCreate,
    responses(
        (status = 201, description = "Created", body = PipelineBody,
            headers(("Location" = String, description = "The new pipeline's URL"))),
        (status = 409, description = "The name, or on that source the slot name, is taken; with `provision`, a \
            slot of that name that is not a logical slot of the database", body = ErrorBody),
        (status = 422, description = "Invalid body, or `source_id`/`destination_id` names nothing", body = ErrorBody),
        (status = 502, description = "With `provision`: the source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "With `provision`: the source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[post("/pipelines")]
pub(crate) async fn create_pipeline(
    req: HttpRequest,
    pipelines: web::Data<dyn PipelineService>,
    body: Body<PipelineCreate>,
) -> Result<HttpResponse, ApiError> {
    let PipelineCreation { pipeline, provision } = body.0;
    let details = pipelines.create_pipeline(pipeline, provision).await?;
    Ok(created(&req, details.pipeline.id.get(), PipelineBody::from(details)))
}

/// Lists pipelines by id, each with its source, destination and metadata.
#[utoipa::path(
    tag = "pipelines",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, ordered by id", body = [PipelineBody], headers(
            ("X-Total-Count" = u64, description = "Number of pipelines"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/pipelines")]
pub(crate) async fn list_pipelines(
    req: HttpRequest,
    pipelines: web::Data<dyn PipelineService>,
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = pipelines.list_pipelines(paging).await?;
    Ok(page(&req, paging, list, PipelineBody::from))
}

/// Reads a pipeline with its source, destination and metadata.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/pipelines/{id}")]
pub(crate) async fn get_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.get_pipeline(path.0.0).await?)))
}

/// Updates a pipeline partially (same as `PATCH`).
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    request_body = PipelineUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The name is taken, or a pipeline that owns its slot would move to another \
            source", body = ErrorBody),
        (status = 422, description = "Invalid body or id, or a reference names nothing", body = ErrorBody),
    )
)]
#[put("/pipelines/{id}")]
pub(crate) async fn put_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
    body: Body<PipelineUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.update_pipeline(path.0.0, body.0).await?)))
}

/// Updates a pipeline partially; a `status` has exactly the effect of the matching action.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    request_body = PipelineUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The name is taken, or a pipeline that owns its slot would move to another \
            source", body = ErrorBody),
        (status = 422, description = "Invalid body or id, or a reference names nothing", body = ErrorBody),
    )
)]
#[patch("/pipelines/{id}")]
pub(crate) async fn patch_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
    body: Body<PipelineUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.update_pipeline(path.0.0, body.0).await?)))
}

/// Deletes a pipeline and its metadata, and drops its managed slot; when the slot cannot be
/// dropped now (source unreachable, consumer attached), a cleanup task retries until it is gone.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[delete("/pipelines/{id}")]
pub(crate) async fn delete_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    pipelines.delete_pipeline(path.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Asks `pipelines` for `status` and answers with the pipeline.
async fn act(
    pipelines: &dyn PipelineService,
    path: Path<PipelinePath>,
    status: PipelineStatus,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.set_pipeline_status(path.0.0, status).await?)))
}

/// Starts a pipeline: desired `START`, observed `RUNNING`, `last_start_at` now, error cleared.
/// Idempotent; any request body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/start")]
pub(crate) async fn start_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    act(pipelines.get_ref(), path, PipelineStatus::Start).await
}

/// Pauses a pipeline: desired `PAUSE`, observed `PAUSED`. Idempotent; any request body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/pause")]
pub(crate) async fn pause_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    act(pipelines.get_ref(), path, PipelineStatus::Pause).await
}

/// Refreshes a pipeline: desired `REFRESH`, observed state unchanged. Idempotent; any request
/// body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(PipelinePath),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/refresh")]
pub(crate) async fn refresh_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    path: Path<PipelinePath>,
) -> Result<HttpResponse, ApiError> {
    act(pipelines.get_ref(), path, PipelineStatus::Refresh).await
}
