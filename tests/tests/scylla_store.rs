//! The projection-store conformance suite against ScyllaDB.
//!
//! Needs a reachable node: `SCYLLA_NODES=127.0.0.1:9042` (comma-separated `HOST:PORT`s).
//! Every case opens its own fresh keyspace (`daybook_test_<pid>_<nanos>_<n>`, replication
//! factor 1) created with `infra::scylla::apply_schema`, the same code as
//! `daybook schema apply`. Without `SCYLLA_NODES` every case fails with a message saying
//! so: this binary never passes without having talked to ScyllaDB. (The test script leaves
//! it out when `SCYLLA_NODES` is unset.)
//!
//! The keyspaces are left behind for inspection; drop them with
//! `cqlsh -e "DESCRIBE KEYSPACES"` and `DROP KEYSPACE daybook_test_…`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use infra::scylla::{apply_schema, ScyllaOptions, ScyllaStore};
use schemas::TimePolicy;
use seams::conformance::store::StoreHarness;
use seams::ProjectionStore;

static OPENED: AtomicUsize = AtomicUsize::new(0);

/// Opens a `ScyllaStore` on a new keyspace of the cluster named by `SCYLLA_NODES`; `open_again`
/// connects a second session to the keyspace opened last.
struct Scylla {
    url: Option<String>,
    policy: TimePolicy,
}

async fn connect(url: &str, policy: TimePolicy) -> Arc<dyn ProjectionStore> {
    let store = ScyllaStore::connect(url, policy, ScyllaOptions::default())
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    store.health().await.unwrap_or_else(|e| panic!("{url} is not healthy: {e}"));
    store
}

fn nodes() -> String {
    match std::env::var("SCYLLA_NODES") {
        Ok(nodes) if !nodes.trim().is_empty() => nodes.trim().to_owned(),
        _ => panic!(
            "SCYLLA_NODES is not set: this suite runs the projection-store conformance cases against a \
             real ScyllaDB node and cannot pass without one. Start one (e.g. `docker compose -f \
             infra/compose.yaml up -d scylla1`) and run `SCYLLA_NODES=127.0.0.1:9042 scripts/test`."
        ),
    }
}

fn fresh_keyspace() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    let n = OPENED.fetch_add(1, Ordering::Relaxed);
    let keyspace = format!("daybook_test_{}_{nanos}_{n}", std::process::id());
    assert!(keyspace.len() <= 48, "keyspace name {keyspace} is too long for CQL");
    keyspace
}

#[async_trait]
impl StoreHarness for Scylla {
    async fn open_with(&mut self, policy: TimePolicy) -> Arc<dyn ProjectionStore> {
        let url = format!("scylla://{}/{}", nodes(), fresh_keyspace());
        apply_schema(&url, 1).await.unwrap_or_else(|e| panic!("applying the schema at {url}: {e}"));
        let store = connect(&url, policy).await;
        self.url = Some(url);
        self.policy = policy;
        store
    }

    async fn open_again(&mut self) -> Arc<dyn ProjectionStore> {
        let url = self.url.clone().expect("open_again after open");
        connect(&url, self.policy).await
    }

    async fn open_empty(&mut self) -> Arc<dyn ProjectionStore> {
        let url = format!("scylla://{}/{}", nodes(), fresh_keyspace());
        apply_schema(&url, 1).await.unwrap_or_else(|e| panic!("applying the schema at {url}: {e}"));
        connect(&url, self.policy).await
    }
}

seams::store_suite!(async { Scylla { url: None, policy: TimePolicy::default() } });
