//! Consumer group members, and the ownership bookkeeping that keeps a rebalance from
//! skipping a record (see the module documentation of `infra::kafka`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use seams::metric::{Kind, Metric, Unit};
use seams::{Consumed, LogConsumer, LogError, Position};

use super::client::{client_config, code_of, failed, forward_error, forward_log, unavailable, Role, REQUEST_TIMEOUT};
use super::config::KafkaConfig;
use super::producer::KafkaLog;
use super::{SCHEMA_HEADER, TYPE_HEADER};

pub const KAFKA_CONSUMER_LAG: Metric = Metric {
    name: "daybook_kafka_consumer_lag",
    kind: Kind::Gauge,
    unit: None,
    labels: &["partition"],
    help: "Kafka: records between this projector's position and the high watermark, by assigned partition (0 once revoked).",
};

pub const KAFKA_REBALANCES_TOTAL: Metric = Metric {
    name: "daybook_kafka_rebalances_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["kind"],
    help: "Kafka: consumer group rebalances seen by this member, by kind (assign, revoke, error).",
};

pub const KAFKA_POLL_BATCH_RECORDS: Metric = Metric {
    name: "daybook_kafka_poll_batch_records",
    kind: Kind::Histogram,
    unit: Some(Unit::Count),
    labels: &[],
    help: "Kafka: records handed to the projector by one non-empty poll.",
};

pub const KAFKA_COMMITS_IGNORED_TOTAL: Metric = Metric {
    name: "daybook_kafka_commits_ignored_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Kafka: offset commits skipped or refused because this member no longer owned the partition (its next owner replays).",
};

pub const KAFKA_RECORDS_WITHOUT_HEADERS_TOTAL: Metric = Metric {
    name: "daybook_kafka_records_without_headers_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Kafka: records read without daybook's report-kind and schema headers (written by a foreign producer).",
};

/// Once a poll has records, how much longer it waits for more.
const POLL_LINGER: Duration = Duration::from_millis(5);

/// How long a broker may hold a fetch open waiting for new records (librdkafka's default is
/// 500 ms): the projector's latency behind the log when it has caught up. See
/// docs/deployment.md for what each fetch setting does.
const FETCH_WAIT_MAX_MS: &str = "100";
/// Most bytes of one partition in one fetch response (librdkafka's default: 1 MiB).
const MAX_PARTITION_FETCH_BYTES: &str = "1048576";
/// Most bytes of one fetch response over all its partitions (librdkafka's default: 50 MiB):
/// about one projector batch (16 384 reports of ~250 bytes). Bounded so that one fetch from a
/// slow broker answers well within the request timeout instead of timing out whole and
/// starting over: tansu 0.6 fills a fetch up to this budget whatever the per-partition bound,
/// and on SQLite it reads record by record, so at 50 MiB one fetch of a backlog is the whole
/// backlog.
const FETCH_MAX_BYTES: &str = "4194304";
/// How long a request may stay unanswered before librdkafka times it out and retries it
/// (librdkafka's default: 60 s, during which a partition whose fetch is lost makes no
/// progress).
const SOCKET_TIMEOUT_MS: &str = "20000";

/// The librdkafka config of a member of `group` on the report topic, exactly as daybook's
/// projectors use it: public so tools beside daybook (the burst benchmark's raw consumer)
/// read the topic with the same settings. `reset`: `earliest` or `latest`.
pub fn consumer_config(config: &KafkaConfig, group: &str, reset: &str) -> Result<rdkafka::ClientConfig, LogError> {
    if group.is_empty() {
        return Err(LogError::Other("consumer group name is empty".into()));
    }
    let mut cc = client_config(
        config,
        // cooperative-sticky: rebalances move only the partitions that change owner (no
        // stop-the-world), and on tansu 0.6 it is what lets a survivor take over a dead
        // member's partitions (see tests/tests/kafka_projectors.rs).
        &[
            ("auto.offset.reset", reset),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("fetch.wait.max.ms", FETCH_WAIT_MAX_MS),
            ("max.partition.fetch.bytes", MAX_PARTITION_FETCH_BYTES),
            ("fetch.max.bytes", FETCH_MAX_BYTES),
            ("socket.timeout.ms", SOCKET_TIMEOUT_MS),
        ],
        &[("enable.auto.commit", "false".into()), ("enable.auto.offset.store", "false".into())],
    )?;
    cc.set("group.id", group);
    Ok(cc)
}

