//! The embedded report log: an append-only segment log with checksummed frames and group
//! commit, in one directory (`DATA_DIR/log`).
//!
//! Every append goes through a bounded queue to a single writer thread. The writer takes
//! whatever has queued up — from one request or ten thousand — encodes it into one buffer,
//! writes it with one `pwrite` at the end of the newest segment and fsyncs once, then answers
//! every waiting request. So concurrent requests share one durable write, and the commit rate,
//! not the request rate, is what the disk sees. When the queue holds more than its bound,
//! `append` answers [`LogError::Full`] at once (ingest turns that into 503 + Retry-After)
//! instead of growing memory.
//!
//! Layout (see [`segment`] for the frame format):
//!
//! ```text
//! log/00000000000000000001.seg   records 1…  (closed: never written again)
//! log/00000000000000412345.seg   records 412345…  (the newest: appended to)
//! log/groups/<group name in hex> the group's next offset and commit time
//! log/LOCK                       held (flock) by the one process that appends
//! log/HEAD                       the durable head, for readers in other processes
//! ```
//!
//! Why hand-written: the log needs exactly Kafka's on-disk model — offsets that never repeat,
//! immutable closed segments that retention deletes whole and a backup copies by position, a
//! torn tail cut at recovery — with one fsync per group of requests. The crates that offer a
//! segment log are unmaintained (`commitlog`, last release 2019, no fsync control) or young
//! single-purpose ones; an LSM engine (fjall, sled) would write every report twice (journal,
//! then tables) and compact it again. The frame is 30 lines; CRC-32C comes from `crc32c`.
//!
//! Readers (consumers, in this process or another, e.g. `daybook projector` beside
//! `daybook ingest` on one data directory) read the segment files directly, and never past the
//! durable head: in the writing process the one the writer keeps in memory after each fsync,
//! in another process the one it publishes in `log/HEAD` (see [`head`]); there they look for
//! more every 100 ms. Offsets never repeat: a commit that fails burns its offsets.
//!
//! [`files`] is the format's public face for tools that work on the files of a log that may
//! be running (backups, restores, checks): they read and write frames, group positions and
//! the head only through it.
//!
//! Before this engine the log was one SQLite table (`DATA_DIR/log.db`); [`EmbeddedLog::open`]
//! moves such a log into segments once, keeping every offset and group position.

pub mod files;
mod groups;
pub mod head;
mod migrate;
mod reader;
pub mod segment;
mod writer;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use seams::metric::{Kind, Metric};
use seams::{LogConsumer, LogError, LogRecord, Position, ReportLog};
use tokio::sync::{oneshot, watch};

use reader::EmbeddedConsumer;
use segment::Reader;
use writer::{Op, Reservation, Writer};

pub use writer::{
    LOG_COMMIT_ERRORS_TOTAL, LOG_COMMIT_SECONDS, LOG_GROUP_COMMIT_RECORDS, LOG_GROUP_COMMIT_REQUESTS, LOG_QUEUE_RECORDS,
};

pub const LOG_REJECTED_TOTAL: Metric = Metric {
    name: "daybook_log_rejected_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help: "Embedded log: appends refused before queueing, by reason (full: the writer queue is at its bound; \
           the device is answered 503 log_full).",
};

pub const LOG_GROUPS_EXPIRED_TOTAL: Metric = Metric {
    name: "daybook_log_groups_expired_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Embedded log: consumer groups forgotten because they had not committed within --group-retention-hours.",
};

pub const LOG_GROUPS_LAGGING: Metric = Metric {
    name: "daybook_log_groups_lagging",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Embedded log: consumer groups whose next record was truncated by retention before they read it \
           (they skip to the oldest record left).",
};

