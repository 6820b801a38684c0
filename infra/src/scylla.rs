//! The ScyllaDB projection store (`--store scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`).
//!
//! The tables are those of `infra/cql/schema.cql` (applied by [`apply_schema`], i.e.
//! `daybook schema apply`): every partition is one device's day, `(cid, day)`.
//!
//! * **Writes** are prepared, idempotent upserts with every partition-key column bound, so
//!   the driver routes each one to a replica and shard that owns it. A batch of reports is
//!   first merged by primary key (a start and an end of the same event in one batch become
//!   one row write, later reports win in log order), then grouped by partition: the rows of
//!   one partition go out as one UNLOGGED batch (cut at [`BATCH_MAX_ROWS`] /
//!   [`BATCH_MAX_BYTES`]), never a logged or multi-partition batch. Partitions are written
//!   concurrently, bounded by [`ScyllaOptions::max_concurrency`]. Nothing is read before
//!   it is written.
//! * **Retries never double-apply**: every statement and batch is marked idempotent (they
//!   are pure upserts: same key, same values), the driver retries them on another replica
//!   after timeouts and broken connections, and a failed `apply` is simply applied again by
//!   the projector. There are no counters and no list appends.
//! * **Expiry** is by TTL counted from the trigger time: each row carries `USING TTL` =
//!   trigger + retention − now (rounded up to whole seconds); a row whose TTL would be
//!   ≤ 0 is not written, so [`ProjectionStore::drop_expired`] has nothing to do.
//! * **Day page cursor**: the driver's paging state, wrapped as
//!   `"DBsc" | version | 8-byte binding of (device, day, type) | paging state`. A cursor
//!   with another prefix, or made for another device, day or type filter, is
//!   [`StoreError::BadCursor`]. (Whatever a paging state holds, the server only returns
//!   rows that match the query's `WHERE` clause, which binds the device and the day.)
//! * **Type filter**: `AND kind = ? ALLOW FILTERING`, scanning only the one (cid, day)
//!   partition. A filtered page may come back short from the server; `day_page` then asks
//!   again from where it stopped (a few rounds at most), so pages hold at most `limit`
//!   events and paging always ends.
//! * **Calendar**: one `SELECT COUNT(*)` per day over that day's `events` partition, run
//!   concurrently. Rows are keyed by event id, so counts are exact under replay.
//!
//! The `scylla` crate's types stay private to this module.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ::scylla::client::execution_profile::ExecutionProfile;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::deserialize::row::DeserializeRow;
use ::scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use ::scylla::policies::retry::{DefaultRetrySession, RequestInfo, RetryDecision, RetryPolicy, RetrySession};
use ::scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use ::scylla::response::query_result::QueryResult;
use ::scylla::response::{PagingState, PagingStateResponse};
use ::scylla::serialize::row::SerializeRow;
use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use ::scylla::statement::Consistency;
use ::scylla::value::MaybeUnset;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt, TryStreamExt};
use schemas::{
    Day, DeviceId, EndStatus, Envelope, EventId, EventType, Media, Report, SegmentId, TimePolicy, Timestamp,
};
use seams::{DayPage, DigestView, EventDetail, EventStatus, EventView, ProjectionStore, SegmentView, StoreError};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The schema, with `${KEYSPACE}` and `${REPLICATION_FACTOR}` placeholders.
pub const SCHEMA_CQL: &str = include_str!("../cql/schema.cql");

/// Most rows in one unlogged batch.
pub const BATCH_MAX_ROWS: usize = 64;
/// Approximate payload at which a batch is cut (Scylla warns at 128 KiB and refuses at
/// 1 MiB by default).
pub const BATCH_MAX_BYTES: usize = 64 * 1024;
/// Largest page `day_page` asks the server for.
pub const MAX_PAGE: u32 = 1000;
/// Server round trips one `day_page` call may make to fill a (filtered) page.
const MAX_PAGE_ROUNDS: usize = 8;
/// CQL's largest TTL (20 years).
const MAX_TTL_SECS: i64 = 630_720_000;
const DEFAULT_PORT: u16 = 9042;

/// Consistency level of every read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScyllaConsistency {
    /// `ONE`
    One,
    /// `TWO`
    Two,
    /// `THREE`
    Three,
    /// `QUORUM`
    Quorum,
    /// `ALL`
    All,
    /// `LOCAL_QUORUM` (the default)
    #[default]
    LocalQuorum,
    /// `EACH_QUORUM` (writes only; reads fall back to `LOCAL_QUORUM`)
    EachQuorum,
    /// `LOCAL_ONE`
    LocalOne,
}

impl ScyllaConsistency {
    const ALL: [Self; 8] = [
        Self::One,
        Self::Two,
        Self::Three,
        Self::Quorum,
        Self::All,
        Self::LocalQuorum,
        Self::EachQuorum,
        Self::LocalOne,
    ];

    /// The CQL name (`LOCAL_QUORUM`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::One => "ONE",
            Self::Two => "TWO",
            Self::Three => "THREE",
            Self::Quorum => "QUORUM",
            Self::All => "ALL",
            Self::LocalQuorum => "LOCAL_QUORUM",
            Self::EachQuorum => "EACH_QUORUM",
            Self::LocalOne => "LOCAL_ONE",
        }
    }

    fn driver(self) -> Consistency {
        match self {
            Self::One => Consistency::One,
            Self::Two => Consistency::Two,
            Self::Three => Consistency::Three,
            Self::Quorum => Consistency::Quorum,
            Self::All => Consistency::All,
            Self::LocalQuorum => Consistency::LocalQuorum,
            Self::EachQuorum => Consistency::EachQuorum,
            Self::LocalOne => Consistency::LocalOne,
        }
    }

    /// For reads: `EACH_QUORUM` is a write-only level.
    fn for_reads(self) -> Self {
        if self == Self::EachQuorum {
            Self::LocalQuorum
        } else {
            self
        }
    }
}

impl FromStr for ScyllaConsistency {
    type Err = String;
    /// Case-insensitive, `-` or `_`: `local_quorum`, `LOCAL-QUORUM`, `one`.
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL.into_iter().find(|c| c.as_str() == norm).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown consistency level {s:?}: want one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for ScyllaConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tuning for [`ScyllaStore`].
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Consistency of every statement (default `LOCAL_QUORUM`).
    pub consistency: ScyllaConsistency,
    /// Client-side timeout of one request, retries included (default 10 s).
    pub request_timeout: Duration,
    /// Most requests this store has in flight at once (default 256).
    pub max_concurrency: usize,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            consistency: ScyllaConsistency::LocalQuorum,
            request_timeout: Duration::from_secs(10),
            max_concurrency: 256,
        }
    }
}

/// A parsed `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaUrl {
    /// Contact points, `HOST:PORT` (port 9042 when the URL gives none).
    pub nodes: Vec<String>,
    /// The keyspace (lower case).
    pub keyspace: String,
}

impl ScyllaUrl {
    /// Parses and validates the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let want = "want scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE";
        let rest = url.strip_prefix("scylla://").ok_or_else(|| format!("{url:?}: {want}"))?;
        let (hosts, keyspace) = rest.split_once('/').ok_or_else(|| format!("{url:?} names no keyspace: {want}"))?;
        let keyspace = keyspace.to_ascii_lowercase();
        let valid_keyspace = (1..=48).contains(&keyspace.len())
            && keyspace.starts_with(|c: char| c.is_ascii_alphabetic())
            && keyspace.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_keyspace {
            return Err(format!("{url:?}: keyspace {keyspace:?} must be 1 to 48 of a-z 0-9 _, starting with a letter"));
        }
        let mut nodes = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            nodes.push(with_port(host).map_err(|e| format!("{url:?}: {e}"))?);
        }
        if nodes.is_empty() {
            return Err(format!("{url:?} names no host: {want}"));
        }
        Ok(Self { nodes, keyspace })
    }
}

