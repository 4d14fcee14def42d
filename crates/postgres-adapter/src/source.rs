//! Sources: rows, their conversion to domain values, and [`PostgresSourceRepository`].

use std::sync::Arc;

use async_trait::async_trait;
use diesel::dsl::IsNotNull;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncConnectionCore, RunQueryDsl};
use rosetta_domain::{
    CleanupTask, NewSource, Page, PageRequest, Patch, PgDatabase, PgHost, PgPort, PgSslMode, PgSslRootCert, PgUsername,
    PublicationName, ReplicationId, Source, SourceConnection, SourceId, SourceName, SourcePatch, Timestamp,
};
use rosetta_ports::EntityKind;
use rosetta_ports::outbound::{
    ConnectionSettingsError, RepositoryError, SecretCipher, SourceRepository, StoredConnection,
};

use crate::error::{CorruptRow, Failure, StoredRow, name_conflict, not_found};
use crate::paging::{offset_limit, total_count};
use crate::pipeline::{Referenced, release_references};
use crate::schema::constraints::SOURCES_NAME_KEY;
use crate::schema::sources;
use crate::secrets::{StoredLogin, seal_patch, source_password_slot};
use crate::store::PostgresStore;

/// A source as read back: the sealed password only as a flag.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sources, check_for_backend(Pg))]
pub(crate) struct SourceRow {
    id: i64,
    name: String,
    pg_host: String,
    pg_port: i32,
    pg_database: String,
    pg_username: String,
    #[diesel(select_expression = sources::pg_password_sealed.is_not_null())]
    #[diesel(select_expression_type = IsNotNull<sources::pg_password_sealed>)]
    has_password: bool,
    pg_sslmode: String,
    pg_sslrootcert: Option<String>,
    publication_name: String,
    replication_id: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl SourceRow {
    /// The domain source; `Unexpected` (corrupt row) if a stored value breaks an invariant.
    pub(crate) fn into_domain(self) -> Result<Source, CorruptRow> {
        let row = StoredRow::new("sources", self.id);
        Ok(Source {
            id: SourceId::new(self.id),
            name: row.field("name", SourceName::parse(self.name))?,
            pg_host: row.field("pg_host", PgHost::parse(self.pg_host))?,
            pg_port: row.field("pg_port", PgPort::new(i64::from(self.pg_port)))?,
            pg_database: row.field("pg_database", PgDatabase::parse(self.pg_database))?,
            pg_username: row.field("pg_username", PgUsername::parse(self.pg_username))?,
            has_password: self.has_password,
            pg_sslmode: row.field("pg_sslmode", PgSslMode::parse(&self.pg_sslmode))?,
            pg_sslrootcert: self
                .pg_sslrootcert
                .map(|pem| row.field("pg_sslrootcert", PgSslRootCert::parse(pem)))
                .transpose()?,
            publication_name: row.field("publication_name", PublicationName::parse(self.publication_name))?,
            replication_id: row.field("replication_id", ReplicationId::new(self.replication_id))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// What [`SourceRepository::connection`] reads: login settings and the sealed password.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = sources, check_for_backend(Pg))]
struct ConnectionRow {
    id: i64,
    pg_host: String,
    pg_port: i32,
    pg_database: String,
    pg_username: String,
    pg_password_sealed: Option<Vec<u8>>,
    pg_sslmode: String,
    pg_sslrootcert: Option<String>,
}

/// The columns of a new source; the sealed password is written once the id is known.
#[derive(Insertable)]
#[diesel(table_name = sources)]
struct NewSourceRow<'a> {
    name: &'a str,
    pg_host: &'a str,
    pg_port: i32,
    pg_database: &'a str,
    pg_username: &'a str,
    pg_sslmode: &'a str,
    pg_sslrootcert: Option<&'a str>,
    publication_name: &'a str,
    replication_id: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl<'a> NewSourceRow<'a> {
    fn new(source: &'a NewSource, now: Timestamp) -> Self {
        Self {
            name: source.name.as_str(),
            pg_host: source.pg_host.as_str(),
            pg_port: i32::from(source.pg_port.get()),
            pg_database: source.pg_database.as_str(),
            pg_username: source.pg_username.as_str(),
            pg_sslmode: source.pg_sslmode.as_str(),
            pg_sslrootcert: source.pg_sslrootcert.as_ref().map(PgSslRootCert::as_str),
            publication_name: source.publication_name.as_str(),
            replication_id: source.replication_id.get(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A partial update: `None` leaves a column alone.
#[derive(AsChangeset)]
#[diesel(table_name = sources)]
struct SourceChangeset<'a> {
    name: Option<&'a str>,
    pg_host: Option<&'a str>,
    pg_port: Option<i32>,
    pg_database: Option<&'a str>,
    pg_username: Option<&'a str>,
    pg_password_sealed: Option<Option<Vec<u8>>>,
    pg_sslmode: Option<&'a str>,
    pg_sslrootcert: Option<Option<&'a str>>,
    publication_name: Option<&'a str>,
    replication_id: Option<i64>,
    updated_at: Timestamp,
}

/// [`SourceRepository`] over the metadata database; passwords sealed with the given cipher.
#[derive(Clone)]
pub struct PostgresSourceRepository {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresSourceRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSourceRepository").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresSourceRepository {
    /// A repository over `store` that seals passwords with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

#[async_trait]
impl SourceRepository for PostgresSourceRepository {
    async fn create(&self, new: NewSource, now: Timestamp) -> Result<Source, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let cipher = Arc::clone(&self.cipher);
        // The password's slot is bound to the row id, known only after the insert: insert, then
        // seal and store it, in one transaction.
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let row = diesel::insert_into(sources::table)
                    .values(NewSourceRow::new(&new, now))
                    .returning(SourceRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| name_conflict(e, SOURCES_NAME_KEY, EntityKind::Source, new.name.as_str()))?;
                let Some(password) = &new.pg_password else {
                    return Ok(row);
                };
                let sealed = cipher.seal(password, source_password_slot(row.id))?;
                Ok(diesel::update(sources::table.find(row.id))
                    .set(sources::pg_password_sealed.eq(sealed))
                    .returning(SourceRow::as_returning())
                    .get_result(conn)
                    .await?)
            })
            .await;
        Ok(self.store.settle(conn, result).await?.into_domain()?)
    }

    async fn get(&self, id: SourceId) -> Result<Source, RepositoryError> {
        let id = id.get();
        let row = self.store.read(move |conn| Box::pin(async move { find(&mut { conn }, id).await })).await?;
        Ok(row.into_domain()?)
    }

    async fn list(&self, page: PageRequest) -> Result<Page<Source>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let (offset, limit) = offset_limit(page);
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = sources::table.count().get_result::<i64>(conn).await?;
                let rows = sources::table
                    .select(SourceRow::as_select())
                    .order(sources::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(SourceRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn update(&self, id: SourceId, patch: SourcePatch, now: Timestamp) -> Result<Source, RepositoryError> {
        if patch.is_empty() {
            return self.get(id).await;
        }
        let id = id.get();
        let sealed_password = seal_patch(self.cipher.as_ref(), &patch.pg_password, source_password_slot(id))
            .map_err(|e| RepositoryError::Unexpected(Box::new(e)))?;
        let changes = SourceChangeset {
            name: patch.name.as_ref().map(SourceName::as_str),
            pg_host: patch.pg_host.as_ref().map(PgHost::as_str),
            pg_port: patch.pg_port.map(|port| i32::from(port.get())),
            pg_database: patch.pg_database.as_ref().map(PgDatabase::as_str),
            pg_username: patch.pg_username.as_ref().map(PgUsername::as_str),
            pg_password_sealed: sealed_password,
            pg_sslmode: patch.pg_sslmode.map(PgSslMode::as_str),
            pg_sslrootcert: match &patch.pg_sslrootcert {
                Patch::Keep => None,
                Patch::Clear => Some(None),
                Patch::Set(pem) => Some(Some(pem.as_str())),
            },
            publication_name: patch.publication_name.as_ref().map(PublicationName::as_str),
            replication_id: patch.replication_id.map(ReplicationId::get),
            updated_at: now,
        };
        let mut conn = self.store.connection().await?;
        // One statement: atomic without an explicit transaction.
        let result = diesel::update(sources::table.find(id))
            .set(changes)
            .returning(SourceRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|e| match &patch.name {
                Some(name) => name_conflict(e, SOURCES_NAME_KEY, EntityKind::Source, name.as_str()),
                None => e.into(),
            })
            .and_then(|row| row.ok_or_else(|| not_found(EntityKind::Source, id)));
        Ok(self.store.settle(conn, result).await?.into_domain()?)
    }

    async fn delete(&self, id: SourceId, cascade: bool, now: Timestamp) -> Result<Vec<CleanupTask>, RepositoryError> {
        let id = id.get();
        let cipher = Arc::clone(&self.cipher);
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                // Locking the row makes a concurrent pipeline insert that references it wait
                // for this transaction (and then fail its foreign key), so the check below
                // cannot miss a pipeline.
                sources::table
                    .find(id)
                    .select(sources::id)
                    .for_update()
                    .first::<i64>(conn)
                    .await
                    .optional()?
                    .ok_or_else(|| not_found(EntityKind::Source, id))?;
                let tasks = release_references(conn, Referenced::Source(id), cascade, (cipher.as_ref(), now)).await?;
                diesel::delete(sources::table.find(id)).execute(conn).await?;
                Ok(tasks)
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn connection(&self, id: SourceId) -> Result<SourceConnection, RepositoryError> {
        let found = self.connections(&[id]).await?.pop();
        let stored = found.ok_or(RepositoryError::NotFound { entity: EntityKind::Source, id: id.get() })?;
        stored.settings.map_err(|error| RepositoryError::Unexpected(Box::new(error)))
    }

    async fn connections(&self, ids: &[SourceId]) -> Result<Vec<StoredConnection>, RepositoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let mut conn = self.store.connection().await?;
        let result = sources::table
            .filter(sources::id.eq_any(raw))
            .select(ConnectionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(Failure::from);
        let rows = self.store.settle(conn, result).await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredConnection { source_id: SourceId::new(row.id), settings: self.open_connection(row) })
            .collect())
    }
}

impl PostgresSourceRepository {
    /// A stored connection row with its password opened, or why that row cannot be used.
    fn open_connection(&self, row: ConnectionRow) -> Result<SourceConnection, ConnectionSettingsError> {
        let login = StoredLogin {
            pg_host: row.pg_host,
            pg_port: row.pg_port,
            pg_database: row.pg_database,
            pg_username: row.pg_username,
            pg_password_sealed: row.pg_password_sealed,
            pg_sslmode: row.pg_sslmode,
            pg_sslrootcert: row.pg_sslrootcert,
        };
        login.open(
            StoredRow::new("sources", row.id),
            SourceId::new(row.id),
            source_password_slot(row.id),
            self.cipher.as_ref(),
        )
    }
}

/// Reads one source row. Errors: `NotFound`.
async fn find<C>(conn: &mut C, id: i64) -> Result<SourceRow, Failure>
where
    C: AsyncConnectionCore<Backend = Pg> + Send,
{
    sources::table
        .find(id)
        .select(SourceRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| not_found(EntityKind::Source, id))
}
