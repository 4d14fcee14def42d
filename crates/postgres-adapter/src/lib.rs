//! Rosetta's metadata store on PostgreSQL: the repositories of `rosetta_ports::outbound` and the
//! WAL monitor's stores of `rosetta_ports::wal` over diesel-async and a deadpool connection pool,
//! the embedded schema migrations, and the cipher that seals stored secrets.
//!
//! Wiring (the server does this once):
//!
//! ```no_run
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use rosetta_postgres_adapter::*;
//!
//! let url = "postgres://rosetta@localhost/rosetta".to_owned();
//! run_migrations(&url).await?;
//! let store = PostgresStore::new(StoreSettings { url, max_size: 30, connection_timeout: Duration::from_secs(30) })?;
//! store.check_connection().await?;
//! let cipher = Arc::new(XChaChaSecretCipher::new("a secret key of at least 32 characters")?);
//! let sources = PostgresSourceRepository::new(store.clone(), cipher.clone());
//! let destinations = PostgresDestinationRepository::new(store.clone(), cipher.clone());
//! let pipelines = PostgresPipelineRepository::new(store.clone(), cipher.clone());
//! let wal_metrics = PostgresWalMetricsRepository::new(store.clone());
//! let system_metrics = PostgresSystemMetricsRepository::new(store.clone());
//! # Ok(()) }
//! ```
//!
//! This is the only crate that speaks SQL. Port errors never carry SQL, parameters or secrets.

mod alert;
mod channel;
mod cipher;
mod cleanup;
mod connector;
mod destination;
mod error;
#[cfg(test)]
mod explain;
mod lease;
mod migrations;
mod paging;
mod pipeline;
mod rotation;
mod schema;
mod secrets;
mod source;
mod store;
mod system;
mod wal;
mod wal_rows;

pub use alert::PostgresAlertStore;
pub use channel::{PostgresChannelRepository, PostgresDeliveryStore};
pub use cipher::{SecretKeyError, XChaChaSecretCipher};
pub use cleanup::PostgresCleanupTaskStore;
pub use connector::{DatabaseUrlError, MetadataConnector};
pub use destination::PostgresDestinationRepository;
pub use lease::PostgresLeaseStore;
pub use migrations::{MigrationError, run_migrations};
pub use pipeline::PostgresPipelineRepository;
pub use rotation::{
    LEGACY_KEY_LABEL, RotationOutcome, RotationScope, SealedCount, SecretRotation, SecretSurvey, UnreadableSecret,
};
pub use source::PostgresSourceRepository;
pub use store::{PostgresStore, StoreError, StoreSettings, check_database_url};
pub use system::PostgresSystemMetricsRepository;
pub use wal::PostgresWalMetricsRepository;