/// `host` → `host:9042`, `host:1234` kept, `[::1]` → `[::1]:9042`.
fn with_port(host: &str) -> Result<String, String> {
    let port = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| format!("unclosed [ in host {host:?}"))?;
        if addr.is_empty() {
            return Err(format!("empty host {host:?}"));
        }
        match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| format!("bad host {host:?}"))?),
        }
    } else {
        match host.split_once(':') {
            None => None,
            Some(("", _)) => return Err(format!("empty host {host:?}")),
            Some((_, p)) => Some(p),
        }
    };
    match port {
        None => Ok(format!("{host}:{DEFAULT_PORT}")),
        Some(p) if p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(host.to_owned()),
        Some(p) => Err(format!("bad port {p:?} in host {host:?}")),
    }
}

/// The schema's statements for `keyspace`, placeholders filled in, comments dropped.
pub fn schema_statements(keyspace: &str, replication_factor: u32) -> Vec<String> {
    let text: String = SCHEMA_CQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("${KEYSPACE}", keyspace)
        .replace("${REPLICATION_FACTOR}", &replication_factor.to_string());
    text.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Creates the keyspace named by `url` and its tables, if they do not exist yet (safe to
/// rerun; existing tables are left as they are). Used by `daybook schema apply` and by the
/// conformance harness.
pub async fn apply_schema(url: &str, replication_factor: u32) -> Result<(), StoreError> {
    let url = ScyllaUrl::parse(url).map_err(StoreError::Other)?;
    if replication_factor == 0 {
        return Err(StoreError::Other("replication factor must be at least 1".into()));
    }
    // Schema changes are slow on a busy or freshly started cluster: give them a minute.
    let profile = ExecutionProfile::builder().request_timeout(Some(Duration::from_secs(60))).build();
    let session = SessionBuilder::new()
        .known_nodes(&url.nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .map_err(|e| StoreError::Unavailable(format!("connecting to {:?}: {e}", url.nodes)))?;
    for cql in schema_statements(&url.keyspace, replication_factor) {
        // DDL is unprepared and takes no values; the driver waits for schema agreement
        // after each statement.
        session.query_unpaged(cql.as_str(), &[]).await.map_err(|e| {
            let first = cql.lines().next().unwrap_or_default();
            StoreError::Other(format!("{first}…: {e}"))
        })?;
    }
    session.await_schema_agreement().await.map_err(|e| StoreError::Unavailable(format!("schema agreement: {e}")))?;
    Ok(())
}

// ---- rows as bound / as read ----------------------------------------------------------

/// `events`: cid, day, triggered_at, event_id, kind, started, ended_at, end_status, [ttl].
type EventValues = (String, i32, i64, String, String, MaybeUnset<bool>, MaybeUnset<i64>, MaybeUnset<String>, i32);
/// `segments`: cid, day, segment_id, size, started_at, duration_ms, codec, width, height,
/// fps, audio_sample_rate, keyframes, [ttl].
type SegmentValues = (String, i32, String, i64, i64, i64, String, i32, i32, f64, MaybeUnset<i32>, Vec<i64>, i32);
/// `event_segments`: cid, day, event_id, idx, seg_day, segment_id, start_offset,
/// end_offset, [ttl].
type MappingValues = (String, i32, String, i32, i32, String, i64, i64, i32);
/// `digests`: cid, day, segment_id, size, duration_ms, [ttl].
type DigestValues = (String, i32, String, i64, i64, i32);

/// Bound keys of the reads: (cid, day) …
type DayKey<'a> = (&'a str, i32);
/// … (cid, day, kind) …
type DayKindKey<'a> = (&'a str, i32, &'a str);
/// … (cid, day, triggered_at, event_id) …
type EventKey<'a> = (&'a str, i32, i64, &'a str);
/// … (cid, day, event_id) for mappings, (cid, seg_day, segment_id) for a segment.
type ClusteringKey<'a> = (&'a str, i32, &'a str);

/// event_id, ended_at, end_status.
type EventRow = (String, Option<i64>, Option<String>);
/// count.
type CountRow = (i64,);
/// idx, seg_day, segment_id, start_offset, end_offset.
type MappingRow = (i32, i32, String, i64, i64);
/// segment_id, size, started_at, duration_ms, codec, width, height, fps,
/// audio_sample_rate, keyframes.
type SegmentRow = (String, i64, i64, i64, String, i32, i32, f64, Option<i32>, Option<Vec<i64>>);
/// segment_id, size, duration_ms.
type DigestRow = (String, i64, i64);

/// The CQL of every prepared statement, for `keyspace`.
struct Cql {
    insert_event: String,
    insert_segment: String,
    insert_mapping: String,
    insert_digest: String,
    count_day: String,
    page: String,
    page_kind: String,
    event: String,
    mappings: String,
    segment: String,
    digest: String,
}

impl Cql {
    fn new(ks: &str) -> Self {
        Self {
            insert_event: format!(
                "INSERT INTO {ks}.events (cid, day, triggered_at, event_id, kind, started, ended_at, end_status) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_segment: format!(
                "INSERT INTO {ks}.segments (cid, day, segment_id, size, started_at, duration_ms, codec, width, height, \
                 fps, audio_sample_rate, keyframes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_mapping: format!(
                "INSERT INTO {ks}.event_segments (cid, day, event_id, idx, seg_day, segment_id, start_offset, end_offset) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_digest: format!(
                "INSERT INTO {ks}.digests (cid, day, segment_id, size, duration_ms) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            count_day: format!("SELECT COUNT(*) FROM {ks}.events WHERE cid = ? AND day = ?"),
            page: format!("SELECT event_id, ended_at, end_status FROM {ks}.events WHERE cid = ? AND day = ?"),
            page_kind: format!(
                "SELECT event_id, ended_at, end_status FROM {ks}.events WHERE cid = ? AND day = ? AND kind = ? \
                 ALLOW FILTERING"
            ),
            event: format!(
                "SELECT event_id, ended_at, end_status FROM {ks}.events \
                 WHERE cid = ? AND day = ? AND triggered_at = ? AND event_id = ?"
            ),
            mappings: format!(
                "SELECT idx, seg_day, segment_id, start_offset, end_offset FROM {ks}.event_segments \
                 WHERE cid = ? AND day = ? AND event_id = ?"
            ),
            segment: format!(
                "SELECT segment_id, size, started_at, duration_ms, codec, width, height, fps, audio_sample_rate, \
                 keyframes FROM {ks}.segments WHERE cid = ? AND day = ? AND segment_id = ?"
            ),
            digest: format!("SELECT segment_id, size, duration_ms FROM {ks}.digests WHERE cid = ? AND day = ?"),
        }
    }
}

#[derive(Debug)]
struct Statements {
    insert_event: PreparedStatement,
    insert_segment: PreparedStatement,
    insert_mapping: PreparedStatement,
    insert_digest: PreparedStatement,
    count_day: PreparedStatement,
    page: PreparedStatement,
    page_kind: PreparedStatement,
    event: PreparedStatement,
    mappings: PreparedStatement,
    segment: PreparedStatement,
    digest: PreparedStatement,
}

// ---- pure logic: day keys, TTL, cursor, write plan -------------------------------------

/// A day as the `int` partition-key column: `YYYYMMDD` (at most 99 991 231).
fn day_key(day: Day) -> i32 {
    i32::try_from(day.number()).unwrap_or(i32::MAX)
}

/// Seconds a row triggered at `trigger` has left at `now` (rounded up), or `None` when it
/// is already past retention and must not be written.
fn ttl_secs(policy: &TimePolicy, trigger: Timestamp, now: Timestamp) -> Option<i32> {
    let left_ms = policy.expires_at(trigger).millis().saturating_sub(now.millis());
    if left_ms <= 0 {
        return None;
    }
    let secs = (left_ms.saturating_add(999) / 1000).min(MAX_TTL_SECS);
    i32::try_from(secs).ok()
}

const CURSOR_MAGIC: &[u8; 4] = b"DBsc";
const CURSOR_VERSION: u8 = 1;
const CURSOR_HEADER: usize = CURSOR_MAGIC.len() + 1 + 8;

/// FNV-1a over what a page query is bound to, so a cursor only resumes its own query.
fn cursor_binding(cid: &DeviceId, day: Day, kind: Option<&EventType>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(cid.as_str().as_bytes());
    eat(&[0]);
    eat(&day.number().to_be_bytes());
    match kind {
        Some(k) => {
            eat(&[1]);
            eat(k.as_str().as_bytes());
        }
        None => eat(&[0]),
    }
    h
}

fn encode_cursor(binding: u64, paging_state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CURSOR_HEADER + paging_state.len());
    out.extend_from_slice(CURSOR_MAGIC);
    out.push(CURSOR_VERSION);
    out.extend_from_slice(&binding.to_be_bytes());
    out.extend_from_slice(paging_state);
    out
}

/// The driver paging state inside a cursor this store made for the same query.
fn decode_cursor(cursor: &[u8], binding: u64) -> Result<Vec<u8>, StoreError> {
    if cursor.len() <= CURSOR_HEADER
        || &cursor[..4] != CURSOR_MAGIC
        || cursor[4] != CURSOR_VERSION
        || cursor[5..CURSOR_HEADER] != binding.to_be_bytes()
    {
        return Err(StoreError::BadCursor);
    }
    Ok(cursor[CURSOR_HEADER..].to_vec())
}

/// An event row being assembled from the reports of one batch.
#[derive(Debug, Clone, PartialEq)]
struct EventWrite {
    kind: String,
    started: bool,
    end: Option<(i64, &'static str)>,
    ttl: i32,
}

type Partition = (String, i32);

/// One `apply` call's writes, merged by primary key (later reports win) and ordered by
/// partition.
#[derive(Default)]
struct WritePlan {
    /// Rows the reports asked for (before merging), as the embedded store counts them.
    rows: u64,
    events: BTreeMap<(String, i32, i64, String), EventWrite>,
    segments: BTreeMap<(String, i32, String), SegmentValues>,
    mappings: BTreeMap<(String, i32, String, i32), MappingValues>,
    digests: BTreeMap<Partition, DigestValues>,
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Other(format!("{what} {v} does not fit a bigint")))
}

fn to_i32(what: &str, v: u32) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Other(format!("{what} {v} does not fit an int")))
}

