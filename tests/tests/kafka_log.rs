//! The report-log conformance suite against a live Kafka-protocol broker.
//!
//! Needs `DAYBOOK_TEST_KAFKA=HOST:PORT` (e.g. a tansu started with `scripts/start-tansu.sh`);
//! without it every case fails rather than passing silently. Each case gets its own topic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use infra::kafka::{create_topic, KafkaConfig, KafkaLog};
use seams::conformance::log::LogHarness;
use seams::ReportLog;

const PARTITIONS: i32 = 3;

static TOPICS: AtomicU64 = AtomicU64::new(0);

/// Opens a fresh topic on the first `open`, then reconnects to it.
struct KafkaHarness {
    config: KafkaConfig,
    created: bool,
}

impl KafkaHarness {
    fn new() -> Self {
        let brokers = std::env::var("DAYBOOK_TEST_KAFKA").unwrap_or_else(|_| {
            panic!(
                "DAYBOOK_TEST_KAFKA is not set: point it at a Kafka-protocol broker, e.g. \
                 `DAYBOOK_TEST_KAFKA=127.0.0.1:9092` after `scripts/start-tansu.sh 9092`"
            )
        });
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
        let topic = format!("conf-{}-{nanos}-{}", std::process::id(), TOPICS.fetch_add(1, Ordering::Relaxed));
        let config = KafkaConfig::from_url(&format!("kafka://{brokers}/{topic}"))
            .unwrap_or_else(|e| panic!("DAYBOOK_TEST_KAFKA={brokers:?}: {e}"));
        Self { config, created: false }
    }
}

#[async_trait]
impl LogHarness for KafkaHarness {
    async fn open(&mut self) -> Arc<dyn ReportLog> {
        if !self.created {
            create_topic(&self.config, PARTITIONS, 1, None)
                .await
                .unwrap_or_else(|e| panic!("create topic {} on {}: {e}", self.config.topic, self.config.brokers));
            self.created = true;
        }
        let log = KafkaLog::connect(self.config.clone()).expect("connect to kafka");
        log.health().await.unwrap_or_else(|e| panic!("kafka at {} is not healthy: {e}", self.config.brokers));
        log
    }
}

seams::log_suite!(async { KafkaHarness::new() });
