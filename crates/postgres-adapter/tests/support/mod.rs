//! Shared set-up of the integration tests: a migrated template on the test server, one database
//! per test, and stores over it.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;
use std::time::Duration;

use rosetta_ports::outbound::SecretCipher;
use rosetta_postgres_adapter::{
    PostgresDestinationRepository, PostgresPipelineRepository, PostgresSourceRepository, PostgresStore, StoreSettings,
    XChaChaSecretCipher, run_migrations,
};
use rosetta_test_support::{TemplateDatabase, TestDatabase, test_server};

/// The `SECRET_KEY` the tests seal with.
pub const SECRET_KEY: &str = "integration-test secret key, 32+ characters long";

/// The migrated template of this test binary (created on first use).
pub async fn template() -> TemplateDatabase {
    test_server()
        .template("postgres_adapter", |url| async move {
            run_migrations(&url).await.unwrap_or_else(|e| panic!("migrating the template: {e:?}"));
        })
        .await
}

/// A new database holding the migrated, empty schema; dropped with the returned value.
pub async fn fresh_database() -> TestDatabase {
    test_server().create_database(Some(&template().await)).await
}

/// A store over `url` with the given pool size and timeout.
pub fn store(url: &str, max_size: usize, connection_timeout: Duration) -> PostgresStore {
    PostgresStore::new(StoreSettings { url: url.to_owned(), max_size, connection_timeout })
        .unwrap_or_else(|e| panic!("building the store: {e}"))
}

/// The cipher the repositories seal with.
pub fn cipher() -> Arc<dyn SecretCipher> {
    Arc::new(XChaChaSecretCipher::new(SECRET_KEY).unwrap_or_else(|e| panic!("{e}")))
}

/// The three repositories over one store.
#[derive(Debug)]
pub struct Repositories {
    pub sources: PostgresSourceRepository,
    pub destinations: PostgresDestinationRepository,
    pub pipelines: PostgresPipelineRepository,
}

/// The repositories over `store`, sealing with [`cipher`].
pub fn repositories(store: &PostgresStore) -> Repositories {
    let cipher = cipher();
    Repositories {
        sources: PostgresSourceRepository::new(store.clone(), Arc::clone(&cipher)),
        destinations: PostgresDestinationRepository::new(store.clone(), Arc::clone(&cipher)),
        pipelines: PostgresPipelineRepository::new(store.clone(), Arc::clone(&cipher)),
    }
}

/// A raw tokio-postgres client for looking behind the repositories (sealed bytes, locks).
pub async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("raw connect: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}
