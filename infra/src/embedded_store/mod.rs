//! The embedded projection store: one SQLite file, tables partitioned by trigger day.
//!
//! Every table's primary key starts with the day, so a day is one contiguous key range:
//! retention drops it whole with one range delete per table, and every viewer query is an
//! equality seek on (day, device). Writes are idempotent upserts keyed by what the report
//! names, so replaying the log rebuilds identical tables; an event's state lives in
//! independent columns (`started`, `ended_at`/`end_status`) so the order in which a start and
//! an end arrive does not matter.
//!
//! The calendar reads `day_counts`, one row per (day, device) holding how many events that
//! partition has, rather than counting the events' rows (issue 11: `count(*)` over 30 days of
//! a busy camera took p50 8.9 ms / p99 16 ms; 30 rows take the same whatever the volume). The
//! count is raised in the transaction that writes the event rows, and only by a write that
//! *created* an event's row (`INSERT … ON CONFLICT DO NOTHING` and its change count; an
//! existing row is then updated), so replaying the log, a duplicate report or a second
//! projector on the same file never counts an event twice. Its key starts with the day like
//! every other table's, so it is dropped with its day. A store created before the table existed
//! has it filled from its event rows once, on open.
//!
//! Storage used is kept the same way: `day_usage` is the sum of the `segment_usage` rows not
//! freed, per (day, device), changed in the transaction that creates, resizes or frees a row
//! (docs/data-model.md, Storage used).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use schemas::rows::{self, bigint_column, RowData};
use schemas::{
    Day, DayOffset, DeviceId, EndStatus, Envelope, EventId, EventType, ExportId, Media, SegmentId, SubscriptionId,
    TimePolicy, Timestamp,
};
use seams::{
    DayPage, DeadLetterView, DigestView, EventDetail, EventStatus, EventView, ExportView, KeptPage, Position,
    ProjectionStore, Purge, Quarantined, SegmentView, StoreError, SubscriptionView,
};

