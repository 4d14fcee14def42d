//! Pipelines and their metadata: rows, the one query that reads a pipeline with everything it
//! references, and [`PostgresPipelineRepository`].

use async_trait::async_trait;
use diesel::dsl::AsSelect;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncConnectionCore, AsyncPgConnection, RunQueryDsl};
use std::sync::Arc;

use rosetta_domain::{
    CleanupTask, DestinationId, NewPipeline, Page, PageRequest, Pipeline, PipelineDetails, PipelineId,
    PipelineMetadata, PipelineMetadataStatus, PipelineName, PipelinePatch, PipelineStatus, PipelineSummary, SlotName,
    SourceId, Timestamp, Transition,
};
use rosetta_ports::EntityKind;
use rosetta_ports::outbound::{PipelineRepository, RepositoryError, SecretCipher, SourcePipeline};

use crate::cleanup::{Deleted, record_slot_cleanups};

use crate::destination::DestinationRow;
use crate::error::{CorruptRow, Failure, StoredRow, not_found, violated_constraint};
use crate::paging::{offset_limit, total_count};
use crate::schema::constraints::{
    PIPELINES_DESTINATION_ID_FKEY, PIPELINES_NAME_KEY, PIPELINES_SOURCE_ID_FKEY, PIPELINES_SOURCE_ID_SLOT_NAME_KEY,
};
use crate::schema::{destinations, pipeline_metadata, pipelines, sources};
use crate::source::SourceRow;
use crate::store::PostgresStore;

/// A pipeline row (desired state).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = pipelines, check_for_backend(Pg))]
struct PipelineRow {
    id: i64,
    name: String,
    source_id: i64,
    destination_id: i64,
    status: String,
    created_at: Timestamp,
    updated_at: Timestamp,
    slot_name: String,
    slot_managed: bool,
}

