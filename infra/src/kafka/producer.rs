//! The report log's producer: [`KafkaLog`], one idempotent `acks=all` producer whose
//! `append` returns only once every record's delivery report came back.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use seams::metric::{Kind, Metric, Unit};
use seams::{LogConsumer, LogError, LogRecord, Position, ReportLog};

use super::client::{client_config, code_of, failed, unavailable, LogContext, REQUEST_TIMEOUT};
use super::config::KafkaConfig;
use super::{SCHEMA_HEADER, TYPE_HEADER};

pub const KAFKA_INFLIGHT: Metric = Metric {
    name: "daybook_kafka_inflight",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Kafka: records in the producer's queue not yet acknowledged by the brokers.",
};

pub const KAFKA_PRODUCE_SECONDS: Metric = Metric {
    name: "daybook_kafka_produce_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Kafka: time from enqueueing an append's records to the brokers' acknowledgement of all of them (successful appends).",
};

pub const KAFKA_DELIVERY_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_kafka_delivery_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help: "Kafka: appends that failed, by reason (full, timeout, unavailable); the device was answered 503.",
};

/// How long a produced record may wait for its delivery report.
pub(super) const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the producer's local queue, in records.
const QUEUE_MAX_MESSAGES: &str = "100000";
/// Bound on the producer's local queue, in KiB.
const QUEUE_MAX_KBYTES: &str = "131072";
/// The hint given with [`LogError::Full`].
const FULL_RETRY_AFTER: Duration = Duration::from_millis(500);

/// How long the producer gathers records of one partition into a batch (librdkafka's
/// `linger.ms`, default 5). An append waits for it: each device request's answer includes
/// it, so it bounds the rate of a load generator (or a fleet) with a fixed number of requests
/// in flight. See docs/deployment.md.
const LINGER_MS: &str = "5";
/// Compression of produce batches (`compression.type`). See docs/deployment.md.
const COMPRESSION: &str = "none";

/// The librdkafka config of daybook's producer (idempotent, `acks=all`, the settings above),
/// with the user's properties applied: public so tools beside daybook (the burst benchmark's
/// raw producer) produce with exactly the settings daybook uses.
pub fn producer_config(config: &KafkaConfig) -> Result<rdkafka::ClientConfig, LogError> {
    let timeout = MESSAGE_TIMEOUT.as_millis().to_string();
    client_config(
        config,
        &[
            ("linger.ms", LINGER_MS),
            ("compression.type", COMPRESSION),
            ("message.timeout.ms", &timeout),
            ("queue.buffering.max.messages", QUEUE_MAX_MESSAGES),
            ("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES),
        ],
        &[("enable.idempotence", "true".into()), ("acks", "all".into())],
    )
}

/// Maps a produce-side error to the log's error.
fn produce_error(e: &KafkaError) -> LogError {
    match code_of(e) {
        Some(RDKafkaErrorCode::QueueFull) => LogError::Full { retry_after: FULL_RETRY_AFTER },
        Some(RDKafkaErrorCode::MessageTimedOut) => LogError::Timeout(e.to_string()),
        _ => LogError::Unavailable(e.to_string()),
    }
}

fn error_reason(e: &LogError) -> &'static str {
    match e {
        LogError::Full { .. } => "full",
        LogError::Timeout(_) => "timeout",
        LogError::Closed => "closed",
        LogError::Unavailable(_) | LogError::Other(_) => "unavailable",
    }
}

/// The Kafka report log. Cheap to share (`Arc`).
pub struct KafkaLog {
    config: KafkaConfig,
    producer: FutureProducer<LogContext>,
    /// `true` once shut down. Appends hold the read lock while they enqueue, so after
    /// `shutdown` took the write lock nothing new enters the producer queue.
    closed: RwLock<bool>,
}

impl fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLog")
            .field("config", &self.config)
            .field("in_flight", &self.producer.in_flight_count())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl KafkaLog {
    /// Creates the producer (idempotent, `acks=all`). Does not wait for the brokers: see
    /// [`ReportLog::health`].
    pub fn connect(config: KafkaConfig) -> Result<Arc<Self>, LogError> {
        let cc = producer_config(&config)?;
        let producer: FutureProducer<LogContext> = FutureProducer::from_config_and_context(&cc, LogContext)
            .map_err(|e| LogError::Other(format!("kafka producer: {e}")))?;
        Ok(Arc::new(Self { config, producer, closed: RwLock::new(false) }))
    }

    /// The config the log was connected with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    fn is_closed(&self) -> bool {
        *self.closed.read().unwrap_or_else(|e| e.into_inner())
    }

    fn set_inflight_gauge(&self) {
        metrics::gauge!(KAFKA_INFLIGHT.name).set(f64::from(self.producer.in_flight_count()));
    }

    /// Enqueues every record; the delivery futures in order.
    fn enqueue(&self, records: &[LogRecord]) -> Result<Vec<rdkafka::producer::DeliveryFuture>, LogError> {
        let closed = self.closed.read().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return Err(LogError::Closed);
        }
        let mut futures = Vec::with_capacity(records.len());
        for r in records {
            let schema = r.schema.to_string();
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header { key: TYPE_HEADER, value: Some(r.report_kind.as_str()) })
                .insert(Header { key: SCHEMA_HEADER, value: Some(schema.as_str()) });
            let record = FutureRecord::to(&self.config.topic).key(r.key.as_str()).payload(&r.value).headers(headers);
            match self.producer.send_result(record) {
                Ok(f) => futures.push(f),
                Err((e, _)) => {
                    // Records enqueued before this one may still be delivered: the caller
                    // retries the batch and consumers are idempotent.
                    return Err(produce_error(&e));
                }
            }
        }
        Ok(futures)
    }
}

