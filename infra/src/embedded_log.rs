//! The embedded report log: one SQLite file, one partition, group commit.
//!
//! Every append goes through a bounded queue to a single writer thread. The writer takes
//! whatever has queued up — from one request or ten thousand — writes it in one transaction
//! and fsyncs once, then answers every waiting request. So concurrent requests share one
//! durable commit, and the commit rate, not the request rate, is what the disk sees.
//! When the queue holds more than its bound, `append` answers [`LogError::Full`] at once
//! (ingest turns that into 503 + Retry-After) instead of growing memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use seams::{Consumed, LogConsumer, LogError, LogRecord, Position, ReportLog};
use tokio::sync::{oneshot, watch};

use crate::sqlite;

/// Tuning for [`EmbeddedLog`].
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Records that may wait for the writer before appends are refused.
    pub queue_records: usize,
    /// Most records written in one commit.
    pub max_commit_records: usize,
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        Self { queue_records: 200_000, max_commit_records: 16_384 }
    }
}

enum Op {
    Append { records: Vec<LogRecord>, reply: oneshot::Sender<Result<Vec<Position>, LogError>> },
    Commit { group: String, next: i64, reply: oneshot::Sender<Result<(), LogError>> },
    Truncate { before_ms: i64, reply: oneshot::Sender<Result<u64, LogError>> },
}

/// The embedded log. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct EmbeddedLog {
    path: PathBuf,
    config: EmbeddedLogConfig,
    tx: SenderSlot,
    queued: Arc<AtomicUsize>,
    head: watch::Receiver<i64>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The writer's inbox, shared with consumers; `None` once the log shut down, so a live
/// consumer never keeps the writer from stopping.
type SenderSlot = Arc<Mutex<Option<mpsc::Sender<Op>>>>;

