//! The CQL: the schema file, its statements for a keyspace, and the text of every
//! statement the store prepares.

use std::time::Duration;

use ::scylla::client::execution_profile::ExecutionProfile;
use ::scylla::client::session_builder::SessionBuilder;
use schemas::Day;
use seams::StoreError;

use super::config::ScyllaUrl;

/// The schema, with `${KEYSPACE}` and `${REPLICATION_FACTOR}` placeholders.
pub const SCHEMA_CQL: &str = include_str!("../../cql/schema.cql");

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

/// The CQL of every prepared statement, for `keyspace`.
pub(super) struct Cql {
    pub(super) insert_event: String,
    pub(super) insert_segment: String,
    pub(super) insert_mapping: String,
    pub(super) insert_digest: String,
    pub(super) insert_device: String,
    pub(super) device: String,
    pub(super) recount: String,
    pub(super) insert_count: String,
    pub(super) day_counts: String,
    pub(super) page: String,
    pub(super) page_type: String,
    pub(super) event: String,
    pub(super) mappings: String,
    pub(super) segment: String,
    pub(super) digest: String,
    pub(super) insert_quarantine: String,
    pub(super) quarantined: String,
    pub(super) release: String,
    pub(super) insert_subscription: String,
    pub(super) subscriptions: String,
    pub(super) insert_dead_letter: String,
    pub(super) dead_letters: String,
    pub(super) insert_deletion: String,
    pub(super) recount_deleted: String,
    pub(super) insert_deleted_count: String,
    pub(super) event_deleted: String,
    pub(super) segment_events: String,
    pub(super) insert_purge: String,
    pub(super) purges: String,
    pub(super) delete_purge: String,
    pub(super) insert_segment_home: String,
    pub(super) insert_usage: String,
    pub(super) insert_freed: String,
    pub(super) recount_usage: String,
    pub(super) insert_usage_stored: String,
    pub(super) insert_usage_freed: String,
    pub(super) day_usage: String,
    pub(super) usage_scan: String,
    pub(super) insert_keep: String,
    pub(super) keeps: String,
    pub(super) insert_kept_device: String,
    pub(super) kept_devices: String,
    pub(super) event_whole: String,
    pub(super) segment_whole: String,
}

