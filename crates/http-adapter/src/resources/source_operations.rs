//! Acting on a source database: `{prefix}/sources/validate`, `…/sources/{id}/validate`,
//! `…/tables` and `…/publication`.

use actix_web::{HttpResponse, delete, get, post, put, web};
use rosetta_domain::{Preflight, PreflightCheck, Publication, PublicationTables, SourceTable, TableName};
use rosetta_ports::inbound::SourceOperationsService;
use serde::Serialize;
use utoipa::ToSchema;

use super::sources::{SourceCreate, SourcePath};
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::input::body::{Body, Fields, WriteBody, described_body};
use crate::input::path::Path;

/// One preflight check.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PreflightCheck)]
pub(crate) struct CheckBody {
    /// `connect`, `server_version`, `wal_level`, `replication_role`, `slot_capacity`,
    /// `wal_sender_capacity`, `max_slot_wal_keep_size`, `publication`, `replica_identity`,
    /// `monitoring_privilege` or `tls`.
    #[schema(example = "wal_level")]
    pub name: &'static str,
    /// `pass`, `warn`, `fail` or `skip`.
    #[schema(example = "fail")]
    pub status: &'static str,
    /// What was found.
    pub message: String,
    /// What to run or change; null on pass and skip.
    pub fix: Option<String>,
}

impl From<PreflightCheck> for CheckBody {
    fn from(check: PreflightCheck) -> Self {
        Self { name: check.name.as_str(), status: check.status.as_str(), message: check.message, fix: check.fix }
    }
}

/// Whether a source can feed CDC: `ok` is false when any check fails.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Preflight)]
pub(crate) struct PreflightBody {
    /// No check failed.
    pub ok: bool,
    /// Every check, in a fixed order.
    pub checks: Vec<CheckBody>,
}

impl From<Preflight> for PreflightBody {
    fn from(preflight: Preflight) -> Self {
        Self { ok: preflight.ok(), checks: preflight.checks.into_iter().map(CheckBody::from).collect() }
    }
}

/// A user table of the source.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SourceTable)]
pub(crate) struct TableBody {
    /// Schema.
    pub schema: String,
    /// Table name (case kept).
    pub name: String,
    /// Whether it has a primary key.
    pub has_primary_key: bool,
    /// `default`, `full`, `index` or `nothing`.
    #[schema(example = "default")]
    pub replica_identity: &'static str,
    /// Whether the source's publication publishes it.
    pub in_publication: bool,
    /// The planner's row estimate; null before the table was ever analysed.
    pub estimated_rows: Option<u64>,
}

impl From<SourceTable> for TableBody {
    fn from(table: SourceTable) -> Self {
        Self {
            schema: table.table.schema().to_owned(),
            name: table.table.name().to_owned(),
            has_primary_key: table.has_primary_key,
            replica_identity: table.replica_identity.as_str(),
            in_publication: table.in_publication,
            estimated_rows: table.estimated_rows,
        }
    }
}

/// The source's publication (named by its `publication_name`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Publication)]
pub(crate) struct PublicationBody {
    /// Its name.
    pub name: String,
    /// Whether it exists on the source.
    pub exists: bool,
    /// Whether it publishes every table.
    pub all_tables: bool,
    /// The tables it publishes (`schema.table`), sorted.
    #[schema(example = json!(["public.orders"]))]
    pub tables: Vec<String>,
}

impl From<Publication> for PublicationBody {
    fn from(publication: Publication) -> Self {
        Self {
            name: publication.name.into_inner(),
            exists: publication.exists,
            all_tables: publication.all_tables,
            tables: publication.tables.iter().map(TableName::to_string).collect(),
        }
    }
}

/// What the publication should publish, as the body names it.
#[derive(Debug)]
pub(crate) struct PublicationRequest {
    tables: Option<Vec<TableName>>,
    all_tables: Option<bool>,
}

impl WriteBody for PublicationRequest {
    fn read(f: &mut Fields) -> Option<Self> {
        let tables = f.optional_list::<TableName>(
            "tables",
            "Publish exactly these tables (`schema.table`, case kept); each must exist. Give this or `all_tables`.",
            (1, 1000),
        );
        let all_tables = f.optional::<bool>("all_tables", "`true`: publish every table (needs a superuser).");
        Some(Self { tables, all_tables })
    }
}

