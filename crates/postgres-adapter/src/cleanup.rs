//! Cleanup tasks: recording them in the transaction of the delete that needs them, and
//! [`PostgresCleanupTaskStore`], which the cleanup job and the API read and write them through.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rosetta_domain::{CleanupKind, CleanupTask, CleanupTaskId, Page, PageRequest, SlotName, SourceId, Timestamp};
use rosetta_ports::EntityKind;
use rosetta_ports::jobs::{LeaseOwner, Next, Queue};
use rosetta_ports::outbound::{RepositoryError, SecretCipher};
use rosetta_ports::sources::{CleanupAttempt, CleanupTaskStore, PendingCleanup, first_cleanup_due};

use crate::error::{CorruptRow, Failure, StoredRow, not_found};
use crate::lease::complete_in;
use crate::paging::{offset_limit, total_count};
use crate::schema::{cleanup_tasks, pipelines, sources};
use crate::secrets::{StoredLogin, cleanup_password_slot, source_password_slot};
use crate::store::PostgresStore;

/// The pipelines whose deletion is under way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deleted {
    /// One pipeline.
    Pipeline(i64),
    /// Every pipeline of a source.
    OfSource(i64),
    /// Every pipeline of a destination.
    OfDestination(i64),
}

/// A pipeline being deleted: whether its slot is managed, the slot, and its source's login
/// (selected by position).
#[derive(Debug, Queryable)]
struct ManagedSlotRow {
    slot_managed: bool,
    source_id: i64,
    slot_name: String,
    pg_host: String,
    pg_port: i32,
    pg_database: String,
    pg_username: String,
    sealed: Option<Vec<u8>>,
    pg_sslmode: String,
    pg_sslrootcert: Option<String>,
}

/// Records a cleanup task for each managed slot of the `deleted` pipelines, with the connection
/// settings of its source (the password re-sealed for the task's row). Runs inside the deleting
/// transaction, before the pipelines (and maybe their source) are gone.
pub(crate) async fn record_slot_cleanups(
    conn: &mut AsyncPgConnection,
    cipher: &dyn SecretCipher,
    deleted: Deleted,
    now: Timestamp,
) -> Result<Vec<CleanupTask>, Failure> {
    // Every deleted pipeline's row is locked, managed or not (a row filtered out would not be): a
    // concurrent `set_slot_managed` either committed first, and its flag is read here, or waits
    // for this delete and then finds no pipeline.
    // Locking clauses cannot be boxed, so each selection is its own statement.
    macro_rules! load_locked {
        ($filter:expr) => {
            pipelines::table
                .inner_join(sources::table)
                .filter($filter)
                .select((
                    pipelines::slot_managed,
                    pipelines::source_id,
                    pipelines::slot_name,
                    sources::pg_host,
                    sources::pg_port,
                    sources::pg_database,
                    sources::pg_username,
                    sources::pg_password_sealed,
                    sources::pg_sslmode,
                    sources::pg_sslrootcert,
                ))
                .order(pipelines::id.asc())
                .for_update()
                .load::<ManagedSlotRow>(conn)
                .await?
        };
    }
    let rows: Vec<ManagedSlotRow> = match deleted {
        Deleted::Pipeline(id) => load_locked!(pipelines::id.eq(id)),
        Deleted::OfSource(id) => load_locked!(pipelines::source_id.eq(id)),
        Deleted::OfDestination(id) => load_locked!(pipelines::destination_id.eq(id)),
    };
    let next_attempt_at = first_cleanup_due(now);
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows.into_iter().filter(|row| row.slot_managed) {
        let ManagedSlotRow {
            slot_managed: _,
            source_id,
            slot_name,
            pg_host,
            pg_port,
            pg_database,
            pg_username,
            sealed,
            pg_sslmode,
            pg_sslrootcert,
        } = row;
        // The task's own copy of the password, bound to its row; a password that does not open
        // now cannot open later either, so the task says so instead of retrying a login.
        let (password, problem) = match sealed.map(|s| cipher.open(&s, source_password_slot(source_id))).transpose() {
            Ok(password) => (password, None),
            Err(error) => (None, Some(format!("cannot decrypt the source's pg_password: {error}"))),
        };
        let id: i64 = diesel::insert_into(cleanup_tasks::table)
            .values((
                cleanup_tasks::kind.eq(CleanupKind::DropSlot.as_str()),
                cleanup_tasks::source_id.eq(source_id),
                cleanup_tasks::slot_name.eq(&slot_name),
                cleanup_tasks::pg_host.eq(pg_host),
                cleanup_tasks::pg_port.eq(pg_port),
                cleanup_tasks::pg_database.eq(pg_database),
                cleanup_tasks::pg_username.eq(pg_username),
                cleanup_tasks::pg_sslmode.eq(pg_sslmode),
                cleanup_tasks::pg_sslrootcert.eq(pg_sslrootcert),
                cleanup_tasks::last_error.eq(&problem),
                cleanup_tasks::next_attempt_at.eq(next_attempt_at),
                cleanup_tasks::created_at.eq(now),
            ))
            .returning(cleanup_tasks::id)
            .get_result(conn)
            .await?;
        if let Some(password) = password {
            let sealed = cipher.seal(&password, cleanup_password_slot(id))?;
            diesel::update(cleanup_tasks::table.find(id))
                .set(cleanup_tasks::pg_password_sealed.eq(sealed))
                .execute(conn)
                .await?;
        }
        let slot_name = StoredRow::new("pipelines", id).field("slot_name", SlotName::parse(slot_name))?;
        tasks.push(CleanupTask {
            id: CleanupTaskId::new(id),
            kind: CleanupKind::DropSlot,
            source_id: SourceId::new(source_id),
            slot_name,
            attempts: 0,
            last_error: problem,
            next_attempt_at,
            created_at: now,
        });
    }
    Ok(tasks)
}

