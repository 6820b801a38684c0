//! The broker's raw produce rate, for the burst benchmark (no HTTP, no daybook).

use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::producer::FutureRecord;
use seams::{LogError, LogRecord};

use super::client::{client_config, unavailable};
use super::config::KafkaConfig;
use super::producer::MESSAGE_TIMEOUT;
use super::{SCHEMA_HEADER, TYPE_HEADER};

/// The broker's raw produce rate for `records`: a plain rdkafka producer with the same
/// guarantees (idempotent, acks=all) and every record in flight at once — no HTTP, no
/// daybook. Returns records/s and the p99 delivery latency. The Kafka ceiling that
/// `daybook bench burst --log kafka://…` compares ingest with.
pub async fn raw_produce(config: &KafkaConfig, records: &[LogRecord]) -> Result<(f64, Duration), LogError> {
    let cc = client_config(
        config,
        &[("linger.ms", "5"), ("queue.buffering.max.messages", "1000000"), ("queue.buffering.max.kbytes", "1048576")],
        &[("enable.idempotence", "true".into()), ("acks", "all".into())],
    )?;
    let producer: FutureProducer = cc.create().map_err(|e| LogError::Other(format!("kafka producer: {e}")))?;
    let start = Instant::now();
    let sends = records.iter().map(|r| {
        let producer = producer.clone();
        let topic = config.topic.as_str();
        async move {
            let schema = r.schema.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: TYPE_HEADER, value: Some(r.kind.as_str()) })
                .insert(Header { key: SCHEMA_HEADER, value: Some(schema.as_str()) });
            let record = FutureRecord::to(topic).key(r.key.as_str()).payload(r.value.as_slice()).headers(headers);
            producer
                .send(record, rdkafka::util::Timeout::After(MESSAGE_TIMEOUT))
                .await
                .map(|_| start.elapsed())
                .map_err(|(e, _)| unavailable(e))
        }
    });
    let mut done = futures::future::join_all(sends).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-3);
    done.sort();
    let p99 = done.get((done.len() * 99 / 100).min(done.len().saturating_sub(1))).copied().unwrap_or_default();
    Ok((records.len() as f64 / elapsed, p99))
}
