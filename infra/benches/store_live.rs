//! The stores' live apply, side by side: the projector's report mix (`common::ApplyMix`, the
//! mix of `embedded.rs`'s `store_apply`: of every 20 reports 12 starts, 4 ends, 3 segments, 1
//! digest; 1000 devices; last 2 days) applied in batches of the projector's size to
//! [`EmbeddedStore`] (durable, as `daybook run` opens it — not the bulk load of a rebuild) and,
//! where `SCYLLA_NODES` names a node, to [`ScyllaStore`] in a fresh keyspace at several
//! `--scylla-max-concurrency` settings. Rows/s and envelopes/s of each, printed together.
//!
//! What the ScyllaDB store does with a batch (infra/src/scylla/mod.rs): merges it by primary
//! key, groups the rows by partition (one device-day), sends each partition's rows as one
//! UNLOGGED batch of prepared statements, partitions concurrently up to `max_concurrency`,
//! then recounts the hours it wrote events into. The harness prints, per batch of the mix, how
//! many partitions and rows that makes, so a rate reads as "CQL batches per second" too.
//!
//! `cargo bench -p infra --bench store_live` (without `SCYLLA_NODES` the ScyllaDB part says
//! it is skipped). Environment: `STORE_LIVE_SECS` (default 8) seconds per measurement,
//! `STORE_LIVE_BATCH` (default 4096) envelopes per apply, `STORE_LIVE_CONCURRENCY` (default
//! `64,256,1024`) the ScyllaDB concurrencies tried.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use infra::embedded_store::{EmbeddedStore, OpenMode};
use infra::scylla::{apply_schema, ScyllaOptions, ScyllaStore};
use schemas::{Envelope, TimePolicy};
use seams::ProjectionStore;

mod common;
use common::{rows_of, ApplyMix};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// The (device, day) partitions a batch's rows land in: one UNLOGGED CQL batch each (more
/// when a partition's rows exceed the batch bounds).
fn partitions_of(batch: &[Envelope]) -> usize {
    let policy = TimePolicy::default();
    let mut seen = HashSet::new();
    for e in batch {
        for row in schemas::rows::plan(e, &policy) {
            seen.insert((row.cid.to_string(), row.day.to_string()));
        }
    }
    seen.len()
}

/// What one measurement did.
struct Rate {
    rows: u64,
    envelopes: u64,
    elapsed: Duration,
    slowest_apply: Duration,
}

impl Rate {
    fn line(&self, name: &str) -> String {
        let s = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{name}: {} rows ({} envelopes) in {:.2} s = {:.0} rows/s, {:.0} envelopes/s; slowest apply {:.0} ms",
            self.rows,
            self.envelopes,
            s,
            self.rows as f64 / s,
            self.envelopes as f64 / s,
            self.slowest_apply.as_secs_f64() * 1000.0
        )
    }
}

/// Applies batches of the mix for `secs` (after one seeding batch the ends and segments refer
/// to), one apply at a time, as the projector does.
async fn measure(store: &dyn ProjectionStore, batch: usize, secs: u64) -> Rate {
    let mut mix = ApplyMix::new();
    let first = mix.batch(batch);
    store.apply(&first).await.expect("seed apply");
    let (mut rows, mut envelopes, mut elapsed, mut slowest) = (0, 0, Duration::ZERO, Duration::ZERO);
    while elapsed < Duration::from_secs(secs) {
        let b = mix.batch(batch);
        let started = Instant::now();
        let written = store.apply(&b).await.expect("apply");
        let took = started.elapsed();
        assert_eq!(written, rows_of(&b), "every row of the mix is live");
        elapsed += took;
        slowest = slowest.max(took);
        rows += written;
        envelopes += b.len() as u64;
    }
    Rate { rows, envelopes, elapsed, slowest_apply: slowest }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: measure briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = if quick { 1 } else { env_or("STORE_LIVE_SECS", 8) };
    let batch = env_or("STORE_LIVE_BATCH", 4096usize);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let sample = ApplyMix::new().batch(batch);
    println!(
        "store_live: batches of {batch} envelopes of the projector's mix = ~{} rows in ~{} (device, day) partitions; \
         {secs} s per store",
        rows_of(&sample),
        partitions_of(&sample)
    );

    let dir = tempfile::Builder::new().prefix("store-live-").tempdir().expect("scratch dir");
    let embedded = EmbeddedStore::open_with(&dir.path().join("store.db"), TimePolicy::default(), OpenMode::Durable)
        .expect("open embedded store");
    let rate = rt.block_on(measure(embedded.as_ref(), batch, secs));
    println!("{}", rate.line("embedded (SQLite, durable)"));

    let nodes = match std::env::var("SCYLLA_NODES") {
        Ok(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => {
            println!("scylla: skipped (SCYLLA_NODES is not set; e.g. SCYLLA_NODES=127.0.0.1:9042)");
            return;
        }
    };
    let concurrencies: Vec<usize> = std::env::var("STORE_LIVE_CONCURRENCY")
        .unwrap_or_else(|_| "64,256,1024".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    for max_concurrency in concurrencies {
        // A fresh keyspace per setting: every run writes into empty tables, as the embedded one.
        let url = format!("scylla://{nodes}/daybook_bench_{}_{max_concurrency}", nanos % 1_000_000_000_000);
        rt.block_on(async {
            apply_schema(&url, 1).await.unwrap_or_else(|e| panic!("applying the schema at {url}: {e}"));
            let opts = ScyllaOptions { max_concurrency, ..ScyllaOptions::default() };
            let store: Arc<ScyllaStore> = ScyllaStore::connect(&url, TimePolicy::default(), opts)
                .await
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            let rate = measure(store.as_ref(), batch, secs).await;
            println!("{}", rate.line(&format!("scylla (max_concurrency {max_concurrency}, LOCAL_QUORUM)")));
        });
    }
}
