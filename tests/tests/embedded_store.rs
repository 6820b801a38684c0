//! The projection-store conformance suite against the embedded SQLite store.

use std::sync::Arc;

use async_trait::async_trait;
use infra::embedded_store::EmbeddedStore;
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
