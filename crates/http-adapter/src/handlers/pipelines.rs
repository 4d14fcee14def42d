//! `{prefix}/pipelines` and the lifecycle actions.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{NewPipeline, PipelineId, PipelinePatch, PipelineStatus};
use rosetta_ports::inbound::PipelineService;

use super::{created, page};
use crate::body::Body;
use crate::dto::{PipelineBody, PipelineCreate, PipelineUpdate};
use crate::error::{ApiError, ErrorBody};
use crate::params::{Id, ListQuery, Paging};

/// Creates a pipeline (and its metadata: `RUNNING`, or `PAUSED` when created with `PAUSE`).
#[utoipa::path(
    tag = "pipelines",
    request_body = PipelineCreate,
    responses(
        (status = 201, description = "Created", body = PipelineBody,
            headers(("Location" = String, description = "The new pipeline's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid body, or `source_id`/`destination_id` names nothing", body = ErrorBody),
    )
)]
#[post("/pipelines")]
pub(crate) async fn create_pipeline(
    req: HttpRequest,
    pipelines: web::Data<dyn PipelineService>,
    body: Body<NewPipeline>,
) -> Result<HttpResponse, ApiError> {
    let details = pipelines.create_pipeline(body.0).await?;
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
    paging: Paging,
) -> Result<HttpResponse, ApiError> {
    let list = pipelines.list_pipelines(paging.0).await?;
    Ok(page(&req, paging.0, list, PipelineBody::from))
}

/// Reads a pipeline with its source, destination and metadata.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/pipelines/{id}")]
pub(crate) async fn get_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.get_pipeline(id.0).await?)))
}

/// Updates a pipeline partially (same as `PATCH`).
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    request_body = PipelineUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id, or a reference names nothing", body = ErrorBody),
    )
)]
#[put("/pipelines/{id}")]
pub(crate) async fn put_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
    body: Body<PipelinePatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.update_pipeline(id.0, body.0).await?)))
}

/// Updates a pipeline partially; a `status` has exactly the effect of the matching action.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    request_body = PipelineUpdate,
    responses(
        (status = 200, description = "The updated pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id, or a reference names nothing", body = ErrorBody),
    )
)]
#[patch("/pipelines/{id}")]
pub(crate) async fn patch_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
    body: Body<PipelinePatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.update_pipeline(id.0, body.0).await?)))
}

/// Deletes a pipeline and its metadata.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[delete("/pipelines/{id}")]
pub(crate) async fn delete_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
) -> Result<HttpResponse, ApiError> {
    pipelines.delete_pipeline(id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts a pipeline: desired `START`, observed `RUNNING`, `last_start_at` now, error cleared.
/// Idempotent; any request body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/start")]
pub(crate) async fn start_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.set_pipeline_status(id.0, PipelineStatus::Start).await?)))
}

/// Pauses a pipeline: desired `PAUSE`, observed `PAUSED`. Idempotent; any request body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/pause")]
pub(crate) async fn pause_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.set_pipeline_status(id.0, PipelineStatus::Pause).await?)))
}

/// Refreshes a pipeline: desired `REFRESH`, observed state unchanged. Idempotent; any request
/// body is ignored.
#[utoipa::path(
    tag = "pipelines",
    params(("id" = i64, Path, description = "Pipeline id")),
    responses(
        (status = 200, description = "The pipeline", body = PipelineBody),
        (status = 404, description = "No such pipeline", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/pipelines/{id}/refresh")]
pub(crate) async fn refresh_pipeline(
    pipelines: web::Data<dyn PipelineService>,
    id: Id<PipelineId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PipelineBody::from(pipelines.set_pipeline_status(id.0, PipelineStatus::Refresh).await?)))
}
