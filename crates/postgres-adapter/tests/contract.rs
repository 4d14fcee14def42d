//! The port contract suites of `rosetta_ports::testing`, run against PostgreSQL: one test per
//! guarantee, each case on a database of its own cloned from the migrated template (kept alive
//! by the bundle's guard).

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_ports::outbound::SecretCipher;
use rosetta_ports::testing::{
    CipherFactory, LeaseStoreBundle, LeaseStoreFactory, RepositoryBundle, RepositoryFactory, WalStoreBundle,
    WalStoreFactory,
};
use rosetta_postgres_adapter::{
    PostgresLeaseStore, PostgresSystemMetricsRepository, PostgresWalMetricsRepository, XChaChaSecretCipher,
};

struct Postgres;

#[async_trait]
impl RepositoryFactory for Postgres {
    async fn fresh(&self) -> RepositoryBundle {
        let database = support::fresh_database().await;
        let store = support::store(database.url(), 10, Duration::from_secs(10));
        let repositories = support::repositories(&store);
        RepositoryBundle {
            sources: Arc::new(repositories.sources),
            destinations: Arc::new(repositories.destinations),
            pipelines: Arc::new(repositories.pipelines),
            guard: Some(Box::new(database)),
        }
    }
}

#[async_trait]
impl LeaseStoreFactory for Postgres {
    async fn fresh(&self) -> LeaseStoreBundle {
        let database = support::fresh_database().await;
        let store = support::store(database.url(), 10, Duration::from_secs(10));
        LeaseStoreBundle { leases: Arc::new(PostgresLeaseStore::new(store)), guard: Some(Box::new(database)) }
    }
}

#[async_trait]
impl WalStoreFactory for Postgres {
    async fn fresh(&self) -> WalStoreBundle {
        let database = support::fresh_database().await;
        let store = support::store(database.url(), 10, Duration::from_secs(10));
        let repositories = support::repositories(&store);
        WalStoreBundle {
            sources: Arc::new(repositories.sources),
            leases: Arc::new(PostgresLeaseStore::new(store.clone())),
            wal: Arc::new(PostgresWalMetricsRepository::new(store.clone())),
            system: Arc::new(PostgresSystemMetricsRepository::new(store)),
            guard: Some(Box::new(database)),
        }
    }
}

impl CipherFactory for Postgres {
    fn cipher(&self) -> Box<dyn SecretCipher> {
        Box::new(XChaChaSecretCipher::new(support::SECRET_KEY).unwrap_or_else(|e| panic!("{e}")))
    }
    fn other_key(&self) -> Box<dyn SecretCipher> {
        Box::new(
            XChaChaSecretCipher::new("another key that is long enough to be accepted")
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }
}

rosetta_ports::repository_contract_tests!(Postgres);
rosetta_ports::lease_contract_tests!(Postgres);
rosetta_ports::wal_store_contract_tests!(Postgres);
rosetta_ports::secret_cipher_contract_tests!(Postgres);
