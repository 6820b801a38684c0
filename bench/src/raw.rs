//! The broker's raw produce and consume rates, for the burst benchmark: no HTTP, no daybook.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use infra::kafka::{consumer_config, producer_config, KafkaConfig, SCHEMA_HEADER, TYPE_HEADER};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use seams::LogRecord;

/// How long one record may wait for its acknowledgement (as daybook's own producer).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker's raw produce rate for `records`: a plain rdkafka producer with daybook's
/// producer settings (`infra::kafka::producer_config`: idempotent, acks=all, the same linger
/// and compression) and every record in flight at once (its local queue raised to hold them
/// all). Returns records/s and the p99 delivery latency: the Kafka ceiling that
/// `burst --log kafka://…` compares ingest with.
pub(crate) async fn raw_produce(config: &KafkaConfig, records: &[LogRecord]) -> anyhow::Result<(f64, Duration)> {
    let mut cc = producer_config(config)?;
    cc.set("queue.buffering.max.messages", "1000000").set("queue.buffering.max.kbytes", "1048576");
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

/// The topic's high watermark of every partition: where the records produced so far end.
pub(crate) async fn high_watermarks(config: &KafkaConfig) -> anyhow::Result<HashMap<i32, i64>> {
    let cc = consumer_config(config, &format!("bench-watermarks-{}", uuid::Uuid::new_v4().simple()), "earliest")?;
    let consumer: rdkafka::consumer::BaseConsumer = cc.create().context("kafka consumer")?;
    let topic = config.topic.clone();
    tokio::task::spawn_blocking(move || {
        let md = consumer.fetch_metadata(Some(&topic), REQUEST_TIMEOUT).context("kafka metadata")?;
        let t = md.topics().iter().find(|t| t.name() == topic).context("topic not in metadata")?;
        let mut out = HashMap::new();
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(&topic, p.id(), REQUEST_TIMEOUT).context("kafka watermarks")?;
            out.insert(p.id(), high);
        }
        Ok(out)
    })
    .await?
}

/// What a raw read of the topic took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawConsume {
    /// Records read.
    pub(crate) records: u64,
    /// From assigning the partitions (no group join) to the last record.
    pub(crate) seconds: f64,
    /// From the first record to the last.
    pub(crate) after_first_s: f64,
}

/// Reads every record of the topic below `until` (per partition; the watermarks taken after
/// the pipeline's run, so exactly its records) with a consumer configured as daybook's
/// projectors (`infra::kafka::consumer_config`: the same fetch settings; every partition
/// assigned from its first offset, so no group join is timed), doing what the projector's poll does with each record but nothing
/// more: key, value and headers read and copied out. The ceiling of the projection's read
/// side on this broker.
pub(crate) async fn raw_consume(config: &KafkaConfig, until: &HashMap<i32, i64>) -> anyhow::Result<RawConsume> {
    let want: i64 = until.values().sum();
    let group = format!("bench-raw-consume-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = consumer_config(config, &group, "earliest")?.create().context("kafka consumer")?;
    let start = Instant::now();
    // Assigned directly (no rebalance wait): the partitions from offset 0, as a fresh group.
    let mut tpl = TopicPartitionList::new();
    for &p in until.keys() {
        tpl.add_partition_offset(&config.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut read = 0i64;
    let mut first = None;
    let mut bytes = 0usize;
    let deadline = Duration::from_secs(300);
    while read < want {
        let m = tokio::time::timeout(deadline.saturating_sub(start.elapsed()), consumer.recv())
            .await
            .context("raw consume did not finish in 300 s")?
            .context("kafka consume")?;
        first.get_or_insert_with(Instant::now);
        if m.offset() < until.get(&m.partition()).copied().unwrap_or(0) {
            read += 1;
            // As the projector's poll: copy the key, the value and the two headers out.
            let key = m.key().map(<[u8]>::to_vec).unwrap_or_default();
            let value = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
            let headers = m.headers().map_or(0, |h| h.iter().filter_map(|h| h.value.map(<[u8]>::len)).sum());
            bytes += key.len() + value.len() + headers;
        }
    }
    std::hint::black_box(bytes);
    let seconds = start.elapsed().as_secs_f64();
    let after_first_s = first.map_or(seconds, |f| f.elapsed().as_secs_f64());
    Ok(RawConsume { records: read as u64, seconds, after_first_s })
}
