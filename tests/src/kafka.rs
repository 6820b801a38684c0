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

/// A new topic of three partitions (`<what>-…`), created by `daybook topic create` as an
/// operator would, and an all-in-one on it with its projector in the topic's own group:
/// the app, the topic and its `kafka://` URL.
pub async fn spawn_app_on_new_topic(daybook: crate::process::Bin, what: &str) -> (crate::app::TestApp, String, String) {
    let topic = unique_topic(what);
    let url = url(&topic);
    daybook.output(&["topic", "create", "--log", &url, "--partitions", "3"], &[]);
    let app = crate::app::spawn_app_with(|c| {
        c.log.url = infra::LogUrl::Kafka(url.clone());
        c.projector.group = format!("{topic}-projector");
    })
    .await;
    (app, topic, url)
}
