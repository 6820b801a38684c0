//! The report log on Apache Kafka (any Kafka-protocol broker), through librdkafka.
//!
//! # Producing
//!
//! One idempotent producer (`enable.idempotence=true`, `acks=all`) per [`KafkaLog`].
//! [`ReportLog::append`] enqueues every record without blocking (a full local queue answers
//! [`LogError::Full`] at once) and returns only after *every* record's delivery report came
//! back successful, so an `Ok` means the whole batch is replicated as the topic demands.
//! Each record carries key = device id, value = the encoded envelope, and the headers
//! `daybook.type` (the report kind) and `daybook.schema` (the schema version, decimal).
//!
//! # Consuming, and why a rebalance never skips a record
//!
//! A [`ReportLog::consumer`] is a member of a Kafka consumer group with
//! `enable.auto.commit=false` and `enable.auto.offset.store=false`: the group's committed
//! offset moves only when the caller calls [`LogConsumer::commit`], which it does after the
//! store write of the batch succeeded. On top of that:
//!
//! 1. **Rebalances happen between batches.** librdkafka serves rebalance callbacks only from
//!    the consumer's poll, and only [`LogConsumer::poll`] polls. A caller loops
//!    `poll → write → commit → poll`, so by the time a revocation is processed the previous
//!    batch is already written *and* committed.
//! 2. **Ownership is tracked per assignment.** A custom consumer context records, for every
//!    partition, the assignment epoch and the offset range handed out since it was assigned.
//!    On revoke the partition's entry is dropped. Records fetched during a poll for a
//!    partition whose assignment changed before the poll returned are not handed out.
//!    [`LogConsumer::commit`] only commits an offset for a partition this member owns *now*,
//!    within what it handed out in the current assignment and beyond what it committed
//!    already; anything else is ignored (the next owner replays from the last commit).
//! 3. **The coordinator fences stale members.** If a member stalls past
//!    `max.poll.interval.ms` (or its session expires) the group rebalances without it; its
//!    late commit is then refused by the coordinator (illegal generation, unknown member,
//!    rebalance in progress) and [`LogConsumer::commit`] treats that as "no longer ours".
//!
//! So a revoked partition's in-flight batch is either written and committed (1) or left,
//! uncommitted, for the next owner, which starts at the last committed offset — never past
//! an unwritten record. Replays are harmless: the store is idempotent.
//!
//! # Configuration
//!
//! [`KafkaConfig::from_url`] takes `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`; any other
//! librdkafka property (SASL, TLS, timeouts…) goes in [`KafkaConfig::properties`], loaded
//! with [`properties_from_env`] (`DAYBOOK_KAFKA_SECURITY_PROTOCOL=SASL_SSL` →
//! `security.protocol=SASL_SSL`) or [`properties_from_file`] (`key=value` lines).
//! The properties that make the contract hold (`enable.idempotence`, `acks`,
//! `enable.auto.commit`, `enable.auto.offset.store`) cannot be overridden.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use seams::{Consumed, LogConsumer, LogError, LogRecord, Position, ReportLog};

/// Header carrying the report kind.
pub const TYPE_HEADER: &str = "daybook.type";
/// Header carrying the schema version (decimal).
pub const SCHEMA_HEADER: &str = "daybook.schema";
/// Environment variables with this prefix become librdkafka properties.
pub const ENV_PREFIX: &str = "DAYBOOK_KAFKA_";

/// How long a produced record may wait for its delivery report.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the producer's local queue, in records.
const QUEUE_MAX_MESSAGES: &str = "100000";
/// Bound on the producer's local queue, in KiB.
const QUEUE_MAX_KBYTES: &str = "131072";
/// The hint given with [`LogError::Full`].
const FULL_RETRY_AFTER: Duration = Duration::from_millis(500);
/// Timeout of metadata, watermark and committed-offset requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Once a poll has records, how much longer it waits for more.
const POLL_LINGER: Duration = Duration::from_millis(5);

/// Where the log lives: brokers, topic and extra librdkafka properties.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `HOST:PORT` list.
    pub brokers: String,
    /// The report topic.
    pub topic: String,
    /// Extra librdkafka properties applied to every client (producer, consumers, admin).
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Property values may be secrets (sasl.password, ssl.key.password): keys only.
        let keys: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("properties", &keys)
            .finish()
    }
}

