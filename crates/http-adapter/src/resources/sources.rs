//! `{prefix}/sources`: PostgreSQL databases to replicate from.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use rosetta_domain::{
    NewSource, PgDatabase, PgHost, PgPort, PgSslMode, PgSslRootCert, PgUsername, PublicationName, ReplicationId,
    Secret, Source, SourceId, SourceName, SourcePatch,
};
use rosetta_ports::inbound::SourceService;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{DeleteQuery, ListQuery, created, id_path, page, timestamp};
use crate::error::{ApiError, ErrorBody};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::Path;
use crate::input::query::Query;

/// libpq's `sslmode`: how connections to a source use TLS.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = PgSslMode)]
pub(crate) enum PgSslModeBody {
    /// Plain text only.
    Disable,
    /// TLS if the server offers it, else plain text; the certificate is not checked.
    Prefer,
    /// TLS; the certificate is checked only when `pg_sslrootcert` is set.
    Require,
    /// TLS with a certificate chain to a trusted root.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name `pg_host`.
    VerifyFull,
}

impl From<PgSslMode> for PgSslModeBody {
    fn from(mode: PgSslMode) -> Self {
        match mode {
            PgSslMode::Disable => Self::Disable,
            PgSslMode::Prefer => Self::Prefer,
            PgSslMode::Require => Self::Require,
            PgSslMode::VerifyCa => Self::VerifyCa,
            PgSslMode::VerifyFull => Self::VerifyFull,
        }
    }
}

/// A source as read: the password is never returned, only whether one is stored.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Source)]
pub(crate) struct SourceBody {
    /// Identifier.
    pub id: i64,
    /// Unique name, lower-cased.
    #[schema(example = "orders-primary")]
    pub name: String,
    /// PostgreSQL host.
    pub pg_host: String,
    /// PostgreSQL port.
    #[schema(example = 5432)]
    pub pg_port: u16,
    /// Database to replicate from.
    pub pg_database: String,
    /// Login role.
    pub pg_username: String,
    /// Whether a password is stored.
    pub has_password: bool,
    /// How connections to the source use TLS.
    pub pg_sslmode: PgSslModeBody,
    /// The CA certificates (PEM) trusted to verify the server; `null`: the system's roots.
    pub pg_sslrootcert: Option<String>,
    /// Publication the CDC engine subscribes to.
    pub publication_name: String,
    /// The CDC engine's replication identifier.
    pub replication_id: i64,
    /// Creation time (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    #[schema(format = DateTime, example = "2026-01-14T10:06:33.454666Z")]
    pub updated_at: String,
}

impl From<Source> for SourceBody {
    fn from(source: Source) -> Self {
        Self {
            id: source.id.get(),
            name: source.name.into_inner(),
            pg_host: source.pg_host.into_inner(),
            pg_port: source.pg_port.get(),
            pg_database: source.pg_database.into_inner(),
            pg_username: source.pg_username.into_inner(),
            has_password: source.has_password,
            pg_sslmode: source.pg_sslmode.into(),
            pg_sslrootcert: source.pg_sslrootcert.map(String::from),
            publication_name: source.publication_name.into_inner(),
            replication_id: source.replication_id.get(),
            created_at: timestamp(source.created_at),
            updated_at: timestamp(source.updated_at),
        }
    }
}

const NAME: &str = "Unique name: 1–255 letters, digits, `-`, `_`; stored lower-cased.";
const HOST: &str = "PostgreSQL host: 1–255 characters, no white space or control characters.";
const PORT: &str = "PostgreSQL port.";
const DATABASE: &str = "Database to replicate from: 1–255 characters, no control characters.";
const USERNAME: &str = "Login role: 1–255 characters, no control characters.";
const PASSWORD: &str = "Login password (write-only: never returned).";
const SSLMODE: &str = "How connections use TLS, as libpq's `sslmode`: `disable`, `prefer` (TLS when the server \
     offers it), `require`, `verify-ca` (a chain to a trusted root), `verify-full` (and the host name).";
const SSLROOTCERT: &str = "CA certificates (PEM, one or more `BEGIN CERTIFICATE` blocks) trusted to verify the \
     server with `verify-ca` / `verify-full` (and `require`); omitted or `null`: the system's roots.";