fn send(slot: &SenderSlot, op: Op) -> Result<(), LogError> {
    let guard = slot.lock().expect("log sender lock");
    let tx = guard.as_ref().ok_or(LogError::Closed)?;
    tx.send(op).map_err(|_| LogError::Closed)
}

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    off    INTEGER PRIMARY KEY AUTOINCREMENT,
    ts     INTEGER NOT NULL,
    key    TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    schema INTEGER NOT NULL,
    value  BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS offsets (
    grp          TEXT PRIMARY KEY,
    next         INTEGER NOT NULL,
    committed_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// Logs written before groups expired have no commit time: they get "now", so upgrading
/// expires nothing at once.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_time: bool =
        conn.query_row("SELECT count(*) FROM pragma_table_info('offsets') WHERE name = 'committed_ms'", [], |r| {
            r.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !has_time {
        conn.execute_batch("ALTER TABLE offsets ADD COLUMN committed_ms INTEGER NOT NULL DEFAULT 0")?;
    }
    conn.execute(
        "UPDATE offsets SET committed_ms = ?1 WHERE committed_ms = 0",
        [chrono::Utc::now().timestamp_millis()],
    )?;
    Ok(())
}

/// A consumer group of the embedded log, as `daybook groups list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupInfo {
    pub group: String,
    /// The next offset the group will read.
    pub next: i64,
    /// Records appended that the group has not read.
    pub lag: i64,
    /// When it last committed (epoch ms).
    pub committed_ms: i64,
}

fn head_of(conn: &Connection) -> rusqlite::Result<i64> {
    // Offsets are never reused (AUTOINCREMENT), so the head survives truncation.
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 'log'", [], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0) + 1)
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log at `path` and starts its writer.
    pub fn open(path: &Path, config: EmbeddedLogConfig) -> Result<Arc<Self>, LogError> {
        let conn = sqlite::open(path).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        migrate(&conn).map_err(unavailable)?;
        let head = head_of(&conn).map_err(unavailable)?;
        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = {
            let queued = queued.clone();
            let max = config.max_commit_records;
            std::thread::Builder::new()
                .name("daybook-log-writer".into())
                .spawn(move || writer_loop(conn, rx, head_tx, queued, max))
                .map_err(unavailable)?
        };
        Ok(Arc::new(Self {
            path: path.to_owned(),
            config,
            tx: Arc::new(Mutex::new(Some(tx))),
            queued,
            head: head_rx,
            writer: Mutex::new(Some(writer)),
        }))
    }

    fn send(&self, op: Op) -> Result<(), LogError> {
        send(&self.tx, op)
    }

    /// Deletes up to [`TRUNCATE_CHUNK`] records older than `before_ms`, read or not: retention
    /// wins over consumer groups, as a Kafka topic's does, so a stalled or abandoned group
    /// cannot grow the log for ever ([`lagging_groups`](Self::lagging_groups) names the groups
    /// that lost records). Returns how many went (call again while it returns a full chunk).
    pub async fn truncate(&self, before_ms: i64) -> Result<u64, LogError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Truncate { before_ms, reply })?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Runs `f` on a connection of its own, off the async workers.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, LogError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(&sqlite::open(&path)?)).await.map_err(unavailable)?.map_err(unavailable)
    }

    /// Every consumer group that has committed, by name.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, LogError> {
        self.with_conn(|conn| {
            let head = head_of(conn)?;
            let mut stmt = conn.prepare("SELECT grp, next, committed_ms FROM offsets ORDER BY grp")?;
            let rows = stmt.query_map([], |r| {
                let next: i64 = r.get(1)?;
                Ok(GroupInfo { group: r.get(0)?, next, lag: (head - next).max(0), committed_ms: r.get(2)? })
            })?;
            rows.collect()
        })
        .await
    }

    /// Forgets `group`'s position (it resumes from the oldest record). Whether it existed.
    pub async fn delete_group(&self, group: &str) -> Result<bool, LogError> {
        let group = group.to_owned();
        self.with_conn(move |conn| Ok(conn.execute("DELETE FROM offsets WHERE grp = ?1", [group])? > 0)).await
    }

    /// Forgets groups that have not committed since `idle_before_ms` (as Kafka's
    /// `offsets.retention.minutes`) and returns their names.
    pub async fn expire_groups(&self, idle_before_ms: i64) -> Result<Vec<String>, LogError> {
        let expired = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare("DELETE FROM offsets WHERE committed_ms < ?1 RETURNING grp")?;
                let rows = stmt.query_map([idle_before_ms], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        for group in &expired {
            tracing::warn!(group, "consumer group expired: no commit within the group retention");
        }
        metrics::counter!("daybook_log_groups_expired_total").increment(expired.len() as u64);
        Ok(expired)
    }

    /// Groups whose next record was truncated before they read it (they skip to the oldest
    /// record left). Sets the `daybook_log_groups_lagging` gauge.
    pub async fn lagging_groups(&self) -> Result<Vec<GroupInfo>, LogError> {
        let oldest = self
            .with_conn(|conn| {
                let oldest: Option<i64> = conn.query_row("SELECT min(off) FROM log", [], |r| r.get(0))?;
                oldest.map_or_else(|| head_of(conn), Ok)
            })
            .await?;
        let lagging: Vec<_> = self.groups().await?.into_iter().filter(|g| g.next < oldest).collect();
        metrics::gauge!("daybook_log_groups_lagging").set(lagging.len() as f64);
        Ok(lagging)
    }

    async fn open_consumer(&self, group: &str, at_end: bool) -> Result<Box<dyn LogConsumer>, LogError> {
        if group.is_empty() {
            return Err(LogError::Other("consumer group name is empty".into()));
        }
        let path = self.path.clone();
        let group_name = group.to_owned();
        let (conn, next) = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
            let conn = sqlite::open(&path)?;
            let next: Option<i64> =
                conn.query_row("SELECT next FROM offsets WHERE grp = ?1", [&group_name], |r| r.get(0)).optional()?;
            let next = if at_end { head_of(&conn)? } else { next.unwrap_or(0) };
            Ok((conn, next))
        })
        .await
        .map_err(unavailable)?
        .map_err(unavailable)?;
        let tx = self.tx.clone();
        Ok(Box::new(EmbeddedConsumer {
            conn: Arc::new(Mutex::new(conn)),
            group: group.to_owned(),
            next,
            head: self.head.clone(),
            tx,
        }))
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    head: watch::Sender<i64>,
    queued: Arc<AtomicUsize>,
    max_records: usize,
) {
    let mut pending: Vec<Op> = Vec::new();
    while let Ok(first) = rx.recv() {
        pending.push(first);
        let mut records = match &pending[0] {
            Op::Append { records, .. } => records.len(),
            _ => 0,
        };
        // Group commit: take everything already waiting, up to the batch bound.
        while records < max_records {
            match rx.try_recv() {
                Ok(op) => {
                    if let Op::Append { records: r, .. } = &op {
                        records += r.len();
                    }
                    pending.push(op);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = commit_group(&mut conn, &mut pending);
        let requests = pending.iter().filter(|op| matches!(op, Op::Append { .. })).count();
        metrics::histogram!("daybook_log_group_commit_records").record(records as f64);
        metrics::histogram!("daybook_log_group_commit_requests").record(requests as f64);
        metrics::histogram!("daybook_log_commit_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok((positions, new_head)) => {
                let mut positions = positions.into_iter();
                for op in pending.drain(..) {
                    match op {
                        Op::Append { records, reply } => {
                            let n = records.len();
                            let pos: Vec<_> = positions.by_ref().take(n).collect();
                            queued.fetch_sub(n, Ordering::Relaxed);
                            let _ = reply.send(Ok(pos));
                        }
                        Op::Commit { reply, .. } => {
                            let _ = reply.send(Ok(()));
                        }
                        Op::Truncate { reply, before_ms } => {
                            let _ = reply.send(truncate(&conn, before_ms).map_err(unavailable));
                        }
                    }
                }
                head.send_replace(new_head);
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded log commit failed");
                metrics::counter!("daybook_log_commit_errors_total").increment(1);
                for op in pending.drain(..) {
                    match op {
                        Op::Append { records, reply } => {
                            queued.fetch_sub(records.len(), Ordering::Relaxed);
                            let _ = reply.send(Err(unavailable(&e)));
                        }
                        Op::Commit { reply, .. } => {
                            let _ = reply.send(Err(unavailable(&e)));
                        }
                        Op::Truncate { reply, .. } => {
                            let _ = reply.send(Err(unavailable(&e)));
                        }
                    }
                }
            }
        }
        metrics::gauge!("daybook_log_queue_records").set(queued.load(Ordering::Relaxed) as f64);
    }
}

/// Writes every pending append and commit in one transaction (one fsync).
fn commit_group(conn: &mut Connection, pending: &mut [Op]) -> rusqlite::Result<(Vec<Position>, i64)> {
    let tx = conn.transaction()?;
    let mut positions = Vec::new();
    let now = chrono::Utc::now().timestamp_millis();
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO log (ts, key, kind, schema, value) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut commit = tx.prepare_cached(
            "INSERT INTO offsets (grp, next, committed_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (grp) DO UPDATE SET next = max(next, excluded.next), committed_ms = excluded.committed_ms",
        )?;
        for op in pending.iter() {
            match op {
                Op::Append { records, .. } => {
                    for r in records {
                        insert.execute(params![now, r.key, r.report_kind, r.schema, r.value])?;
                        positions.push(Position { partition: 0, offset: tx.last_insert_rowid() });
                    }
                }
                Op::Commit { group, next, .. } => {
                    commit.execute(params![group, next, now])?;
                }
                Op::Truncate { .. } => {}
            }
        }
    }
    let head = head_of(&tx)?;
    tx.commit()?;
    Ok((positions, head))
}

/// Most records one truncation op deletes.
pub const TRUNCATE_CHUNK: i64 = 10_000;

fn truncate(conn: &Connection, before_ms: i64) -> rusqlite::Result<u64> {
    // Bounded, so appends queued behind a truncation wait for one small delete, not an hour's.
    let n = conn.execute(
        "DELETE FROM log WHERE off IN (SELECT off FROM log WHERE ts < ?1 ORDER BY off LIMIT ?2)",
        params![before_ms, TRUNCATE_CHUNK],
    )?;
    Ok(n as u64)
}

#[async_trait]
impl ReportLog for EmbeddedLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        let n = records.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // Admission: reserve queue room first, so memory is bounded by `queue_records`.
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.config.queue_records {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            metrics::counter!("daybook_log_rejected_total", "reason" => "full").increment(1);
            return Err(LogError::Full { retry_after: Duration::from_secs(1) });
        }
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Op::Append { records, reply }) {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return Err(e);
        }
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.open_consumer(group, false).await
    }

    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.open_consumer(group, true).await
    }

    async fn health(&self) -> Result<(), LogError> {
        if self.tx.lock().expect("log sender lock").is_none() {
            return Err(LogError::Closed);
        }
        if self.queued() >= self.config.queue_records {
            return Err(LogError::Full { retry_after: Duration::from_secs(1) });
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), LogError> {
        // Dropping the sender lets the writer finish what is queued and exit.
        drop(self.tx.lock().expect("log sender lock").take());
        let handle = self.writer.lock().expect("writer lock").take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(unavailable)?
                .map_err(|_| LogError::Unavailable("log writer panicked".into()))?;
        }
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

/// A reader of the embedded log. One partition, so a group has one useful member.
#[derive(Debug)]
struct EmbeddedConsumer {
    conn: Arc<Mutex<Connection>>,
    group: String,
    next: i64,
    head: watch::Receiver<i64>,
    tx: SenderSlot,
}

fn read_from(conn: &Connection, from: i64, limit: usize) -> rusqlite::Result<Vec<Consumed>> {
    let mut stmt =
        conn.prepare_cached("SELECT off, ts, key, kind, schema, value FROM log WHERE off >= ?1 ORDER BY off LIMIT ?2")?;
    let rows = stmt.query_map(params![from, limit as i64], |r| {
        Ok(Consumed {
            position: Position { partition: 0, offset: r.get(0)? },
            timestamp_ms: r.get(1)?,
            key: r.get(2)?,
            report_kind: r.get(3)?,
            schema: r.get(4)?,
            value: r.get(5)?,
        })
    })?;
    rows.collect()
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let conn = self.conn.clone();
            let from = self.next;
            let batch = tokio::task::spawn_blocking(move || {
                read_from(&conn.lock().expect("consumer connection"), from, max_records.max(1))
            })
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
            if let Some(last) = batch.last() {
                self.next = last.position.offset + 1;
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Woken at once by appends of this process; the tick also sees appends made by
            // another process on the same file (`daybook ingest` beside `daybook projector`).
            let tick = (now + Duration::from_millis(100)).min(deadline);
            let _ = tokio::time::timeout_at(tick, self.head.changed()).await;
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        let Some(next) = positions.iter().filter(|p| p.partition == 0).map(|p| p.offset).max() else {
            return Ok(());
        };
        let (reply, rx) = oneshot::channel();
        send(&self.tx, Op::Commit { group: self.group.clone(), next, reply })?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// The embedded log has one partition, and every member of a group reads all of it.
    fn owns(&self, partition: i32) -> bool {
        partition == 0
    }

    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        let conn = self.conn.clone();
        let head = tokio::task::spawn_blocking(move || head_of(&conn.lock().expect("consumer connection")))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(vec![(0, (head - self.next).max(0))])
    }
}
