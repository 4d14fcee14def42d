//! Contract suites for the outbound ports (feature `testing`).
//!
//! Every implementation of a repository port — the PostgreSQL adapter, the in-memory store, or a
//! third party's adapter in another workspace — proves it honours the port's documented contract
//! by running these suites against itself:
//!
//! ```ignore
//! struct MyFactory;
//! #[async_trait::async_trait]
//! impl rosetta_ports::testing::RepositoryFactory for MyFactory {
//!     async fn fresh(&self) -> rosetta_ports::testing::RepositoryBundle { /* an empty store */ }
//! }
//! #[tokio::test(flavor = "multi_thread")]
//! async fn honours_the_repository_contracts() {
//!     rosetta_ports::testing::repository_contracts(&MyFactory).await;
//! }
//! ```
//!
//! A failed case panics with the case's name and what differed.

mod cipher;
mod fixtures;
pub mod memory;
mod repositories;
mod wal;

pub use cipher::{InsecureTestCipher, secret_cipher_contract};
pub use fixtures::{fixed_time, new_destination, new_pipeline, new_source};
pub use repositories::{
    RepositoryBundle, RepositoryFactory, destination_repository_contract, pipeline_repository_contract,
    repository_contracts, source_repository_contract,
};
pub use wal::{WalStoreBundle, WalStoreFactory, system_metrics_repository_contract, wal_metrics_repository_contract};
