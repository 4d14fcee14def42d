//! [`PostgresSourceOperations`]: preflight facts, catalog reads, publications and replication
//! slots, over tokio-postgres.
//!
//! These run when someone asks (an API call, a cleanup task), not every few seconds, so each
//! call opens its own short session ([`APPLICATION_NAME`]) and closes it; nothing is cached.
//! Every call — connect included — is bounded by the configured timeout, the server bounds each
//! statement and lock wait by it too, and every error text is scrubbed of the password.

mod sql;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rosetta_domain::{
    LiveSlot, Lsn, Publication, PublicationFacts, PublicationName, PublicationTables, ReplicaIdentity, SlotName,
    SourceConnection, SourceFacts, SourceTable, TableName, WalStatus, quote_identifier,
};
use rosetta_ports::sources::{PublicationError, SlotCreation, SlotDrop, SlotError, SourceError, SourceOperations};
use tokio::sync::oneshot;
use tokio_postgres::{Client, GenericClient, Row};

use crate::connect::{self, describe, scrub};

/// `application_name` of the operations' sessions.
pub const APPLICATION_NAME: &str = "rosetta-operations";

/// How often a forced drop looks whether the terminated consumer has let go of the slot.
const RELEASE_POLL: Duration = Duration::from_millis(50);

/// SQLSTATEs the operations act on.
const DUPLICATE_OBJECT: &str = "42710";
const UNDEFINED_OBJECT: &str = "42704";
const OBJECT_IN_USE: &str = "55006";

/// The [`SourceOperations`] of a PostgreSQL source.
#[derive(Debug, Clone)]
pub struct PostgresSourceOperations {
    timeout: Duration,
}

impl PostgresSourceOperations {
    /// Operations each bounded by `timeout` (`SOURCE_TIMEOUT_SECONDS`).
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// Runs `work` on a new session to `source`, all of it within the timeout; errors scrubbed.
    async fn with_session<T, E, F>(&self, source: &SourceConnection, work: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&mut Session) -> Result<T, E>,
        E: From<SourceError> + Scrub,
    {
        let deadline = Instant::now() + self.timeout;
        let outcome = tokio::time::timeout(self.timeout, async {
            let (client, closing) = connect::open(source, APPLICATION_NAME, self.timeout, self.timeout)
                .await
                .map_err(|f| SourceError::Connect { message: f.message, sqlstate: f.sqlstate })?;
            let mut session = Session { client, _closing: closing, deadline };
            work(&mut session).await
        })
        .await;
        let result = match outcome {
            Ok(result) => result,
            Err(_elapsed) => Err(SourceError::Timeout(self.timeout).into()),
        };
        result.map_err(|error| error.scrub(source))
    }
}

/// One short session; closed when dropped.
struct Session {
    client: Client,
    _closing: oneshot::Sender<()>,
    deadline: Instant,
}

/// A statement's error as a [`SourceError`]: a server error keeps its SQLSTATE; anything else
/// (I/O, a closed connection) means the connection broke.
fn query_error(error: &tokio_postgres::Error) -> SourceError {
    match error.code() {
        Some(code) => SourceError::Sql { message: describe(error), sqlstate: code.code().to_owned() },
        None => SourceError::Connect { message: describe(error), sqlstate: None },
    }
}

/// Scrubbing the password out of an error's texts.
trait Scrub {
    fn scrub(self, source: &SourceConnection) -> Self;
}

impl Scrub for SourceError {
    fn scrub(self, source: &SourceConnection) -> Self {
        let password = source.pg_password.as_ref();
        match self {
            Self::Connect { message, sqlstate } => Self::Connect { message: scrub(&message, password), sqlstate },
            Self::Sql { message, sqlstate } => Self::Sql { message: scrub(&message, password), sqlstate },
            Self::Timeout(limit) => Self::Timeout(limit),
        }
    }
}

impl Scrub for PublicationError {
    fn scrub(self, source: &SourceConnection) -> Self {
        match self {
            Self::Source(error) => Self::Source(error.scrub(source)),
            missing @ Self::MissingTables(_) => missing,
        }
    }
}

