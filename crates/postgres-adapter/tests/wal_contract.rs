//! The WAL store contract suite of `rosetta_ports::testing`, run against PostgreSQL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_ports::testing::{WalStoreBundle, WalStoreFactory, wal_metrics_repository_contract};
use rosetta_postgres_adapter::{PostgresSystemMetricsRepository, PostgresWalMetricsRepository};

/// Each contract case gets its own database cloned from the migrated template, kept alive by
/// the bundle's guard.
struct PostgresWalFactory;

#[async_trait]
impl WalStoreFactory for PostgresWalFactory {
    async fn fresh(&self) -> WalStoreBundle {
        let database = support::fresh_database().await;
        let store = support::store(database.url(), 10, Duration::from_secs(10));
        let repositories = support::repositories(&store);
        WalStoreBundle {
            sources: Arc::new(repositories.sources),
            wal: Arc::new(PostgresWalMetricsRepository::new(store.clone())),
            system: Arc::new(PostgresSystemMetricsRepository::new(store)),
            guard: Some(Box::new(database)),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_and_system_metrics_honour_the_contract() {
    wal_metrics_repository_contract(&PostgresWalFactory).await;
}
