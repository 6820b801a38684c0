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
//!
//! | file | role |
//! |---|---|
//! | `config.rs` | [`KafkaConfig`]: the `kafka://` URL and extra librdkafka properties |
//! | `client.rs` | what every client shares: its `ClientConfig`, log forwarding, error mapping |
//! | `admin.rs` | [`create_topic`] |
//! | `producer.rs` | [`KafkaLog`]: the idempotent producer behind [`ReportLog::append`] |
//! | `consumer.rs` | group members and the rebalance ownership that keeps commits safe |
//!
//! [`ReportLog::append`]: seams::ReportLog::append
//! [`ReportLog::consumer`]: seams::ReportLog::consumer
//! [`LogConsumer::commit`]: seams::LogConsumer::commit
//! [`LogConsumer::poll`]: seams::LogConsumer::poll
//! [`LogError::Full`]: seams::LogError::Full

mod admin;
mod client;
mod config;
mod consumer;
mod producer;

pub use admin::create_topic;
pub use client::{client_config, KAFKA_REQUEST_TIMEOUTS_TOTAL};
pub use config::{properties_from_env, properties_from_file, properties_from_vars, KafkaConfig, ENV_PREFIX};
pub use consumer::{
    consumer_config, KAFKA_COMMITS_IGNORED_TOTAL, KAFKA_CONSUMER_LAG, KAFKA_POLL_BATCH_RECORDS, KAFKA_REBALANCES_TOTAL,
    KAFKA_RECORDS_WITHOUT_HEADERS_TOTAL,
};
pub use producer::{producer_config, KafkaLog, KAFKA_DELIVERY_ERRORS_TOTAL, KAFKA_INFLIGHT, KAFKA_PRODUCE_SECONDS};

/// Header carrying the report kind.
pub const TYPE_HEADER: &str = "daybook.type";
/// Header carrying the schema version (decimal).
pub const SCHEMA_HEADER: &str = "daybook.schema";