impl PublicationRequest {
    fn target(self) -> Result<PublicationTables, ApiError> {
        let problem = |msg: &str| ApiError::validation(vec![FieldError::new(&["body"], "value_error", msg)]);
        match (self.tables, self.all_tables) {
            (Some(tables), None | Some(false)) => PublicationTables::exactly(tables).map_err(|e| problem(&e.message)),
            (None, Some(true)) => Ok(PublicationTables::AllTables),
            (Some(_), Some(true)) => Err(problem("give either tables or all_tables: true, not both")),
            (None, None | Some(false)) => Err(problem("name the tables, or set all_tables: true")),
        }
    }
}

described_body!(
    PublicationUpdate for PublicationRequest,
    "The body of `PUT /sources/{id}/publication`: `{\"tables\": [...]}` or `{\"all_tables\": true}`."
);

/// Preflight of source settings that are not saved: connects with them and runs every check.
/// An unreachable source is a failed `connect` check (the others `skip`), never a 5xx.
#[utoipa::path(
    tag = "sources",
    request_body = SourceCreate,
    responses(
        (status = 200, description = "Every check", body = PreflightBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    )
)]
#[post("/sources/validate")]
pub(crate) async fn validate_source_settings(
    operations: web::Data<dyn SourceOperationsService>,
    body: Body<SourceCreate>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PreflightBody::from(operations.validate_settings(body.0).await?)))
}

/// Preflight of a saved source.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "Every check", body = PreflightBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
    )
)]
#[post("/sources/{id}/validate")]
pub(crate) async fn validate_source(
    operations: web::Data<dyn SourceOperationsService>,
    path: Path<SourcePath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PreflightBody::from(operations.validate_source(path.0.0).await?)))
}

/// The source's user tables, read live.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "Tables by schema and name", body = [TableBody]),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[get("/sources/{id}/tables")]
pub(crate) async fn list_source_tables(
    operations: web::Data<dyn SourceOperationsService>,
    path: Path<SourcePath>,
) -> Result<HttpResponse, ApiError> {
    let tables = operations.list_tables(path.0.0).await?;
    Ok(HttpResponse::Ok().json(tables.into_iter().map(TableBody::from).collect::<Vec<_>>()))
}

/// The source's publication, read live.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 200, description = "The publication (`exists: false` when there is none)", body = PublicationBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[get("/sources/{id}/publication")]
pub(crate) async fn get_source_publication(
    operations: web::Data<dyn SourceOperationsService>,
    path: Path<SourcePath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(PublicationBody::from(operations.get_publication(path.0.0).await?)))
}

/// Creates the publication named `publication_name`, or alters it to publish exactly the given
/// set; repeating it changes nothing.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    request_body = PublicationUpdate,
    responses(
        (status = 200, description = "The publication afterwards", body = PublicationBody),
        (status = 404, description = "No such source", body = ErrorBody),
        (status = 422, description = "Invalid body, or a table that does not exist (named)", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[put("/sources/{id}/publication")]
pub(crate) async fn put_source_publication(
    operations: web::Data<dyn SourceOperationsService>,
    path: Path<SourcePath>,
    body: Body<PublicationUpdate>,
) -> Result<HttpResponse, ApiError> {
    let target = body.0.target()?;
    Ok(HttpResponse::Ok().json(PublicationBody::from(operations.set_publication(path.0.0, target).await?)))
}

/// Drops the source's publication.
#[utoipa::path(
    tag = "sources",
    params(SourcePath),
    responses(
        (status = 204, description = "Dropped"),
        (status = 404, description = "No such source, or it has no publication", body = ErrorBody),
        (status = 409, description = "A pipeline of the source is started", body = ErrorBody),
        (status = 422, description = "The id is not an integer", body = ErrorBody),
        (status = 502, description = "The source refused or failed (`SourceError`)", body = ErrorBody),
        (status = 504, description = "The source did not answer in time (`SourceTimeout`)", body = ErrorBody),
    )
)]
#[delete("/sources/{id}/publication")]
pub(crate) async fn delete_source_publication(
    operations: web::Data<dyn SourceOperationsService>,
    path: Path<SourcePath>,
) -> Result<HttpResponse, ApiError> {
    operations.drop_publication(path.0.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
