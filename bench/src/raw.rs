//! The broker's raw produce rate, for the burst benchmark: no HTTP, no daybook.

use std::time::{Duration, Instant};

use anyhow::Context;
use infra::kafka::{client_config, KafkaConfig, SCHEMA_HEADER, TYPE_HEADER};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use seams::LogRecord;

/// How long one record may wait for its acknowledgement (as daybook's own producer).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's raw produce rate for `records`: a plain rdkafka producer with the same
/// guarantees as daybook's (idempotent, acks=all; `client_config` refuses anything weaker)
/// and every record in flight at once. Returns records/s and the p99 delivery latency: the
/// Kafka ceiling that `burst --log kafka://…` compares ingest with.
pub(crate) async fn raw_produce(config: &KafkaConfig, records: &[LogRecord]) -> anyhow::Result<(f64, Duration)> {
    let cc = client_config(
        config,
        &[("linger.ms", "5"), ("queue.buffering.max.messages", "1000000"), ("queue.buffering.max.kbytes", "1048576")],
        &[("enable.idempotence", "true".into()), ("acks", "all".into())],
    )?;
    let producer: FutureProducer = cc.create().context("kafka producer")?;
    let start = Instant::now();
    let sends = records.iter().map(|r| {
        let producer = producer.clone();
        let topic = config.topic.as_str();
        async move {
            let schema = r.schema.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header { key: TYPE_HEADER, value: Some(r.report_kind.as_str()) })
                .insert(Header { key: SCHEMA_HEADER, value: Some(schema.as_str()) });
            let record = FutureRecord::to(topic).key(r.key.as_str()).payload(r.value.as_slice()).headers(headers);
            producer
                .send(record, rdkafka::util::Timeout::After(MESSAGE_TIMEOUT))
                .await
                .map(|_| start.elapsed())
                .map_err(|(e, _)| anyhow::anyhow!("kafka produce: {e}"))
        }
    });
    let mut done = futures::future::join_all(sends).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let elapsed = start.elapsed().as_secs_f64().max(1e-3);
    done.sort();
    let p99 = done.get((done.len() * 99 / 100).min(done.len().saturating_sub(1))).copied().unwrap_or_default();
    Ok((records.len() as f64 / elapsed, p99))
}