use crate::sqlite;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    day        INTEGER NOT NULL,
    cid        TEXT    NOT NULL,
    trig       INTEGER NOT NULL,
    event_id   TEXT    NOT NULL,
    kind       TEXT    NOT NULL, -- the event type
    started    INTEGER NOT NULL DEFAULT 0,
    ended_at   INTEGER,
    end_status TEXT,
    skew_ms    INTEGER, -- clock_skew_ms of the start, when the camera's clock ran ahead
    deleted    INTEGER NOT NULL DEFAULT 0, -- 1 once deleted, for good (schemas::rows)
    expires    INTEGER, -- the latest expiry (ms) of its start and end (NULL: written before plans)
    PRIMARY KEY (day, cid, trig, event_id)
) WITHOUT ROWID;
-- Per device, the UTC offset and the plan of its latest start by filing time (`at`): the reads'
-- today and the calendar's span.
CREATE TABLE IF NOT EXISTS devices (
    cid        TEXT    NOT NULL PRIMARY KEY,
    utc_offset INTEGER NOT NULL, -- minutes east of UTC
    at         INTEGER NOT NULL,
    retention  INTEGER -- days that start is kept (NULL: the deployment's)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    day         INTEGER NOT NULL,
    cid         TEXT    NOT NULL,
    segment_id  TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    codec       TEXT    NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    fps         REAL    NOT NULL,
    audio_rate  INTEGER,
    keyframes   TEXT    NOT NULL,
    events      TEXT, -- the ids of the events it maps, as JSON (NULL: written before they were kept)
    PRIMARY KEY (day, cid, segment_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_segments (
    day        INTEGER NOT NULL,
    cid        TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    idx        INTEGER NOT NULL,
    segment_id TEXT    NOT NULL,
    seg_day    INTEGER NOT NULL,
    start_off  INTEGER NOT NULL,
    end_off    INTEGER NOT NULL,
    PRIMARY KEY (day, cid, event_id, idx)
) WITHOUT ROWID;
-- Records the projector set aside (docs/data-model.md, Quarantine): not day-partitioned, kept until
-- released or a retention after they were set aside.
CREATE TABLE IF NOT EXISTS quarantine (
    part       INTEGER NOT NULL,
    off        INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    reason     TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (part, off)
) WITHOUT ROWID;
-- Notification subscriptions (docs/notifications.md): not day-partitioned, never expired. One row
-- per subscription: its newest change by write stamp; a deletion leaves the row with `body` NULL,
-- so an older change replayed after it does not bring the subscription back.
CREATE TABLE IF NOT EXISTS subscriptions (
    id         TEXT    NOT NULL PRIMARY KEY,
    stamp      INTEGER NOT NULL, -- schemas::rows::write_stamp of the change
    changed_at INTEGER NOT NULL, -- received_at of the change
    body       TEXT              -- the SubscriptionSet as JSON; NULL once deleted
) WITHOUT ROWID;
-- Dead letters of the notifier, per (subscription, webhook id): the newest of a dead letter and
-- the releases naming it wins by write stamp; a release leaves `body` NULL.
CREATE TABLE IF NOT EXISTS dead_letters (
    sub        TEXT    NOT NULL,
    webhook_id TEXT    NOT NULL,
    stamp      INTEGER NOT NULL,
    dead_at    INTEGER NOT NULL,
    body       TEXT,
    PRIMARY KEY (sub, webhook_id)
) WITHOUT ROWID;
-- Objects deletions left to no live event (seams::Purge), in the deleted event's partition, until
-- whoever deletes objects confirms them.
CREATE TABLE IF NOT EXISTS purges (
    day        INTEGER NOT NULL,
    cid        TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    PRIMARY KEY (day, cid, key)
) WITHOUT ROWID;
-- Per device, its erasure mark (schemas::rows): the greatest write stamp of its erasures. Not
-- day-partitioned, never expired: a report of the device not newer than it is never applied.
CREATE TABLE IF NOT EXISTS erasures (
    cid        TEXT    NOT NULL PRIMARY KEY,
    stamp      INTEGER NOT NULL,
    erased_at  INTEGER NOT NULL -- received_at of that erasure
);
-- Storage used (docs/data-model.md): one row per segment counted, in the partition of its own
-- row (schemas::rows::RowData::SegmentBytes); `freed` once a deletion left its object to no live
-- event. `day_usage` is the sum of `bytes` of the rows not freed, per partition, kept in the same
-- transaction as the rows: what usage reads. A store created before them starts them empty
-- (segments applied before the upgrade are not counted; `daybook rebuild` counts the log's).
CREATE TABLE IF NOT EXISTS segment_usage (
    day        INTEGER NOT NULL,
    cid        TEXT    NOT NULL,
    segment_id TEXT    NOT NULL,
    bytes      INTEGER NOT NULL,
    freed      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, cid, segment_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segment_usage_by_segment ON segment_usage (cid, segment_id);
CREATE TABLE IF NOT EXISTS day_usage (
    day   INTEGER NOT NULL,
    cid   TEXT    NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (day, cid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS digests (
    day         INTEGER NOT NULL,
    cid         TEXT    NOT NULL,
    segment_id  TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (day, cid)
) WITHOUT ROWID;
";

/// Events per (day, device): what the calendar reads. Not in [`SCHEMA`]: created, and filled from
/// the events already stored, in one transaction on open ([`EmbeddedStore::open`]).
const COUNTS_SCHEMA: &str = "
CREATE TABLE day_counts (
    day    INTEGER NOT NULL,
    cid    TEXT    NOT NULL,
    events INTEGER NOT NULL, -- rows of `events` in (day, cid)
    PRIMARY KEY (day, cid)
) WITHOUT ROWID;
";

/// Per (day, device): how long the partition is kept (docs/data-model.md, Plans). Not in
/// [`SCHEMA`]: created, and filled for the partitions already stored, in one transaction on open.
const PARTITIONS_SCHEMA: &str = "
CREATE TABLE partitions (
    day    INTEGER NOT NULL,
    cid    TEXT    NOT NULL,
    days   INTEGER, -- the longest retention of the rows written in it; NULL: only the owner's marks
    PRIMARY KEY (day, cid)
) WITHOUT ROWID;
";

/// The day-partitioned tables of a device's rows (all but `purges`): an erasure empties them.
const DEVICE_TABLES: [&str; 8] =
    ["events", "segments", "event_segments", "digests", "day_counts", "segment_usage", "day_usage", "partitions"];
const READERS: usize = 4;

/// The page cache of the writer of a bulk load ([`OpenMode::BulkLoad`]): the whole store of a
/// million events (about 90 MB) stays in memory, so no page is read back while it is filled.
const BULK_CACHE_KIB: i64 = 256 * 1024;

/// How [`EmbeddedStore::open_with`] opens the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenMode {
    /// The live store: WAL, every commit on disk when it returns, four reader connections
    /// beside the writer.
    #[default]
    Durable,
    /// Filling a scratch file that is discarded unless the load completes (`daybook rebuild`
    /// builds `store.db.rebuild` and renames it over `store.db` only once it is whole): no
    /// fsync at all, the rollback journal in memory (a failed batch still rolls back), the file
    /// locked exclusively by the one connection (reads go through it too), a large page cache.
    /// A crash leaves a file that must not be used. Once the load is done and the store
    /// dropped, [`finish_bulk_load`] makes the file a normal store on disk.
    BulkLoad,
}

/// The embedded store.
#[derive(Debug)]
pub struct EmbeddedStore {
    policy: TimePolicy,
    writer: Arc<Mutex<Connection>>,
    /// Empty in [`OpenMode::BulkLoad`]: reads then use the writer.
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path, policy: TimePolicy) -> Result<Arc<Self>, StoreError> {
        Self::open_with(path, policy, OpenMode::Durable)
    }

    /// Opens (creating if needed) the store at `path` in `mode`.
    pub fn open_with(path: &Path, policy: TimePolicy, mode: OpenMode) -> Result<Arc<Self>, StoreError> {
        let mut writer = match mode {
            OpenMode::Durable => {
                let writer = sqlite::open(path).map_err(other)?;
                // The writer touches pages all over the day partitions: a larger cache and fewer
                // WAL checkpoints roughly double batch-apply throughput (benches/embedded.rs).
                writer.pragma_update(None, "cache_size", -65_536).map_err(other)?; // 64 MiB
                writer.pragma_update(None, "wal_autocheckpoint", 10_000).map_err(other)?;
                writer
            }
            OpenMode::BulkLoad => sqlite::open_bulk(path, BULK_CACHE_KIB).map_err(other)?,
        };
        writer.execute_batch(SCHEMA).map_err(other)?;
        writer.execute_batch(keeps::SCHEMA).map_err(other)?;
        writer.execute_batch(exports::SCHEMA).map_err(other)?;
        // Stores created before clock skew was kept lack the column.
        let has_skew: bool = writer
            .query_row("SELECT count(*) FROM pragma_table_info('events') WHERE name = 'skew_ms'", [], |r| r.get(0))
            .map_err(other)?;
        if !has_skew {
            writer.execute_batch("ALTER TABLE events ADD COLUMN skew_ms INTEGER").map_err(other)?;
        }
        // Stores created before deletions lack the first two, before plans the others.
        for (table, column, ddl) in [
            ("events", "deleted", "ALTER TABLE events ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0"),
            ("segments", "events", "ALTER TABLE segments ADD COLUMN events TEXT"),
            ("events", "expires", "ALTER TABLE events ADD COLUMN expires INTEGER"),
            ("devices", "retention", "ALTER TABLE devices ADD COLUMN retention INTEGER"),
        ] {
            let has: bool = writer
                .query_row("SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2", params![table, column], |r| {
                    r.get(0)
                })
                .map_err(other)?;
            if !has {
                writer.execute_batch(ddl).map_err(other)?;
            }
        }
        add_day_counts(&mut writer, path).map_err(other)?;
        add_partitions(&mut writer, path, &policy).map_err(other)?;
        let readers = match mode {
            OpenMode::Durable => (0..READERS)
                .map(|_| sqlite::open(path).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?,
            OpenMode::BulkLoad => Vec::new(),
        };
        Ok(Arc::new(Self {
            policy,
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
        }))
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // SQLite blocks: every read runs on the blocking pool, never on an async worker (a
        // slow disk or a large event detail must not stall other requests). A free reader is
        // taken if there is one, else the next in turn is waited for.
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let readers = self.readers.clone();
        if readers.is_empty() {
            // A bulk load: the writer is the file's only connection.
            let writer = self.writer.clone();
            return tokio::task::spawn_blocking(move || f(&writer.lock().expect("writer lock")))
                .await
                .map_err(other)?;
        }
        tokio::task::spawn_blocking(move || {
            for k in 0..READERS {
                if let Ok(conn) = readers[(start + k) % READERS].try_lock() {
                    return f(&conn);
                }
            }
            f(&readers[start % READERS].lock().expect("reader lock"))
        })
        .await
        .map_err(other)?
    }

    /// The figure kept per (day, device) in `column` of `table` (`day_counts`, `day_usage`) for
    /// `cid` on days `from..=to`, newest first, days without one (or with zero) left out.
    async fn per_day(
        &self,
        table: &'static str,
        column: &'static str,
        cid: &DeviceId,
        from: Day,
        to: Day,
    ) -> Result<Vec<(Day, u64)>, StoreError> {
        let span = to.days_since(from);
        if !(0..=366).contains(&span) {
            return Ok(Vec::new());
        }
        let cid = cid.as_str().to_owned();
        let days: Vec<String> = (0..=span).map(|i| from.add_days(i).number().to_string()).collect();
        self.read(move |c| {
            // One figure per day, kept with the rows (see the module docs); an IN list of days
            // makes one (day, cid) seek per day instead of a range scan across every device.
            let sql = format!(
                "SELECT day, {column} FROM {table} WHERE day IN ({}) AND cid = ?1 AND {column} > 0 ORDER BY day DESC",
                days.join(",")
            );
            let mut stmt = c.prepare_cached(&sql).map_err(other)?;
            let rows = stmt.query_map([&cid], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?))).map_err(other)?;
            let mut out = Vec::new();
            for row in rows {
                let (d, n) = row.map_err(other)?;
                out.push((Day::from_number(d).ok_or_else(|| other("bad day in store"))?, n as u64));
            }
            Ok(out)
        })
        .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || f(&mut writer.lock().expect("writer lock")))
            .await
            .map_err(other)?
            .map_err(other)
    }
}

/// Makes the file at `path`, filled through an [`OpenMode::BulkLoad`] store that has since been
/// dropped, a normal store: WAL mode as [`EmbeddedStore::open`] expects (the mode is kept in the
/// file), nothing left in a WAL, and every byte on disk (fsync). After it, the file can be
/// renamed into place.
pub fn finish_bulk_load(path: &Path) -> Result<(), StoreError> {
    let conn = sqlite::open(path).map_err(other)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(other)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(other(format!("{}: journal mode {mode} after switching to WAL", path.display())));
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(other)?;
    drop(conn);
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(other)
}

/// Creates table `name` from `schema` if this store does not have it yet, filled by `fill` in
/// the same transaction — so a crash in between cannot leave an empty table that would never
/// be filled. (Immediate: two processes opening the same old file fill it once.) Returns the
/// rows `fill` wrote when it created the table.
fn add_table(
    conn: &mut Connection,
    name: &str,
    schema: &str,
    fill: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
) -> rusqlite::Result<Option<usize>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let exists: bool =
        tx.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| r.get(0))?;
    let filled = if exists {
        None
    } else {
        tx.execute_batch(schema)?;
        Some(fill(&tx)?)
    };
    tx.commit()?;
    Ok(filled)
}

/// Creates `day_counts` if this store does not have it yet, filled from the events already
/// stored ([`add_table`]).
fn add_day_counts(conn: &mut Connection, path: &Path) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    let count = |tx: &rusqlite::Transaction<'_>| {
        tx.execute(
            "INSERT INTO day_counts (day, cid, events)
             SELECT day, cid, count(*) FROM events WHERE deleted = 0 GROUP BY day, cid",
            [],
        )
    };
    if let Some(partitions) = add_table(conn, "day_counts", COUNTS_SCHEMA, count)? {
        tracing::info!(
            store = %path.display(),
            partitions,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store: created the per-day event counts the calendar reads, counted from the events already stored"
        );
    }
    Ok(())
}

/// Creates `partitions` if this store does not have it yet, one row for each (day, device) some
/// table holds, kept the deployment's retention (what the janitor kept them for until then)
/// ([`add_table`]).
fn add_partitions(conn: &mut Connection, path: &Path, policy: &TimePolicy) -> rusqlite::Result<()> {
    let fill = |tx: &rusqlite::Transaction<'_>| {
        let mut partitions = 0;
        for table in DEVICE_TABLES.iter().filter(|t| **t != "partitions").chain(&["purges"]) {
            partitions += tx.execute(
                &format!("INSERT OR IGNORE INTO partitions (day, cid, days) SELECT DISTINCT day, cid, ?1 FROM {table}"),
                [policy.retention_days],
            )?;
        }
        Ok(partitions)
    };
    if let Some(partitions) = add_table(conn, "partitions", PARTITIONS_SCHEMA, fill)?.filter(|n| *n > 0) {
        tracing::info!(store = %path.display(), partitions, "store: partitions kept the deployment's retention");
    }
    Ok(())
}