/// Each of `parts`' high watermark, in order, in one ListOffsets request (timestamp -1 =
/// latest), not one watermark query per partition: the projector checks its lag every second
/// between batches, and twelve sequential round trips to a busy broker held up the next batch.
fn high_watermarks<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    parts: &[i32],
) -> KafkaResult<Vec<i64>> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let mut latest = TopicPartitionList::new();
    for &p in parts {
        latest.add_partition_offset(topic, p, Offset::End)?;
    }
    let highs = consumer.offsets_for_times(latest, REQUEST_TIMEOUT)?;
    parts
        .iter()
        .map(|&p| match highs.find_partition(topic, p) {
            Some(e) if e.error().is_err() => Err(e.error().unwrap_err()),
            Some(e) => match e.offset() {
                Offset::Offset(o) => Ok(o),
                _ => Ok(consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)?.1),
            },
            None => Ok(consumer.fetch_watermarks(topic, p, REQUEST_TIMEOUT)?.1),
        })
        .collect()
}

impl KafkaLog {
    /// Records the end of the topic as `group`'s position in every partition where the group
    /// has committed nothing, before any member joins (a commit outside the group's
    /// generations, which a broker takes while the group has no members). So a group created
    /// now and joined later — a subscription added while no notifier runs — starts where it
    /// was created, not where its first member finds the end.
    pub(super) async fn commit_end_where_uncommitted(&self, group: &str) -> Result<(), LogError> {
        let cc = consumer_config(self.config(), group, "latest")?;
        let topic = self.config().topic.clone();
        tokio::task::spawn_blocking(move || -> KafkaResult<()> {
            let consumer: BaseConsumer = cc.create()?;
            let md = consumer.fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
            let parts: Vec<i32> = md
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            let mut tpl = TopicPartitionList::new();
            for &p in &parts {
                tpl.add_partition(&topic, p);
            }
            let committed = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
            let uncommitted: Vec<i32> = parts
                .into_iter()
                .filter(|&p| {
                    !matches!(committed.find_partition(&topic, p).map(|e| e.offset()), Some(Offset::Offset(_)))
                })
                .collect();
            let mut ends = TopicPartitionList::new();
            for (p, high) in uncommitted.iter().zip(high_watermarks(&consumer, &topic, &uncommitted)?) {
                ends.add_partition_offset(&topic, *p, Offset::Offset(high))?;
            }
            if ends.count() > 0 {
                consumer.commit(&ends, CommitMode::Sync)?;
            }
            Ok(())
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| failed("kafka commit of a new group's start", e))
    }

    pub(super) fn group_consumer(&self, group: &str, reset: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let cc = consumer_config(self.config(), group, reset)?;
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let context =
            GroupContext { topic: self.config().topic.clone(), group: group.to_owned(), ownership: ownership.clone() };
        let consumer: StreamConsumer<GroupContext> = StreamConsumer::from_config_and_context(&cc, context)
            .map_err(|e| LogError::Other(format!("kafka consumer: {e}")))?;
        consumer.subscribe(&[&self.config().topic]).map_err(|e| failed("kafka subscribe", e))?;
        Ok(Box::new(KafkaConsumer {
            topic: self.config().topic.clone(),
            group: group.to_owned(),
            consumer: Some(Arc::new(consumer)),
            ownership,
        }))
    }
}

/// What a member owns of one partition, since it was (last) assigned it.
#[derive(Debug, Clone, Copy)]
struct Owned {
    /// Distinguishes this assignment from earlier ones of the same partition.
    epoch: u64,
    /// The first offset handed out in this assignment.
    first: Option<i64>,
    /// One past the last offset handed out in this assignment.
    next: Option<i64>,
    /// The last offset committed in this assignment.
    committed: Option<i64>,
}

impl Owned {
    /// Whether committing `offset` (the next to read) is this member's to do: within what
    /// it handed out in this assignment and ahead of what it committed already.
    fn accepts(&self, offset: i64) -> bool {
        matches!((self.first, self.next), (Some(first), Some(next)) if first <= offset && offset <= next)
            && self.committed.is_none_or(|c| offset > c)
    }
}

#[derive(Debug, Default)]
struct Ownership {
    epochs: u64,
    partitions: HashMap<i32, Owned>,
}

/// The consumer context: follows rebalances into [`Ownership`].
struct GroupContext {
    topic: String,
    group: String,
    ownership: Arc<Mutex<Ownership>>,
}

impl GroupContext {
    fn partitions<'a>(&self, tpl: &'a TopicPartitionList) -> impl Iterator<Item = i32> + 'a {
        let topic = self.topic.clone();
        tpl.elements().into_iter().filter(move |e| e.topic() == topic).map(|e| e.partition())
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(Role::Consumer, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut own = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = self.partitions(tpl).collect();
                for &p in &parts {
                    own.epochs += 1;
                    let epoch = own.epochs;
                    own.partitions.insert(p, Owned { epoch, first: None, next: None, committed: None });
                }
                metrics::counter!(KAFKA_REBALANCES_TOTAL.name, "kind" => "assign").increment(1);
                tracing::info!(group = %self.group, partitions = ?parts, "kafka partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = self.partitions(tpl).collect();
                for p in &parts {
                    own.partitions.remove(p);
                    metrics::gauge!(KAFKA_CONSUMER_LAG.name, "partition" => p.to_string()).set(0.0);
                }
                metrics::counter!(KAFKA_REBALANCES_TOTAL.name, "kind" => "revoke").increment(1);
                tracing::info!(group = %self.group, partitions = ?parts, "kafka partitions revoked");
            }
            Rebalance::Error(e) => {
                metrics::counter!(KAFKA_REBALANCES_TOTAL.name, "kind" => "error").increment(1);
                tracing::warn!(group = %self.group, error = %e, "kafka rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(group = %self.group, error = %e, "kafka offset commit failed");
        }
    }
}

/// One member of a consumer group on the report topic.
struct KafkaConsumer {
    topic: String,
    group: String,
    /// `Some` until dropped (closing the consumer blocks: see `Drop`).
    consumer: Option<Arc<StreamConsumer<GroupContext>>>,
    ownership: Arc<Mutex<Ownership>>,
}

impl fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConsumer").field("topic", &self.topic).field("group", &self.group).finish()
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Dropping the last handle closes the consumer: it leaves the group (so the next
        // member gets the partitions at once) and waits for that, which blocks.
        if let Some(consumer) = self.consumer.take() {
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(move || drop(consumer));
            } else {
                drop(consumer);
            }
        }
    }
}

