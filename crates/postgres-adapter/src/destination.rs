//! Destinations: rows, their conversion to domain values, and [`PostgresDestinationRepository`].

use std::sync::Arc;

use async_trait::async_trait;
use diesel::dsl::IsNotNull;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncConnectionCore, RunQueryDsl};
use rosetta_domain::{
    CleanupTask, Destination, DestinationId, DestinationName, DestinationPatch, NewDestination, Page, PageRequest,
    Patch, ShortText, SnowflakeAccount, SnowflakeSettings, Timestamp,
};
use rosetta_ports::EntityKind;
use rosetta_ports::outbound::{DestinationRepository, RepositoryError, SecretCipher};

use crate::error::{CorruptRow, Failure, StoredRow, name_conflict, not_found};
use crate::paging::{offset_limit, total_count};
use crate::pipeline::{Referenced, release_references};
use crate::schema::constraints::DESTINATIONS_NAME_KEY;
use crate::schema::destinations;
use crate::secrets::{destination_passphrase_slot, seal_patch};
use crate::store::PostgresStore;

/// A destination as read back: the sealed passphrase only as a flag.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = destinations, check_for_backend(Pg))]
pub(crate) struct DestinationRow {
    id: i64,
    name: String,
    snowflake_account: Option<String>,
    snowflake_user: Option<String>,
    snowflake_database: Option<String>,
    snowflake_schema: Option<String>,
    snowflake_role: Option<String>,
    snowflake_private_key_path: Option<String>,
    snowflake_host: Option<String>,
    #[diesel(select_expression = destinations::snowflake_private_key_passphrase_sealed.is_not_null())]
    #[diesel(select_expression_type = IsNotNull<destinations::snowflake_private_key_passphrase_sealed>)]
    has_private_key_passphrase: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl DestinationRow {
    /// The domain destination; `Unexpected` (corrupt row) if a stored value breaks an invariant.
    pub(crate) fn into_domain(self) -> Result<Destination, CorruptRow> {
        let row = StoredRow::new("destinations", self.id);
        let text = |column, value: Option<String>| value.map(|v| row.field(column, ShortText::parse(v))).transpose();
        Ok(Destination {
            id: DestinationId::new(self.id),
            name: row.field("name", DestinationName::parse(self.name))?,
            settings: SnowflakeSettings {
                snowflake_account: self
                    .snowflake_account
                    .map(|v| row.field("snowflake_account", SnowflakeAccount::parse(v)))
                    .transpose()?,
                snowflake_user: text("snowflake_user", self.snowflake_user)?,
                snowflake_database: text("snowflake_database", self.snowflake_database)?,
                snowflake_schema: text("snowflake_schema", self.snowflake_schema)?,
                snowflake_role: text("snowflake_role", self.snowflake_role)?,
                snowflake_private_key_path: text("snowflake_private_key_path", self.snowflake_private_key_path)?,
                snowflake_host: text("snowflake_host", self.snowflake_host)?,
            },
            has_private_key_passphrase: self.has_private_key_passphrase,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The columns of a new destination; the sealed passphrase is written once the id is known.
#[derive(Insertable)]
#[diesel(table_name = destinations)]
struct NewDestinationRow<'a> {
    name: &'a str,
    snowflake_account: Option<&'a str>,
    snowflake_user: Option<&'a str>,
    snowflake_database: Option<&'a str>,
    snowflake_schema: Option<&'a str>,
    snowflake_role: Option<&'a str>,
    snowflake_private_key_path: Option<&'a str>,
    snowflake_host: Option<&'a str>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl<'a> NewDestinationRow<'a> {
    fn new(destination: &'a NewDestination, now: Timestamp) -> Self {
        let s = &destination.settings;
        Self {
            name: destination.name.as_str(),
            snowflake_account: s.snowflake_account.as_ref().map(SnowflakeAccount::as_str),
            snowflake_user: s.snowflake_user.as_ref().map(ShortText::as_str),
            snowflake_database: s.snowflake_database.as_ref().map(ShortText::as_str),
            snowflake_schema: s.snowflake_schema.as_ref().map(ShortText::as_str),
            snowflake_role: s.snowflake_role.as_ref().map(ShortText::as_str),
            snowflake_private_key_path: s.snowflake_private_key_path.as_ref().map(ShortText::as_str),
            snowflake_host: s.snowflake_host.as_ref().map(ShortText::as_str),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A partial update: `None` leaves a column alone, `Some(None)` clears a nullable one.
#[derive(AsChangeset)]
#[diesel(table_name = destinations)]
struct DestinationChangeset<'a> {
    name: Option<&'a str>,
    snowflake_account: Option<Option<&'a str>>,
    snowflake_user: Option<Option<&'a str>>,
    snowflake_database: Option<Option<&'a str>>,
    snowflake_schema: Option<Option<&'a str>>,
    snowflake_role: Option<Option<&'a str>>,
    snowflake_private_key_path: Option<Option<&'a str>>,
    snowflake_host: Option<Option<&'a str>>,
    snowflake_private_key_passphrase_sealed: Option<Option<Vec<u8>>>,
    updated_at: Timestamp,
}

/// A nullable column's change for a patch: `None` keeps, `Some(None)` clears, `Some(Some)` sets.
fn column_change<T: AsRef<str>>(patch: &Patch<T>) -> Option<Option<&str>> {
    match patch {
        Patch::Keep => None,
        Patch::Clear => Some(None),
        Patch::Set(value) => Some(Some(value.as_ref())),
    }
}

/// [`DestinationRepository`] over the metadata database; passphrases sealed with the given
/// cipher.
#[derive(Clone)]
pub struct PostgresDestinationRepository {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresDestinationRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDestinationRepository").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresDestinationRepository {
    /// A repository over `store` that seals passphrases with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

#[async_trait]
impl DestinationRepository for PostgresDestinationRepository {
    async fn create(&self, new: NewDestination, now: Timestamp) -> Result<Destination, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let cipher = Arc::clone(&self.cipher);
        // Like sources: the passphrase's slot needs the row id, so insert, then seal and store
        // it, in one transaction.
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let row = diesel::insert_into(destinations::table)
                    .values(NewDestinationRow::new(&new, now))
                    .returning(DestinationRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| name_conflict(e, DESTINATIONS_NAME_KEY, EntityKind::Destination, new.name.as_str()))?;
                let Some(passphrase) = &new.snowflake_private_key_passphrase else {
                    return Ok(row);
                };
                let sealed = cipher.seal(passphrase, destination_passphrase_slot(row.id))?;
                Ok(diesel::update(destinations::table.find(row.id))
                    .set(destinations::snowflake_private_key_passphrase_sealed.eq(sealed))
                    .returning(DestinationRow::as_returning())
                    .get_result(conn)
                    .await?)
            })
            .await;
        Ok(self.store.settle(conn, result).await?.into_domain()?)
    }

    async fn get(&self, id: DestinationId) -> Result<Destination, RepositoryError> {
        let id = id.get();
        let row = self.store.read(move |conn| Box::pin(async move { find(&mut { conn }, id).await })).await?;
        Ok(row.into_domain()?)
    }

    async fn list(&self, page: PageRequest) -> Result<Page<Destination>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let (offset, limit) = offset_limit(page);
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = destinations::table.count().get_result::<i64>(conn).await?;
                let rows = destinations::table
                    .select(DestinationRow::as_select())
                    .order(destinations::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(DestinationRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn update(
        &self,
        id: DestinationId,
        patch: DestinationPatch,
        now: Timestamp,
    ) -> Result<Destination, RepositoryError> {
        if patch == DestinationPatch::default() {
            return self.get(id).await;
        }
        let id = id.get();
        let sealed_passphrase =
            seal_patch(self.cipher.as_ref(), &patch.snowflake_private_key_passphrase, destination_passphrase_slot(id))
                .map_err(|e| RepositoryError::Unexpected(Box::new(e)))?;
        let changes = DestinationChangeset {
            name: patch.name.as_ref().map(DestinationName::as_str),
            snowflake_account: column_change(&patch.snowflake_account),
            snowflake_user: column_change(&patch.snowflake_user),
            snowflake_database: column_change(&patch.snowflake_database),
            snowflake_schema: column_change(&patch.snowflake_schema),
            snowflake_role: column_change(&patch.snowflake_role),
            snowflake_private_key_path: column_change(&patch.snowflake_private_key_path),
            snowflake_host: column_change(&patch.snowflake_host),
            snowflake_private_key_passphrase_sealed: sealed_passphrase,
            updated_at: now,
        };
        let mut conn = self.store.connection().await?;
        // One statement: atomic without an explicit transaction.
        let result = diesel::update(destinations::table.find(id))
            .set(changes)
            .returning(DestinationRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(|e| match &patch.name {
                Some(name) => name_conflict(e, DESTINATIONS_NAME_KEY, EntityKind::Destination, name.as_str()),
                None => e.into(),
            })
            .and_then(|row| row.ok_or_else(|| not_found(EntityKind::Destination, id)));
        Ok(self.store.settle(conn, result).await?.into_domain()?)
    }

    async fn delete(
        &self,
        id: DestinationId,
        cascade: bool,
        now: Timestamp,
    ) -> Result<Vec<CleanupTask>, RepositoryError> {
        let id = id.get();
        let cipher = Arc::clone(&self.cipher);
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                // Locked so that no pipeline can start referencing it before the delete (see
                // sources).
                destinations::table
                    .find(id)
                    .select(destinations::id)
                    .for_update()
                    .first::<i64>(conn)
                    .await
                    .optional()?
                    .ok_or_else(|| not_found(EntityKind::Destination, id))?;
                let tasks =
                    release_references(conn, Referenced::Destination(id), cascade, (cipher.as_ref(), now)).await?;
                diesel::delete(destinations::table.find(id)).execute(conn).await?;
                Ok(tasks)
            })
            .await;
        self.store.settle(conn, result).await
    }
}

/// Reads one destination row. Errors: `NotFound`.
async fn find<C>(conn: &mut C, id: i64) -> Result<DestinationRow, Failure>
where
    C: AsyncConnectionCore<Backend = Pg> + Send,
{
    destinations::table
        .find(id)
        .select(DestinationRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| not_found(EntityKind::Destination, id))
}