/// Tuning for [`EmbeddedLog`].
#[derive(Debug, Clone)]
pub struct EmbeddedLogConfig {
    /// Records that may wait for the writer before appends are refused.
    pub queue_records: usize,
    /// Most records written in one commit.
    pub max_commit_records: usize,
    /// A segment is closed (and a new one started) once it holds this many bytes…
    pub segment_bytes: u64,
    /// …or once its first record is this old, so retention can delete records at most this
    /// late.
    pub segment_age: Duration,
    /// Group commit window: when requests arrive concurrently (at least two are already
    /// waiting for the commit), a commit of fewer than [`LINGER_RECORDS`] records waits up to
    /// this long after its first request for more to join it. One fsync then serves more
    /// requests: fewer commits per second for the same load, at the price of at most this much
    /// latency. A lone request never waits. Zero turns it off.
    pub commit_linger: Duration,
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        Self {
            queue_records: 200_000,
            max_commit_records: 16_384,
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(3600),
            commit_linger: Duration::from_millis(1),
        }
    }
}

/// A commit this large does not wait for more (see [`EmbeddedLogConfig::commit_linger`]):
/// a group already this large when the window would begin is committed at once.
pub const LINGER_RECORDS: usize = 256;

/// The first offset of a new log (offsets start at 1, as the SQLite log's did).
const FIRST_OFFSET: i64 = 1;

/// How often a reader without a writer in its process looks for new records.
const READER_TICK: Duration = Duration::from_millis(100);

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

fn unavailable(e: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f).await.map_err(unavailable)?.map_err(unavailable)
}

/// What the log's handles share with its consumers.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// The offset after the last durable record, once this process's writer published it.
    head: watch::Sender<i64>,
    /// Whether this process's writer owns the log (then readers stop at `head`).
    writing: AtomicBool,
    /// In a process that does not append, where the last scan of the newest segment (base
    /// offset) stopped: the next scan of that segment reads on from there rather than the
    /// whole file again (up to 64 MiB, ≈ 100 ms of CPU, once a second for a projector's lag).
    tail: Mutex<Option<(i64, segment::Scan)>>,
}

impl Shared {
    fn groups_dir(&self) -> PathBuf {
        self.dir.join("groups")
    }

    /// The offset after the last durable record: the writer's head in this process, or else
    /// the one it published.
    fn head(&self) -> io::Result<i64> {
        if self.writing.load(Ordering::Acquire) {
            return Ok(*self.head.borrow());
        }
        match head::read(&self.dir)? {
            Some(h) => Ok(h.durable),
            None => self.scanned_head(),
        }
    }

    /// Where a reader in this process must stop: `None` only for a log that no writer of
    /// this format has opened (restored or migrated), whose every frame that checks is durable.
    fn bound(&self) -> io::Result<Option<i64>> {
        if self.writing.load(Ordering::Acquire) {
            return Ok(Some(*self.head.borrow()));
        }
        Ok(head::read(&self.dir)?.map(|h| h.durable))
    }

    /// The offset after the last frame that checks, by a scan of the newest segment (resumed
    /// where the last one stopped): the head of a log without a published one.
    fn scanned_head(&self) -> io::Result<i64> {
        let bases = segment::list(&self.dir)?;
        let Some(&newest) = bases.last() else { return Ok(FIRST_OFFSET) };
        let mut tail = self.tail.lock().expect("tail scan lock");
        let from = match *tail {
            Some((base, scan)) if base == newest => scan,
            _ => segment::Scan::default(),
        };
        let (scan, _) = segment::scan_from(&segment::path_of(&self.dir, newest), from)?;
        *tail = Some((newest, scan));
        Ok(scan.next.unwrap_or(newest))
    }

    /// The first offset still in the log (the head when it is empty).
    fn oldest(&self) -> io::Result<i64> {
        match segment::list(&self.dir)?.first() {
            Some(&base) => {
                let first = Reader::open(&segment::path_of(&self.dir, base), 0)?.next_frame()?.ok();
                first.map_or_else(|| self.head(), |f| Ok(f.consumed.position.offset))
            }
            None => self.head(),
        }
    }
}