/// Reads the report headers; foreign records without them get an empty kind and schema 0.
fn read_headers(m: &impl Message) -> (String, u16) {
    let mut kind = None;
    let mut schema = None;
    if let Some(headers) = m.headers() {
        for h in headers.iter() {
            match (h.key, h.value) {
                (TYPE_HEADER, Some(v)) => kind = Some(String::from_utf8_lossy(v).into_owned()),
                (SCHEMA_HEADER, Some(v)) => schema = std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()),
                _ => {}
            }
        }
    }
    if kind.is_none() || schema.is_none() {
        metrics::counter!(KAFKA_RECORDS_WITHOUT_HEADERS_TOTAL.name).increment(1);
    }
    (kind.unwrap_or_default(), schema.unwrap_or(0))
}

fn to_consumed(m: &impl Message) -> Consumed {
    let (report_kind, schema) = read_headers(m);
    Consumed {
        position: Position { partition: m.partition(), offset: m.offset() },
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        report_kind,
        schema,
        value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        timestamp_ms: m.timestamp().to_millis().unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
    }
}

/// Commit failures that mean "this member no longer owns the partition": the group
/// rebalanced (or dropped us) before the commit arrived.
fn lost_ownership(e: &KafkaError) -> bool {
    matches!(
        code_of(e),
        Some(
            RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State
                | RDKafkaErrorCode::StaleMemberEpoch
        )
    )
}