impl WritePlan {
    fn build(batch: &[Envelope], policy: &TimePolicy, now: Timestamp) -> Result<Self, StoreError> {
        let mut plan = Self::default();
        for env in batch {
            match &env.report {
                Report::EventStarted(r) => {
                    let Some(ttl) = ttl_secs(policy, r.event_id.triggered_at(), now) else { continue };
                    plan.event(&r.event_id, ttl).started = true;
                    plan.rows += 1;
                }
                Report::EventEnded(r) => {
                    let Some(ttl) = ttl_secs(policy, r.event_id.triggered_at(), now) else { continue };
                    plan.event(&r.event_id, ttl).end = Some((r.ended_at.millis(), r.status.as_str()));
                    plan.rows += 1;
                }
                Report::SegmentReported(r) => {
                    let Some(seg_day) = policy.offset.day_of(r.started_at) else { continue };
                    let cid = r.cid.as_str().to_owned();
                    if let Some(ttl) = ttl_secs(policy, r.started_at, now) {
                        let m = &r.media;
                        let keyframes =
                            r.keyframes.iter().map(|k| to_i64("keyframe", *k)).collect::<Result<Vec<_>, _>>()?;
                        let audio = match m.audio_sample_rate {
                            Some(rate) => MaybeUnset::Set(to_i32("audio_sample_rate", rate)?),
                            None => MaybeUnset::Unset,
                        };
                        let values = (
                            cid.clone(),
                            day_key(seg_day),
                            r.segment_id.as_str().to_owned(),
                            to_i64("size", r.size)?,
                            r.started_at.millis(),
                            i64::from(r.duration_ms),
                            m.codec.clone(),
                            to_i32("width", m.width)?,
                            to_i32("height", m.height)?,
                            m.fps,
                            audio,
                            keyframes,
                            ttl,
                        );
                        plan.segments.insert((cid.clone(), day_key(seg_day), r.segment_id.as_str().to_owned()), values);
                        plan.rows += 1;
                    }
                    for e in &r.events {
                        let Some(ttl) = ttl_secs(policy, e.event_id.triggered_at(), now) else { continue };
                        let day = day_key(e.event_id.day());
                        let idx = to_i32("index", e.index)?;
                        let values = (
                            cid.clone(),
                            day,
                            e.event_id.as_str().to_owned(),
                            idx,
                            day_key(seg_day),
                            r.segment_id.as_str().to_owned(),
                            to_i64("start_offset", e.start_offset)?,
                            to_i64("end_offset", e.end_offset)?,
                            ttl,
                        );
                        plan.mappings.insert((cid.clone(), day, e.event_id.as_str().to_owned(), idx), values);
                        plan.rows += 1;
                    }
                }
                Report::DigestReported(r) => {
                    let Some(ttl) = ttl_secs(policy, policy.offset.start_of(r.date), now) else { continue };
                    let cid = r.cid.as_str().to_owned();
                    let values = (
                        cid.clone(),
                        day_key(r.date),
                        r.segment_id.as_str().to_owned(),
                        to_i64("size", r.size)?,
                        i64::from(r.duration_ms),
                        ttl,
                    );
                    plan.digests.insert((cid, day_key(r.date)), values);
                    plan.rows += 1;
                }
            }
        }
        Ok(plan)
    }

    /// The event row for `id`, created if this batch has not touched it yet. Its partition
    /// comes from the id itself (device and trigger day).
    fn event(&mut self, id: &EventId, ttl: i32) -> &mut EventWrite {
        let key =
            (id.device().as_str().to_owned(), day_key(id.day()), id.triggered_at().millis(), id.as_str().to_owned());
        let row = self.events.entry(key).or_insert_with(|| EventWrite {
            kind: id.kind().as_str().to_owned(),
            started: false,
            end: None,
            ttl,
        });
        row.ttl = ttl;
        row
    }

    fn event_chunks(&self) -> Vec<Vec<EventValues>> {
        partition_chunks(self.events.iter().map(|((cid, day, trig, id), w)| {
            let values: EventValues = (
                cid.clone(),
                *day,
                *trig,
                id.clone(),
                w.kind.clone(),
                if w.started { MaybeUnset::Set(true) } else { MaybeUnset::Unset },
                w.end.map_or(MaybeUnset::Unset, |(at, _)| MaybeUnset::Set(at)),
                w.end.map_or(MaybeUnset::Unset, |(_, st)| MaybeUnset::Set(st.to_owned())),
                w.ttl,
            );
            ((cid.clone(), *day), values, 64 + cid.len() + 2 * id.len())
        }))
    }

    fn segment_chunks(&self) -> Vec<Vec<SegmentValues>> {
        partition_chunks(self.segments.iter().map(|((cid, day, seg), v)| {
            ((cid.clone(), *day), v.clone(), 96 + cid.len() + seg.len() + v.6.len() + 8 * v.11.len())
        }))
    }

    fn mapping_chunks(&self) -> Vec<Vec<MappingValues>> {
        partition_chunks(
            self.mappings
                .iter()
                .map(|((cid, day, id, _), v)| ((cid.clone(), *day), v.clone(), 48 + cid.len() + id.len() + v.5.len())),
        )
    }

    fn digest_chunks(&self) -> Vec<Vec<DigestValues>> {
        partition_chunks(
            self.digests.iter().map(|((cid, day), v)| ((cid.clone(), *day), v.clone(), 48 + cid.len() + v.2.len())),
        )
    }
}

/// Cuts rows (already ordered so that a partition's rows are adjacent) into per-partition
/// chunks of at most [`BATCH_MAX_ROWS`] rows and about [`BATCH_MAX_BYTES`].
fn partition_chunks<V>(rows: impl IntoIterator<Item = (Partition, V, usize)>) -> Vec<Vec<V>> {
    let mut chunks: Vec<Vec<V>> = Vec::new();
    let mut current: Option<(Partition, usize)> = None;
    for (partition, values, bytes) in rows {
        let fits = match &current {
            Some((p, size)) => {
                *p == partition
                    && chunks.last().is_some_and(|c| c.len() < BATCH_MAX_ROWS)
                    && size + bytes <= BATCH_MAX_BYTES
            }
            None => false,
        };
        if fits {
            if let (Some((_, size)), Some(chunk)) = (current.as_mut(), chunks.last_mut()) {
                *size += bytes;
                chunk.push(values);
            }
        } else {
            current = Some((partition, bytes));
            chunks.push(vec![values]);
        }
    }
    chunks
}