impl Cql {
    pub(super) fn new(ks: &str) -> Self {
        Self {
            insert_event: format!(
                "INSERT INTO {ks}.events (cid, day, triggered_at, event_id, kind, started, ended_at, end_status, \
                 clock_skew_ms, retention_days) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_segment: format!(
                "INSERT INTO {ks}.segments (cid, day, segment_id, size, started_at, duration_ms, codec, width, height, \
                 fps, audio_sample_rate, keyframes, events) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            insert_mapping: format!(
                "INSERT INTO {ks}.event_segments (cid, day, event_id, idx, seg_day, segment_id, start_offset, end_offset) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_digest: format!(
                "INSERT INTO {ks}.digests (cid, day, segment_id, size, duration_ms) VALUES (?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_device: format!(
                "INSERT INTO {ks}.devices (cid, utc_offset, retention_days) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            device: format!("SELECT utc_offset, retention_days FROM {ks}.devices WHERE cid = ?"),
            recount: format!(
                "SELECT COUNT(*), MAX(triggered_at), MAX(retention_days) FROM {ks}.events \
                 WHERE cid = ? AND day = ? AND triggered_at >= ? AND triggered_at < ?"
            ),
            insert_count: format!(
                "INSERT INTO {ks}.event_counts (cid, day, hour, events) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            day_counts: format!("SELECT events, deleted FROM {ks}.event_counts WHERE cid = ? AND day = ?"),
            page: format!(
                "SELECT event_id, ended_at, end_status, clock_skew_ms, deleted, retention_days FROM {ks}.events WHERE cid = ? AND day = ?"
            ),
            page_type: format!(
                "SELECT event_id, ended_at, end_status, clock_skew_ms, deleted, retention_days FROM {ks}.events \
                 WHERE cid = ? AND day = ? AND kind = ? ALLOW FILTERING"
            ),
            event: format!(
                "SELECT event_id, ended_at, end_status, clock_skew_ms, deleted, retention_days FROM {ks}.events \
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
            insert_quarantine: format!(
                "INSERT INTO {ks}.quarantine (day, part, off, key, value, reason, quarantined_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            quarantined: format!(
                "SELECT part, off, key, value, reason, quarantined_at FROM {ks}.quarantine WHERE day = ?"
            ),
            release: format!("DELETE FROM {ks}.quarantine WHERE day = ? AND part = ? AND off = ?"),
            insert_subscription: format!(
                "INSERT INTO {ks}.subscriptions (bucket, id, changed_at, body) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            subscriptions: format!("SELECT id, changed_at, body FROM {ks}.subscriptions WHERE bucket = ?"),
            insert_dead_letter: format!(
                "INSERT INTO {ks}.dead_letters (subscription_id, webhook_id, dead_at, body) VALUES (?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            dead_letters: format!("SELECT webhook_id, dead_at, body FROM {ks}.dead_letters WHERE subscription_id = ?"),
            insert_deletion: format!(
                "INSERT INTO {ks}.events (cid, day, triggered_at, event_id, kind, deleted) VALUES (?, ?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            // One hour's slice of one partition, a few dozen rows, counted by the store.
            recount_deleted: format!(
                "SELECT deleted, retention_days FROM {ks}.events WHERE cid = ? AND day = ? AND triggered_at >= ? AND triggered_at < ?"
            ),
            insert_deleted_count: format!(
                "INSERT INTO {ks}.event_counts (cid, day, hour, deleted) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            event_deleted: format!(
                "SELECT deleted FROM {ks}.events WHERE cid = ? AND day = ? AND triggered_at = ? AND event_id = ?"
            ),
            segment_events: format!(
                "SELECT events, counted_day, counted_hour FROM {ks}.segments WHERE cid = ? AND day = ? AND segment_id = ?"
            ),
            insert_purge: format!(
                "INSERT INTO {ks}.purges (bucket, cid, day, key) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            purges: format!("SELECT cid, day, key FROM {ks}.purges WHERE bucket = ?"),
            delete_purge: format!("DELETE FROM {ks}.purges WHERE bucket = ? AND cid = ? AND day = ? AND key = ?"),
            insert_segment_home: format!(
                "INSERT INTO {ks}.segments (cid, day, segment_id, counted_day, counted_hour) VALUES (?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            insert_usage: format!(
                "INSERT INTO {ks}.segment_usage (cid, day, hour, segment_id, bytes, filed_at, retention_days) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_freed: format!(
                "INSERT INTO {ks}.segment_usage (cid, day, hour, segment_id, freed) VALUES (?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            // One hour's slice of one partition: the segments that started in it.
            recount_usage: format!(
                "SELECT bytes, freed, filed_at, retention_days FROM {ks}.segment_usage WHERE cid = ? AND day = ? AND hour = ?"
            ),
            insert_usage_stored: format!(
                "INSERT INTO {ks}.usage_counts (cid, day, hour, stored) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_usage_freed: format!(
                "INSERT INTO {ks}.usage_counts (cid, day, hour, freed) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            day_usage: format!("SELECT stored, freed FROM {ks}.usage_counts WHERE cid = ? AND day = ?"),
            // The deployment's total, for a metric: a paged scan of the kept figures.
            usage_scan: format!("SELECT stored, freed FROM {ks}.usage_counts"),
            insert_keep: format!(
                "INSERT INTO {ks}.kept (cid, event_id, day, triggered_at, kept, at, stamp) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 USING TTL ? AND TIMESTAMP ?"
            ),
            keeps: format!("SELECT event_id, day, triggered_at, kept, at, stamp FROM {ks}.kept WHERE cid = ?"),
            insert_kept_device: format!(
                "INSERT INTO {ks}.kept_devices (bucket, cid) VALUES (?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            kept_devices: format!("SELECT cid FROM {ks}.kept_devices WHERE bucket = ?"),
            event_whole: format!(
                "SELECT kind, started, ended_at, end_status, clock_skew_ms, deleted, retention_days FROM {ks}.events \
                 WHERE cid = ? AND day = ? AND triggered_at = ? AND event_id = ?"
            ),
            segment_whole: format!(
                "SELECT segment_id, size, started_at, duration_ms, codec, width, height, fps, audio_sample_rate, \
                 keyframes, events FROM {ks}.segments WHERE cid = ? AND day = ? AND segment_id = ?"
            ),
        }
    }
}

/// A day as the `int` partition-key column: `YYYYMMDD` (at most 99 991 231).
pub(super) fn day_key(day: Day) -> i32 {
    i32::try_from(day.number()).unwrap_or(i32::MAX)
}