impl KafkaConsumer {
    fn consumer(&self) -> Arc<StreamConsumer<GroupContext>> {
        self.consumer.clone().expect("consumer lives until drop")
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        let max_records = max_records.max(1);
        let consumer = self.consumer();
        let deadline = tokio::time::Instant::now() + max_wait;
        // Each record with the assignment epoch of its partition when it arrived.
        let mut got: Vec<(u64, Consumed)> = Vec::new();
        let mut until = deadline;
        while got.len() < max_records {
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Err(_elapsed) => break,
                Ok(Ok(m)) => {
                    if got.is_empty() {
                        until = deadline.min(tokio::time::Instant::now() + POLL_LINGER);
                    }
                    let epoch = self
                        .ownership
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .partitions
                        .get(&m.partition())
                        .map(|o| o.epoch);
                    match epoch {
                        Some(epoch) if m.topic() == self.topic => got.push((epoch, to_consumed(&m))),
                        _ => {
                            tracing::debug!(partition = m.partition(), "dropping a record of a partition not assigned")
                        }
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(_))) => {}
                Ok(Err(e)) => {
                    if got.is_empty() {
                        return Err(failed("kafka consume", e));
                    }
                    // Hand out what we have; the error comes back on the next poll.
                    tracing::warn!(group = %self.group, error = %e, "kafka consume error");
                    break;
                }
            }
        }
        // A rebalance inside this poll may have revoked (or revoked and reassigned) a
        // partition: its records fetched before are not ours to hand out any more — the
        // owner (maybe us, again) reads them from the last commit.
        let mut own = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = Vec::with_capacity(got.len());
        for (epoch, c) in got {
            let Some(o) = own.partitions.get_mut(&c.position.partition) else { continue };
            if o.epoch != epoch {
                continue;
            }
            o.first.get_or_insert(c.position.offset);
            o.next = Some(o.next.map_or(c.position.offset + 1, |n| n.max(c.position.offset + 1)));
            batch.push(c);
        }
        drop(own);
        if !batch.is_empty() {
            metrics::histogram!(KAFKA_POLL_BATCH_RECORDS.name).record(batch.len() as f64);
        }
        Ok(batch)
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        // Highest position per partition.
        let mut wanted: HashMap<i32, i64> = HashMap::new();
        for p in positions {
            let e = wanted.entry(p.partition).or_insert(p.offset);
            *e = (*e).max(p.offset);
        }
        let mut tpl = TopicPartitionList::new();
        let mut accepted = Vec::new();
        {
            let own = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
            for (&partition, &offset) in &wanted {
                match own.partitions.get(&partition) {
                    Some(o) if o.accepts(offset) => {
                        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                            .map_err(unavailable)?;
                        accepted.push((partition, o.epoch, offset));
                    }
                    Some(o) if o.committed.is_some_and(|c| offset <= c) => {}
                    _ => {
                        metrics::counter!(KAFKA_COMMITS_IGNORED_TOTAL.name).increment(1);
                        tracing::info!(group = %self.group, partition, offset, "not committing a partition this member no longer owns");
                    }
                }
            }
        }
        if accepted.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer();
        let result =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await.map_err(unavailable)?;
        match result {
            Ok(()) => {
                let mut own = self.ownership.lock().unwrap_or_else(|e| e.into_inner());
                for (partition, epoch, offset) in accepted {
                    if let Some(o) = own.partitions.get_mut(&partition).filter(|o| o.epoch == epoch) {
                        o.committed = Some(o.committed.map_or(offset, |c| c.max(offset)));
                    }
                }
                Ok(())
            }
            Err(e) if lost_ownership(&e) => {
                metrics::counter!(KAFKA_COMMITS_IGNORED_TOTAL.name).increment(1);
                tracing::warn!(group = %self.group, error = %e, "kafka commit refused after a rebalance; the partitions' next owner replays");
                Ok(())
            }
            Err(e) => Err(match code_of(&e) {
                Some(RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut) => {
                    LogError::Timeout(format!("kafka commit: {e}"))
                }
                _ => failed("kafka commit", e),
            }),
        }
    }

    fn owns(&self, partition: i32) -> bool {
        self.ownership.lock().unwrap_or_else(|e| e.into_inner()).partitions.contains_key(&partition)
    }

    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        let consumer = self.consumer();
        let topic = self.topic.clone();
        let lags = tokio::task::spawn_blocking(move || -> KafkaResult<Vec<(i32, i64)>> {
            let assignment = consumer.assignment()?;
            let mut parts: Vec<i32> = assignment.elements_for_topic(&topic).iter().map(|e| e.partition()).collect();
            parts.sort_unstable();
            let positions = consumer.position()?;
            let position_of = |tpl: &TopicPartitionList, p: i32| match tpl.find_partition(&topic, p).map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            // Partitions not read from yet have no position: they start at the committed
            // offset, or at the beginning (auto.offset.reset=earliest).
            let committed = if parts.iter().any(|&p| position_of(&positions, p).is_none()) {
                let mut tpl = TopicPartitionList::new();
                for &p in &parts {
                    tpl.add_partition(&topic, p);
                }
                Some(consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?)
            } else {
                None
            };
            let highs = high_watermarks(consumer.as_ref(), &topic, &parts)?;
            let mut out = Vec::with_capacity(parts.len());
            for (p, high) in parts.into_iter().zip(highs) {
                let at = match position_of(&positions, p).or_else(|| committed.as_ref().and_then(|c| position_of(c, p)))
                {
                    Some(at) => at,
                    // Not read from and never committed: it starts at the log's beginning.
                    None => consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)?.0,
                };
                out.push((p, (high - at).max(0)));
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| failed("kafka lag", e))?;
        for (p, lag) in &lags {
            metrics::gauge!(KAFKA_CONSUMER_LAG.name, "partition" => p.to_string()).set(*lag as f64);
        }
        Ok(lags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_accepts_only_what_was_handed_out() {
        let mut o = Owned { epoch: 1, first: None, next: None, committed: None };
        assert!(!o.accepts(0));
        o.first = Some(4);
        o.next = Some(10);
        assert!(o.accepts(4) && o.accepts(10));
        assert!(!o.accepts(3) && !o.accepts(11));
        o.committed = Some(7);
        assert!(!o.accepts(7) && o.accepts(8));
    }
}