// ---- conversions from rows ------------------------------------------------------------

fn other(e: impl fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

fn to_u64(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Other(format!("negative {what} {v} in store")))
}

fn to_u32(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Other(format!("{what} {v} in store is out of range")))
}

fn event_view((event_id, ended_at, end_status): EventRow) -> Result<EventView, StoreError> {
    let event_id = EventId::parse(&event_id).map_err(other)?;
    let end = match end_status.as_deref() {
        None => None,
        Some(s) => {
            Some(EndStatus::parse(s).ok_or_else(|| StoreError::Other(format!("bad end status {s:?} in store")))?)
        }
    };
    Ok(EventView {
        kind: event_id.kind().clone(),
        triggered_at: event_id.triggered_at(),
        ended_at: ended_at.map(Timestamp),
        status: EventStatus::from_end(end),
        event_id,
    })
}

fn segment_view(mapping: MappingRow, segment: SegmentRow) -> Result<SegmentView, StoreError> {
    let (idx, _, _, start_offset, end_offset) = mapping;
    let (segment_id, size, started_at, duration_ms, codec, width, height, fps, audio, keyframes) = segment;
    Ok(SegmentView {
        segment_id: SegmentId::parse(&segment_id).map_err(other)?,
        index: to_u32("idx", idx.into())?,
        size: to_u64("size", size)?,
        start_offset: to_u64("start_offset", start_offset)?,
        end_offset: to_u64("end_offset", end_offset)?,
        started_at: Timestamp(started_at),
        duration_ms: to_u32("duration_ms", duration_ms)?,
        media: Media {
            codec,
            width: to_u32("width", width.into())?,
            height: to_u32("height", height.into())?,
            fps,
            audio_sample_rate: audio.map(|a| to_u32("audio_sample_rate", a.into())).transpose()?,
        },
        keyframes: keyframes
            .unwrap_or_default()
            .into_iter()
            .map(|k| to_u64("keyframe", k))
            .collect::<Result<_, _>>()?,
    })
}

// ---- errors and retries ---------------------------------------------------------------

/// Errors a retry cannot fix (bad statement, bad schema, no permission).
fn is_permanent(db: &DbError) -> bool {
    matches!(
        db,
        DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::FunctionFailure { .. }
            | DbError::AuthenticationError
            | DbError::Unauthorized
            | DbError::ConfigError
            | DbError::ProtocolError
    )
}

