//! The in-memory store honours every storage contract, one test per guarantee.

use std::sync::Arc;

use async_trait::async_trait;
use rosetta_ports::testing::memory::InMemoryStore;
use rosetta_ports::testing::{
    CipherFactory, InsecureTestCipher, LeaseStoreBundle, LeaseStoreFactory, RepositoryBundle, RepositoryFactory,
    WalStoreBundle, WalStoreFactory,
};

struct Memory;

fn store() -> InMemoryStore {
    InMemoryStore::new(Arc::new(InsecureTestCipher::new(7)))
}

#[async_trait]
impl RepositoryFactory for Memory {
    async fn fresh(&self) -> RepositoryBundle {
        let store = store();
        RepositoryBundle {
            sources: Arc::new(store.clone()),
            destinations: Arc::new(store.clone()),
            pipelines: Arc::new(store),
            guard: None,
        }
    }
}

#[async_trait]
impl LeaseStoreFactory for Memory {
    async fn fresh(&self) -> LeaseStoreBundle {
        LeaseStoreBundle { leases: Arc::new(store()), guard: None }
    }
}

#[async_trait]
impl WalStoreFactory for Memory {
    async fn fresh(&self) -> WalStoreBundle {
        let store = store();
        WalStoreBundle {
            sources: Arc::new(store.clone()),
            leases: Arc::new(store.clone()),
            wal: Arc::new(store.clone()),
            system: Arc::new(store),
            guard: None,
        }
    }
}

impl CipherFactory for Memory {
    fn cipher(&self) -> Box<dyn rosetta_ports::outbound::SecretCipher> {
        Box::new(InsecureTestCipher::new(1))
    }
    fn other_key(&self) -> Box<dyn rosetta_ports::outbound::SecretCipher> {
        Box::new(InsecureTestCipher::new(2))
    }
}

rosetta_ports::repository_contract_tests!(Memory);
rosetta_ports::lease_contract_tests!(Memory);
rosetta_ports::wal_store_contract_tests!(Memory);