#[async_trait]
impl ReportLog for KafkaLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let result = async {
            let futures = self.enqueue(&records)?;
            self.set_inflight_gauge();
            let mut positions = Vec::with_capacity(futures.len());
            let mut first_error = None;
            // Await every report (not just up to the first failure), so the in-flight count
            // and the error counter stay truthful.
            for f in futures {
                match f.await {
                    Ok(Ok(d)) => positions.push(Position { partition: d.partition, offset: d.offset }),
                    Ok(Err((e, _))) => {
                        first_error.get_or_insert_with(|| produce_error(&e));
                    }
                    Err(_canceled) => {
                        first_error.get_or_insert_with(|| LogError::Unavailable("kafka producer went away".into()));
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(positions),
            }
        }
        .await;
        self.set_inflight_gauge();
        match &result {
            Ok(_) => metrics::histogram!(KAFKA_PRODUCE_SECONDS.name).record(started.elapsed().as_secs_f64()),
            Err(LogError::Closed) => {}
            Err(e) => {
                metrics::counter!(KAFKA_DELIVERY_ERRORS_TOTAL.name, "reason" => error_reason(e)).increment(1);
                if let Some((code, why)) = self.producer.client().fatal_error() {
                    tracing::error!(%code, why, "kafka producer failed fatally");
                    return Err(LogError::Unavailable(format!("kafka producer failed fatally: {why}")));
                }
            }
        }
        result
    }

    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.group_consumer(group, "earliest")
    }

    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        // Callers pass a fresh group: with no committed offsets, "latest" starts at the end.
        self.group_consumer(group, "latest")
    }

    async fn consumer_resuming_or_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.commit_end_where_uncommitted(group).await?;
        self.group_consumer(group, "latest")
    }

    async fn health(&self) -> Result<(), LogError> {
        if self.is_closed() {
            return Err(LogError::Closed);
        }
        if let Some((code, why)) = self.producer.client().fatal_error() {
            return Err(LogError::Unavailable(format!("kafka producer failed fatally ({code}): {why}")));
        }
        let producer = self.producer.clone();
        let topic = self.config.topic.clone();
        tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
                .map_err(|e| failed("kafka metadata", e))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .ok_or_else(|| LogError::Unavailable(format!("kafka topic {topic} not in metadata")))?;
            if let Some(e) = t.error() {
                return Err(LogError::Unavailable(format!("kafka topic {topic}: {}", RDKafkaErrorCode::from(e))));
            }
            if t.partitions().is_empty() {
                return Err(LogError::Unavailable(format!("kafka topic {topic} has no partitions")));
            }
            Ok(())
        })
        .await
        .map_err(unavailable)?
    }

    async fn shutdown(&self) -> Result<(), LogError> {
        *self.closed.write().unwrap_or_else(|e| e.into_inner()) = true;
        let producer = self.producer.clone();
        // Nothing can take longer than the message timeout to be reported.
        let bound = MESSAGE_TIMEOUT + Duration::from_secs(5);
        let flushed = tokio::task::spawn_blocking(move || producer.flush(bound)).await.map_err(unavailable)?;
        self.set_inflight_gauge();
        flushed.map_err(|e| match code_of(&e) {
            Some(RDKafkaErrorCode::OperationTimedOut) | Some(RDKafkaErrorCode::MessageTimedOut) => {
                LogError::Timeout(format!("kafka producer flush did not finish in {}s", bound.as_secs()))
            }
            _ => unavailable(e),
        })
    }

    fn backend(&self) -> &'static str {
        "kafka"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_properties_cannot_be_weakened() {
        let c = KafkaConfig::new("h:1", "t").with_property("acks", "1");
        assert!(KafkaLog::connect(c).unwrap_err().to_string().contains("acks"));
        let c = KafkaConfig::new("h:1", "t").with_property("enable.idempotence", "true").with_property("acks", "-1");
        assert!(KafkaLog::connect(c).is_ok());
    }
}