/// The embedded log. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct EmbeddedLog {
    config: EmbeddedLogConfig,
    shared: Arc<Shared>,
    /// The writer's inbox once started; `None` before the first append and after shutdown.
    tx: Arc<Mutex<Option<mpsc::Sender<Op>>>>,
    /// Serializes starting the writer. Owned by the start itself, which runs to its end even
    /// when the append that began it is cancelled (so no half-started writer holds the lock).
    starting: Arc<tokio::sync::Mutex<()>>,
    closed: AtomicBool,
    queued: Arc<AtomicUsize>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in directory `dir`. The writer starts with the
    /// first append, so a process that only reads (`daybook groups list`, a projector beside
    /// an ingest process) never takes the write lock. A SQLite log of an older release at
    /// `dir` + `.db` is moved into segments first.
    pub fn open(dir: &Path, config: EmbeddedLogConfig) -> Result<Arc<Self>, LogError> {
        migrate::if_needed(dir, &config).map_err(|e| LogError::Unavailable(format!("{}: {e}", dir.display())))?;
        fs::create_dir_all(dir.join("groups")).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
        let (head, _) = watch::channel(0);
        Ok(Arc::new(Self {
            config,
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                head,
                writing: AtomicBool::new(false),
                tail: Mutex::new(None),
            }),
            tx: Arc::default(),
            starting: Arc::new(tokio::sync::Mutex::new(())),
            closed: AtomicBool::new(false),
            queued: Arc::new(AtomicUsize::new(0)),
            writer: Arc::default(),
        }))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Sends `op` to the writer, starting it first if needed.
    async fn send(&self, mut op: Op) -> Result<(), LogError> {
        loop {
            // Sent outside the lock: the send may wake the writer thread (a futex wake), which
            // must not hold up the other workers' appends.
            let tx = self.tx.lock().expect("log sender lock").clone();
            if let Some(tx) = tx {
                return tx.send(op).map_err(|_| LogError::Closed);
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(LogError::Closed);
            }
            op = self.start_writer(op).await?;
        }
    }

    /// Opens the newest segment for writing (recovering a torn tail) and starts the writer
    /// thread. Gives `op` back to be sent.
    async fn start_writer(&self, op: Op) -> Result<Op, LogError> {
        let one = self.starting.clone().lock_owned().await;
        if self.tx.lock().expect("log sender lock").is_some() || self.closed.load(Ordering::Acquire) {
            return Ok(op);
        }
        let (dir, config) = (self.shared.dir.clone(), self.config.clone());
        let (shared, queued, max) = (self.shared.clone(), self.queued.clone(), self.config.max_commit_records);
        let (tx_slot, writer_slot) = (self.tx.clone(), self.writer.clone());
        blocking(move || {
            let _one = one;
            let writer = Writer::open(&dir, config)?;
            shared.head.send_replace(writer.end);
            shared.writing.store(true, Ordering::Release);
            let (tx, rx) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name("daybook-log-writer".into())
                .spawn(move || writer.run(rx, &shared, &queued, max))?;
            *writer_slot.lock().expect("writer lock") = Some(handle);
            *tx_slot.lock().expect("log sender lock") = Some(tx);
            Ok(())
        })
        .await?;
        Ok(op)
    }

    /// Deletes the segments whose every record is older than `before_ms`, read or not:
    /// retention wins over consumer groups, as a Kafka topic's does, so a stalled or abandoned
    /// group cannot grow the log for ever ([`lagging_groups`](Self::lagging_groups) names the
    /// groups that lost records). In the appending process the newest segment is closed first
    /// when all of it is past retention. Returns how many records went.
    pub async fn truncate(&self, before_ms: i64) -> Result<u64, LogError> {
        if self.tx.lock().expect("log sender lock").is_some() {
            let (reply, rx) = oneshot::channel();
            self.send(Op::Truncate { before_ms, reply }).await?;
            return rx.await.map_err(|_| LogError::Closed)?;
        }
        let dir = self.shared.dir.clone();
        blocking(move || writer::delete_closed(&dir, before_ms)).await
    }

    /// Every consumer group that has committed, by name.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>, LogError> {
        let shared = self.shared.clone();
        blocking(move || {
            let head = shared.head()?;
            Ok(groups::all(&shared.groups_dir())?
                .into_iter()
                .map(|(group, c)| GroupInfo {
                    group,
                    next: c.next,
                    lag: (head - c.next).max(0),
                    committed_ms: c.committed_ms,
                })
                .collect())
        })
        .await
    }

    /// Forgets `group`'s position (it resumes from the oldest record). Whether it existed.
    pub async fn delete_group(&self, group: &str) -> Result<bool, LogError> {
        let (dir, group) = (self.shared.groups_dir(), group.to_owned());
        blocking(move || groups::delete(&dir, &group)).await
    }

    /// Forgets groups that have not committed since `idle_before_ms` (as Kafka's
    /// `offsets.retention.minutes`) and returns their names.
    pub async fn expire_groups(&self, idle_before_ms: i64) -> Result<Vec<String>, LogError> {
        self.expire_groups_except(idle_before_ms, &[]).await
    }

    /// As [`expire_groups`](Self::expire_groups), sparing the groups named in `spared`
    /// (notification subscriptions' groups: a paused one commits nothing for as long as it
    /// is paused, and must keep its position).
    pub async fn expire_groups_except(&self, idle_before_ms: i64, spared: &[String]) -> Result<Vec<String>, LogError> {
        let dir = self.shared.groups_dir();
        let spared = spared.to_vec();
        let expired = blocking(move || {
            let mut expired = Vec::new();
            for (group, c) in groups::all(&dir)? {
                if c.committed_ms < idle_before_ms && !spared.contains(&group) && groups::delete(&dir, &group)? {
                    expired.push(group);
                }
            }
            Ok(expired)
        })
        .await?;
        for group in &expired {
            tracing::warn!(group, "consumer group expired: no commit within the group retention");
        }
        metrics::counter!(LOG_GROUPS_EXPIRED_TOTAL.name).increment(expired.len() as u64);
        Ok(expired)
    }

    /// Groups whose next record was truncated before they read it (they skip to the oldest
    /// record left). Sets the `daybook_log_groups_lagging` gauge.
    pub async fn lagging_groups(&self) -> Result<Vec<GroupInfo>, LogError> {
        let shared = self.shared.clone();
        let oldest = blocking(move || shared.oldest()).await?;
        let lagging: Vec<_> = self.groups().await?.into_iter().filter(|g| g.next < oldest).collect();
        metrics::gauge!(LOG_GROUPS_LAGGING.name).set(lagging.len() as f64);
        Ok(lagging)
    }

    /// The offset after the last record.
    pub async fn head(&self) -> Result<i64, LogError> {
        let shared = self.shared.clone();
        blocking(move || shared.head()).await
    }

    async fn open_consumer(&self, group: &str, at_end: bool) -> Result<Box<dyn LogConsumer>, LogError> {
        if group.is_empty() {
            return Err(LogError::Other("consumer group name is empty".into()));
        }
        let (shared, name) = (self.shared.clone(), group.to_owned());
        let next = blocking(move || {
            if at_end {
                shared.head()
            } else {
                Ok(groups::read(&shared.groups_dir(), &name)?.map_or(0, |c| c.next))
            }
        })
        .await?;
        Ok(Box::new(EmbeddedConsumer::new(self.shared.clone(), group.to_owned(), next)))
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ReportLog for EmbeddedLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        let n = records.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // Admission: reserve queue room first, so memory is bounded by `queue_records`. The
        // room goes back when the op is dropped: answered, refused, or cancelled on the way.
        let Some(room) = Reservation::take(&self.queued, n, self.config.queue_records) else {
            metrics::counter!(LOG_REJECTED_TOTAL.name, "reason" => "full").increment(1);
            return Err(LogError::Full { retry_after: Duration::from_secs(1) });
        };
        let (reply, rx) = oneshot::channel();
        self.send(Op::Append { records, reply, _room: room }).await?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.open_consumer(group, false).await
    }

    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.open_consumer(group, true).await
    }

    async fn consumer_resuming_or_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        if group.is_empty() {
            return Err(LogError::Other("consumer group name is empty".into()));
        }
        let (shared, name) = (self.shared.clone(), group.to_owned());
        let next = blocking(move || {
            let dir = shared.groups_dir();
            match groups::read(&dir, &name)? {
                Some(c) => Ok(c.next),
                None => {
                    // Recorded at once: the group's start is this moment's end, whatever
                    // happens to this member.
                    let head = shared.head()?;
                    groups::write(&dir, &name, head, chrono::Utc::now().timestamp_millis())?;
                    Ok(head)
                }
            }
        })
        .await?;
        Ok(Box::new(EmbeddedConsumer::new(self.shared.clone(), group.to_owned(), next)))
    }

    async fn health(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        if self.queued() >= self.config.queue_records {
            return Err(LogError::Full { retry_after: Duration::from_secs(1) });
        }
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), LogError> {
        // Under the start lock, so no writer starts after this.
        let _one = self.starting.lock().await;
        self.closed.store(true, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use seams::Consumed;

    use super::*;

    fn record(i: usize) -> LogRecord {
        LogRecord { key: format!("cam-{i}"), report_kind: "event_started".into(), schema: 1, value: vec![i as u8; 100] }
    }

    async fn read_all(log: &EmbeddedLog, group: &str) -> Vec<Consumed> {
        let mut c = log.consumer(group).await.unwrap();
        let mut out = Vec::new();
        loop {
            let batch = c.poll(1000, Duration::from_millis(50)).await.unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_commit_window_groups_concurrent_appends_and_never_holds_a_lone_one() {
        let dir = tempfile::tempdir().unwrap();
        // A window far longer than the test may take: an append that waited for it would
        // fail the timeouts below.
        let config = EmbeddedLogConfig { commit_linger: Duration::from_secs(600), ..Default::default() };
        let log = EmbeddedLog::open(&dir.path().join("lone"), config).unwrap();
        const WITHIN: Duration = Duration::from_secs(30);
        for i in 0..3 {
            tokio::time::timeout(WITHIN, log.append(vec![record(i)]))
                .await
                .expect("a lone append does not wait")
                .unwrap();
        }
        log.shutdown().await.unwrap();
        // Concurrent appends, with a window long next to a commit: every one completes, once.
        let config = EmbeddedLogConfig { commit_linger: Duration::from_millis(300), ..Default::default() };
        let log = EmbeddedLog::open(&dir.path().join("busy"), config).unwrap();
        let tasks: Vec<_> = (0..600)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(vec![record(i)]).await })
            })
            .collect();
        let mut offsets = Vec::new();
        for t in tasks {
            let appended = tokio::time::timeout(WITHIN, t).await.expect("concurrent appends complete");
            offsets.push(appended.unwrap().unwrap()[0].offset);
        }
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(offsets.len(), 600, "every append got its own offset");
        assert_eq!(read_all(&log, "g").await.len(), 600);
        log.shutdown().await.unwrap();
    }

    /// A process that does not append finds the head by reading the newest segment, and on
    /// later calls reads on from where it stopped: the head stays right as the writer appends,
    /// rolls to a new segment, and leaves a torn frame that the next writer cuts. (Without a
    /// published head: the way a log written by an older release is read.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reading_process_follows_the_head_across_appends_and_rolls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let config = EmbeddedLogConfig { segment_bytes: 512, ..EmbeddedLogConfig::default() };
        let writer = EmbeddedLog::open(&path, config.clone()).unwrap();
        let reader = EmbeddedLog::open(&path, config.clone()).unwrap();
        assert_eq!(reader.head().await.unwrap(), FIRST_OFFSET);
        let mut appended = 0i64;
        for round in 0..12usize {
            writer.append((0..(round + 3)).map(record).collect()).await.unwrap();
            // The writer publishes into the file it opened; readers find none.
            let _ = std::fs::remove_file(path.join(head::FILE));
            appended += round as i64 + 3;
            assert_eq!(reader.head().await.unwrap(), FIRST_OFFSET + appended, "round {round}");
            let (_, scan) = reader.shared.tail.lock().unwrap().expect("a scan was kept");
            assert!(scan.valid_len > 0);
        }
        assert!(segment::list(&path).unwrap().len() > 3, "segments rolled");
        // A torn frame after the last good one: not counted, then cut by the next writer.
        writer.shutdown().await.unwrap();
        drop(writer);
        let newest = *segment::list(&path).unwrap().last().unwrap();
        let seg = segment::path_of(&path, newest);
        let mut file = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut file, &[0x55; 7]).unwrap();
        assert_eq!(reader.head().await.unwrap(), FIRST_OFFSET + appended);
        let writer = EmbeddedLog::open(&path, config).unwrap();
        writer.append(vec![record(1), record(2)]).await.unwrap();
        std::fs::remove_file(path.join(head::FILE)).unwrap();
        assert_eq!(reader.head().await.unwrap(), FIRST_OFFSET + appended + 2);
        writer.shutdown().await.unwrap();
    }

    /// A reader in another process (here: a second handle that never appends) stops at the
    /// head the writer published, not at the last frame that checks: a frame written after it
    /// may never have been made durable (its fsync failed, or had not returned yet).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_in_another_process_never_passes_the_durable_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let writer = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        writer.append((0..3).map(record).collect()).await.unwrap();
        // A whole frame that checks after the durable head, as a commit leaves it between its
        // write and its fsync.
        let mut frame = Vec::new();
        segment::encode(&mut frame, 4, 0, &record(99)).unwrap();
        let seg = segment::path_of(&path, FIRST_OFFSET);
        std::io::Write::write_all(&mut OpenOptions::new().append(true).open(&seg).unwrap(), &frame).unwrap();
        let reader = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        assert_eq!(reader.head().await.unwrap(), 4);
        let mut c = reader.consumer("g").await.unwrap();
        let got = c.poll(100, Duration::from_millis(300)).await.unwrap();
        assert_eq!(got.iter().map(|c| c.position.offset).collect::<Vec<_>>(), [1, 2, 3]);
        // The writer's next commit overwrites it; the reader gets that one.
        writer.append(vec![record(4)]).await.unwrap();
        let got = c.poll(100, Duration::from_secs(2)).await.unwrap();
        assert_eq!(got.iter().map(|c| (c.position.offset, c.value[0])).collect::<Vec<_>>(), [(4, 4)]);
        writer.shutdown().await.unwrap();
    }

    /// An append cancelled while it waits (here: while the writer starts) gives its room in
    /// the queue back: enough of them must not make an idle log answer "full".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_append_gives_its_queue_room_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedLogConfig { queue_records: 10, ..EmbeddedLogConfig::default() };
        let log = EmbeddedLog::open(&dir.path().join("log"), config).unwrap();
        // Cancelled while it waits for a writer start under way (the start lock is held):
        // polled once, then dropped.
        let starting = log.starting.clone().lock_owned().await;
        let cancelled = tokio::time::timeout(Duration::ZERO, log.append((0..10).map(record).collect())).await;
        assert!(cancelled.is_err(), "the append waits for the writer to start");
        drop(starting);
        assert_eq!(log.queued(), 0, "its room is back at once");
        // Cancelled later, while the op waits in the writer's queue (or just answered): the
        // writer gives the room back when it drops the op.
        for round in 0..3 {
            let _ = tokio::time::timeout(Duration::ZERO, log.append((0..10).map(record).collect())).await;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while log.queued() != 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: {} records of room never came back",
                    log.queued()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert_eq!(log.append((0..10).map(record).collect()).await.unwrap().len(), 10);
        log.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn segments_roll_and_readers_cross_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedLogConfig { segment_bytes: 4096, ..EmbeddedLogConfig::default() };
        let log = EmbeddedLog::open(&dir.path().join("log"), config).unwrap();
        for chunk in 0..20 {
            log.append((chunk * 10..chunk * 10 + 10).map(record).collect()).await.unwrap();
        }
        assert!(segment::list(log.dir()).unwrap().len() > 5, "segments rolled");
        let got = read_all(&log, "g").await;
        assert_eq!(got.iter().map(|c| c.position.offset).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
        assert_eq!(log.head().await.unwrap(), 201);
        log.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_torn_tail_is_cut_and_offsets_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        log.append((0..5).map(record).collect()).await.unwrap();
        log.shutdown().await.unwrap();
        drop(log);
        // A crash mid-write: half a frame after the last acknowledged one.
        let seg = segment::path_of(&path, FIRST_OFFSET);
        let mut torn = Vec::new();
        segment::encode(&mut torn, 6, 0, &record(5)).unwrap();
        let f = OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut &f, &torn[..torn.len() / 2]).unwrap();
        let log = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        let positions = log.append(vec![record(6)]).await.unwrap();
        assert_eq!(positions, [Position { partition: 0, offset: 6 }]);
        let got = read_all(&log, "g").await;
        assert_eq!(got.len(), 6);
        assert_eq!(got[5].value, record(6).value);
        log.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_appender_is_refused_but_may_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let a = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        a.append(vec![record(1)]).await.unwrap();
        let b = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
        let err = b.append(vec![record(2)]).await.unwrap_err();
        assert!(err.to_string().contains("another process"), "{err}");
        // A reader in "another process" sees what the writer appends later.
        let mut c = b.consumer("g").await.unwrap();
        assert_eq!(c.poll(10, Duration::from_millis(200)).await.unwrap().len(), 1);
        a.append(vec![record(3)]).await.unwrap();
        let later = c.poll(10, Duration::from_secs(2)).await.unwrap();
        assert_eq!(later.iter().map(|c| c.position.offset).collect::<Vec<_>>(), [2]);
        a.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_deletes_whole_segments_and_readers_skip_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedLogConfig { segment_bytes: 2048, ..EmbeddedLogConfig::default() };
        let log = EmbeddedLog::open(&dir.path().join("log"), config).unwrap();
        for chunk in 0..10 {
            log.append((chunk * 10..chunk * 10 + 10).map(record).collect()).await.unwrap();
        }
        let mut c = log.consumer("slow").await.unwrap();
        c.commit(&[Position { partition: 0, offset: 3 }]).await.unwrap();
        // Nothing is older than an hour ago.
        let hour_ago = chrono::Utc::now().timestamp_millis() - 3_600_000;
        assert_eq!(log.truncate(hour_ago).await.unwrap(), 0);
        // Everything is older than a minute from now: all of it goes, the head stays.
        let later = chrono::Utc::now().timestamp_millis() + 60_000;
        assert_eq!(log.truncate(later).await.unwrap(), 100);
        assert_eq!(log.head().await.unwrap(), 101);
        assert_eq!(log.lagging_groups().await.unwrap().len(), 1);
        let positions = log.append(vec![record(100)]).await.unwrap();
        assert_eq!(positions[0].offset, 101);
        let got = read_all(&log, "slow").await;
        assert_eq!(got.iter().map(|c| c.position.offset).collect::<Vec<_>>(), [101]);
        log.shutdown().await.unwrap();
    }
}