/// Writes one batch in one transaction. Returns rows written.
///
/// Each event row that a start or an end *creates* adds one to its (day, device) count, in the
/// same transaction: a start is inserted if new (`ON CONFLICT DO NOTHING`, then the change
/// count says whether it was) and otherwise updates the row; an end, usually for an event that
/// exists, updates first and inserts only when there was nothing to update.
///
/// The rows go in (day, device) order, the order of every table's key, rather than log order
/// (stable, so the rows of one key keep theirs), and a device's offset is written once per batch;
/// the tables end as if every row had been written in turn.
fn apply_batch(conn: &mut Connection, policy: &TimePolicy, batch: &[Envelope]) -> rusqlite::Result<u64> {
    let now = Timestamp::now();
    // Immediate: the write lock is taken (waiting out another writer on the same file, e.g. a
    // second projector) before anything is read, so the counts below see every row committed.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Erasures first, then the rest of the batch without what they cover (schemas::rows).
    let (mut written, kept) = erasure::apply(&tx, policy, batch)?;
    let batch: &[Envelope] = kept.as_deref().unwrap_or(batch);
    // New events per (day, device) in this batch, added to `day_counts` before the commit: one
    // entry per run of rows of one partition (the rows are sorted by partition, so one per
    // partition; were a partition to come twice, its two additions add up all the same).
    let mut created: Vec<((u32, &str), i64)> = Vec::new();
    let mut count_created = |key, delta| match created.last_mut() {
        Some((k, n)) if *k == key => *n += delta,
        _ => created.push((key, delta)),
    };
    // Bytes of segments per (day, device) this batch counted (or recounted, for a segment
    // re-reported with another size): added to `day_usage` as `created` is to `day_counts`.
    let mut usage: Vec<((u32, &str), i64)> = Vec::new();
    // Segments this batch wrote that map events: looked at once every row is written, as a
    // segment whose every known event is deleted is purged whenever it arrives.
    let mut mapped: Vec<(&str, &schemas::SegmentReported)> = Vec::new();
    // Events this batch deleted: their objects are looked at once every row is written.
    let mut deleted: Vec<(u32, &str, i64, &EventId)> = Vec::new();
    // Per device, its newest offset in this batch (minutes, at), written once before the
    // commit: the same row as writing each in turn under the newer-or-equal-wins rule (of a
    // device's offsets the last with the greatest `at`), one write instead of one per start.
    let mut offsets: HashMap<&str, (i32, i64, Option<u32>)> = HashMap::new();
    // Per (day, device), the longest retention (days) of the rows this batch writes in it
    // (`None`: only the owner's marks), raised in `partitions` before the commit.
    let mut partitions: HashMap<(u32, &str), Option<u32>> = HashMap::new();
    {
        let mut start = tx.prepare_cached(
            "INSERT INTO events (day, cid, trig, event_id, kind, started, skew_ms, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)
             ON CONFLICT DO NOTHING",
        )?;
        let mut start_again = tx.prepare_cached(
            "UPDATE events SET started = 1, skew_ms = ?5, expires = max(coalesce(expires, 0), ?6)
             WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4",
        )?;
        let mut device = tx.prepare_cached(
            "INSERT INTO devices (cid, utc_offset, at, retention) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET utc_offset = excluded.utc_offset, at = excluded.at, retention = excluded.retention
             WHERE excluded.at >= at",
        )?;
        let mut end = tx.prepare_cached(
            "UPDATE events SET ended_at = ?5, end_status = ?6, expires = max(coalesce(expires, 0), ?7)
             WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4",
        )?;
        let mut end_first = tx.prepare_cached(
            "INSERT INTO events (day, cid, trig, event_id, kind, started, ended_at, end_status, expires)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
        )?;
        let mut partition = tx.prepare_cached(
            "INSERT INTO partitions (day, cid, days) VALUES (?1, ?2, ?3)
             ON CONFLICT DO UPDATE SET days = max(coalesce(days, 0), excluded.days) WHERE excluded.days IS NOT NULL",
        )?;
        let mut segment = tx.prepare_cached(
            "INSERT OR REPLACE INTO segments
             (day, cid, segment_id, size, started_at, duration_ms, codec, width, height, fps, audio_rate, keyframes,
              events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        // A deletion creates the row deleted (nothing of the event yet: never counted), or marks
        // a row that was not deleted yet (counted: one less).
        let mut delete_first = tx.prepare_cached(
            "INSERT INTO events (day, cid, trig, event_id, kind, started, deleted) VALUES (?1, ?2, ?3, ?4, ?5, 0, 1)
             ON CONFLICT DO NOTHING",
        )?;
        let mut delete = tx.prepare_cached(
            "UPDATE events SET deleted = 1 WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4 AND deleted = 0",
        )?;
        let mut mapping = tx.prepare_cached(
            "INSERT OR REPLACE INTO event_segments (day, cid, event_id, idx, segment_id, seg_day, start_off, end_off)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut usage_row = tx
            .prepare_cached("SELECT bytes, freed FROM segment_usage WHERE day = ?1 AND cid = ?2 AND segment_id = ?3")?;
        let mut usage_insert = tx.prepare_cached(
            "INSERT INTO segment_usage (day, cid, segment_id, bytes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET bytes = excluded.bytes",
        )?;
        let mut digest = tx.prepare_cached(
            "INSERT OR REPLACE INTO digests (day, cid, segment_id, size, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        // Newer-or-equal stamp wins, as ScyllaDB's cell timestamps resolve the same change.
        let mut subscription = tx.prepare_cached(
            "INSERT INTO subscriptions (id, stamp, changed_at, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET stamp = excluded.stamp, changed_at = excluded.changed_at, body = excluded.body
             WHERE excluded.stamp >= stamp",
        )?;
        let mut letter = tx.prepare_cached(
            "INSERT INTO dead_letters (sub, webhook_id, stamp, dead_at, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET stamp = excluded.stamp, dead_at = excluded.dead_at, body = excluded.body
             WHERE excluded.stamp >= stamp",
        )?;
        for env in batch {
            let (stamp, at) = (rows::write_stamp(env), env.received_at.millis());
            match &env.report {
                schemas::Report::SubscriptionDeadLettered(r) => {
                    let body = serde_json::to_string(r).expect("dead letters serialize");
                    letter.execute(params![r.subscription_id.as_str(), r.webhook_id, stamp, at, body])?;
                    written += 1;
                }
                schemas::Report::DeadLettersReleased(r) => {
                    let ids = r.purged.iter().chain(r.replayed.iter().map(|l| &l.webhook_id));
                    for id in ids {
                        letter.execute(params![r.subscription_id.as_str(), id, stamp, at, None::<String>])?;
                        written += 1;
                    }
                }
                _ => {}
            }
        }
        for env in batch {
            let (id, body) = match &env.report {
                schemas::Report::SubscriptionSet(r) => {
                    (r.subscription_id.as_str(), Some(serde_json::to_string(r).expect("subscriptions serialize")))
                }
                schemas::Report::SubscriptionDeleted(r) => (r.subscription_id.as_str(), None),
                _ => continue,
            };
            subscription.execute(params![id, rows::write_stamp(env), env.received_at.millis(), body])?;
            written += 1;
        }
        // Keeps first: a row past retention is still written for a kept event.
        written += keeps::apply(&tx, policy, batch)?;
        written += exports::apply(&tx, batch, now)?;
        // Where each row lands and whether it is still alive is decided by `schemas::rows`, the
        // same for every store; this only maps rows onto tables.
        let mut planned = Vec::with_capacity(batch.len() * 2);
        for env in batch {
            for row in rows::plan(env, policy) {
                if !row.live_at(now) && !keeps::spares(&tx, &row)? {
                    continue;
                }
                // The owner's marks keep a partition only while nothing else does.
                let days = match row.data {
                    RowData::EventDeleted { .. } | RowData::EventKept { .. } => None,
                    _ => Some(env.retention_days.unwrap_or(policy.retention_days)),
                };
                let kept_for = partitions.entry((row.day.number(), row.cid.as_str())).or_insert(days);
                *kept_for = (*kept_for).max(days);
                match row.data {
                    // Written above.
                    RowData::EventKept { .. } => {}
                    // In log order, before the rest is sorted: of equal `at`s the last wins.
                    RowData::DeviceOffset { offset } => {
                        let newest = (offset.minutes(), row.trigger.millis(), env.retention_days);
                        let kept = offsets.entry(row.cid.as_str()).or_insert(newest);
                        if newest.1 >= kept.1 {
                            *kept = newest;
                        }
                        written += 1;
                    }
                    _ => planned.push(row),
                }
            }
        }
        // Written in key order rather than log order: each table's key starts with (day, device),
        // so consecutive writes land on neighbouring pages. The sort is stable, so the rows of
        // one key keep their log order (the last segment at an index wins, an end after an end).
        // (Days compare as their numbers do: chronologically.)
        planned.sort_by(|a, b| a.day.cmp(&b.day).then_with(|| a.cid.as_str().cmp(b.cid.as_str())));
        for row in planned {
            let (day, cid) = (row.day.number(), row.cid.as_str());
            match row.data {
                RowData::EventStart { event_id: id, clock_skew_ms } => {
                    let (trig, expires) = (row.trigger.millis(), row.expires_at.millis());
                    let kind = id.event_type().as_str();
                    if start.execute(params![day, cid, trig, id.as_str(), kind, clock_skew_ms, expires])? == 1 {
                        count_created((day, cid), 1);
                    } else {
                        start_again.execute(params![day, cid, trig, id.as_str(), clock_skew_ms, expires])?;
                    }
                }
                // Gathered (and counted) above; none is left here.
                RowData::DeviceOffset { .. } | RowData::EventKept { .. } => continue,
                RowData::EventEnd { event_id: id, ended_at, status } => {
                    let (trig, at, status) = (row.trigger.millis(), ended_at.millis(), status.as_str());
                    let expires = row.expires_at.millis();
                    if end.execute(params![day, cid, trig, id.as_str(), at, status, expires])? == 0 {
                        let kind = id.event_type().as_str();
                        end_first.execute(params![day, cid, trig, id.as_str(), kind, at, status, expires])?;
                        count_created((day, cid), 1);
                    }
                }
                RowData::EventDeleted { event_id: id } => {
                    let (trig, kind) = (row.trigger.millis(), id.event_type().as_str());
                    if delete_first.execute(params![day, cid, trig, id.as_str(), kind])? == 0
                        && delete.execute(params![day, cid, trig, id.as_str()])? == 1
                    {
                        count_created((day, cid), -1);
                    }
                    deleted.push((day, cid, trig, id));
                }
                RowData::Segment(r) => {
                    if !r.events.is_empty() {
                        mapped.push((cid, r));
                    }
                    let keyframes = serde_json::to_string(&r.keyframes).expect("u64s serialize");
                    let events: Vec<&str> = r.events.iter().map(|m| m.event_id.as_str()).collect();
                    let events = serde_json::to_string(&events).expect("strings serialize");
                    segment.execute(params![
                        day,
                        cid,
                        r.segment_id.as_str(),
                        bigint_column("size", r.size).map_err(bad_row)?,
                        r.started_at.millis(),
                        r.duration_ms,
                        r.media.codec,
                        r.media.width,
                        r.media.height,
                        r.media.fps,
                        r.media.audio_sample_rate,
                        keyframes,
                        events
                    ])?;
                }
                RowData::Mapping { mapping: m, segment_id, segment_day } => {
                    mapping.execute(params![
                        day,
                        cid,
                        m.event_id.as_str(),
                        m.index,
                        segment_id.as_str(),
                        segment_day.number(),
                        bigint_column("start_offset", m.start_offset).map_err(bad_row)?,
                        bigint_column("end_offset", m.end_offset).map_err(bad_row)?
                    ])?;
                }
                RowData::Digest(r) => {
                    let size = bigint_column("size", r.size).map_err(bad_row)?;
                    digest.execute(params![day, cid, r.segment_id.as_str(), size, r.duration_ms])?;
                }
                RowData::SegmentBytes { segment_id, bytes } => {
                    let bytes = bigint_column("size", bytes).map_err(bad_row)?;
                    let delta = count_usage(&mut usage_row, &mut usage_insert, (day, cid, segment_id.as_str()), bytes)?;
                    add_usage(&mut usage, (day, cid), delta);
                }
                RowData::SnapshotBytes { event_id, bytes } => {
                    // Counted under its object's key, as a segment is by its id (the two never
                    // meet: a segment id holds no `/`). A start applied after its event's
                    // deletion finds the row the deletion left freed, and counts nothing.
                    let bytes = bigint_column("snapshot_size", bytes).map_err(bad_row)?;
                    let object = seams::ObjectKey::snapshot(event_id);
                    let delta = count_usage(&mut usage_row, &mut usage_insert, (day, cid, object.as_str()), bytes)?;
                    add_usage(&mut usage, (day, cid), delta);
                }
            }
            written += 1;
        }
        for (cid, (minutes, at, retention)) in &offsets {
            device.execute(params![cid, minutes, at, retention])?;
        }
        for ((day, cid), days) in &partitions {
            partition.execute(params![day, cid, days])?;
        }
        let kept = [
            (
                "INSERT INTO day_counts (day, cid, events) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET events = events + excluded.events",
                &created,
            ),
            (
                "INSERT INTO day_usage (day, cid, bytes) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes",
                &usage,
            ),
        ];
        for (sql, additions) in kept {
            let mut add = tx.prepare_cached(sql)?;
            for ((day, cid), n) in additions {
                add.execute(params![day, cid, n])?;
            }
        }
        for (day, cid, trig, id) in deleted {
            written += purge_deleted(&tx, day, cid, trig, id, policy.offset)?;
        }
        // A segment's own row and its copies: one look each.
        mapped.sort_by_key(|(_, r)| std::ptr::from_ref(*r) as usize);
        mapped.dedup_by(|a, b| std::ptr::eq(a.1, b.1));
        for (cid, segment) in mapped {
            written += purge_orphaned(&tx, cid, segment, policy.offset)?;
        }
    }
    tx.commit()?;
    Ok(written)
}

/// Lists the objects deleted event `id` leaves to no live event (`seams::Purge`): its snapshot,
/// and each segment it maps whose other events are all deleted or gone. A segment row written
/// before segments kept their events is left alone (its other events are unknown). Returns the
/// purges listed.
fn purge_deleted(
    tx: &rusqlite::Transaction<'_>,
    day: u32,
    cid: &str,
    trig: i64,
    id: &EventId,
    fallback: DayOffset,
) -> rusqlite::Result<u64> {
    // Only while the deletion stands (a row written deleted is never taken back; this guards a
    // deletion planned but not written, which cannot happen, rather than trusting it).
    let is_deleted: Option<bool> = tx
        .prepare_cached("SELECT deleted FROM events WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4")?
        .query_row(params![day, cid, trig, id.as_str()], |r| r.get(0))
        .optional()?;
    if is_deleted != Some(true) {
        return Ok(0);
    }
    let mut put = tx.prepare_cached("INSERT OR IGNORE INTO purges (day, cid, key) VALUES (?1, ?2, ?3)")?;
    let device = DeviceId::parse(cid).map_err(bad_row)?;
    let snapshot = seams::ObjectKey::snapshot(id);
    let mut listed = put.execute(params![day, cid, snapshot.as_str()])? as u64;
    free_usage(tx, cid, snapshot.as_str())?;
    // Its usage row stays freed whether or not its start has been applied (as ScyllaDB's does):
    // a start applied later sets its bytes on a freed row, which counts nothing.
    tx.prepare_cached(
        "INSERT OR IGNORE INTO segment_usage (day, cid, segment_id, bytes, freed) VALUES (?1, ?2, ?3, 0, 1)",
    )?
    .execute(params![day, cid, snapshot.as_str()])?;
    let segments: Vec<(u32, String)> = tx
        .prepare_cached("SELECT seg_day, segment_id FROM event_segments WHERE day = ?1 AND cid = ?2 AND event_id = ?3")?
        .query_map(params![day, cid, id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut live = tx.prepare_cached(
        "SELECT count(*) FROM events WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4 AND deleted = 0",
    )?;
    'segments: for (seg_day, segment_id) in segments {
        let events: Option<Option<String>> = tx
            .prepare_cached("SELECT events FROM segments WHERE day = ?1 AND cid = ?2 AND segment_id = ?3")?
            .query_row(params![seg_day, cid, segment_id], |r| r.get(0))
            .optional()?;
        let Some(Some(events)) = events else { continue };
        let events: Vec<String> = serde_json::from_str(&events).map_err(bad_row)?;
        for other in events.iter().filter(|e| e.as_str() != id.as_str()) {
            let Ok(other) = EventId::parse(other) else { continue 'segments };
            let key = params![other.day().number(), cid, other.filed_at(fallback).millis(), other.as_str()];
            if live.query_row(key, |r| r.get::<_, i64>(0))? > 0 {
                continue 'segments;
            }
        }
        free_usage(tx, cid, &segment_id)?;
        let segment_id = SegmentId::parse(&segment_id).map_err(bad_row)?;
        listed += put.execute(params![day, cid, seams::ObjectKey::segment(&device, &segment_id).as_str()])? as u64;
    }
    Ok(listed)
}

/// Lists `segment` to purge if it maps a deleted event and no live one: a segment reported after
/// the deletion of every event it maps goes like one reported before, so the result does not
/// depend on the order the segment and the deletions are applied in (nor on how a replay
/// batches them). An event with no row yet is neither.
fn purge_orphaned(
    tx: &rusqlite::Transaction<'_>,
    cid: &str,
    segment: &schemas::SegmentReported,
    fallback: DayOffset,
) -> rusqlite::Result<u64> {
    let mut deleted_day = None;
    for m in &segment.events {
        let key = params![m.event_id.day().number(), cid, m.event_id.filed_at(fallback).millis(), m.event_id.as_str()];
        let deleted: Option<bool> = tx
            .prepare_cached("SELECT deleted FROM events WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4")?
            .query_row(key, |r| r.get(0))
            .optional()?;
        match deleted {
            Some(false) => return Ok(0),
            Some(true) => {
                deleted_day.get_or_insert(m.event_id.day().number());
            }
            None => {}
        }
    }
    let Some(day) = deleted_day else { return Ok(0) };
    free_usage(tx, cid, segment.segment_id.as_str())?;
    let key = seams::ObjectKey::segment(&segment.cid, &segment.segment_id);
    Ok(tx.prepare_cached("INSERT OR IGNORE INTO purges (day, cid, key) VALUES (?1, ?2, ?3)")?.execute(params![
        day,
        cid,
        key.as_str()
    ])? as u64)
}

/// Counts an object (a segment by its id, a snapshot by its key) in its partition's storage
/// used: when its usage row is created; a newer report of another size (log order) replaces the
/// figure; a freed object counts nothing. Returns the change to the partition's figure.
fn count_usage(
    row: &mut rusqlite::CachedStatement<'_>,
    insert: &mut rusqlite::CachedStatement<'_>,
    (day, cid, object): (u32, &str, &str),
    bytes: i64,
) -> rusqlite::Result<i64> {
    let before: Option<(i64, bool)> =
        row.query_row(params![day, cid, object], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
    if before.is_none_or(|(old, _)| old != bytes) {
        insert.execute(params![day, cid, object, bytes])?;
    }
    Ok(match before {
        None => bytes,
        Some((_, true)) => 0,
        Some((old, false)) => bytes - old,
    })
}

/// Adds `delta` to the pending change of partition `key`'s storage used (rows come grouped by
/// partition, so the last entry is usually the one).
fn add_usage<'c>(usage: &mut Vec<((u32, &'c str), i64)>, key: (u32, &'c str), delta: i64) {
    if delta != 0 {
        match usage.last_mut() {
            Some((k, n)) if *k == key => *n += delta,
            _ => usage.push((key, delta)),
        }
    }
}

/// Takes an object (a segment, a snapshot) that is purged off its device's storage used: once
/// (its usage row is marked freed, and a freed row is never counted again), whichever day holds
/// it.
fn free_usage(tx: &rusqlite::Transaction<'_>, cid: &str, segment_id: &str) -> rusqlite::Result<()> {
    let counted: Vec<(u32, i64)> = tx
        .prepare_cached("SELECT day, bytes FROM segment_usage WHERE cid = ?1 AND segment_id = ?2 AND freed = 0")?
        .query_map(params![cid, segment_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (day, bytes) in counted {
        tx.prepare_cached("UPDATE segment_usage SET freed = 1 WHERE day = ?1 AND cid = ?2 AND segment_id = ?3")?
            .execute(params![day, cid, segment_id])?;
        tx.prepare_cached("UPDATE day_usage SET bytes = bytes - ?3 WHERE day = ?1 AND cid = ?2")?
            .execute(params![day, cid, bytes])?;
    }
    Ok(())
}

fn event_from_row(r: &Row<'_>, fallback: DayOffset) -> rusqlite::Result<EventView> {
    let id: String = r.get("event_id")?;
    let event_id = EventId::parse(&id).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let status: Option<String> = r.get("end_status")?;
    Ok(EventView {
        utc_offset: event_id.offset().unwrap_or(fallback),
        clock_skew_ms: r.get("skew_ms")?,
        event_type: event_id.event_type().clone(),
        triggered_at: event_id.triggered_at(),
        ended_at: r.get::<_, Option<i64>>("ended_at")?.map(Timestamp),
        status: EventStatus::from_end(status.as_deref().and_then(EndStatus::parse)),
        kept: r.get("kept")?,
        event_id,
    })
}

/// Up to `limit` segments event `event_id` (in partition `day`, `cid`) maps at an index above
/// `after`, in index order (a mapping whose segment has not arrived is left out).
fn segments_of(
    c: &Connection,
    day: u32,
    cid: &str,
    event_id: &str,
    after: i64,
    limit: i64,
) -> rusqlite::Result<Vec<SegmentView>> {
    let mut stmt = c.prepare_cached(
        "SELECT m.idx, m.start_off, m.end_off, s.segment_id, s.size, s.started_at, s.duration_ms,
                s.codec, s.width, s.height, s.fps, s.audio_rate, s.keyframes
         FROM event_segments m
         JOIN segments s ON s.day = m.seg_day AND s.cid = m.cid AND s.segment_id = m.segment_id
         WHERE m.day = ?1 AND m.cid = ?2 AND m.event_id = ?3 AND m.idx > ?4
         ORDER BY m.idx LIMIT ?5",
    )?;
    let rows = stmt.query_map(params![day, cid, event_id, after, limit], |r| {
        let keyframes: String = r.get(12)?;
        Ok(SegmentView {
            index: r.get(0)?,
            start_offset: r.get::<_, i64>(1)? as u64,
            end_offset: r.get::<_, i64>(2)? as u64,
            segment_id: SegmentId::parse(&r.get::<_, String>(3)?).map_err(bad_row)?,
            size: r.get::<_, i64>(4)? as u64,
            started_at: Timestamp(r.get(5)?),
            duration_ms: r.get(6)?,
            media: Media {
                codec: r.get(7)?,
                width: r.get(8)?,
                height: r.get(9)?,
                fps: r.get(10)?,
                audio_sample_rate: r.get(11)?,
            },
            keyframes: serde_json::from_str(&keyframes).map_err(bad_row)?,
        })
    })?;
    rows.collect()
}

fn bad_row(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

mod cursor;
mod erasure;
mod exports;
pub mod files;
mod keeps;
use cursor::{decode_cursor, encode_cursor};

#[async_trait]
impl ProjectionStore for EmbeddedStore {
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        // The same rule the ScyllaDB store enforces, so both refuse the same records.
        for (index, env) in batch.iter().enumerate() {
            env.report.storable().map_err(|e| StoreError::Rejected { index: Some(index), reason: e.to_string() })?;
        }
        let writer = self.writer.clone();
        let policy = self.policy;
        let batch = batch.to_vec();
        tokio::task::spawn_blocking(move || apply_batch(&mut writer.lock().expect("writer lock"), &policy, &batch))
            .await
            .map_err(other)?
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn quarantine(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut put = tx.prepare_cached(
                    "INSERT OR REPLACE INTO quarantine (part, off, key, value, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for q in &records {
                    put.execute(params![
                        q.position.partition,
                        q.position.offset,
                        q.key,
                        q.value,
                        q.reason,
                        q.quarantined_at.millis()
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT part, off, key, value, reason, at FROM quarantine ORDER BY part, off LIMIT ?1")
                .map_err(other)?;
            let rows = stmt
                .query_map([i64::from(limit)], |r| {
                    Ok(Quarantined {
                        position: Position { partition: r.get(0)?, offset: r.get(1)? },
                        key: r.get(2)?,
                        value: r.get(3)?,
                        reason: r.get(4)?,
                        quarantined_at: Timestamp(r.get(5)?),
                    })
                })
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            Ok(rows)
        })
        .await
    }

    async fn release(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        let positions: Vec<Position> = records.iter().map(|q| q.position).collect();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM quarantine WHERE part = ?1 AND off = ?2")?;
                for p in &positions {
                    del.execute(params![p.partition, p.offset])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT changed_at, body FROM subscriptions WHERE body IS NOT NULL ORDER BY id")
                .map_err(other)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            rows.into_iter()
                .map(|(at, body)| {
                    Ok(SubscriptionView {
                        subscription: serde_json::from_str(&body).map_err(other)?,
                        changed_at: Timestamp(at),
                    })
                })
                .collect()
        })
        .await
    }

    async fn dead_letters(&self, subscription: &SubscriptionId, limit: u32) -> Result<Vec<DeadLetterView>, StoreError> {
        let sub = subscription.to_string();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT dead_at, body FROM dead_letters WHERE sub = ?1 AND body IS NOT NULL
                     ORDER BY dead_at, webhook_id LIMIT ?2",
                )
                .map_err(other)?;
            let rows = stmt
                .query_map(params![sub, i64::from(limit)], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            rows.into_iter()
                .map(|(at, body)| {
                    Ok(DeadLetterView { letter: serde_json::from_str(&body).map_err(other)?, dead_at: Timestamp(at) })
                })
                .collect()
        })
        .await
    }

    async fn purges(&self, limit: u32) -> Result<Vec<Purge>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached("SELECT day, cid, key FROM purges LIMIT ?1").map_err(other)?;
            let rows = stmt
                .query_map([i64::from(limit)], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?, r.get(2)?)))
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            rows.into_iter()
                .map(|(day, cid, key)| {
                    Ok(Purge {
                        cid: DeviceId::parse(&cid).map_err(other)?,
                        day: Day::from_number(day).ok_or_else(|| other("bad day in store"))?,
                        key,
                    })
                })
                .collect()
        })
        .await
    }

    async fn purged(&self, done: &[Purge]) -> Result<(), StoreError> {
        let done = done.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut del = tx.prepare_cached("DELETE FROM purges WHERE day = ?1 AND cid = ?2 AND key = ?3")?;
                for p in &done {
                    del.execute(params![p.day.number(), p.cid.as_str(), p.key])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn kept(&self, cid: &DeviceId, after: Option<&EventId>, limit: u32) -> Result<Vec<EventView>, StoreError> {
        let cid = cid.as_str().to_owned();
        let after = after.map_or(String::new(), |a| a.as_str().to_owned());
        let fallback = self.policy.offset;
        self.read(move |c| {
            c.prepare_cached(
                "SELECT e.event_id, e.ended_at, e.end_status, e.skew_ms, 1 AS kept FROM keeps k
                 JOIN events e ON e.day = k.day AND e.cid = k.cid AND e.trig = k.trig AND e.event_id = k.event_id
                 WHERE k.cid = ?1 AND k.kept = 1 AND k.event_id > ?2 AND e.deleted = 0
                 ORDER BY k.event_id LIMIT ?3",
            )
            .map_err(other)?
            .query_map(params![cid, after, i64::from(limit)], |r| event_from_row(r, fallback))
            .map_err(other)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)
        })
        .await
    }

    async fn exports(
        &self,
        cid: &DeviceId,
        before: Option<&ExportId>,
        limit: u32,
    ) -> Result<Vec<ExportView>, StoreError> {
        let (cid, before) = (cid.clone(), before.cloned());
        self.read(move |c| exports::list(c, &cid, before.as_ref(), limit, Timestamp::now())).await
    }

    async fn export(&self, cid: &DeviceId, id: &ExportId) -> Result<Option<ExportView>, StoreError> {
        let (cid, id) = (cid.clone(), id.clone());
        self.read(move |c| exports::one(c, &cid, &id, Timestamp::now())).await
    }

    async fn pending_exports(&self, limit: u32) -> Result<Vec<ExportView>, StoreError> {
        self.read(move |c| exports::pending(c, limit, Timestamp::now())).await
    }

    async fn kept_reports(&self, cursor: Option<&[u8]>) -> Result<KeptPage, StoreError> {
        let (policy, cursor) = (self.policy, cursor.map(<[u8]>::to_vec));
        self.read(move |c| keeps::kept_reports(c, &policy, cursor.as_deref())).await
    }

    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        self.per_day("day_counts", "events", cid, from, to).await
    }

    async fn usage(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        self.per_day("day_usage", "bytes", cid, from, to).await
    }

    async fn usage_total(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let total: i64 =
                c.query_row("SELECT coalesce(sum(bytes), 0) FROM day_usage", [], |r| r.get(0)).map_err(other)?;
            Ok(total.max(0).unsigned_abs())
        })
        .await
    }

    async fn day_page(
        &self,
        cid: &DeviceId,
        day: Day,
        event_type: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError> {
        let (after_trig, after_id) = match cursor {
            Some(b) => decode_cursor(b)?,
            None => (i64::MIN, String::new()),
        };
        let cid = cid.as_str().to_owned();
        let event_type = event_type.map(|t| t.as_str().to_owned());
        let limit = limit.max(1);
        let fallback = self.policy.offset;
        let (now, retention) = (Timestamp::now().millis(), self.policy.retention_ms());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT event_id, ended_at, end_status, skew_ms, {} AS kept FROM events e
                     WHERE day = ?1 AND cid = ?2 AND (trig, event_id) > (?3, ?4) AND (?5 IS NULL OR kind = ?5)
                       AND deleted = 0 AND NOT {}
                     ORDER BY trig, event_id LIMIT ?6",
                    keeps::KEPT,
                    keeps::hidden(7, retention)
                ))
                .map_err(other)?;
            let key = params![day.number(), cid, after_trig, after_id, event_type, i64::from(limit) + 1, now];
            let mut events = stmt
                .query_map(key, |r| event_from_row(r, fallback))
                .map_err(other)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(other)?;
            let more = events.len() > limit as usize;
            events.truncate(limit as usize);
            let next = if more { events.last().map(encode_cursor) } else { None };
            Ok(DayPage { events, next })
        })
        .await
    }

    async fn event_page(
        &self,
        id: &EventId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Option<EventDetail>, StoreError> {
        let id = id.clone();
        let fallback = self.policy.offset;
        let after = after.map_or(-1, i64::from);
        let limit = limit.max(1);
        let (now, retention) = (Timestamp::now().millis(), self.policy.retention_ms());
        self.read(move |c| {
            let key =
                params![id.day().number(), id.device().as_str(), id.filed_at(fallback).millis(), id.as_str(), now];
            let event = c
                .prepare_cached(&format!(
                    "SELECT event_id, ended_at, end_status, skew_ms, {} AS kept FROM events e
                     WHERE day = ?1 AND cid = ?2 AND trig = ?3 AND event_id = ?4 AND deleted = 0 AND NOT {}",
                    keeps::KEPT,
                    keeps::hidden(5, retention)
                ))
                .map_err(other)?
                .query_row(key, |r| event_from_row(r, fallback))
                .optional()
                .map_err(other)?;
            let Some(event) = event else { return Ok(None) };
            let mut segments =
                segments_of(c, id.day().number(), id.device().as_str(), id.as_str(), after, i64::from(limit) + 1)
                    .map_err(other)?;
            // One more than asked tells whether another page follows. (A mapping whose segment
            // has not arrived is not joined, so a page may hold fewer; the cursor still moves.)
            let next_index = if segments.len() > limit as usize {
                segments.truncate(limit as usize);
                segments.last().map(|s| s.index)
            } else {
                None
            };
            Ok(Some(EventDetail { event, segments, next_index }))
        })
        .await
    }

    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError> {
        let cid = cid.as_str().to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT segment_id, size, duration_ms FROM digests WHERE day = ?1 AND cid = ?2")
                .map_err(other)?
                .query_row(params![day.number(), cid], |r| {
                    Ok(DigestView {
                        date: day,
                        segment_id: SegmentId::parse(&r.get::<_, String>(0)?).map_err(bad_row)?,
                        size: r.get::<_, i64>(1)? as u64,
                        duration_ms: r.get(2)?,
                    })
                })
                .optional()
                .map_err(other)
        })
        .await
    }

    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError> {
        let cid = cid.as_str().to_owned();
        let (now, retention) = (Timestamp::now().millis(), self.policy.retention_days);
        self.read(move |c| {
            // While the start it comes from is inside its retention.
            let minutes: Option<i32> = c
                .prepare_cached(
                    "SELECT utc_offset FROM devices WHERE cid = ?1 AND at + coalesce(retention, ?3) * 86400000 > ?2",
                )
                .map_err(other)?
                .query_row(params![cid, now, retention], |r| r.get(0))
                .optional()
                .map_err(other)?;
            Ok(minutes.and_then(DayOffset::from_minutes))
        })
        .await
    }

    async fn plan(&self, cid: &DeviceId) -> Result<Option<u32>, StoreError> {
        let cid = cid.as_str().to_owned();
        let (now, retention) = (Timestamp::now().millis(), self.policy.retention_days);
        self.read(move |c| {
            let days: Option<Option<u32>> = c
                .prepare_cached(
                    "SELECT retention FROM devices WHERE cid = ?1 AND at + coalesce(retention, ?3) * 86400000 > ?2",
                )
                .map_err(other)?
                .query_row(params![cid, now, retention], |r| r.get(0))
                .optional()
                .map_err(other)?;
            Ok(days.flatten())
        })
        .await
    }

    async fn drop_expired(&self, oldest_kept: Day) -> Result<u64, StoreError> {
        let writer = self.writer.clone();
        let (cutoff, retention) = (self.policy.offset.start_of(oldest_kept), self.policy.retention_days);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().expect("writer lock");
            exports::drop_expired(&conn, Timestamp::now())?;
            keeps::drop_expired(&mut conn, oldest_kept, cutoff, retention)
        })
        .await
        .map_err(other)?
        .map_err(other)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(|e| StoreError::Unavailable(e.to_string()))).await
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use schemas::{EventMapping, EventStarted, Report, SegmentReported};

    use super::*;

    #[tokio::test]
    async fn a_store_from_before_clock_skew_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        // The events table as it was created before `skew_ms` existed.
        sqlite::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE events (day INTEGER NOT NULL, cid TEXT NOT NULL, trig INTEGER NOT NULL,
                 event_id TEXT NOT NULL, kind TEXT NOT NULL, started INTEGER NOT NULL DEFAULT 0, ended_at INTEGER,
                 end_status TEXT, PRIMARY KEY (day, cid, trig, event_id)) WITHOUT ROWID;",
            )
            .unwrap();
        let store = EmbeddedStore::open(&path, TimePolicy::default()).unwrap();
        let cid = DeviceId::parse("cam-1").unwrap();
        let event_type = EventType::parse("motion").unwrap();
        let now = Timestamp::now();
        let offset = DayOffset::from_minutes(330).unwrap();
        let (event_id, clock_skew_ms) =
            TimePolicy::default().start_id(&cid, &event_type, now.plus_millis(3_600_000), offset, false, now).unwrap();
        let report = Report::EventStarted(EventStarted {
            cid: cid.clone(),
            event_id: event_id.clone(),
            event_type,
            triggered_at: now.plus_millis(3_600_000),
            utc_offset: offset,
            clock_skew_ms,
            snapshot_size: None,
        });
        store.apply(&[Envelope::new(report, now)]).await.unwrap();
        let detail = store.event(&event_id).await.unwrap().unwrap();
        assert_eq!(detail.event.clock_skew_ms, Some(3_600_000));
        assert_eq!(store.utc_offset(&cid).await.unwrap(), Some(offset));
        drop(store);
        // Opening again finds the column and does not try to add it twice.
        EmbeddedStore::open(&path, TimePolicy::default()).unwrap();
    }

    /// A store from before deletions: `events` without `deleted`, `segments` without `events`.
    /// Opened, it gains both; its events count and can be deleted, and a segment written
    /// before (its other events unknown) is never purged, while the snapshot is.
    #[tokio::test]
    async fn a_store_from_before_deletions_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let (cid, now) = (DeviceId::parse("cam-1").unwrap(), Timestamp::now().plus_millis(-60_000));
        let first = start(&cid, now, DayOffset::default());
        let Report::EventStarted(ev) = &first.report else { unreachable!() };
        let (day, trig) = (ev.event_id.day().number(), ev.event_id.filed_at(DayOffset::default()).millis());
        let conn = sqlite::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (day INTEGER NOT NULL, cid TEXT NOT NULL, trig INTEGER NOT NULL,
             event_id TEXT NOT NULL, kind TEXT NOT NULL, started INTEGER NOT NULL DEFAULT 0, ended_at INTEGER,
             end_status TEXT, skew_ms INTEGER, PRIMARY KEY (day, cid, trig, event_id)) WITHOUT ROWID;
             CREATE TABLE segments (day INTEGER NOT NULL, cid TEXT NOT NULL, segment_id TEXT NOT NULL,
             size INTEGER NOT NULL, started_at INTEGER NOT NULL, duration_ms INTEGER NOT NULL, codec TEXT NOT NULL,
             width INTEGER NOT NULL, height INTEGER NOT NULL, fps REAL NOT NULL, audio_rate INTEGER,
             keyframes TEXT NOT NULL, PRIMARY KEY (day, cid, segment_id)) WITHOUT ROWID;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (day, cid, trig, event_id, kind, started) VALUES (?1, 'cam-1', ?2, ?3, 'motion', 1)",
            params![day, trig, ev.event_id.as_str()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO segments VALUES (?1, 'cam-1', 'seg-old', 10, ?2, 1000, 'h264', 1, 1, 1.0, NULL, '[0]')",
            params![day, trig],
        )
        .unwrap();
        drop(conn);
        let store = EmbeddedStore::open(&path, TimePolicy::default()).unwrap();
        assert_eq!(
            store.calendar(&cid, ev.event_id.day(), ev.event_id.day()).await.unwrap(),
            vec![(ev.event_id.day(), 1)]
        );
        let mapping = EventMapping { event_id: ev.event_id.clone(), index: 0, start_offset: 0, end_offset: 10 };
        store
            .apply(&[Envelope::new(
                Report::SegmentReported(SegmentReported {
                    cid: cid.clone(),
                    segment_id: SegmentId::parse("seg-old").unwrap(),
                    size: 10,
                    started_at: now,
                    utc_offset: DayOffset::default(),
                    duration_ms: 1000,
                    media: Media { codec: "h264".into(), width: 1, height: 1, fps: 1.0, audio_sample_rate: None },
                    keyframes: vec![0],
                    events: vec![mapping],
                }),
                now,
            )])
            .await
            .unwrap();
        // The segment's row as written before: its events unknown.
        store
            .write(|c| c.execute("UPDATE segments SET events = NULL WHERE segment_id = 'seg-old'", []).map(drop))
            .await
            .unwrap();
        let deletion = Report::EventDeleted(schemas::EventDeleted { cid: cid.clone(), event_id: ev.event_id.clone() });
        store.apply(&[Envelope::new(deletion, now.plus_millis(1))]).await.unwrap();
        assert_eq!(store.calendar(&cid, ev.event_id.day(), ev.event_id.day()).await.unwrap(), vec![]);
        assert!(store.event(&ev.event_id).await.unwrap().is_none());
        let keys: Vec<String> = store.purges(10).await.unwrap().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, vec![seams::ObjectKey::snapshot(&ev.event_id).as_str().to_owned()]);
        drop(store);
        EmbeddedStore::open(&path, TimePolicy::default()).unwrap();
    }

    fn start(cid: &DeviceId, at: Timestamp, offset: DayOffset) -> Envelope {
        let event_type = EventType::parse("motion").unwrap();
        let event_id = EventId::new(cid, &event_type, at, offset).unwrap();
        let report = Report::EventStarted(EventStarted {
            cid: cid.clone(),
            event_id,
            event_type,
            triggered_at: at,
            utc_offset: offset,
            clock_skew_ms: None,
            snapshot_size: None,
        });
        Envelope::new(report, Timestamp::now())
    }

    /// The janitor drops each partition by the plan it was written under: as days pass
    /// (`oldest_kept` moving on), a 7-day device's day goes after 7 days, a 30-day (the
    /// deployment's) after 30, a 60-day device's after 60 — whatever the deployment's retention.
    #[tokio::test]
    async fn the_janitor_drops_each_partition_by_its_plan() {
        let dir = tempfile::tempdir().unwrap();
        let policy = TimePolicy::default();
        let store = EmbeddedStore::open(&dir.path().join("store.db"), policy).unwrap();
        let utc = DayOffset::default();
        let today = utc.today();
        let five_days_ago = utc.start_of(today.add_days(-5)).plus_millis(43_200_000);
        let device = |name: &str| DeviceId::parse(name).unwrap();
        let (short, mid, long) = (device("cam-7"), device("cam-30"), device("cam-60"));
        store
            .apply(&[
                start(&short, five_days_ago, utc).with_retention(Some(7)),
                start(&mid, five_days_ago, utc),
                start(&long, five_days_ago, utc).with_retention(Some(60)),
            ])
            .await
            .unwrap();
        let held = |cid: &DeviceId| {
            let (store, cid) = (store.clone(), cid.clone());
            async move { !store.calendar(&cid, today.add_days(-6), today).await.unwrap().is_empty() }
        };
        // `days_later` days from now, the janitor runs with that day's `oldest_kept`.
        let janitor_in =
            |days_later: i64| store.drop_expired(policy.oldest_kept_day(Timestamp::now()).add_days(days_later));
        janitor_in(0).await.unwrap();
        assert!(held(&short).await && held(&mid).await && held(&long).await);
        janitor_in(2).await.unwrap();
        assert!(held(&short).await, "its seventh day: still held");
        janitor_in(3).await.unwrap();
        assert!(!held(&short).await, "7 days after its day: gone");
        assert!(held(&mid).await && held(&long).await);
        janitor_in(26).await.unwrap();
        assert!(!held(&mid).await, "30 days after its day: gone");
        assert!(held(&long).await);
        janitor_in(56).await.unwrap();
        assert!(!held(&long).await, "60 days after its day: gone");
    }

    /// A store created before partitions kept their plan has each partition it holds kept the
    /// deployment's retention on open.
    #[tokio::test]
    async fn a_store_from_before_plans_keeps_its_partitions_the_deployments_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let policy = TimePolicy::default();
        let cid = DeviceId::parse("cam-old").unwrap();
        let utc = DayOffset::default();
        let day = utc.today().add_days(-10);
        let store = EmbeddedStore::open(&path, policy).unwrap();
        store.apply(&[start(&cid, utc.start_of(day).plus_millis(1000), utc)]).await.unwrap();
        drop(store);
        sqlite::open(&path).unwrap().execute_batch("DROP TABLE partitions").unwrap();
        let store = EmbeddedStore::open(&path, policy).unwrap();
        let kept: Vec<(u32, Option<u32>)> = store
            .read(|c| {
                let mut stmt = c.prepare("SELECT day, days FROM partitions").map_err(other)?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(other)?;
                rows.collect::<Result<_, _>>().map_err(other)
            })
            .await
            .unwrap();
        assert_eq!(kept, vec![(day.number(), Some(30))]);
        store.drop_expired(day).await.unwrap();
        assert_eq!(store.calendar(&cid, day, day).await.unwrap(), vec![(day, 1)]);
        store.drop_expired(day.add_days(1)).await.unwrap();
        assert!(store.calendar(&cid, day, day).await.unwrap().is_empty());
    }

    /// A device's offsets in one batch are written once, as the last of those with the latest
    /// trigger: the row the same reports leave when applied one by one.
    #[tokio::test]
    async fn a_devices_offsets_in_one_batch_end_as_applied_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let cid = DeviceId::parse("cam-o").unwrap();
        let now = Timestamp::now().plus_millis(-3_600_000);
        let offset = |m| DayOffset::from_minutes(m).unwrap();
        // Out of order, and two at the same instant (the later in the log wins).
        let cases: Vec<Vec<Envelope>> = vec![
            vec![start(&cid, now, offset(60)), start(&cid, now.plus_millis(-1000), offset(120))],
            vec![
                start(&cid, now, offset(60)),
                start(&cid, now, offset(-300)),
                start(&cid, now.plus_millis(-5), offset(0)),
            ],
            vec![start(&cid, now.plus_millis(-9), offset(330)), start(&cid, now.plus_millis(-3), offset(-60))],
        ];
        for (i, batch) in cases.iter().enumerate() {
            let one = EmbeddedStore::open(&dir.path().join(format!("one-{i}.db")), TimePolicy::default()).unwrap();
            let each = EmbeddedStore::open(&dir.path().join(format!("each-{i}.db")), TimePolicy::default()).unwrap();
            one.apply(batch).await.unwrap();
            for e in batch {
                each.apply(std::slice::from_ref(e)).await.unwrap();
            }
            let got = one.utc_offset(&cid).await.unwrap();
            assert!(got.is_some(), "case {i}");
            assert_eq!(got, each.utc_offset(&cid).await.unwrap(), "case {i}");
        }
    }

    /// A bulk load (`daybook rebuild`'s scratch file) ends, after [`finish_bulk_load`], as a
    /// normal store: WAL mode, sound, holding what was loaded, and open to the live store's
    /// writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bulk_load_finishes_as_a_normal_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db.rebuild");
        let policy = TimePolicy::default();
        let cids: Vec<DeviceId> = (0..5).map(|i| DeviceId::parse(&format!("cam-{i}")).unwrap()).collect();
        let today = policy.offset.day_of(Timestamp::now()).unwrap();
        let noon = |days_ago: i64| policy.offset.start_of(today.add_days(-days_ago)).plus_millis(43_200_000);
        let batch: Vec<Envelope> = (0..500)
            .map(|i| start(&cids[i % 5], noon(i as i64 % 3).plus_millis(i as i64 * 1000), policy.offset))
            .collect();
        let store = EmbeddedStore::open_with(&path, policy, OpenMode::BulkLoad).unwrap();
        assert_eq!(store.apply(&batch[..300]).await.unwrap(), 600);
        assert_eq!(store.apply(&batch[300..]).await.unwrap(), 400);
        let want = store.calendar(&cids[0], today.add_days(-29), today).await.unwrap();
        assert_eq!(want.iter().map(|d| d.1).sum::<u64>(), 100, "reads go through the writer");
        drop(store);
        assert!(std::fs::metadata(dir.path().join("store.db.rebuild-wal")).is_err(), "no WAL while loading");
        finish_bulk_load(&path).unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
            let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(check, "ok");
        }
        let live = dir.path().join("store.db");
        std::fs::rename(&path, &live).unwrap();
        let store = EmbeddedStore::open(&live, policy).unwrap();
        assert_eq!(store.calendar(&cids[0], today.add_days(-29), today).await.unwrap(), want);
        store.apply(&[start(&cids[0], noon(0).plus_millis(-1), policy.offset)]).await.unwrap();
        let after = store.calendar(&cids[0], today.add_days(-29), today).await.unwrap();
        assert_eq!(after.iter().map(|d| d.1).sum::<u64>(), 101);
    }

    #[tokio::test]
    async fn a_store_from_before_day_counts_is_counted_once_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let policy = TimePolicy::default();
        let cid = DeviceId::parse("cam-1").unwrap();
        let event_type = EventType::parse("motion").unwrap();
        let now = Timestamp::now();
        let today = policy.offset.day_of(now).unwrap();
        let mut batch = Vec::new();
        for (days_ago, n) in [(0, 3), (2, 5)] {
            let noon = policy.offset.start_of(today.add_days(-days_ago)).plus_millis(43_200_000);
            for i in 0..n {
                let at = noon.plus_millis(i * 1000);
                let event_id = EventId::new(&cid, &event_type, at, policy.offset).unwrap();
                let report = Report::EventStarted(EventStarted {
                    cid: cid.clone(),
                    event_id,
                    event_type: event_type.clone(),
                    triggered_at: at,
                    utc_offset: policy.offset,
                    clock_skew_ms: None,
                    snapshot_size: None,
                });
                batch.push(Envelope::new(report, now));
            }
        }
        let store = EmbeddedStore::open(&path, policy).unwrap();
        store.apply(&batch).await.unwrap();
        drop(store);
        // The file as a build before the counts left it: events, no `day_counts`.
        sqlite::open(&path).unwrap().execute_batch("DROP TABLE day_counts").unwrap();
        let store = EmbeddedStore::open(&path, policy).unwrap();
        let want = vec![(today, 3), (today.add_days(-2), 5)];
        assert_eq!(store.calendar(&cid, today.add_days(-29), today).await.unwrap(), want);
        // Counted once: opening again keeps the table, and new events add to it.
        drop(store);
        let store = EmbeddedStore::open(&path, policy).unwrap();
        assert_eq!(store.calendar(&cid, today.add_days(-29), today).await.unwrap(), want);
        store.apply(&batch).await.unwrap();
        assert_eq!(store.calendar(&cid, today.add_days(-29), today).await.unwrap(), want, "a replay adds nothing");
    }
}