fn bad_url(url: &str, why: &str) -> LogError {
    LogError::Other(format!("bad kafka url {url:?} ({why}): want kafka://HOST:PORT[,HOST:PORT…]/TOPIC"))
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl KafkaConfig {
    /// A config for `topic` on `brokers`, without extra properties.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), topic: topic.into(), properties: Vec::new() }
    }

    /// Parses `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    pub fn from_url(url: &str) -> Result<Self, LogError> {
        let rest = url.strip_prefix("kafka://").ok_or_else(|| bad_url(url, "scheme is not kafka://"))?;
        let (hosts, topic) = rest.split_once('/').ok_or_else(|| bad_url(url, "no topic"))?;
        if !valid_topic(topic) {
            return Err(bad_url(url, "topic must be 1-249 characters of a-z A-Z 0-9 . _ -"));
        }
        let mut brokers = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let (name, port) = host.rsplit_once(':').ok_or_else(|| bad_url(url, "a broker has no port"))?;
            if name.is_empty() || name.contains('/') || name.contains('@') {
                return Err(bad_url(url, "a broker has no host"));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad_url(url, "a broker port is not a number in 1-65535"));
            }
            brokers.push(host);
        }
        Ok(Self::new(brokers.join(","), topic))
    }

    /// Adds one librdkafka property (later ones win).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Adds librdkafka properties (later ones win), e.g. from [`properties_from_env`].
    pub fn with_properties(mut self, properties: impl IntoIterator<Item = (String, String)>) -> Self {
        self.properties.extend(properties);
        self
    }

    /// The URL this config was parsed from (without properties).
    pub fn url(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }
}

/// librdkafka properties from `DAYBOOK_KAFKA_<PROP>` environment variables: the rest of
/// the name lowercased, `_` → `.` (`DAYBOOK_KAFKA_SASL_MECHANISMS=PLAIN` →
/// `sasl.mechanisms=PLAIN`). Sorted by property name. `DAYBOOK_KAFKA_CONFIG` is daybook's
/// own setting (the properties file), not a property.
pub fn properties_from_env() -> Vec<(String, String)> {
    properties_from_vars(std::env::vars())
}

/// [`properties_from_env`] over any set of variables.
pub fn properties_from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let prop = name.strip_prefix(ENV_PREFIX)?;
            (!prop.is_empty() && prop != "CONFIG").then(|| (prop.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    out.sort();
    out
}

/// librdkafka properties from a file of `key=value` lines; blank lines and lines starting
/// with `#` are skipped, whitespace around keys and values is trimmed.
pub fn properties_from_file(path: impl AsRef<Path>) -> Result<Vec<(String, String)>, LogError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| LogError::Other(format!("cannot read kafka properties {}: {e}", path.display())))?;
    parse_properties(&text).map_err(|e| LogError::Other(format!("kafka properties {}: {e}", path.display())))
}

fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("line {}: expected key=value", n + 1))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {}: empty key", n + 1));
        }
        out.push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

/// Builds a client config: defaults, then the user's properties, then what the contract
/// needs (which the user may not change).
fn client_config(
    config: &KafkaConfig,
    defaults: &[(&str, &str)],
    fixed: &[(&str, String)],
) -> Result<ClientConfig, LogError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers);
    cc.set("client.id", "daybook");
    for (k, v) in defaults {
        cc.set(*k, *v);
    }
    for (k, v) in &config.properties {
        if k == "bootstrap.servers" {
            return Err(LogError::Other("kafka property bootstrap.servers is set by the log url".into()));
        }
        if k == "group.id" {
            return Err(LogError::Other("kafka property group.id is set by the consumer group name".into()));
        }
        if let Some((_, want)) = fixed.iter().find(|(f, _)| f == k) {
            if !(v.eq_ignore_ascii_case(want) || (want == "all" && v == "-1")) {
                return Err(LogError::Other(format!(
                    "kafka property {k} must be {want}, daybook's guarantees depend on it"
                )));
            }
        }
        cc.set(k, v);
    }
    for (k, v) in fixed {
        cc.set(*k, v);
    }
    Ok(cc)
}

fn unavailable(e: impl fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// [`LogError::Unavailable`] saying what failed.
fn failed(what: &str, e: impl fmt::Display) -> LogError {
    LogError::Unavailable(format!("{what}: {e}"))
}

fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
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

/// Forwards librdkafka's logs and errors to `tracing`.
fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
    }
}

fn forward_error(error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
}

