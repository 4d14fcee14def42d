//! Contract suites for the outbound ports (feature `testing`).
//!
//! Every implementation of a storage port — the PostgreSQL adapter, the in-memory store, or a
//! third party's adapter in another workspace — proves it honours the port's documented contract
//! by running these suites against itself. Each guarantee is a test of its own, generated in the
//! implementation's crate, so one failure hides none:
//!
//! ```ignore
//! struct MyFactory;
//! #[async_trait::async_trait]
//! impl rosetta_ports::testing::RepositoryFactory for MyFactory {
//!     async fn fresh(&self) -> rosetta_ports::testing::RepositoryBundle { /* an empty store */ }
//! }
//! // One `#[tokio::test(flavor = "multi_thread")]` per case (the crate needs tokio's macros).
//! rosetta_ports::repository_contract_tests!(MyFactory);
//! ```
//!
//! The suites: [`repository_contract_tests!`](crate::repository_contract_tests) (sources,
//! destinations, pipelines), [`lease_contract_tests!`](crate::lease_contract_tests) (the leases of
//! every queue), [`wal_store_contract_tests!`](crate::wal_store_contract_tests) (WAL and host
//! metrics) and [`secret_cipher_contract_tests!`](crate::secret_cipher_contract_tests). A failed
//! case panics with the case's name and what differed.

/// Defines the cases of a contract suite — one `pub async fn` per guarantee, taking the suite's
/// factory — and an exported macro `$suite!(factory)` that generates one test per case.
/// `$d` is a literal `$`, which the generated macro needs for its own parameter.
macro_rules! contract {
    ($d:tt $suite:ident, testing::$module:ident, $factory:ident:
     $( $(#[$meta:meta])* async fn $name:ident($f:ident) $body:block )*) => {
        $( $(#[$meta])* pub async fn $name($f: &dyn $factory) $body )*

        #[doc = concat!("Generates one `#[tokio::test]` per case of the `", stringify!($suite),
            "` suite against the given [`", stringify!($factory), "`] value.")]
        #[macro_export]
        macro_rules! $suite {
            ($d factory:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread")]
                    async fn $name() {
                        $crate::testing::$module::$name(&$d factory).await;
                    }
                )*
            };
        }
    };
}

// The case modules are public (hidden) because the generated tests call their cases.
#[doc(hidden)]
pub mod cipher;
mod fixtures;
#[doc(hidden)]
pub mod leases;
pub mod memory;
#[doc(hidden)]
pub mod repositories;
#[doc(hidden)]
pub mod wal;

pub use cipher::{CipherFactory, InsecureTestCipher};
pub use fixtures::{ROOT_CERT_PEM, fixed_time, new_destination, new_pipeline, new_source};
pub use leases::{LeaseStoreBundle, LeaseStoreFactory};
pub use repositories::{RepositoryBundle, RepositoryFactory};
pub use wal::{WalStoreBundle, WalStoreFactory};