/// A cleanup task as listed (without its connection settings).
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = cleanup_tasks, check_for_backend(Pg))]
struct TaskRow {
    id: i64,
    kind: String,
    source_id: i64,
    slot_name: String,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: Timestamp,
    created_at: Timestamp,
}

impl TaskRow {
    fn into_domain(self) -> Result<CleanupTask, CorruptRow> {
        let row = StoredRow::new("cleanup_tasks", self.id);
        Ok(CleanupTask {
            id: CleanupTaskId::new(self.id),
            kind: row.field("kind", self.kind.parse::<CleanupKind>())?,
            source_id: SourceId::new(self.source_id),
            slot_name: row.field("slot_name", SlotName::parse(self.slot_name))?,
            attempts: u32::try_from(self.attempts).map_err(|_| row.invalid("attempts", "is negative"))?,
            last_error: self.last_error,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
        })
    }
}

/// A task with its connection settings.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = cleanup_tasks, check_for_backend(Pg))]
struct PendingRow {
    #[diesel(embed)]
    task: TaskRow,
    pg_host: String,
    pg_port: i32,
    pg_database: String,
    pg_username: String,
    pg_password_sealed: Option<Vec<u8>>,
    pg_sslmode: String,
    pg_sslrootcert: Option<String>,
}

/// [`CleanupTaskStore`] over the metadata database; kept passwords opened with `cipher`.
#[derive(Clone)]
pub struct PostgresCleanupTaskStore {
    store: PostgresStore,
    cipher: Arc<dyn SecretCipher>,
}

impl std::fmt::Debug for PostgresCleanupTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCleanupTaskStore").field("store", &self.store).finish_non_exhaustive()
    }
}

impl PostgresCleanupTaskStore {
    /// A store over `store` that opens the tasks' passwords with `cipher`.
    pub fn new(store: PostgresStore, cipher: Arc<dyn SecretCipher>) -> Self {
        Self { store, cipher }
    }
}

/// Moves an item nobody has leased to a new due time.
const RESCHEDULE_UNLEASED: &str = "UPDATE leases SET due_at = $3 WHERE queue = $1 AND item_id = $2 AND owner IS NULL";

