//! The port contract suites of `rosetta_ports::testing`, run against PostgreSQL.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rosetta_ports::testing::{
    RepositoryBundle, RepositoryFactory, destination_repository_contract, pipeline_repository_contract,
    secret_cipher_contract, source_repository_contract,
};
use rosetta_postgres_adapter::XChaChaSecretCipher;

/// Each contract case gets its own database cloned from the migrated template, kept alive by
/// the bundle's guard.
struct PostgresFactory;

#[async_trait]
impl RepositoryFactory for PostgresFactory {
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

#[tokio::test(flavor = "multi_thread")]
async fn sources_honour_the_contract() {
    source_repository_contract(&PostgresFactory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_honour_the_contract() {
    destination_repository_contract(&PostgresFactory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_honour_the_contract() {
    pipeline_repository_contract(&PostgresFactory).await;
}

#[test]
fn the_cipher_honours_the_contract() {
    let cipher = XChaChaSecretCipher::new(support::SECRET_KEY).unwrap_or_else(|e| panic!("{e}"));
    let other =
        XChaChaSecretCipher::new("another key that is long enough to be accepted").unwrap_or_else(|e| panic!("{e}"));
    secret_cipher_contract(&cipher, &other);
}
