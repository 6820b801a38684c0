//! The report log: where ingest puts reports and projectors and analytics read them.

use std::time::Duration;

use async_trait::async_trait;

/// One record to append. The log stores it opaquely; `key` orders it (all records of one
/// key keep their order) and `report_kind`/`schema` travel as headers readable without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The device id (partitioning and ordering key).
    pub key: String,
    /// The report kind (`daybook.type` header): `event_started`, `segment_reported`, ….
    pub report_kind: String,
    /// The schema version (`daybook.schema` header).
    pub schema: u16,
    /// The encoded envelope.
    pub value: Vec<u8>,
}

impl LogRecord {
    /// The record of `envelope`, encoded as the current schema version: what ingest, the api
    /// and the commands that put reports on the log append.
    pub fn of(envelope: &schemas::Envelope) -> Self {
        Self {
            key: envelope.report.key(),
            report_kind: envelope.report.kind().as_str().to_owned(),
            schema: schemas::SCHEMA_VERSION,
            value: envelope.encode(),
        }
    }
}

/// A place in the log: the partition and the offset *of* a record (from `append`) or of the
/// next record to read (in `commit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Partition (the embedded log has one, partition 0).
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Where it is.
    pub position: Position,
    /// As appended.
    pub key: String,
    /// As appended.
    pub report_kind: String,
    /// As appended.
    pub schema: u16,
    /// As appended.
    pub value: Vec<u8>,
    /// When the log took it (epoch ms).
    pub timestamp_ms: i64,
}

impl Consumed {
    /// The position to commit once this record is processed (the next one to read).
    pub fn next(&self) -> Position {
        Position { partition: self.position.partition, offset: self.position.offset + 1 }
    }
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The log is taking no more right now (queue full, producer backlog); retry after the hint.
    #[error("log is full, retry in {}ms", retry_after.as_millis())]
    Full {
        /// A hint for the client.
        retry_after: Duration,
    },
    /// The log did not confirm durability in time; the record may or may not be stored.
    #[error("log did not confirm in time: {0}")]
    Timeout(String),
    /// The engine is unreachable or refused the request.
    #[error("log unavailable: {0}")]
    Unavailable(String),
    /// The log is shutting down.
    #[error("log is shutting down")]
    Closed,
    /// A usage error (bad group, unknown topic, …).
    #[error("log error: {0}")]
    Other(String),
}

/// An append-only, durable, ordered-per-key log of reports.
///
/// Contract (checked by `conformance::log`):
/// * `append` returns only once every record of the batch is durable (Kafka: acks=all
///   delivery report with idempotence on; embedded: after the fsync'd commit that holds it).
///   On `Ok`, nothing it returned may ever be lost. On `Err`, any subset may have been stored:
///   callers retry and consumers must be idempotent.
/// * Records of the same key are read back in append order.
/// * A consumer of group `g` starts after the last position `g` committed (or at the start of
///   the log for a new group) and sees every record appended after that at least once.
/// * `commit` is durable: a new consumer of the group resumes from it.
#[async_trait]
pub trait ReportLog: Send + Sync + std::fmt::Debug {
    /// Appends a batch durably and returns each record's position, in order.
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError>;

    /// A consumer in `group` positioned at the group's committed offsets.
    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError>;

    /// A consumer in `group` that starts at the current end of the log, whatever the group
    /// committed (for `daybook tail` without `--from-beginning`).
    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError>;

    /// A consumer in `group` at the group's committed positions, or, for a group that never
    /// committed, at the current end of the log — with that end recorded as the group's
    /// position before this returns where the engine allows, so a member that dies before its
    /// first commit resumes there rather than at the end of a later moment (a notification
    /// subscription starts at the log's end and misses nothing after). The default suits an
    /// engine whose [`consumer_at_end`](Self::consumer_at_end) already resumes a group that
    /// committed and that cannot record a position before a member reads.
    async fn consumer_resuming_or_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.consumer_at_end(group).await
    }

    /// Whether the log can take and serve records right now.
    async fn health(&self) -> Result<(), LogError>;

    /// Flushes everything in flight and stops taking appends; appends after this fail with
    /// [`LogError::Closed`].
    async fn shutdown(&self) -> Result<(), LogError>;

    /// A short name for logs and metrics (`embedded`, `kafka`).
    fn backend(&self) -> &'static str;
}

/// One member of a consumer group.
#[async_trait]
pub trait LogConsumer: Send + std::fmt::Debug {
    /// Waits up to `max_wait` for records and returns up to `max_records` of them (an empty
    /// batch when none arrived). A batch holds records of any of the member's partitions, in
    /// order within each partition.
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError>;

    /// Durably commits `positions` (each the next offset to read in its partition). A
    /// position for a partition this member no longer owns is ignored: the new owner replays.
    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError>;

    /// Records not yet consumed by this member, per partition it owns.
    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError>;

    /// Whether this member still owns `partition` in the assignment its last poll handed
    /// records out in. After a rebalance revoked it, the records of that partition already
    /// handed out are the new owner's to process: a projector drops them before writing
    /// (they would be written again by the new owner, possibly after newer ones).
    fn owns(&self, partition: i32) -> bool;
}

/// Keeps the records of `batch` whose partitions `consumer` still owns; returns how many were
/// dropped.
pub fn retain_owned(consumer: &dyn LogConsumer, batch: &mut Vec<Consumed>) -> usize {
    let before = batch.len();
    batch.retain(|c| consumer.owns(c.position.partition));
    before - batch.len()
}

/// The highest next-position per partition in a batch: what to commit after processing it.
pub fn commit_positions(batch: &[Consumed]) -> Vec<Position> {
    let mut out: Vec<Position> = Vec::new();
    for c in batch {
        let next = c.next();
        match out.iter_mut().find(|p| p.partition == next.partition) {
            Some(p) => p.offset = p.offset.max(next.offset),
            None => out.push(next),
        }
    }
    out
}