impl Scrub for SlotError {
    fn scrub(self, source: &SourceConnection) -> Self {
        match self {
            Self::Source(error) => Self::Source(error.scrub(source)),
            other => other,
        }
    }
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, SourceError> {
    row.try_get(name).map_err(|e| SourceError::Sql { message: format!("column {name}: {e}"), sqlstate: "XX000".into() })
}

/// How PostgreSQL names a publication written unquoted: lower-cased. The CDC engine names it
/// unquoted (`publication_names`), so Rosetta creates and reads it under the same name.
fn catalog_name(publication: &PublicationName) -> String {
    publication.as_str().to_ascii_lowercase()
}

fn table_from_row(row: &Row) -> Result<TableName, SourceError> {
    let schema: String = column(row, "schema_name")?;
    let name: String = column(row, "table_name")?;
    TableName::new(schema, name)
        .map_err(|e| SourceError::Sql { message: format!("unusable table name: {e}"), sqlstate: "XX000".into() })
}

async fn read_tables(
    client: &impl GenericClient,
    publication: &str,
    only_published: bool,
) -> Result<Vec<SourceTable>, SourceError> {
    let rows = client.query(sql::TABLES, &[&publication]).await.map_err(|e| query_error(&e))?;
    let mut tables = Vec::with_capacity(rows.len());
    for row in &rows {
        let in_publication: bool = column(row, "in_publication")?;
        if only_published && !in_publication {
            continue;
        }
        let identity: String = column(row, "replica_identity")?;
        let estimated: f64 = column(row, "estimated_rows")?;
        tables.push(SourceTable {
            table: table_from_row(row)?,
            has_primary_key: column(row, "has_primary_key")?,
            replica_identity: identity
                .chars()
                .next()
                .and_then(ReplicaIdentity::from_code)
                .unwrap_or(ReplicaIdentity::Default),
            in_publication,
            // -1 (14+) or 0 before the first ANALYZE on 13: unknown rather than empty only for -1.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            estimated_rows: (estimated >= 0.0).then(|| estimated.round() as u64),
        });
    }
    Ok(tables)
}

async fn read_publication(
    client: &impl GenericClient,
    publication: &PublicationName,
) -> Result<Publication, SourceError> {
    let name = catalog_name(publication);
    let found = client.query_opt(sql::PUBLICATION, &[&name]).await.map_err(|e| query_error(&e))?;
    let Some(row) = found else {
        return Ok(Publication { name: publication.clone(), exists: false, all_tables: false, tables: Vec::new() });
    };
    let all_tables: bool = column(&row, "puballtables")?;
    let mut tables: Vec<TableName> =
        read_tables(client, &name, true).await?.into_iter().map(|table| table.table).collect();
    tables.sort();
    Ok(Publication { name: publication.clone(), exists: true, all_tables, tables })
}

fn lsn(bytes: Option<i64>) -> Option<Lsn> {
    bytes.and_then(|b| u64::try_from(b).ok()).map(Lsn::from_bytes)
}

/// The slot of this database named `slot`, with the pid of its consumer.
async fn read_slot(client: &Client, slot: &SlotName) -> Result<Option<(LiveSlot, Option<i32>)>, SourceError> {
    let Some(row) = client.query_opt(sql::SLOT, &[&slot.as_str()]).await.map_err(|e| query_error(&e))? else {
        return Ok(None);
    };
    let wal_status: Option<String> = column(&row, "wal_status")?;
    let live = LiveSlot {
        active: column(&row, "active")?,
        plugin: column(&row, "plugin")?,
        restart_lsn: lsn(column(&row, "restart_lsn")?),
        confirmed_flush_lsn: lsn(column(&row, "confirmed_flush_lsn")?),
        retained_bytes: column::<Option<i64>>(&row, "retained_bytes")?.and_then(|b| u64::try_from(b).ok()),
        wal_status: wal_status.and_then(|s| s.parse::<WalStatus>().ok()),
    };
    Ok(Some((live, column(&row, "active_pid")?)))
}

/// `CREATE PUBLICATION` for `tables`, every identifier quoted.
fn create_publication_sql(name: &str, tables: &PublicationTables) -> String {
    match tables {
        PublicationTables::AllTables => format!("CREATE PUBLICATION {} FOR ALL TABLES", quote_identifier(name)),
        PublicationTables::Tables(list) => {
            format!("CREATE PUBLICATION {} FOR TABLE {}", quote_identifier(name), table_list(list))
        }
    }
}

fn table_list(tables: &[TableName]) -> String {
    tables
        .iter()
        .map(|t| format!("{}.{}", quote_identifier(t.schema()), quote_identifier(t.name())))
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl SourceOperations for PostgresSourceOperations {
    async fn facts(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<SourceFacts, SourceError> {
        self.with_session(source, async |session: &mut Session| {
            let client = &session.client;
            let row = client.query_one(sql::FACTS, &[]).await.map_err(|e| query_error(&e))?;
            let published = read_publication(client, publication).await?;
            let publication = if published.exists {
                let tables = read_tables(client, &catalog_name(publication), true).await?;
                Some(PublicationFacts { all_tables: published.all_tables, tables })
            } else {
                None
            };
            Ok(SourceFacts {
                server_version_num: column(&row, "server_version_num")?,
                server_version: column(&row, "server_version")?,
                wal_level: column(&row, "wal_level")?,
                is_superuser: column(&row, "is_superuser")?,
                may_replicate: column(&row, "may_replicate")?,
                max_replication_slots: column(&row, "max_replication_slots")?,
                replication_slots_used: column(&row, "replication_slots_used")?,
                max_wal_senders: column(&row, "max_wal_senders")?,
                wal_senders_used: column(&row, "wal_senders_used")?,
                max_slot_wal_keep_size_mb: column(&row, "max_slot_wal_keep_size_mb")?,
                publication,
                may_monitor: column(&row, "may_monitor")?,
                tls: column(&row, "tls")?,
            })
        })
        .await
    }

    async fn tables(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<Vec<SourceTable>, SourceError> {
        self.with_session(source, async |session: &mut Session| {
            read_tables(&session.client, &catalog_name(publication), false).await
        })
        .await
    }

    async fn publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<Publication, SourceError> {
        self.with_session(source, async |session: &mut Session| read_publication(&session.client, publication).await)
            .await
    }

    async fn set_publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
        tables: &PublicationTables,
    ) -> Result<Publication, PublicationError> {
        self.with_session(source, async |session: &mut Session| {
            let name = catalog_name(publication);
            let transaction = session.client.transaction().await.map_err(|e| query_error(&e))?;
            if let PublicationTables::Tables(list) = tables {
                let schemas: Vec<&str> = list.iter().map(TableName::schema).collect();
                let names: Vec<&str> = list.iter().map(TableName::name).collect();
                let rows =
                    transaction.query(sql::MISSING_TABLES, &[&schemas, &names]).await.map_err(|e| query_error(&e))?;
                if !rows.is_empty() {
                    let missing = rows.iter().map(table_from_row).collect::<Result<Vec<_>, _>>()?;
                    return Err(PublicationError::MissingTables(missing));
                }
            }
            let current = read_publication(&transaction, publication).await?;
            let statements: Vec<String> = match (current.exists, current.all_tables, tables) {
                (false, _, wanted) => vec![create_publication_sql(&name, wanted)],
                (true, true, PublicationTables::AllTables) => Vec::new(),
                (true, false, PublicationTables::Tables(list)) if current.tables == *list => Vec::new(),
                (true, false, PublicationTables::Tables(list)) => {
                    vec![format!("ALTER PUBLICATION {} SET TABLE {}", quote_identifier(&name), table_list(list))]
                }
                // ALTER PUBLICATION cannot switch between FOR ALL TABLES and a list: replace it
                // in one transaction, so no session ever sees it missing.
                (true, _, wanted) => {
                    vec![format!("DROP PUBLICATION {}", quote_identifier(&name)), create_publication_sql(&name, wanted)]
                }
            };
            if statements.is_empty() {
                return Ok(current);
            }
            for statement in &statements {
                transaction.batch_execute(statement).await.map_err(|e| query_error(&e))?;
            }
            let after = read_publication(&transaction, publication).await?;
            transaction.commit().await.map_err(|e| query_error(&e))?;
            Ok(after)
        })
        .await
    }

    async fn drop_publication(
        &self,
        source: &SourceConnection,
        publication: &PublicationName,
    ) -> Result<bool, SourceError> {
        self.with_session(source, async |session: &mut Session| {
            let name = catalog_name(publication);
            let exists = session.client.query_opt(sql::PUBLICATION, &[&name]).await.map_err(|e| query_error(&e))?;
            if exists.is_none() {
                return Ok(false);
            }
            let statement = format!("DROP PUBLICATION IF EXISTS {}", quote_identifier(&name));
            session.client.batch_execute(&statement).await.map_err(|e| query_error(&e))?;
            Ok(true)
        })
        .await
    }

    async fn create_slot(&self, source: &SourceConnection, slot: &SlotName) -> Result<SlotCreation, SlotError> {
        // Whether the create statement went out: a deadline after that leaves the slot's
        // existence unknown, one before it does not.
        let sent = AtomicBool::new(false);
        let outcome = self
            .with_session(source, async |session: &mut Session| {
                let client = &session.client;
                let existing = async || -> Result<Option<SlotCreation>, SlotError> {
                    let row = client.query_opt(sql::SLOT_KIND, &[&slot.as_str()]).await.map_err(|e| query_error(&e))?;
                    let Some(row) = row else { return Ok(None) };
                    let slot_type: String = column(&row, "slot_type")?;
                    let database: Option<String> = column(&row, "database_name")?;
                    let current: String = column(&row, "current_database")?;
                    if slot_type != "logical" || database.as_deref() != Some(current.as_str()) {
                        return Err(SlotError::Incompatible(slot.clone()));
                    }
                    let live = read_slot(client, slot).await?.map(|(live, _)| live);
                    Ok(live.map(SlotCreation::Existed))
                };
                if let Some(found) = existing().await? {
                    return Ok(found);
                }
                sent.store(true, Ordering::SeqCst);
                match client.query_one(sql::CREATE_SLOT, &[&slot.as_str()]).await {
                    Ok(_) => {}
                    // Created by someone else since we looked.
                    Err(e) if e.code().is_some_and(|c| c.code() == DUPLICATE_OBJECT) => {
                        return existing().await?.ok_or_else(|| SlotError::Source(query_error(&e)));
                    }
                    Err(e) => return Err(query_error(&e).into()),
                }
                let live = read_slot(client, slot).await?.map(|(live, _)| live).ok_or_else(|| {
                    SlotError::Source(SourceError::Sql {
                        message: format!("slot {slot} disappeared right after it was created"),
                        sqlstate: UNDEFINED_OBJECT.into(),
                    })
                })?;
                Ok(SlotCreation::Created(live))
            })
            .await;
        match outcome {
            Err(SlotError::Source(SourceError::Timeout(limit))) if sent.load(Ordering::SeqCst) => {
                Err(SlotError::Uncertain(limit))
            }
            other => other,
        }
    }

    async fn slot(&self, source: &SourceConnection, slot: &SlotName) -> Result<Option<LiveSlot>, SourceError> {
        self.with_session(source, async |session: &mut Session| {
            Ok(read_slot(&session.client, slot).await?.map(|(live, _)| live))
        })
        .await
    }

    async fn drop_slot(&self, source: &SourceConnection, slot: &SlotName, force: bool) -> Result<SlotDrop, SlotError> {
        self.with_session(source, async |session: &mut Session| {
            let client = &session.client;
            let Some((live, pid)) = read_slot(client, slot).await? else {
                return Ok(SlotDrop::Absent);
            };
            if live.active {
                if !force {
                    return Err(SlotError::Active(slot.clone()));
                }
                if let Some(pid) = pid {
                    client.query_one(sql::TERMINATE, &[&pid]).await.map_err(|e| query_error(&e))?;
                }
                // The WAL sender releases the slot as it exits; wait for that (the outer
                // deadline bounds the wait).
                while read_slot(client, slot).await?.is_some_and(|(live, _)| live.active) {
                    if Instant::now() + RELEASE_POLL >= session.deadline {
                        return Err(SlotError::Active(slot.clone()));
                    }
                    tokio::time::sleep(RELEASE_POLL).await;
                }
            }
            match client.query_one(sql::DROP_SLOT, &[&slot.as_str()]).await {
                Ok(_) => Ok(SlotDrop::Dropped),
                Err(e) if e.code().is_some_and(|c| c.code() == UNDEFINED_OBJECT) => Ok(SlotDrop::Absent),
                // A consumer attached between the look and the drop.
                Err(e) if e.code().is_some_and(|c| c.code() == OBJECT_IN_USE) => Err(SlotError::Active(slot.clone())),
                Err(e) => Err(query_error(&e).into()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_quotes_every_identifier() {
        let tables = PublicationTables::exactly(vec![
            TableName::parse("public.Mixed Case").unwrap(),
            TableName::parse("odd\"schema.t").unwrap(),
        ])
        .unwrap();
        assert_eq!(
            create_publication_sql("pub", &tables),
            "CREATE PUBLICATION \"pub\" FOR TABLE \"odd\"\"schema\".\"t\", \"public\".\"Mixed Case\""
        );
        assert_eq!(
            create_publication_sql("pub", &PublicationTables::AllTables),
            "CREATE PUBLICATION \"pub\" FOR ALL TABLES"
        );
    }

    #[test]
    fn publication_names_are_folded_like_unquoted_identifiers() {
        assert_eq!(catalog_name(&PublicationName::parse("Rosetta_Pub").unwrap()), "rosetta_pub");
    }
}
