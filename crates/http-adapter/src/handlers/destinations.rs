//! `{prefix}/destinations`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{DestinationId, DestinationPatch, NewDestination};
use rosetta_ports::inbound::DestinationService;

use super::{created, page};
use crate::body::Body;
use crate::dto::{DestinationBody, DestinationCreate, DestinationUpdate};
use crate::error::{ApiError, ErrorBody};
use crate::params::{Cascade, DeleteQuery, Id, ListQuery, Paging};

/// Creates a destination.
#[utoipa::path(
    tag = "destinations",
    request_body = DestinationCreate,
    responses(
        (status = 201, description = "Created", body = DestinationBody,
            headers(("Location" = String, description = "The new destination's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid body (every problem listed)", body = ErrorBody),
    )
)]
#[post("/destinations")]
pub(crate) async fn create_destination(
    req: HttpRequest,
    destinations: web::Data<dyn DestinationService>,
    body: Body<NewDestination>,
) -> Result<HttpResponse, ApiError> {
    let destination = destinations.create_destination(body.0).await?;
    Ok(created(&req, destination.id.get(), DestinationBody::from(destination)))
}

/// Lists destinations by id.
#[utoipa::path(
    tag = "destinations",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, ordered by id", body = [DestinationBody], headers(
            ("X-Total-Count" = u64, description = "Number of destinations"),
            ("Link" = String, description = "`rel=\"next\"` / `rel=\"prev\"` page URLs"),
        )),
        (status = 422, description = "Invalid `skip` or `limit`", body = ErrorBody),
    )
)]
#[get("/destinations")]
pub(crate) async fn list_destinations(
    req: HttpRequest,
    destinations: web::Data<dyn DestinationService>,
    paging: Paging,
) -> Result<HttpResponse, ApiError> {
    let list = destinations.list_destinations(paging.0).await?;
    Ok(page(&req, paging.0, list, DestinationBody::from))
}

/// Reads a destination.
#[utoipa::path(
    tag = "destinations",
    params(("id" = i64, Path, description = "Destination id")),
    responses(
        (status = 200, description = "The destination", body = DestinationBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/destinations/{id}")]
pub(crate) async fn get_destination(
    destinations: web::Data<dyn DestinationService>,
    id: Id<DestinationId>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.get_destination(id.0).await?)))
}

/// Updates a destination partially (same as `PATCH`): omitted fields are kept.
#[utoipa::path(
    tag = "destinations",
    params(("id" = i64, Path, description = "Destination id")),
    request_body = DestinationUpdate,
    responses(
        (status = 200, description = "The updated destination", body = DestinationBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id", body = ErrorBody),
    )
)]
#[put("/destinations/{id}")]
pub(crate) async fn put_destination(
    destinations: web::Data<dyn DestinationService>,
    id: Id<DestinationId>,
    body: Body<DestinationPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.update_destination(id.0, body.0).await?)))
}

/// Updates a destination partially: omitted fields are kept, `null` clears a field, the passphrase included.
#[utoipa::path(
    tag = "destinations",
    params(("id" = i64, Path, description = "Destination id")),
    request_body = DestinationUpdate,
    responses(
        (status = 200, description = "The updated destination", body = DestinationBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body or id", body = ErrorBody),
    )
)]
#[patch("/destinations/{id}")]
pub(crate) async fn patch_destination(
    destinations: web::Data<dyn DestinationService>,
    id: Id<DestinationId>,
    body: Body<DestinationPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.update_destination(id.0, body.0).await?)))
}

/// Deletes a destination; refused while pipelines use it unless `cascade=true`.
#[utoipa::path(
    tag = "destinations",
    params(("id" = i64, Path, description = "Destination id"), DeleteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 409, description = "Pipelines still use the destination", body = ErrorBody),
        (status = 422, description = "Invalid id or `cascade`", body = ErrorBody),
    )
)]
#[delete("/destinations/{id}")]
pub(crate) async fn delete_destination(
    destinations: web::Data<dyn DestinationService>,
    id: Id<DestinationId>,
    cascade: Cascade,
) -> Result<HttpResponse, ApiError> {
    destinations.delete_destination(id.0, cascade.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
