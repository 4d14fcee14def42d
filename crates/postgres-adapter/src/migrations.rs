//! The schema migrations in the repository's `migrations/` directory, embedded in the binary.

use diesel::RunQueryDsl;
use diesel::sql_types::BigInt;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::connector::{DatabaseUrlError, MetadataConnector};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// The advisory lock held while migrating, so servers starting together migrate one at a time
/// (the later ones then find nothing pending). Arbitrary but fixed: the bytes of "rosetta", then 1.
const MIGRATION_LOCK: i64 = 0x726f_7365_7474_6101;

/// Why the schema could not be migrated. Never contains the URL.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// `DATABASE_URL` cannot be used.
    #[error("cannot migrate the database")]
    Url(#[source] DatabaseUrlError),
    /// The database could not be reached.
    #[error("cannot connect to the database to migrate it")]
    Connect(#[source] diesel::ConnectionError),
    /// Taking or releasing the migration lock failed.
    #[error("cannot take the migration lock")]
    Lock(#[source] diesel::result::Error),
    /// A migration failed; it was rolled back.
    #[error("a database migration failed")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking migration task panicked or was cancelled.
    #[error("the migration task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

/// Applies every pending migration to the database at `url`, holding a PostgreSQL advisory lock
/// so that concurrent callers (several servers starting at once) run them one at a time.
///
/// The connection is the store's ([`MetadataConnector`]: the URL's TLS settings). diesel's
/// migration harness is synchronous, so it runs on a blocking thread over
/// `AsyncConnectionWrapper`; this works on any tokio runtime flavour.
pub async fn run_migrations(url: &str) -> Result<(), MigrationError> {
    let connector = MetadataConnector::from_url(url).map_err(MigrationError::Url)?;
    let conn = connector.connect().await.map_err(MigrationError::Connect)?;
    tokio::task::spawn_blocking(move || migrate(conn)).await.map_err(MigrationError::Task)?
}

fn migrate(conn: AsyncPgConnection) -> Result<(), MigrationError> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
    // Session-level lock on this connection; also released when the connection closes, so an
    // error below cannot leave it held.
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
        .map_err(MigrationError::Lock)?;
    let applied = conn.run_pending_migrations(MIGRATIONS).map(|versions| versions.len());
    let unlocked =
        diesel::sql_query("SELECT pg_advisory_unlock($1)").bind::<BigInt, _>(MIGRATION_LOCK).execute(&mut conn);
    let applied = applied.map_err(MigrationError::Migrate)?;
    unlocked.map_err(MigrationError::Lock)?;
    match applied {
        0 => tracing::info!("database schema already up to date; no migration to apply"),
        n => tracing::info!(applied = n, "applied {n} pending database migration(s)"),
    }
    Ok(())
}
