//! `{prefix}/destinations`: Snowflake warehouses to replicate into.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{
    Destination, DestinationId, DestinationName, DestinationPatch, NewDestination, Secret, ShortText, SnowflakeAccount,
    SnowflakeSettings,
};
use rosetta_ports::inbound::DestinationService;
use serde::Serialize;
use utoipa::ToSchema;

use super::{DeleteQuery, ListQuery, created, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::Path;
use crate::input::query::Query;

/// A destination as read: the key passphrase is never returned, only whether one is stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Destination)]
pub(crate) struct DestinationBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    pub name: String,
    /// Snowflake account identifier.
    pub snowflake_account: Option<String>,
    /// Login user.
    pub snowflake_user: Option<String>,
    /// Database.
    pub snowflake_database: Option<String>,
    /// Schema.
    pub snowflake_schema: Option<String>,
    /// Role.
    pub snowflake_role: Option<String>,
    /// Path of the private key on the CDC engine's host.
    pub snowflake_private_key_path: Option<String>,
    /// Host, when not derived from the account.
    pub snowflake_host: Option<String>,
    /// Whether a private-key passphrase is stored.
    pub has_private_key_passphrase: bool,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub updated_at: String,
}

impl From<Destination> for DestinationBody {
    fn from(destination: Destination) -> Self {
        let settings = destination.settings;
        Self {
            id: destination.id.get(),
            name: destination.name.into_inner(),
            snowflake_account: settings.snowflake_account.map(Into::into),
            snowflake_user: settings.snowflake_user.map(Into::into),
            snowflake_database: settings.snowflake_database.map(Into::into),
            snowflake_schema: settings.snowflake_schema.map(Into::into),
            snowflake_role: settings.snowflake_role.map(Into::into),
            snowflake_private_key_path: settings.snowflake_private_key_path.map(Into::into),
            snowflake_host: settings.snowflake_host.map(Into::into),
            has_private_key_passphrase: destination.has_private_key_passphrase,
            created_at: timestamp(destination.created_at),
            updated_at: timestamp(destination.updated_at),
        }
    }
}

const NAME: &str = "Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.";
const ACCOUNT: &str = "Snowflake account identifier: 1–255 letters, digits, `.`, `-`.";
const USER: &str = "Login user (≤ 255 characters, no control characters).";
const DATABASE: &str = "Database (≤ 255 characters, no control characters).";
const SCHEMA: &str = "Schema (≤ 255 characters, no control characters).";
const ROLE: &str = "Role (≤ 255 characters, no control characters).";
const KEY_PATH: &str = "Path of the private key on the CDC engine's host (≤ 255 characters).";
const HOST: &str = "Host, when not derived from the account (≤ 255 characters).";
const PASSPHRASE: &str = "Private-key passphrase (write-only: never returned); `null` removes it.";

impl WriteBody for NewDestination {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required::<DestinationName>("name", NAME);
        let settings = SnowflakeSettings {
            snowflake_account: f.nullable::<SnowflakeAccount>("snowflake_account", ACCOUNT).apply(None),
            snowflake_user: f.nullable::<ShortText>("snowflake_user", USER).apply(None),
            snowflake_database: f.nullable::<ShortText>("snowflake_database", DATABASE).apply(None),
            snowflake_schema: f.nullable::<ShortText>("snowflake_schema", SCHEMA).apply(None),
            snowflake_role: f.nullable::<ShortText>("snowflake_role", ROLE).apply(None),
            snowflake_private_key_path: f.nullable::<ShortText>("snowflake_private_key_path", KEY_PATH).apply(None),
            snowflake_host: f.nullable::<ShortText>("snowflake_host", HOST).apply(None),
        };
        let passphrase = f.nullable::<Secret>("snowflake_private_key_passphrase", PASSPHRASE).apply(None);
        Some(Self { name: name?, settings, snowflake_private_key_passphrase: passphrase })
    }
}

impl WriteBody for DestinationPatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", NAME),
            snowflake_account: f.nullable("snowflake_account", ACCOUNT),
            snowflake_user: f.nullable("snowflake_user", USER),
            snowflake_database: f.nullable("snowflake_database", DATABASE),
            snowflake_schema: f.nullable("snowflake_schema", SCHEMA),
            snowflake_role: f.nullable("snowflake_role", ROLE),
            snowflake_private_key_path: f.nullable("snowflake_private_key_path", KEY_PATH),
            snowflake_host: f.nullable("snowflake_host", HOST),
            snowflake_private_key_passphrase: f.nullable("snowflake_private_key_passphrase", PASSPHRASE),
        })
    }
}

described_body!(DestinationCreate for NewDestination, "The body of `POST /destinations`.");
described_body!(
    DestinationUpdate for DestinationPatch,
    "The body of `PUT`/`PATCH /destinations/{id}`: every field optional (omitted = unchanged); `null` clears any \
     field but `name`."
);
id_path!(
    /// `/destinations/{id}`.
    DestinationPath(DestinationId),
    "id",
    "Destination id"
);

/// Creates a destination.
#[utoipa::path(
    tag = "destinations",
    request_body = DestinationCreate,
    responses(
        (status = 201, description = "Created", body = DestinationBody,
            headers(("Location" = String, description = "The new destination's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body (every problem listed)", body = ErrorBody),
    )
)]
#[post("/destinations")]
pub(crate) async fn create_destination(
    req: HttpRequest,
    destinations: web::Data<dyn DestinationService>,
    body: Body<DestinationCreate>,
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
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = destinations.list_destinations(paging).await?;
    Ok(page(&req, paging, list, DestinationBody::from))
}

/// Reads a destination.
#[utoipa::path(
    tag = "destinations",
    params(DestinationPath),
    responses(
        (status = 200, description = "The destination", body = DestinationBody),
        (status = 404, description = "No such destination", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/destinations/{id}")]
pub(crate) async fn get_destination(
    destinations: web::Data<dyn DestinationService>,
    path: Path<DestinationPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.get_destination(path.0.0).await?)))
}

/// Updates a destination partially (same as `PATCH`): omitted fields are kept.
#[utoipa::path(
    tag = "destinations",
    params(DestinationPath),
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
    path: Path<DestinationPath>,
    body: Body<DestinationUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.update_destination(path.0.0, body.0).await?)))
}

/// Updates a destination partially: omitted fields are kept, `null` clears a field, the passphrase included.
#[utoipa::path(
    tag = "destinations",
    params(DestinationPath),
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
    path: Path<DestinationPath>,
    body: Body<DestinationUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(DestinationBody::from(destinations.update_destination(path.0.0, body.0).await?)))
}

/// Deletes a destination; refused while pipelines use it unless `cascade=true`.
#[utoipa::path(
    tag = "destinations",
    params(DestinationPath, DeleteQuery),
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
    path: Path<DestinationPath>,
    query: Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    destinations.delete_destination(path.0.0, query.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
