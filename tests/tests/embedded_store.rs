//! The projection-store conformance suite against the embedded SQLite store, as the live store
//! and as the scratch file of a rebuild (a bulk load).

use std::sync::Arc;

use async_trait::async_trait;
use infra::embedded_store::{EmbeddedStore, OpenMode};
use seams::conformance::store::StoreHarness;
use seams::ProjectionStore;

struct Harness {
    dir: tempfile::TempDir,
}

#[async_trait]
impl StoreHarness for Harness {
    async fn open(&mut self) -> Arc<dyn ProjectionStore> {
        EmbeddedStore::open(&self.dir.path().join("store.db"), schemas::TimePolicy::default()).unwrap()
    }

    async fn open_again(&mut self) -> Arc<dyn ProjectionStore> {
        self.open().await
    }
}

seams::store_suite!(async { Harness { dir: tempfile::tempdir().unwrap() } });

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
        async fn open(&mut self) -> Arc<dyn ProjectionStore> {
            let path = self.dir.path().join("store.db.rebuild");
            let store: Arc<dyn ProjectionStore> =
                EmbeddedStore::open_with(&path, schemas::TimePolicy::default(), OpenMode::BulkLoad).unwrap();
            self.store = Some(store.clone());
            store
        }

        async fn open_again(&mut self) -> Arc<dyn ProjectionStore> {
            match &self.store {
                Some(store) => store.clone(),
                None => self.open().await,
            }
        }
    }

    seams::store_suite!(async { Harness { dir: tempfile::tempdir().unwrap(), store: None } });
}