/// The context of producers and admin clients: logs through `tracing`.
#[derive(Debug, Clone, Copy, Default)]
struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

/// Creates `config.topic` with `partitions` and `replication` (and `retention.ms` when
/// given). A topic that exists already counts as success.
pub async fn create_topic(
    config: &KafkaConfig,
    partitions: i32,
    replication: i32,
    retention_ms: Option<i64>,
) -> Result<(), LogError> {
    if partitions < 1 || replication < 1 {
        return Err(LogError::Other("partitions and replication must be at least 1".into()));
    }
    let cc = client_config(config, &[], &[])?;
    let admin: AdminClient<LogContext> =
        AdminClient::from_config_and_context(&cc, LogContext).map_err(|e| failed("kafka admin client", e))?;
    let retention = retention_ms.map(|ms| ms.to_string());
    let mut topic = NewTopic::new(&config.topic, partitions, TopicReplication::Fixed(replication));
    if let Some(ms) = &retention {
        topic = topic.set("retention.ms", ms);
    }
    // acks=all waits for the in-sync replicas; with 3 replicas, 2 must have a record before it
    // is acknowledged, so one broker can fail without losing an acknowledged report.
    let min_insync = replication.min(2).to_string();
    if replication > 1 {
        topic = topic.set("min.insync.replicas", &min_insync);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&topic], &opts).await.map_err(|e| failed("cannot create kafka topic", e))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions, replication, ?retention_ms, "kafka topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::info!(topic = %name, "kafka topic exists already");
            }
            Err((name, code)) => {
                return Err(LogError::Unavailable(format!("cannot create kafka topic {name}: {code}")));
            }
        }
    }
    Ok(())
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
        let timeout = MESSAGE_TIMEOUT.as_millis().to_string();
        let cc = client_config(
            &config,
            &[
                ("linger.ms", "5"),
                ("message.timeout.ms", &timeout),
                ("queue.buffering.max.messages", QUEUE_MAX_MESSAGES),
                ("queue.buffering.max.kbytes", QUEUE_MAX_KBYTES),
            ],
            &[("enable.idempotence", "true".into()), ("acks", "all".into())],
        )?;
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
        metrics::gauge!("daybook_kafka_inflight").set(f64::from(self.producer.in_flight_count()));
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
                .insert(Header { key: TYPE_HEADER, value: Some(r.kind.as_str()) })
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