/// Writes one attempt's outcome: a success deletes the task (its lease goes with it, by
/// trigger); a failure records the error and when it is next due.
async fn write_attempt(conn: &mut AsyncPgConnection, attempt: &CleanupAttempt) -> Result<(), Failure> {
    let id = attempt.id.get();
    match (&attempt.outcome, attempt.next) {
        (Ok(()), _) | (Err(_), Next::Done) => {
            diesel::delete(cleanup_tasks::table.find(id)).execute(conn).await?;
        }
        (Err(error), Next::DueAt(at)) => {
            diesel::update(cleanup_tasks::table.find(id))
                .set((
                    cleanup_tasks::attempts.eq(i32::try_from(attempt.attempts).unwrap_or(i32::MAX)),
                    cleanup_tasks::last_error.eq(error),
                    cleanup_tasks::next_attempt_at.eq(at),
                ))
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

#[async_trait]
impl CleanupTaskStore for PostgresCleanupTaskStore {
    async fn list(&self, page: PageRequest) -> Result<Page<CleanupTask>, RepositoryError> {
        let mut conn = self.store.connection().await?;
        let (offset, limit) = offset_limit(page);
        let result = conn
            .build_transaction()
            .read_only()
            .repeatable_read()
            .run::<_, Failure, _>(async move |conn| {
                let total = cleanup_tasks::table.count().get_result::<i64>(conn).await?;
                let rows = cleanup_tasks::table
                    .select(TaskRow::as_select())
                    .order(cleanup_tasks::id.asc())
                    .offset(offset)
                    .limit(limit)
                    .load::<TaskRow>(conn)
                    .await?;
                Ok((total, rows))
            })
            .await;
        let (total, rows) = self.store.settle(conn, result).await?;
        let items = rows.into_iter().map(TaskRow::into_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, total: total_count(total) })
    }

    async fn pending(&self, ids: &[CleanupTaskId]) -> Result<Vec<PendingCleanup>, RepositoryError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let mut conn = self.store.connection().await?;
        let result = cleanup_tasks::table
            .filter(cleanup_tasks::id.eq_any(&ids))
            .select(PendingRow::as_select())
            .load::<PendingRow>(&mut conn)
            .await
            .map_err(Failure::from);
        let rows = self.store.settle(conn, result).await?;
        let mut pending = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.task.id;
            let source_id = SourceId::new(row.task.source_id);
            let login = StoredLogin {
                pg_host: row.pg_host,
                pg_port: row.pg_port,
                pg_database: row.pg_database,
                pg_username: row.pg_username,
                pg_password_sealed: row.pg_password_sealed,
                pg_sslmode: row.pg_sslmode,
                pg_sslrootcert: row.pg_sslrootcert,
            };
            let connection = login.open(
                StoredRow::new("cleanup_tasks", id),
                source_id,
                cleanup_password_slot(id),
                self.cipher.as_ref(),
            );
            pending.push(PendingCleanup { task: row.task.into_domain()?, connection });
        }
        Ok(pending)
    }

    async fn record(&self, owner: &LeaseOwner, attempts: Vec<CleanupAttempt>) -> Result<Vec<i64>, RepositoryError> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let owner = owner.clone();
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                let leases: Vec<(i64, Next)> = attempts.iter().map(|a| (a.id.get(), a.next)).collect();
                let completed = complete_in(conn, Queue::SOURCE_CLEANUP, &owner, &leases).await?;
                for attempt in attempts.iter().filter(|a| completed.contains(&a.id.get())) {
                    write_attempt(conn, attempt).await?;
                }
                Ok(completed)
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn record_unleased(&self, attempt: CleanupAttempt) -> Result<(), RepositoryError> {
        let mut conn = self.store.connection().await?;
        let result = conn
            .transaction::<_, Failure, _>(async move |conn| {
                write_attempt(conn, &attempt).await?;
                if let (Err(_), Next::DueAt(at)) = (&attempt.outcome, attempt.next) {
                    // Only an item nobody holds: a process that claimed it meanwhile records
                    // its own outcome.
                    diesel::sql_query(RESCHEDULE_UNLEASED)
                        .bind::<Text, _>(Queue::SOURCE_CLEANUP.name())
                        .bind::<BigInt, _>(attempt.id.get())
                        .bind::<Timestamptz, _>(at)
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
            .await;
        self.store.settle(conn, result).await
    }

    async fn find(&self, source: SourceId, slot: &SlotName) -> Result<Option<CleanupTask>, RepositoryError> {
        let (source, slot) = (source.get(), slot.as_str().to_owned());
        let mut conn = self.store.connection().await?;
        let result = cleanup_tasks::table
            .filter(cleanup_tasks::source_id.eq(source))
            .filter(cleanup_tasks::slot_name.eq(slot))
            .select(TaskRow::as_select())
            .order(cleanup_tasks::id.asc())
            .first::<TaskRow>(&mut conn)
            .await
            .optional()
            .map_err(Failure::from);
        let row = self.store.settle(conn, result).await?;
        Ok(row.map(TaskRow::into_domain).transpose()?)
    }

    async fn abandon(&self, id: CleanupTaskId) -> Result<(), RepositoryError> {
        let id = id.get();
        let mut conn = self.store.connection().await?;
        let result = diesel::delete(cleanup_tasks::table.find(id))
            .execute(&mut conn)
            .await
            .map_err(Failure::from)
            .and_then(|deleted| if deleted == 0 { Err(not_found(EntityKind::CleanupTask, id)) } else { Ok(()) });
        self.store.settle(conn, result).await
    }
}
