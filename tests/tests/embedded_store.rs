//! The projection-store conformance suite against the embedded SQLite store, as the live store
//! and as the scratch file of a rebuild (a bulk load).

use std::sync::Arc;

use async_trait::async_trait;
use infra::embedded_store::{EmbeddedStore, OpenMode};
use schemas::TimePolicy;
use seams::conformance::store::StoreHarness;
use seams::ProjectionStore;

struct Harness {
    dir: tempfile::TempDir,
    policy: TimePolicy,
}

#[async_trait]
impl StoreHarness for Harness {
    async fn open_with(&mut self, policy: TimePolicy) -> Arc<dyn ProjectionStore> {
        self.policy = policy;
        EmbeddedStore::open(&self.dir.path().join("store.db"), policy).unwrap()
    }

    async fn open_again(&mut self) -> Arc<dyn ProjectionStore> {
        self.open_with(self.policy).await
    }

    async fn open_empty(&mut self) -> Arc<dyn ProjectionStore> {
        EmbeddedStore::open(&self.dir.path().join("empty.db"), self.policy).unwrap()
    }
}

seams::store_suite!(async { Harness { dir: tempfile::tempdir().unwrap(), policy: TimePolicy::default() } });

/// [`OpenMode::BulkLoad`]: the file's one connection serves reads too. It is locked
/// exclusively, so a second handle is the same store.
mod bulk_load {
    use super::*;

    struct Harness {
        dir: tempfile::TempDir,
        store: Option<Arc<dyn ProjectionStore>>,
    }

    #[async_trait]
    impl StoreHarness for Harness {
        async fn open_with(&mut self, policy: TimePolicy) -> Arc<dyn ProjectionStore> {
            let path = self.dir.path().join("store.db.rebuild");
            let store: Arc<dyn ProjectionStore> = EmbeddedStore::open_with(&path, policy, OpenMode::BulkLoad).unwrap();
            self.store = Some(store.clone());
            store
        }

        async fn open_again(&mut self) -> Arc<dyn ProjectionStore> {
            match &self.store {
                Some(store) => store.clone(),
                None => self.open().await,
            }
        }

        async fn open_empty(&mut self) -> Arc<dyn ProjectionStore> {
            let path = self.dir.path().join("empty.db.rebuild");
            EmbeddedStore::open_with(&path, TimePolicy::default(), OpenMode::BulkLoad).unwrap()
        }
    }

    seams::store_suite!(async { Harness { dir: tempfile::tempdir().unwrap(), store: None } });
}