impl KafkaLog {
    fn group_consumer(&self, group: &str, reset: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        if group.is_empty() {
            return Err(LogError::Other("consumer group name is empty".into()));
        }
        let mut cc = client_config(
            &self.config,
            // cooperative-sticky: rebalances move only the partitions that change owner (no
            // stop-the-world), and on tansu 0.6 it is what lets a survivor take over a dead
            // member's partitions (see tests/tests/kafka_projectors.rs).
            &[("auto.offset.reset", reset), ("partition.assignment.strategy", "cooperative-sticky")],
            &[("enable.auto.commit", "false".into()), ("enable.auto.offset.store", "false".into())],
        )?;
        cc.set("group.id", group);
        let ownership = Arc::new(Mutex::new(Ownership::default()));
        let context =
            GroupContext { topic: self.config.topic.clone(), group: group.to_owned(), ownership: ownership.clone() };
        let consumer: StreamConsumer<GroupContext> = StreamConsumer::from_config_and_context(&cc, context)
            .map_err(|e| LogError::Other(format!("kafka consumer: {e}")))?;
        consumer.subscribe(&[&self.config.topic]).map_err(|e| failed("kafka subscribe", e))?;
        Ok(Box::new(KafkaConsumer {
            topic: self.config.topic.clone(),
            group: group.to_owned(),
            consumer: Some(Arc::new(consumer)),
            ownership,
        }))
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
            Ok(_) => metrics::histogram!("daybook_kafka_produce_seconds").record(started.elapsed().as_secs_f64()),
            Err(LogError::Closed) => {}
            Err(e) => {
                metrics::counter!("daybook_kafka_delivery_errors_total", "reason" => error_reason(e)).increment(1);
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
        forward_log(level, fac, log_message);
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
                metrics::counter!("daybook_kafka_rebalances_total", "kind" => "assign").increment(1);
                tracing::info!(group = %self.group, partitions = ?parts, "kafka partitions assigned");
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = self.partitions(tpl).collect();
                for p in &parts {
                    own.partitions.remove(p);
                    metrics::gauge!("daybook_kafka_consumer_lag", "partition" => p.to_string()).set(0.0);
                }
                metrics::counter!("daybook_kafka_rebalances_total", "kind" => "revoke").increment(1);
                tracing::info!(group = %self.group, partitions = ?parts, "kafka partitions revoked");
            }
            Rebalance::Error(e) => {
                metrics::counter!("daybook_kafka_rebalances_total", "kind" => "error").increment(1);
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
        metrics::counter!("daybook_kafka_records_without_headers_total").increment(1);
    }
    (kind.unwrap_or_default(), schema.unwrap_or(0))
}

fn to_consumed(m: &impl Message) -> Consumed {
    let (kind, schema) = read_headers(m);
    Consumed {
        position: Position { partition: m.partition(), offset: m.offset() },
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        kind,
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
            metrics::histogram!("daybook_kafka_poll_batch_records").record(batch.len() as f64);
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
                        metrics::counter!("daybook_kafka_commits_ignored_total").increment(1);
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
                metrics::counter!("daybook_kafka_commits_ignored_total").increment(1);
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
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                let (low, high) = consumer.fetch_watermarks(&topic, p, REQUEST_TIMEOUT)?;
                let at = position_of(&positions, p)
                    .or_else(|| committed.as_ref().and_then(|c| position_of(c, p)))
                    .unwrap_or(low);
                out.push((p, (high - at).max(0)));
            }
            Ok(out)
        })
        .await
        .map_err(unavailable)?
        .map_err(|e| failed("kafka lag", e))?;
        for (p, lag) in &lags {
            metrics::gauge!("daybook_kafka_consumer_lag", "partition" => p.to_string()).set(*lag as f64);
        }
        Ok(lags)
    }
}

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
                .insert(Header { key: "daybook.type", value: Some(r.kind.as_str()) })
                .insert(Header { key: "daybook.schema", value: Some(schema.as_str()) });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parses() {
        let c = KafkaConfig::from_url("kafka://127.0.0.1:9092,broker-2:9093/daybook.reports").unwrap();
        assert_eq!(c.brokers, "127.0.0.1:9092,broker-2:9093");
        assert_eq!(c.topic, "daybook.reports");
        assert_eq!(c.url(), "kafka://127.0.0.1:9092,broker-2:9093/daybook.reports");
        let c = KafkaConfig::from_url("kafka://[::1]:9092/t").unwrap();
        assert_eq!(c.brokers, "[::1]:9092");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "kafka:/h:1/t",
            "http://h:1/t",
            "kafka://h:1",
            "kafka://h:1/",
            "kafka://h/t",
            "kafka://:1/t",
            "kafka://h:x/t",
            "kafka://h:0/t",
            "kafka://h:1,/t",
            "kafka://h:1/a/b",
            "kafka://h:1/a b",
        ] {
            let err = KafkaConfig::from_url(url).unwrap_err().to_string();
            assert!(err.contains("bad kafka url"), "{url}: {err}");
        }
    }

    #[test]
    fn env_vars_become_properties() {
        let vars = [
            ("DAYBOOK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("DAYBOOK_KAFKA_SASL_USERNAME", "u"),
            ("DAYBOOK_LOG", "kafka://h:1/t"),
            ("DAYBOOK_KAFKA_", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            properties_from_vars(vars),
            vec![("sasl.username".to_owned(), "u".to_owned()), ("security.protocol".to_owned(), "SASL_SSL".to_owned())]
        );
    }

    #[test]
    fn property_files_parse() {
        let props = parse_properties("# comment\n\nsecurity.protocol = SASL_SSL\nsasl.password=a=b\n").unwrap();
        assert_eq!(
            props,
            vec![("security.protocol".into(), "SASL_SSL".into()), ("sasl.password".into(), "a=b".into())]
        );
        assert!(parse_properties("nonsense").unwrap_err().contains("line 1"));
    }

    #[test]
    fn contract_properties_cannot_be_weakened() {
        let c = KafkaConfig::new("h:1", "t").with_property("acks", "1");
        assert!(KafkaLog::connect(c).unwrap_err().to_string().contains("acks"));
        let c = KafkaConfig::new("h:1", "t").with_property("enable.idempotence", "true").with_property("acks", "-1");
        assert!(KafkaLog::connect(c).is_ok());
    }

    #[test]
    fn debug_hides_property_values() {
        let c = KafkaConfig::new("h:1", "t").with_property("sasl.password", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

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