fn exec_error(e: ExecutionError) -> StoreError {
    match &e {
        ExecutionError::BadQuery(_)
        | ExecutionError::LastAttemptError(
            RequestAttemptError::SerializationError(_) | RequestAttemptError::CqlRequestSerialization(_),
        ) => StoreError::Other(e.to_string()),
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) if is_permanent(db) => {
            StoreError::Other(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// The server's answer to a paging state it cannot use.
fn is_bad_paging_state(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(
            DbError::Invalid | DbError::ProtocolError | DbError::ServerError,
            _
        ))
    )
}

/// The driver's default policy, plus: an idempotent request that timed out on the server
/// (read or write timeout) is tried again on the next replica, at most
/// [`IdempotentRetryPolicy::TIMEOUT_RETRIES`] times. Every statement here is an idempotent
/// upsert or a read, so a retry can never apply anything twice.
#[derive(Debug)]
struct IdempotentRetryPolicy;

impl IdempotentRetryPolicy {
    const TIMEOUT_RETRIES: u32 = 2;
}

impl RetryPolicy for IdempotentRetryPolicy {
    fn new_session(&self) -> Box<dyn RetrySession> {
        Box::new(IdempotentRetrySession { inner: DefaultRetrySession::new(), timeouts: 0 })
    }
}

struct IdempotentRetrySession {
    inner: DefaultRetrySession,
    timeouts: u32,
}

impl RetrySession for IdempotentRetrySession {
    fn decide_should_retry(&mut self, info: RequestInfo<'_>) -> RetryDecision {
        let timed_out = matches!(
            info.error,
            RequestAttemptError::DbError(DbError::ReadTimeout { .. } | DbError::WriteTimeout { .. }, _)
        );
        if timed_out
            && info.is_idempotent
            && !info.consistency.is_serial()
            && self.timeouts < IdempotentRetryPolicy::TIMEOUT_RETRIES
        {
            self.timeouts += 1;
            return RetryDecision::RetryNextTarget(None);
        }
        self.inner.decide_should_retry(info)
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.timeouts = 0;
    }
}

// ---- the store ------------------------------------------------------------------------

/// The ScyllaDB projection store. Cheap to share (`Arc`).
pub struct ScyllaStore {
    session: Session,
    statements: Statements,
    policy: TimePolicy,
    url: ScyllaUrl,
    consistency: ScyllaConsistency,
    permits: Semaphore,
    max_concurrency: usize,
}

impl fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("nodes", &self.url.nodes)
            .field("keyspace", &self.url.keyspace)
            .field("consistency", &self.consistency)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl ScyllaStore {
    /// Connects to the cluster named by `url` (`scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`)
    /// and prepares every statement. The schema must exist (`daybook schema apply`).
    pub async fn connect(url: &str, policy: TimePolicy, opts: ScyllaOptions) -> Result<Arc<Self>, StoreError> {
        let url = ScyllaUrl::parse(url).map_err(StoreError::Other)?;
        let max_concurrency = opts.max_concurrency.max(1);
        let profile = ExecutionProfile::builder()
            .consistency(opts.consistency.driver())
            .request_timeout(Some(opts.request_timeout))
            .retry_policy(Arc::new(IdempotentRetryPolicy))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(&url.nodes)
            .keyspaces_to_fetch([url.keyspace.clone()])
            // Client-side, monotonic write timestamps: successive writes of one projector
            // to the same cell keep log order whichever coordinator takes them.
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| StoreError::Unavailable(format!("connecting to {:?}: {e}", url.nodes)))?;
        let cql = Cql::new(&url.keyspace);
        let reads = opts.consistency.for_reads().driver();
        let prepare = |text: &str, read: bool| {
            let session = &session;
            let text = text.to_owned();
            async move {
                let mut stmt = session.prepare(text.as_str()).await.map_err(|e| {
                    StoreError::Other(format!(
                        "preparing `{text}`: {e} (has `daybook schema apply` created the keyspace?)"
                    ))
                })?;
                stmt.set_is_idempotent(true);
                if read {
                    stmt.set_consistency(reads);
                }
                Ok::<_, StoreError>(stmt)
            }
        };
        let (insert_event, insert_segment, insert_mapping, insert_digest) = futures::try_join!(
            prepare(&cql.insert_event, false),
            prepare(&cql.insert_segment, false),
            prepare(&cql.insert_mapping, false),
            prepare(&cql.insert_digest, false),
        )?;
        let (count_day, page, page_kind, event, mappings, segment, digest) = futures::try_join!(
            prepare(&cql.count_day, true),
            prepare(&cql.page, true),
            prepare(&cql.page_kind, true),
            prepare(&cql.event, true),
            prepare(&cql.mappings, true),
            prepare(&cql.segment, true),
            prepare(&cql.digest, true),
        )?;
        let statements = Statements {
            insert_event,
            insert_segment,
            insert_mapping,
            insert_digest,
            count_day,
            page,
            page_kind,
            event,
            mappings,
            segment,
            digest,
        };
        Ok(Arc::new(Self {
            session,
            statements,
            policy,
            url,
            consistency: opts.consistency,
            permits: Semaphore::new(max_concurrency),
            max_concurrency,
        }))
    }

    /// The keyspace this store writes.
    pub fn keyspace(&self) -> &str {
        &self.url.keyspace
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>, StoreError> {
        self.permits.acquire().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Writes one partition's rows: one statement, or one unlogged batch.
    async fn write<V: SerializeRow + Send + Sync>(
        &self,
        stmt: &PreparedStatement,
        rows: Vec<V>,
    ) -> Result<(), StoreError> {
        let _permit = self.permit().await?;
        match <[V; 1]>::try_from(rows) {
            Ok([row]) => {
                self.session.execute_unpaged(stmt, row).await.map_err(exec_error)?;
            }
            Err(rows) => {
                let mut batch = Batch::new(BatchType::Unlogged);
                for _ in &rows {
                    batch.append_statement(stmt.clone());
                }
                batch.set_is_idempotent(true);
                self.session.batch(&batch, rows).await.map_err(exec_error)?;
            }
        }
        Ok(())
    }

    async fn run(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<QueryResult, StoreError> {
        let _permit = self.permit().await?;
        self.session.execute_unpaged(stmt, values).await.map_err(exec_error)
    }

    async fn query_all<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self.run(stmt, values).await?.into_rows_result().map_err(other)?;
        let out = rows.rows::<R>().map_err(other)?.collect::<Result<Vec<R>, _>>().map_err(other)?;
        Ok(out)
    }

    async fn query_opt<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Option<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self.run(stmt, values).await?.into_rows_result().map_err(other)?;
        let first = rows.maybe_first_row::<R>().map_err(other)?;
        Ok(first)
    }

    async fn page_once(
        &self,
        stmt: &PreparedStatement,
        values: impl SerializeRow,
        state: PagingState,
    ) -> Result<Result<(QueryResult, PagingStateResponse), ExecutionError>, StoreError> {
        let _permit = self.permit().await?;
        Ok(self.session.execute_single_page(stmt, values, state).await)
    }
}

#[async_trait]
impl ProjectionStore for ScyllaStore {
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        let plan = WritePlan::build(batch, &self.policy, Timestamp::now())?;
        let s = &self.statements;
        let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        jobs.extend(
            plan.event_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_event, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.segment_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_segment, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.mapping_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_mapping, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.digest_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_digest, c)) as BoxFuture<'_, _>),
        );
        stream::iter(jobs).buffer_unordered(self.max_concurrency).try_collect::<Vec<()>>().await?;
        Ok(plan.rows)
    }

    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        let span = to.days_since(from);
        if !(0..=366).contains(&span) {
            return Ok(Vec::new());
        }
        // Days outside what retention and the future tolerance allow hold no rows: skip them.
        let now = Timestamp::now();
        let offset = self.policy.offset;
        let oldest = offset.day_of(now.plus_millis(-self.policy.retention_ms())).map(|d| d.add_days(-1));
        let newest = offset.day_of(now.plus_millis(self.policy.future_tolerance_ms)).map(|d| d.add_days(1));
        let from = oldest.map_or(from, |o| from.max(o));
        let to = newest.map_or(to, |n| to.min(n));
        let days: Vec<Day> = (0..=to.days_since(from).max(-1)).map(|i| from.add_days(i)).collect();
        let cid = cid.as_str();
        let mut counts = stream::iter(days)
            .map(|day| async move {
                let key: DayKey<'_> = (cid, day_key(day));
                let n = self.query_opt::<CountRow>(&self.statements.count_day, key).await?;
                Ok::<_, StoreError>((day, n.map_or(0, |(n,)| n)))
            })
            .buffer_unordered(self.max_concurrency)
            .try_filter(|(_, n)| futures::future::ready(*n > 0))
            .map_ok(|(day, n)| (day, n.unsigned_abs()))
            .try_collect::<Vec<_>>()
            .await?;
        counts.sort_by_key(|c| std::cmp::Reverse(c.0));
        Ok(counts)
    }

    async fn day_page(
        &self,
        cid: &DeviceId,
        day: Day,
        kind: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError> {
        let binding = cursor_binding(cid, day, kind);
        let mut state = match cursor {
            Some(c) => PagingState::new_from_raw_bytes(decode_cursor(c, binding)?),
            None => PagingState::start(),
        };
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let base = if kind.is_some() { &self.statements.page_kind } else { &self.statements.page };
        let (cid, day) = (cid.as_str(), day_key(day));
        let mut events = Vec::with_capacity(limit);
        for round in 0..MAX_PAGE_ROUNDS {
            let mut stmt = base.clone();
            let want = i32::try_from(limit - events.len()).unwrap_or(i32::MAX).max(1);
            stmt.set_page_size(want);
            let answer = match kind {
                Some(k) => {
                    let key: DayKindKey<'_> = (cid, day, k.as_str());
                    self.page_once(&stmt, key, state.clone()).await?
                }
                None => {
                    let key: DayKey<'_> = (cid, day);
                    self.page_once(&stmt, key, state.clone()).await?
                }
            };
            let (result, next) = answer.map_err(|e| {
                if cursor.is_some() && round == 0 && is_bad_paging_state(&e) {
                    StoreError::BadCursor
                } else {
                    exec_error(e)
                }
            })?;
            let rows = result.into_rows_result().map_err(other)?;
            for row in rows.rows::<EventRow>().map_err(other)? {
                events.push(event_view(row.map_err(other)?)?);
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(DayPage { events, next: None }),
                ControlFlow::Continue(s) => state = s,
            }
            if events.len() >= limit {
                break;
            }
        }
        let next = state.as_bytes_slice().map(|b| encode_cursor(binding, b));
        Ok(DayPage { events, next })
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        let cid = id.device().as_str();
        let day = day_key(id.day());
        let s = &self.statements;
        let event_key: EventKey<'_> = (cid, day, id.triggered_at().millis(), id.as_str());
        let mappings_key: ClusteringKey<'_> = (cid, day, id.as_str());
        let (event, mappings) = futures::try_join!(
            self.query_opt::<EventRow>(&s.event, event_key),
            self.query_all::<MappingRow>(&s.mappings, mappings_key),
        )?;
        let Some(event) = event else { return Ok(None) };
        let event = event_view(event)?;
        // Mappings come in index order; a segment whose own report has not arrived yet
        // is left out until it does.
        let segments = stream::iter(mappings)
            .map(|m| async move {
                let key: ClusteringKey<'_> = (cid, m.1, m.2.as_str());
                let segment = self.query_opt::<SegmentRow>(&s.segment, key).await?;
                segment.map(|seg| segment_view(m, seg)).transpose()
            })
            .buffered(self.max_concurrency)
            .try_collect::<Vec<Option<SegmentView>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(Some(EventDetail { event, segments }))
    }

    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError> {
        let key: DayKey<'_> = (cid.as_str(), day_key(day));
        let row = self.query_opt::<DigestRow>(&self.statements.digest, key).await?;
        row.map(|(segment_id, size, duration_ms)| {
            Ok(DigestView {
                date: day,
                segment_id: SegmentId::parse(&segment_id).map_err(other)?,
                size: to_u64("size", size)?,
                duration_ms: to_u32("duration_ms", duration_ms)?,
            })
        })
        .transpose()
    }

    /// Rows expire by TTL counted from their trigger time; nothing is left to drop.
    async fn drop_expired(&self, _oldest_kept: Day) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged("SELECT key FROM system.local WHERE key = 'local'", &[])
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn backend(&self) -> &'static str {
        "scylla"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ::scylla::frame::response::result::{CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec};
    use ::scylla::serialize::row::RowSerializationContext;
    use ::scylla::serialize::writers::RowWriter;
    use schemas::{DayOffset, DigestReported, EventEnded, EventMapping, EventStarted, SegmentReported};

    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn policy() -> TimePolicy {
        TimePolicy::default()
    }

    fn env(report: Report) -> Envelope {
        Envelope { report, received_at: Timestamp::now() }
    }

    fn cid(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    fn start(device: &str, kind: &str, at: Timestamp) -> (EventId, Envelope) {
        let cid = cid(device);
        let kind = EventType::parse(kind).unwrap();
        let event_id = EventId::new(&cid, &kind, at, DayOffset::default()).unwrap();
        (event_id.clone(), env(Report::EventStarted(EventStarted { cid, event_id, kind, triggered_at: at })))
    }

    fn end(id: &EventId, after_ms: i64, status: EndStatus) -> Envelope {
        env(Report::EventEnded(EventEnded {
            cid: id.device().clone(),
            event_id: id.clone(),
            ended_at: id.triggered_at().plus_millis(after_ms),
            status,
        }))
    }

    fn segment(device: &str, seg: &str, at: Timestamp, events: &[(&EventId, u32)]) -> Envelope {
        env(Report::SegmentReported(SegmentReported {
            cid: cid(device),
            segment_id: SegmentId::parse(seg).unwrap(),
            size: 1000,
            started_at: at,
            duration_ms: 10_000,
            media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: None },
            keyframes: vec![0, 500],
            events: events
                .iter()
                .map(|(id, index)| EventMapping {
                    event_id: (*id).clone(),
                    index: *index,
                    start_offset: 0,
                    end_offset: 1000,
                })
                .collect(),
        }))
    }

    fn digest(device: &str, date: Day, seg: &str) -> Envelope {
        env(Report::DigestReported(DigestReported {
            cid: cid(device),
            date,
            segment_id: SegmentId::parse(seg).unwrap(),
            size: 99,
            duration_ms: 60_000,
        }))
    }

    // ---- URL, consistency ----

    #[test]
    fn urls_parse_with_default_ports() {
        let u = ScyllaUrl::parse("scylla://scylla1:9042,scylla2,[::1],[fe80::1]:19042/Daybook").unwrap();
        assert_eq!(u.nodes, vec!["scylla1:9042", "scylla2:9042", "[::1]:9042", "[fe80::1]:19042"]);
        assert_eq!(u.keyspace, "daybook");
        let u = ScyllaUrl::parse("scylla://127.0.0.1:9042/daybook_test_1_2_3").unwrap();
        assert_eq!((u.nodes.len(), u.keyspace.as_str()), (1, "daybook_test_1_2_3"));
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "",
            "scylla://",
            "scylla://host",
            "scylla:///ks",
            "scylla://host/",
            "scylla://host/1ks",
            "scylla://host/ks-x",
            "scylla://host/ks;DROP",
            "scylla://host:0/ks",
            "scylla://host:x/ks",
            "scylla://host:99999/ks",
            "scylla://:9042/ks",
            "scylla://[::1/ks",
            "scylla://[::1]x/ks",
            "cassandra://host/ks",
            "scylla://host/ks/extra",
        ] {
            assert!(ScyllaUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("scylla://h/{}", "k".repeat(49));
        assert!(ScyllaUrl::parse(&long).is_err());
    }

    #[test]
    fn consistency_levels_parse() {
        assert_eq!(ScyllaConsistency::default(), ScyllaConsistency::LocalQuorum);
        assert_eq!("local_quorum".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::LocalQuorum);
        assert_eq!("LOCAL-ONE".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::LocalOne);
        assert_eq!(" quorum ".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::Quorum);
        assert!("serial".parse::<ScyllaConsistency>().is_err());
        for c in ScyllaConsistency::ALL {
            assert_eq!(c.to_string().parse::<ScyllaConsistency>().unwrap(), c);
        }
        assert_eq!(ScyllaConsistency::EachQuorum.for_reads(), ScyllaConsistency::LocalQuorum);
    }

    // ---- TTL ----

    #[test]
    fn ttl_counts_from_the_trigger_time() {
        let p = policy();
        let now = Timestamp(1_800_000_000_000);
        assert_eq!(ttl_secs(&p, now, now), Some(30 * 86_400));
        // Three days late: 27 days left.
        assert_eq!(ttl_secs(&p, now.plus_millis(-3 * DAY_MS), now), Some(27 * 86_400));
        // Rounded up: 1 ms left is 1 s, never 0 (TTL 0 means "never expire").
        assert_eq!(ttl_secs(&p, now.plus_millis(-30 * DAY_MS + 1), now), Some(1));
        assert_eq!(ttl_secs(&p, now.plus_millis(-30 * DAY_MS + 1001), now), Some(2));
        // At or past retention: not written.
        assert_eq!(ttl_secs(&p, now.plus_millis(-30 * DAY_MS), now), None);
        assert_eq!(ttl_secs(&p, now.plus_millis(-40 * DAY_MS), now), None);
        // Trigger slightly in the future (device clock): a little more than retention.
        assert_eq!(ttl_secs(&p, now.plus_millis(60_000), now), Some(30 * 86_400 + 60));
        // Absurd retention is capped at CQL's maximum TTL.
        let long = TimePolicy { retention_days: 100_000, ..p };
        assert_eq!(ttl_secs(&long, now, now), Some(MAX_TTL_SECS as i32));
    }

    // ---- cursor ----

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_query() {
        let day = Day::parse("2026-11-22").unwrap();
        let motion = EventType::parse("motion").unwrap();
        let b = cursor_binding(&cid("cam-1"), day, None);
        let c = encode_cursor(b, b"\x00\x01paging");
        assert_eq!(decode_cursor(&c, b).unwrap(), b"\x00\x01paging");
        for other_query in [
            cursor_binding(&cid("cam-2"), day, None),
            cursor_binding(&cid("cam-1"), day.add_days(1), None),
            cursor_binding(&cid("cam-1"), day, Some(&motion)),
        ] {
            assert_ne!(other_query, b);
            assert!(matches!(decode_cursor(&c, other_query), Err(StoreError::BadCursor)));
        }
        // Prefix ambiguity: ("cam-1", day, None) vs a kind that starts with the separator.
        assert_ne!(cursor_binding(&cid("cam"), day, None), cursor_binding(&cid("cam-"), day, None));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let b = cursor_binding(&cid("cam-f"), Day::parse("2026-11-22").unwrap(), None);
        let good = encode_cursor(b, b"state");
        let mut wrong_version = good.clone();
        wrong_version[4] = 2;
        let mut flipped = good.clone();
        flipped[7] ^= 1;
        for bad in [
            b"\xffnot a cursor".to_vec(),
            Vec::new(),
            b"DBsc".to_vec(),
            good[..CURSOR_HEADER].to_vec(), // no paging state
            wrong_version,
            flipped,
        ] {
            assert!(matches!(decode_cursor(&bad, b), Err(StoreError::BadCursor)), "{bad:?}");
        }
    }

    // ---- write plan ----

    #[test]
    fn partition_chunks_group_adjacent_rows_and_cut_large_batches() {
        let p = |c: &str, d: i32| (c.to_owned(), d);
        let rows =
            vec![(p("a", 1), 1, 10), (p("a", 1), 2, 10), (p("a", 2), 3, 10), (p("b", 2), 4, 10), (p("b", 2), 5, 10)];
        assert_eq!(partition_chunks(rows), vec![vec![1, 2], vec![3], vec![4, 5]]);

        let many = (0..BATCH_MAX_ROWS * 2 + 1).map(|i| (p("a", 1), i, 1));
        let chunks = partition_chunks(many);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![BATCH_MAX_ROWS, BATCH_MAX_ROWS, 1]);

        let big = (0..5).map(|i| (p("a", 1), i, BATCH_MAX_BYTES / 2));
        assert_eq!(partition_chunks(big), vec![vec![0, 1], vec![2, 3], vec![4]]);
        // A single row larger than the cut still goes out (alone).
        assert_eq!(partition_chunks([(p("a", 1), 0, BATCH_MAX_BYTES * 3)]), vec![vec![0]]);
        assert!(partition_chunks(Vec::<(Partition, u8, usize)>::new()).is_empty());
    }

    #[test]
    fn plan_merges_start_and_end_in_any_order() {
        let now = Timestamp::now();
        let t = now.plus_millis(-DAY_MS);
        let (a, sa) = start("cam-1", "motion", t);
        let (b, sb) = start("cam-1", "sound", t.plus_millis(1000));
        let batch = [
            end(&a, 5_000, EndStatus::Aborted),
            sa.clone(),
            sb,
            sa,
            end(&b, 1, EndStatus::Complete),
            end(&b, 7, EndStatus::Complete),
        ];
        let plan = WritePlan::build(&batch, &policy(), now).unwrap();
        assert_eq!(plan.rows, 6, "rows are counted per report, as the embedded store does");
        assert_eq!(plan.events.len(), 2);
        let chunks = plan.event_chunks();
        assert_eq!(chunks.len(), 1, "one partition, one batch");
        let rows = &chunks[0];
        assert_eq!(rows[0].3, a.as_str());
        assert!(matches!(rows[0].5, MaybeUnset::Set(true)));
        assert!(matches!(rows[0].6, MaybeUnset::Set(at) if at == t.millis() + 5_000));
        assert!(matches!(&rows[0].7, MaybeUnset::Set(s) if s == "aborted"));
        assert_eq!(rows[0].4, "motion");
        // The later end wins within a batch, as it would across batches.
        assert!(matches!(rows[1].6, MaybeUnset::Set(at) if at == t.millis() + 1_000 + 7));
        assert!((DAY_MS / 1000 * 29..=DAY_MS / 1000 * 29 + 1).contains(&i64::from(rows[0].8)));

        // A start alone leaves the end columns unset (never null: no tombstones, no reopening).
        let (_, only) = start("cam-1", "person", t);
        let plan = WritePlan::build(&[only], &policy(), now).unwrap();
        let row = &plan.event_chunks()[0][0];
        assert!(matches!(row.5, MaybeUnset::Set(true)));
        assert!(matches!(row.6, MaybeUnset::Unset) && matches!(row.7, MaybeUnset::Unset));
        // An end alone leaves `started` unset, so a later start cannot be overwritten by it.
        let plan = WritePlan::build(&[end(&a, 1, EndStatus::Complete)], &policy(), now).unwrap();
        assert!(matches!(plan.event_chunks()[0][0].5, MaybeUnset::Unset));
    }

    #[test]
    fn plan_routes_rows_to_their_partitions_and_skips_expired_ones() {
        let now = Timestamp::now();
        let today = DayOffset::default().day_of(now).unwrap();
        let noon = |days_ago: i64| DayOffset::default().start_of(today.add_days(-days_ago)).plus_millis(DAY_MS / 2);
        let (yesterday_ev, st_y) = start("cam-s", "motion", noon(1));
        let (old_ev, st_old) = start("cam-s", "motion", noon(40));
        let batch = [
            st_y,
            st_old,
            // Started today, holds the end of yesterday's event: the mapping lives with the
            // event (yesterday), pointing at the segment's own day.
            segment("cam-s", "seg-1", noon(0), &[(&yesterday_ev, 3), (&old_ev, 0)]),
            segment("cam-s", "seg-old", noon(40), &[(&yesterday_ev, 0)]),
            digest("cam-s", today.add_days(-2), "dg-1"),
            digest("cam-s", today.add_days(-2), "dg-2"),
            digest("cam-s", today.add_days(-31), "dg-old"),
        ];
        let plan = WritePlan::build(&batch, &policy(), now).unwrap();
        // start(y) + seg-1 + mapping(y, 3) + mapping(y, 0) from seg-old + 2 digests
        assert_eq!(plan.rows, 6);
        assert_eq!(plan.events.keys().map(|k| k.1).collect::<Vec<_>>(), vec![day_key(today.add_days(-1))]);
        let segs = plan.segment_chunks();
        assert_eq!(segs.len(), 1);
        let s = &segs[0][0];
        assert_eq!((s.1, s.2.as_str(), s.11.clone()), (day_key(today), "seg-1", vec![0, 500]));
        assert!(matches!(s.10, MaybeUnset::Unset), "no audio: unset, not null");
        let maps = plan.mapping_chunks();
        assert_eq!(maps.len(), 1, "both mappings are in yesterday's partition: one batch");
        let m: Vec<_> = maps[0].iter().map(|m| (m.1, m.3, m.4, m.5.as_str())).collect();
        let y = day_key(today.add_days(-1));
        assert_eq!(m, vec![(y, 0, day_key(today.add_days(-40)), "seg-old"), (y, 3, day_key(today), "seg-1")]);
        let dg = plan.digest_chunks();
        assert_eq!(dg.len(), 1);
        assert_eq!((dg[0][0].1, dg[0][0].2.as_str()), (day_key(today.add_days(-2)), "dg-2"), "a re-upload replaces");
    }

    #[test]
    fn rows_convert_back_to_views() {
        let (id, _) = start("cam-v", "person", Timestamp(1_800_000_000_000));
        let v = event_view((id.as_str().to_owned(), Some(1_800_000_004_000), Some("complete".into()))).unwrap();
        assert_eq!((v.status, v.duration_ms(), v.kind.as_str()), (EventStatus::Complete, Some(4_000), "person"));
        let open = event_view((id.as_str().to_owned(), None, None)).unwrap();
        assert_eq!(open.status, EventStatus::Open);
        assert!(event_view(("nonsense".into(), None, None)).is_err());
        assert!(event_view((id.as_str().to_owned(), Some(1), Some("weird".into()))).is_err());

        let seg = segment_view(
            (2, 20261122, "seg-9".into(), 10, 90),
            ("seg-9".into(), 100, 5, 10_000, "h265".into(), 640, 480, 12.5, Some(8000), None),
        )
        .unwrap();
        assert_eq!((seg.index, seg.size, seg.start_offset, seg.end_offset), (2, 100, 10, 90));
        assert_eq!((seg.media.audio_sample_rate, seg.keyframes.len()), (Some(8000), 0));
        assert!(
            segment_view((0, 1, "s".into(), -1, 0), ("s".into(), 1, 0, 1, "c".into(), 1, 1, 1.0, None, None)).is_err()
        );
    }

    // ---- the CQL, checked against the schema file ----

    #[test]
    fn schema_statements_are_complete_and_idempotent() {
        let stmts = schema_statements("ks_x", 3);
        assert_eq!(stmts.len(), 5, "{stmts:#?}");
        assert!(stmts[0].starts_with("CREATE KEYSPACE IF NOT EXISTS ks_x"));
        assert!(stmts[0].contains("'replication_factor': 3"));
        for s in &stmts[1..] {
            assert!(s.starts_with("CREATE TABLE IF NOT EXISTS ks_x."), "{s}");
            assert!(s.contains("'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1"), "{s}");
            assert!(s.contains("default_time_to_live = 2592000"), "{s}");
        }
        for s in &stmts {
            assert!(!s.contains("${") && !s.contains("--") && !s.to_ascii_lowercase().contains("counter"), "{s}");
        }
    }

    /// A table of the schema file: column types, partition key, clustering columns.
    #[derive(Debug)]
    struct Table {
        columns: HashMap<String, ColumnType<'static>>,
        partition: Vec<String>,
        clustering: Vec<String>,
    }

    fn cql_type(t: &str) -> ColumnType<'static> {
        let native = |t: &str| match t {
            "text" => NativeType::Text,
            "int" => NativeType::Int,
            "bigint" => NativeType::BigInt,
            "boolean" => NativeType::Boolean,
            "double" => NativeType::Double,
            other => panic!("type {other} is not expected in this schema"),
        };
        if let Some(inner) = t.strip_prefix("frozen<list<").and_then(|r| r.strip_suffix(">>")) {
            // Bind markers and result columns report collections as not frozen.
            return ColumnType::Collection {
                frozen: false,
                typ: CollectionType::List(Box::new(ColumnType::Native(native(inner)))),
            };
        }
        ColumnType::Native(native(t))
    }

    fn parse_schema(ks: &str) -> HashMap<String, Table> {
        let mut tables = HashMap::new();
        for stmt in schema_statements(ks, 1).iter().filter(|s| s.starts_with("CREATE TABLE")) {
            let name = stmt[format!("CREATE TABLE IF NOT EXISTS {ks}.").len()..].split_whitespace().next().unwrap();
            let body = &stmt[stmt.find('(').unwrap() + 1..stmt.rfind(") WITH").expect("WITH options")];
            let mut columns = HashMap::new();
            let mut partition = Vec::new();
            let mut clustering = Vec::new();
            for line in body.lines().map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty()) {
                if let Some(pk) = line.strip_prefix("PRIMARY KEY (") {
                    let pk = pk.strip_suffix(')').unwrap();
                    let pk_end = pk.find(')').unwrap();
                    partition = pk[1..pk_end].split(',').map(|c| c.trim().to_owned()).collect();
                    clustering = pk[pk_end + 1..]
                        .split(',')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned)
                        .collect();
                } else {
                    let (col, typ) = line.split_once(char::is_whitespace).unwrap();
                    columns.insert(col.to_owned(), cql_type(typ.trim()));
                }
            }
            for key in partition.iter().chain(&clustering) {
                assert!(columns.contains_key(key), "{name}: key column {key} is not defined");
            }
            assert_eq!(partition, ["cid", "day"], "{name}: every partition is a device's day");
            tables.insert(name.to_owned(), Table { columns, partition, clustering });
        }
        tables
    }

    /// What a statement binds and returns, derived from its text and the schema, as the
    /// server would report it at PREPARE.
    struct Prepared {
        binds: Vec<ColumnSpec<'static>>,
        results: Vec<ColumnSpec<'static>>,
    }

    fn analyze(ks: &str, tables: &HashMap<String, Table>, cql: &str) -> Prepared {
        let spec = |table: &str, name: &str, typ: ColumnType<'static>| {
            ColumnSpec::owned(name.to_owned(), typ, TableSpec::owned(ks.to_owned(), table.to_owned()))
        };
        let column = |table: &str, name: &str| {
            let t = &tables[table];
            let typ = t.columns.get(name).unwrap_or_else(|| panic!("{cql}: no column {name} in {table}")).clone();
            spec(table, name, typ)
        };
        let markers = cql.matches('?').count();
        if let Some(rest) = cql.strip_prefix(&format!("INSERT INTO {ks}.")) {
            let (table, rest) = rest.split_once(" (").unwrap();
            let (cols, rest) = rest.split_once(") VALUES (").unwrap();
            let (values, rest) = rest.split_once(')').unwrap();
            assert_eq!(rest, " USING TTL ?", "{cql}: every write carries its trigger-time TTL");
            let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
            assert_eq!(values.split(',').map(str::trim).collect::<Vec<_>>(), vec!["?"; cols.len()], "{cql}");
            let t = &tables[table];
            for key in t.partition.iter().chain(&t.clustering) {
                assert!(cols.contains(&key.as_str()), "{cql}: primary key column {key} is not bound");
            }
            let mut binds: Vec<_> = cols.iter().map(|c| column(table, c)).collect();
            binds.push(spec(table, "[ttl]", ColumnType::Native(NativeType::Int)));
            assert_eq!(binds.len(), markers, "{cql}");
            return Prepared { binds, results: Vec::new() };
        }
        let rest = cql.strip_prefix("SELECT ").unwrap_or_else(|| panic!("unexpected statement {cql}"));
        let (select, rest) = rest.split_once(&format!(" FROM {ks}.")).unwrap();
        let (table, rest) = rest.split_once(" WHERE ").unwrap();
        let (conditions, filtering) = match rest.strip_suffix(" ALLOW FILTERING") {
            Some(c) => (c, true),
            None => (rest, false),
        };
        let t = &tables[table];
        let mut binds = Vec::new();
        let mut restricted = Vec::new();
        for cond in conditions.split(" AND ") {
            let (col, marker) = cond.split_once(" = ").unwrap_or_else(|| panic!("{cql}: {cond:?} is not `col = ?`"));
            assert_eq!(marker, "?", "{cql}: every restriction is a bound value");
            binds.push(column(table, col));
            restricted.push(col);
        }
        // Token- and shard-aware: the whole partition key is bound, and first.
        assert_eq!(restricted[..2], ["cid", "day"], "{cql}");
        let rest_keys = &restricted[2..];
        let clustering_prefix = rest_keys.iter().zip(&t.clustering).take_while(|(a, b)| **a == b.as_str()).count();
        let needs_filtering = clustering_prefix < rest_keys.len();
        assert_eq!(filtering, needs_filtering, "{cql}: ALLOW FILTERING iff a non-key column is restricted");
        if filtering {
            assert!(rest_keys[clustering_prefix..].iter().all(|c| !t.clustering.iter().any(|k| k == c)), "{cql}");
        }
        assert_eq!(binds.len(), markers, "{cql}");
        let results = if select == "COUNT(*)" {
            vec![spec(table, "count", ColumnType::Native(NativeType::BigInt))]
        } else {
            select.split(',').map(|c| column(table, c.trim())).collect()
        };
        Prepared { binds, results }
    }

    fn binds_ok(p: &Prepared, values: &impl SerializeRow) {
        let ctx = RowSerializationContext::from_specs(&p.binds);
        let mut buf = Vec::new();
        let mut writer = RowWriter::new(&mut buf);
        values.serialize(&ctx, &mut writer).unwrap_or_else(|e| panic!("binding {:?}: {e}", p.binds));
        assert_eq!(writer.value_count(), p.binds.len());
    }

    fn results_ok<R: for<'f, 'm> DeserializeRow<'f, 'm>>(p: &Prepared) {
        R::type_check(&p.results).unwrap_or_else(|e| panic!("reading {:?}: {e}", p.results));
    }

    #[test]
    fn every_statement_matches_the_schema_with_the_types_the_code_binds_and_reads() {
        let ks = "daybook_check";
        let tables = parse_schema(ks);
        assert_eq!(tables.len(), 4);
        let cql = Cql::new(ks);
        let a = |s: &str| analyze(ks, &tables, s);

        // Writes: the values the plan produces for a batch of every report type.
        let now = Timestamp::now();
        let (id, st) = start("cam-c", "motion", now.plus_millis(-1000));
        let mut seg = segment("cam-c", "seg-c", now.plus_millis(-500), &[(&id, 0)]);
        if let Report::SegmentReported(s) = &mut seg.report {
            s.media.audio_sample_rate = Some(16_000);
        }
        let batch = [
            st,
            end(&id, 10, EndStatus::Complete),
            seg,
            digest("cam-c", DayOffset::default().day_of(now).unwrap(), "dg"),
        ];
        let plan = WritePlan::build(&batch, &policy(), now).unwrap();
        binds_ok(&a(&cql.insert_event), &plan.event_chunks()[0][0]);
        binds_ok(&a(&cql.insert_segment), &plan.segment_chunks()[0][0]);
        binds_ok(&a(&cql.insert_mapping), &plan.mapping_chunks()[0][0]);
        binds_ok(&a(&cql.insert_digest), &plan.digest_chunks()[0][0]);
        // Unset values are accepted wherever the plan leaves a column alone.
        let (_, lone) = start("cam-c", "motion", now);
        binds_ok(&a(&cql.insert_event), &WritePlan::build(&[lone], &policy(), now).unwrap().event_chunks()[0][0]);

        // Reads: the key tuples and row types the store uses.
        let day_key_values: DayKey<'_> = ("cam-c", 20261122);
        let kind_key: DayKindKey<'_> = ("cam-c", 20261122, "motion");
        let event_key: EventKey<'_> = ("cam-c", 20261122, 1, "id");
        let clustering_key: ClusteringKey<'_> = ("cam-c", 20261122, "x");
        for (stmt, key) in
            [(&cql.count_day, &day_key_values), (&cql.page, &day_key_values), (&cql.digest, &day_key_values)]
        {
            binds_ok(&a(stmt), key);
        }
        binds_ok(&a(&cql.page_kind), &kind_key);
        binds_ok(&a(&cql.event), &event_key);
        binds_ok(&a(&cql.mappings), &clustering_key);
        binds_ok(&a(&cql.segment), &clustering_key);
        results_ok::<CountRow>(&a(&cql.count_day));
        results_ok::<EventRow>(&a(&cql.page));
        results_ok::<EventRow>(&a(&cql.page_kind));
        results_ok::<EventRow>(&a(&cql.event));
        results_ok::<MappingRow>(&a(&cql.mappings));
        results_ok::<SegmentRow>(&a(&cql.segment));
        results_ok::<DigestRow>(&a(&cql.digest));
    }

    #[test]
    fn the_checker_catches_mismatches() {
        // The schema check above is only worth something if it fails on a wrong type or count.
        let ks = "k";
        let tables = parse_schema(ks);
        let p = analyze(ks, &tables, &Cql::new(ks).digest);
        let ctx = RowSerializationContext::from_specs(&p.binds);
        let mut buf = Vec::new();
        assert!(("cid", 1_i64).serialize(&ctx, &mut RowWriter::new(&mut buf)).is_err(), "bigint bound to an int");
        assert!(("cid",).serialize(&ctx, &mut RowWriter::new(&mut buf)).is_err(), "too few values");
        assert!(<(String, i32, i64)>::type_check(&p.results).is_err(), "int read from a bigint");
        assert!(<(String, i64)>::type_check(&p.results).is_err(), "too few columns");
    }
}
