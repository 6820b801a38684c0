//! The report-log conformance suite against a live Kafka-protocol broker.
//!
//! Needs `DAYBOOK_TEST_KAFKA=HOST:PORT` (e.g. a tansu started with `scripts/start-tansu.sh`);
//! without it every case fails rather than passing silently. Each case gets its own topic,
//! and its consumer groups are scoped to that topic: Kafka groups are cluster-wide, while a
//! case expects a fresh log (as a fresh directory gives the embedded one), so two cases that
//! both use group `g` must not join the same group.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use infra::kafka::{create_topic, KafkaConfig, KafkaLog};
use seams::conformance::log::LogHarness;
use seams::{LogConsumer, LogError, LogRecord, Position, ReportLog};

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
        Arc::new(TopicGroups { group_prefix: format!("{}.", self.config.topic), log })
    }
}

/// The log under test, with the case's group names prefixed by its topic.
#[derive(Debug)]
struct TopicGroups {
    group_prefix: String,
    log: Arc<KafkaLog>,
}

#[async_trait]
impl ReportLog for TopicGroups {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        self.log.append(records).await
    }

    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.log.consumer(&format!("{}{group}", self.group_prefix)).await
    }

    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.log.consumer_at_end(&format!("{}{group}", self.group_prefix)).await
    }

    async fn consumer_resuming_or_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.log.consumer_resuming_or_at_end(&format!("{}{group}", self.group_prefix)).await
    }

    async fn health(&self) -> Result<(), LogError> {
        self.log.health().await
    }

    async fn shutdown(&self) -> Result<(), LogError> {
        self.log.shutdown().await
    }

    fn backend(&self) -> &'static str {
        self.log.backend()
    }
}

seams::log_suite!(async { KafkaHarness::new() });