const PUBLICATION: &str = "Publication the CDC engine subscribes to: a PostgreSQL identifier of at most 63 bytes.";
const REPLICATION_ID: &str = "The CDC engine's replication identifier (≥ 0).";

impl WriteBody for NewSource {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required::<SourceName>("name", NAME);
        let pg_host = f.required::<PgHost>("pg_host", HOST);
        let pg_port = f.defaulted("pg_port", PORT, PgPort::DEFAULT, json!(PgPort::DEFAULT.get()));
        let pg_database = f.required::<PgDatabase>("pg_database", DATABASE);
        let pg_username = f.required::<PgUsername>("pg_username", USERNAME);
        let pg_password = f.nullable::<Secret>("pg_password", PASSWORD);
        let pg_sslmode = f.defaulted("pg_sslmode", SSLMODE, PgSslMode::default(), json!(PgSslMode::default().as_str()));
        let pg_sslrootcert = f.nullable::<PgSslRootCert>("pg_sslrootcert", SSLROOTCERT);
        let publication_name = f.required::<PublicationName>("publication_name", PUBLICATION);
        let replication_id = f.required::<ReplicationId>("replication_id", REPLICATION_ID);
        Some(Self {
            name: name?,
            pg_host: pg_host?,
            pg_port: pg_port?,
            pg_database: pg_database?,
            pg_username: pg_username?,
            pg_password: pg_password.apply(None),
            pg_sslmode: pg_sslmode?,
            pg_sslrootcert: pg_sslrootcert.apply(None),
            publication_name: publication_name?,
            replication_id: replication_id?,
        })
    }
}

impl WriteBody for SourcePatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", NAME),
            pg_host: f.optional("pg_host", HOST),
            pg_port: f.optional("pg_port", PORT),
            pg_database: f.optional("pg_database", DATABASE),
            pg_username: f.optional("pg_username", USERNAME),
            pg_password: f.nullable("pg_password", "Login password (write-only); `null` removes it."),
            pg_sslmode: f.optional("pg_sslmode", SSLMODE),
            pg_sslrootcert: f.nullable("pg_sslrootcert", SSLROOTCERT),
            publication_name: f.optional("publication_name", PUBLICATION),
            replication_id: f.optional("replication_id", REPLICATION_ID),
        })
    }
}

described_body!(SourceCreate for NewSource, "The body of `POST /sources`.");
described_body!(
    SourceUpdate for SourcePatch,
    "The body of `PUT`/`PATCH /sources/{id}`: every field optional (omitted = unchanged); `pg_password: null` \
     removes the password."
);
id_path!(
    /// `/sources/{id}`.
    SourcePath(SourceId),
    "id",
    "Source id"
);

/// Creates a source.
#[utoipa::path(
    tag = "sources",
    request_body = SourceCreate,
    responses(
        (status = 201, description = "Created", body = SourceBody,
            headers(("Location" = String, description = "The new source's URL"))),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Invalid body (every problem listed)", body = ErrorBody),
    )
)]
#[post("/sources")]
pub(crate) async fn create_source(
    req: HttpRequest,
    sources: web::Data<dyn SourceService>,
    body: Body<SourceCreate>,
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
    query: Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let paging = query.0.0;
    let list = sources.list_sources(paging).await?;
    Ok(page(&req, paging, list, SourceBody::from))
}

/// Reads a source.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "The source", body = SourceBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[get("/sources/{id}")]
pub(crate) async fn get_source(
    sources: web::Data<dyn SourceService>,
    path: Path<SourcePath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.get_source(path.0.0).await?)))
}

/// Updates a source partially (same as `PATCH`): omitted fields are kept.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
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
    path: Path<SourcePath>,
    body: Body<SourceUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.update_source(path.0.0, body.0).await?)))
}

/// Updates a source partially: omitted fields are kept, `pg_password: null` removes the password.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
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
    path: Path<SourcePath>,
    body: Body<SourceUpdate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(SourceBody::from(sources.update_source(path.0.0, body.0).await?)))
}

/// Deletes a source; refused while pipelines use it unless `cascade=true`.
#[utoipa::path(
    tag = "sources",
    params(SourcePath, DeleteQuery),
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
    path: Path<SourcePath>,
    query: Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    sources.delete_source(path.0.0, query.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
