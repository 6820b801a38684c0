//! Helpers for tests against a live Kafka-protocol broker (`DAYBOOK_TEST_KAFKA`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static N: AtomicU64 = AtomicU64::new(0);

/// The broker under test; panics (never passes silently) when `DAYBOOK_TEST_KAFKA` is unset.
pub fn brokers() -> String {
    std::env::var("DAYBOOK_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("DAYBOOK_TEST_KAFKA is not set: run scripts/test, or start a broker with scripts/start-tansu.sh and export DAYBOOK_TEST_KAFKA=127.0.0.1:PORT")
    })
}

/// A topic name no other test or run uses.
pub fn unique_topic(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    format!("{what}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// `kafka://BROKERS/TOPIC`
pub fn url(topic: &str) -> String {
    format!("kafka://{}/{topic}", brokers())
}