impl PipelineRow {
    fn into_domain(self, metadata: PipelineMetadata) -> Result<Pipeline, CorruptRow> {
        let row = StoredRow::new("pipelines", self.id);
        Ok(Pipeline {
            id: PipelineId::new(self.id),
            name: row.field("name", PipelineName::parse(self.name))?,
            source_id: SourceId::new(self.source_id),
            destination_id: DestinationId::new(self.destination_id),
            status: row.field("status", self.status.parse::<PipelineStatus>())?,
            slot_name: row.field("slot_name", SlotName::parse(self.slot_name))?,
            slot_managed: self.slot_managed,
            metadata,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// A pipeline_metadata row (observed state).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = pipeline_metadata, check_for_backend(Pg))]
struct MetadataRow {
    pipeline_id: i64,
    status: String,
    last_error: Option<String>,
    last_error_at: Option<Timestamp>,
    last_start_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl MetadataRow {
    fn into_domain(self) -> Result<PipelineMetadata, CorruptRow> {
        let row = StoredRow::new("pipeline_metadata", self.pipeline_id);
        Ok(PipelineMetadata {
            pipeline_id: PipelineId::new(self.pipeline_id),
            status: row.field("status", self.status.parse::<PipelineMetadataStatus>())?,
            last_error: self.last_error,
            last_error_at: self.last_error_at,
            last_start_at: self.last_start_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of a new pipeline.
#[derive(Insertable)]
#[diesel(table_name = pipelines)]
struct NewPipelineRow<'a> {
    name: &'a str,
    source_id: i64,
    destination_id: i64,
    status: &'a str,
    /// `None`: the column default, which the insert trigger turns into `rosetta_<id>`.
    slot_name: Option<&'a str>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// The columns of a new metadata row.
#[derive(Insertable)]
#[diesel(table_name = pipeline_metadata)]
struct NewMetadataRow<'a> {
    pipeline_id: i64,
    status: &'a str,
    last_error: Option<&'a str>,
    last_error_at: Option<Timestamp>,
    last_start_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl<'a> NewMetadataRow<'a> {
    fn new(metadata: &'a PipelineMetadata) -> Self {
        Self {
            pipeline_id: metadata.pipeline_id.get(),
            status: metadata.status.as_str(),
            last_error: metadata.last_error.as_deref(),
            last_error_at: metadata.last_error_at,
            last_start_at: metadata.last_start_at,
            created_at: metadata.created_at,
            updated_at: metadata.updated_at,
        }
    }
}

/// The changed columns of a pipeline: `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = pipelines)]
struct PipelineChangeset<'a> {
    name: Option<&'a str>,
    source_id: Option<i64>,
    destination_id: Option<i64>,
    status: Option<&'a str>,
    updated_at: Timestamp,
}

/// A whole new observed state (every column written, `None` as NULL).
#[derive(AsChangeset)]
#[diesel(table_name = pipeline_metadata, treat_none_as_null = true)]
struct MetadataChangeset<'a> {
    status: &'a str,
    last_error: Option<&'a str>,
    last_error_at: Option<Timestamp>,
    last_start_at: Option<Timestamp>,
    updated_at: Timestamp,
}

impl<'a> MetadataChangeset<'a> {
    fn new(metadata: &'a PipelineMetadata) -> Self {
        Self {
            status: metadata.status.as_str(),
            last_error: metadata.last_error.as_deref(),
            last_error_at: metadata.last_error_at,
            last_start_at: metadata.last_start_at,
            updated_at: metadata.updated_at,
        }
    }
}

/// A pipeline with its metadata, source and destination, as one joined row.
type DetailsRow = (PipelineRow, Option<MetadataRow>, SourceRow, DestinationRow);
/// The selection that reads a [`DetailsRow`].
type DetailsColumns = (
    AsSelect<PipelineRow, Pg>,
    AsSelect<Option<MetadataRow>, Pg>,
    AsSelect<SourceRow, Pg>,
    AsSelect<DestinationRow, Pg>,
);

/// Everything a [`PipelineDetails`] needs, in one query: pipelines joined with their source,
/// destination and metadata. Reads filter or page it, so a page costs one query whatever its
/// size. Metadata is LEFT JOINed so a pipeline that lost its metadata row is reported as
/// corrupt instead of silently missing from lists.
#[diesel::dsl::auto_type]
fn details_query() -> _ {
    let columns: DetailsColumns = (
        PipelineRow::as_select(),
        Option::<MetadataRow>::as_select(),
        SourceRow::as_select(),
        DestinationRow::as_select(),
    );
    pipelines::table
        .inner_join(sources::table)
        .inner_join(destinations::table)
        .left_join(pipeline_metadata::table)
        .select(columns)
}

fn into_details((pipeline, metadata, source, destination): DetailsRow) -> Result<PipelineDetails, CorruptRow> {
    let metadata =
        metadata.ok_or_else(|| StoredRow::new("pipelines", pipeline.id).missing("pipeline_metadata"))?.into_domain()?;
    Ok(PipelineDetails {
        pipeline: pipeline.into_domain(metadata)?,
        source: source.into_domain()?,
        destination: destination.into_domain()?,
    })
}

/// Reads one pipeline with everything it references. Errors: `NotFound`.
async fn find_details<C>(conn: &mut C, id: i64) -> Result<PipelineDetails, Failure>
where
    C: AsyncConnectionCore<Backend = Pg> + Send,
{
    let row = details_query()
        .filter(pipelines::id.eq(id))
        .first::<DetailsRow>(conn)
        .await
        .optional()?
        .ok_or_else(|| not_found(EntityKind::Pipeline, id))?;
    Ok(into_details(row)?)
}

/// What a pipeline write tried to store, to name the field a constraint violation is about.
struct Written<'a> {
    name: &'a str,
    source_id: i64,
    destination_id: i64,
    /// `None`: the default slot name.
    slot_name: Option<&'a str>,
}

/// A failed pipeline insert or update as the port error it stands for: the name or (on that
/// source) the slot name is taken, or a referenced source or destination does not exist.
fn write_failure(err: diesel::result::Error, written: &Written<'_>) -> Failure {
    let Written { name, source_id, destination_id, slot_name } = *written;
    match violated_constraint(&err) {
        Some(PIPELINES_NAME_KEY) => {
            RepositoryError::Conflict { entity: EntityKind::Pipeline, field: "name", value: name.to_owned() }.into()
        }
        Some(PIPELINES_SOURCE_ID_SLOT_NAME_KEY) => RepositoryError::Conflict {
            entity: EntityKind::Pipeline,
            field: "slot_name",
            value: slot_name.unwrap_or("rosetta_<id>").to_owned(),
        }
        .into(),
        Some(PIPELINES_SOURCE_ID_FKEY) => {
            RepositoryError::MissingReference { field: "source_id", entity: EntityKind::Source, id: source_id }.into()
        }
        Some(PIPELINES_DESTINATION_ID_FKEY) => RepositoryError::MissingReference {
            field: "destination_id",
            entity: EntityKind::Destination,
            id: destination_id,
        }
        .into(),
        _ => err.into(),
    }
}

/// A source or destination about to be deleted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Referenced {
    /// The source with this id.
    Source(i64),
    /// The destination with this id.
    Destination(i64),
}

impl Referenced {
    /// The pipelines that use it.
    fn users(self) -> pipelines::BoxedQuery<'static, Pg> {
        match self {
            Self::Source(id) => pipelines::table.filter(pipelines::source_id.eq(id)).into_boxed(),
            Self::Destination(id) => pipelines::table.filter(pipelines::destination_id.eq(id)).into_boxed(),
        }
    }

    /// Deletes the pipelines that use it.
    fn delete_users(self) -> diesel::query_builder::BoxedDeleteStatement<'static, Pg, pipelines::table> {
        match self {
            Self::Source(id) => diesel::delete(pipelines::table.filter(pipelines::source_id.eq(id))).into_boxed(),
            Self::Destination(id) => {
                diesel::delete(pipelines::table.filter(pipelines::destination_id.eq(id))).into_boxed()
            }
        }
    }
}

/// Makes way for deleting a source or destination, inside the deleting transaction and after
/// its row is locked: with `cascade`, records the cleanup tasks of the managed slots of the
/// pipelines that use it and deletes those pipelines (their metadata goes with them, `ON DELETE
/// CASCADE`), returning the tasks; without, fails with `InUse` naming them by id if there are
/// any.
pub(crate) async fn release_references(
    conn: &mut AsyncPgConnection,
    referenced: Referenced,
    cascade: bool,
    cleanup: (&dyn SecretCipher, Timestamp),
) -> Result<Vec<CleanupTask>, Failure> {
    if cascade {
        let deleted = match referenced {
            Referenced::Source(id) => Deleted::OfSource(id),
            Referenced::Destination(id) => Deleted::OfDestination(id),
        };
        let tasks = record_slot_cleanups(conn, cleanup.0, deleted, cleanup.1).await?;
        referenced.delete_users().execute(conn).await?;
        return Ok(tasks);
    }
    let users: Vec<(i64, String)> =
        referenced.users().select((pipelines::id, pipelines::name)).order(pipelines::id.asc()).load(conn).await?;
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let pipelines = users
        .into_iter()
        .map(|(id, name)| {
            let name = StoredRow::new("pipelines", id).field("name", PipelineName::parse(name))?;
            Ok(PipelineSummary { id: PipelineId::new(id), name })
        })
        .collect::<Result<Vec<_>, CorruptRow>>()?;
    let (entity, id) = match referenced {
        Referenced::Source(id) => (EntityKind::Source, id),
        Referenced::Destination(id) => (EntityKind::Destination, id),
    };
    Err(RepositoryError::InUse { entity, id, pipelines }.into())
}

/// [`PipelineRepository`] over the metadata database; the passwords that cleanup tasks keep
/// are sealed with the given cipher.
#[derive(Clone)]
pub struct PostgresPipelineRepository {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresPipelineRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPipelineRepository").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresPipelineRepository {
    /// A repository over `store`, sealing cleanup tasks' passwords with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

#[async_trait]
impl PipelineRepository for PostgresPipelineRepository {
    async fn create(&self, new: NewPipeline, now: Timestamp) -> Result<PipelineDetails, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let (source_id, destination_id) = (new.source_id.get(), new.destination_id.get());
                let slot_name = new.slot_name.as_ref().map(SlotName::as_str);
                let row = NewPipelineRow {
                    name: new.name.as_str(),
                    source_id,
                    destination_id,
                    status: new.status.as_str(),
                    slot_name,
                    created_at: now,
                    updated_at: now,
                };
                let written = Written { name: new.name.as_str(), source_id, destination_id, slot_name };
                let id = diesel::insert_into(pipelines::table)
                    .values(row)
                    .returning(pipelines::id)
                    .get_result::<i64>(conn)
                    .await
                    .map_err(|e| write_failure(e, &written))?;
                let metadata = PipelineMetadata::initial(PipelineId::new(id), new.status, now);
                diesel::insert_into(pipeline_metadata::table)
                    .values(NewMetadataRow::new(&metadata))
                    .execute(conn)
                    .await?;
                find_details(conn, id).await
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn get(&self, id: PipelineId) -> Result<PipelineDetails, RepositoryError> {
        let id = id.get();
        self.store.read(move |conn| Box::pin(async move { find_details(&mut { conn }, id).await })).await
    }

    async fn list(&self, page: PageRequest) -> Result<Page<PipelineDetails>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let (offset, limit) = offset_limit(page);
        // Two queries whatever the page size: the count and one joined page.
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = pipelines::table.count().get_result::<i64>(conn).await?;
                let rows = details_query()
                    .order(pipelines::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load::<DetailsRow>(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(into_details).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn update(
        &self,
        id: PipelineId,
        patch: PipelinePatch,
        now: Timestamp,
    ) -> Result<PipelineDetails, RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                // Both rows locked: concurrent updates (and the CDC engine's metadata writes)
                // serialise, so the transition below is computed from what is stored.
                let row = pipelines::table
                    .find(id)
                    .select(PipelineRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?
                    .ok_or_else(|| not_found(EntityKind::Pipeline, id))?;
                let metadata = pipeline_metadata::table
                    .find(id)
                    .select(MetadataRow::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?
                    .ok_or_else(|| StoredRow::new("pipelines", id).missing("pipeline_metadata"))?
                    .into_domain()?;
                let current = row.into_domain(metadata)?;

                let name = patch.name.filter(|name| *name != current.name);
                let source_id = patch.source_id.filter(|source| *source != current.source_id);
                let destination_id = patch.destination_id.filter(|destination| *destination != current.destination_id);
                let (status, metadata) = match patch.status.map(|requested| current.request(requested, now)) {
                    Some(Transition::Changed { status, metadata }) => (
                        Some(status).filter(|s| *s != current.status),
                        Some(metadata).filter(|m| *m != current.metadata),
                    ),
                    Some(Transition::Unchanged) | None => (None, None),
                };

                if name.is_some() || source_id.is_some() || destination_id.is_some() || status.is_some() {
                    let changes = PipelineChangeset {
                        name: name.as_ref().map(PipelineName::as_str),
                        source_id: source_id.map(SourceId::get),
                        destination_id: destination_id.map(DestinationId::get),
                        status: status.map(PipelineStatus::as_str),
                        updated_at: now,
                    };
                    diesel::update(pipelines::table.find(id)).set(changes).execute(conn).await.map_err(|e| {
                        let written = Written {
                            name: name.as_ref().unwrap_or(&current.name).as_str(),
                            source_id: source_id.unwrap_or(current.source_id).get(),
                            destination_id: destination_id.unwrap_or(current.destination_id).get(),
                            slot_name: Some(current.slot_name.as_str()),
                        };
                        write_failure(e, &written)
                    })?;
                }
                if let Some(metadata) = &metadata {
                    diesel::update(pipeline_metadata::table.find(id))
                        .set(MetadataChangeset::new(metadata))
                        .execute(conn)
                        .await?;
                }
                find_details(conn, id).await
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn delete(&self, id: PipelineId, now: Timestamp) -> Result<Option<CleanupTask>, RepositoryError> {
        let id = id.get();
        let cipher = Arc::clone(&self.cipher);
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                // The task and the delete commit together: a managed slot is never forgotten.
                let mut tasks = record_slot_cleanups(conn, cipher.as_ref(), Deleted::Pipeline(id), now).await?;
                // Its metadata row goes with it (ON DELETE CASCADE).
                let deleted = diesel::delete(pipelines::table.find(id)).execute(conn).await?;
                if deleted == 0 {
                    return Err(not_found(EntityKind::Pipeline, id));
                }
                Ok(tasks.pop())
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn set_slot_managed(&self, id: PipelineId, managed: bool, now: Timestamp) -> Result<(), RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = diesel::update(pipelines::table.find(id))
            .set((
                pipelines::slot_managed.eq(managed),
                pipelines::updated_at.eq(diesel::dsl::case_when(
                    pipelines::slot_managed.eq(managed),
                    pipelines::updated_at,
                )
                .otherwise(now)),
            ))
            .execute(&mut conn)
            .await
            .map_err(Failure::from)
            .and_then(|updated| if updated == 0 { Err(not_found(EntityKind::Pipeline, id)) } else { Ok(()) });
        self.store.settle(conn, result).await
    }

    async fn pipelines_of(&self, source: Option<SourceId>) -> Result<Vec<SourcePipeline>, RepositoryError> {
        let source = source.map(SourceId::get);
        let mut conn = self.store.connection().await?;
        let mut query = pipelines::table
            .select((pipelines::id, pipelines::source_id, pipelines::slot_name, pipelines::status))
            .into_boxed();
        if let Some(source) = source {
            query = query.filter(pipelines::source_id.eq(source));
        }
        let result =
            query.order(pipelines::id.asc()).load::<(i64, i64, String, String)>(&mut conn).await.map_err(Failure::from);
        let rows = self.store.settle(conn, result).await?;
        rows.into_iter()
            .map(|(id, source_id, slot_name, status)| {
                let row = StoredRow::new("pipelines", id);
                Ok(SourcePipeline {
                    pipeline_id: PipelineId::new(id),
                    source_id: SourceId::new(source_id),
                    slot_name: row.field("slot_name", SlotName::parse(slot_name))?,
                    status: row.field("status", status.parse::<PipelineStatus>())?,
                })
            })
            .collect::<Result<_, CorruptRow>>()
            .map_err(RepositoryError::from)
    }
}
