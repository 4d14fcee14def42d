//! `{prefix}/sources`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{NewSource, SourceId, SourcePatch};
use rosetta_ports::inbound::SourceService;

use super::{created, page};
use crate::body::Body;
use crate::dto::{SourceBody, SourceCreate, SourceUpdate};
use crate::error::{ApiError, ErrorBody};
use crate::params::{Cascade, DeleteQuery, Id, ListQuery, Paging};

/// Creates a source.
#[utoipa::path(
    tag = "sources",
    request_body = SourceCreate,
    responses(
        (status = 201, description = "Created", body = SourceBody,
            headers(("Location" = String, description = "The new source's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid body (every problem listed)", body = ErrorBody),
    )
)]
#[post("/sources")]
pub(crate) async fn create_source(
    req: HttpRequest,
    sources: web::Data<dyn SourceService>,
    body: Body<NewSource>,
) -> Result<HttpResponse, ApiError> {
    let source = sources.create_source(body.0).await?;
    Ok(created(&req, source.id.get(), SourceBody::from(source)))
}

/// Lists sources by id.
#[utoipa::path(
    tag = "sources",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, ordered by id", body = [SourceBody], headers(
            ("X-Total-Count" = u64, description = "Number of sources"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/sources")]
pub(crate) async fn list_sources(
    req: HttpRequest,
    sources: web::Data<dyn SourceService>,
    paging: Paging,
) -> Result<HttpResponse, ApiError> {
    let list = sources.list_sources(paging.0).await?;
    Ok(page(&req, paging.0, list, SourceBody::from))
}

/// Reads a source.
#[utoipa::path(
    tag = "sources",
    params(("id" = i64, Path, description = "Source id")),
    responses(
        (status = 200, description = "The source", body = SourceBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/sources/{id}")]
pub(crate) async fn get_source(
    sources: web::Data<dyn SourceService>,
    id: Id<SourceId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.get_source(id.0).await?)))
}

/// Updates a source partially (same as `PATCH`): omitted fields are kept.
#[utoipa::path(
    tag = "sources",
    params(("id" = i64, Path, description = "Source id")),
    request_body = SourceUpdate,
    responses(
        (status = 200, description = "The updated source", body = SourceBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id", body = ErrorBody),
    )
)]
#[put("/sources/{id}")]
pub(crate) async fn put_source(
    sources: web::Data<dyn SourceService>,
    id: Id<SourceId>,
    body: Body<SourcePatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.update_source(id.0, body.0).await?)))
}

/// Updates a source partially: omitted fields are kept, `pg_password: null` removes the password.
#[utoipa::path(
    tag = "sources",
    params(("id" = i64, Path, description = "Source id")),
    request_body = SourceUpdate,
    responses(
        (status = 200, description = "The updated source", body = SourceBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id", body = ErrorBody),
    )
)]
#[patch("/sources/{id}")]
pub(crate) async fn patch_source(
    sources: web::Data<dyn SourceService>,
    id: Id<SourceId>,
    body: Body<SourcePatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.update_source(id.0, body.0).await?)))
}

/// Deletes a source; refused while pipelines use it unless `cascade=true`.
#[utoipa::path(
    tag = "sources",
    params(("id" = i64, Path, description = "Source id"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 409, description = "Pipelines still use the source", body = ErrorBody),
        (status = 422, description = "Invalid id or `cascade`", body = ErrorBody),
    )
)]
#[delete("/sources/{id}")]
pub(crate) async fn delete_source(
    sources: web::Data<dyn SourceService>,
    id: Id<SourceId>,
    cascade: Cascade,
) -> Result<HttpResponse, ApiError> {
    sources.delete_source(id.0, cascade.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
