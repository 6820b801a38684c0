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
//! `daybook ingest` on one data directory) read the segment files directly. In the writing
//! process they stop at the durable head the writer publishes after each fsync; in another
//! process they read every frame that checks, and wake every 100 ms.
//!
//! Before this engine the log was one SQLite table (`DATA_DIR/log.db`); [`EmbeddedLog::open`]
//! moves such a log into segments once, keeping every offset and group position.

mod groups;
mod migrate;
pub(crate) mod segment;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use seams::{Consumed, LogConsumer, LogError, LogRecord, Position, ReportLog};
use tokio::sync::{oneshot, watch};

use segment::{Reader, Stop};

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

enum Op {
    Append { records: Vec<LogRecord>, reply: oneshot::Sender<Result<Vec<Position>, LogError>> },
    Truncate { before_ms: i64, reply: oneshot::Sender<Result<u64, LogError>> },
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

    /// The offset after the last record: the writer's durable head, or else a scan of the
    /// newest segment.
    fn head(&self) -> io::Result<i64> {
        if self.writing.load(Ordering::Acquire) {
            return Ok(*self.head.borrow());
        }
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
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    /// Serializes starting the writer.
    starting: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    queued: Arc<AtomicUsize>,
    writer: Mutex<Option<JoinHandle<()>>>,
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
            tx: Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
            queued: Arc::new(AtomicUsize::new(0)),
            writer: Mutex::new(None),
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
        let _one = self.starting.lock().await;
        if self.tx.lock().expect("log sender lock").is_some() || self.closed.load(Ordering::Acquire) {
            return Ok(op);
        }
        let (dir, config) = (self.shared.dir.clone(), self.config.clone());
        let writer = blocking(move || Writer::open(&dir, config)).await?;
        self.shared.head.send_replace(writer.next);
        self.shared.writing.store(true, Ordering::Release);
        let (tx, rx) = mpsc::channel();
        let (shared, queued, max) = (self.shared.clone(), self.queued.clone(), self.config.max_commit_records);
        let handle = std::thread::Builder::new()
            .name("daybook-log-writer".into())
            .spawn(move || writer.run(rx, &shared, &queued, max))
            .map_err(unavailable)?;
        *self.writer.lock().expect("writer lock") = Some(handle);
        *self.tx.lock().expect("log sender lock") = Some(tx);
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
        blocking(move || delete_closed(&dir, before_ms)).await
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
        let dir = self.shared.groups_dir();
        let expired = blocking(move || {
            let mut expired = Vec::new();
            for (group, c) in groups::all(&dir)? {
                if c.committed_ms < idle_before_ms && groups::delete(&dir, &group)? {
                    expired.push(group);
                }
            }
            Ok(expired)
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
        let shared = self.shared.clone();
        let oldest = blocking(move || shared.oldest()).await?;
        let lagging: Vec<_> = self.groups().await?.into_iter().filter(|g| g.next < oldest).collect();
        metrics::gauge!("daybook_log_groups_lagging").set(lagging.len() as f64);
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
        Ok(Box::new(EmbeddedConsumer {
            shared: self.shared.clone(),
            head: self.shared.head.subscribe(),
            group: group.to_owned(),
            next,
            cursor: None,
        }))
    }

    /// Records waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Deletes closed segments (never the newest) whose every record is older than `before_ms`;
/// returns how many records they held. A segment's records are all older than the first
/// record of the segment after it (timestamps never go back: the writer stamps
/// `max(now, last)`).
fn delete_closed(dir: &Path, before_ms: i64) -> io::Result<u64> {
    let bases = segment::list(dir)?;
    let mut deleted = 0;
    for pair in bases.windows(2) {
        let (base, next_base) = (pair[0], pair[1]);
        let newest_ts = match segment::first_ts(&segment::path_of(dir, next_base))? {
            Some(ts) => Some(ts),
            // The next segment is empty: this one's own last record says.
            None => segment::scan(&segment::path_of(dir, base))?.0.last_ts,
        };
        if newest_ts.is_some_and(|ts| ts >= before_ms) {
            break;
        }
        fs::remove_file(segment::path_of(dir, base))?;
        deleted += (next_base - base).max(0) as u64;
    }
    if deleted > 0 {
        segment::sync_dir(dir)?;
    }
    Ok(deleted)
}

/// The one appender: owns the newest segment.
#[derive(Debug)]
struct Writer {
    dir: PathBuf,
    config: EmbeddedLogConfig,
    /// Held for the writer's life: a second appending process fails to take it.
    _lock: File,
    file: File,
    base: i64,
    /// Bytes durably written to `file`.
    len: u64,
    /// The offset the next record gets.
    next: i64,
    first_ts: Option<i64>,
    last_ts: i64,
    buf: Vec<u8>,
}

impl Writer {
    fn open(dir: &Path, config: EmbeddedLogConfig) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK"))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is being appended to by another process", dir.display()),
            ),
            fs::TryLockError::Error(e) => e,
        })?;
        let bases = segment::list(dir)?;
        let (base, scan) = match bases.last() {
            Some(&base) => {
                let path = segment::path_of(dir, base);
                let (scan, stop) = segment::scan(&path)?;
                if let Some(stop) = stop {
                    // Bytes past the last frame that checks were never acknowledged (the
                    // fsync after them did not return): cut them.
                    let len = fs::metadata(&path)?.len();
                    tracing::warn!(segment = %path.display(), kept = scan.valid_len, cut = len - scan.valid_len, why = ?stop, "embedded log: cutting an unacknowledged tail");
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(scan.valid_len)?;
                    f.sync_all()?;
                }
                (base, scan)
            }
            None => {
                File::create_new(segment::path_of(dir, FIRST_OFFSET))?.sync_all()?;
                segment::sync_dir(dir)?;
                (FIRST_OFFSET, segment::Scan::default())
            }
        };
        let file = OpenOptions::new().write(true).open(segment::path_of(dir, base))?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            _lock: lock,
            file,
            base,
            len: scan.valid_len,
            next: scan.next.unwrap_or(base),
            first_ts: scan.first_ts,
            last_ts: scan.last_ts.unwrap_or(i64::MIN),
            buf: Vec::new(),
        })
    }

    /// Closes the newest segment and starts the next one (no-op when it is empty).
    fn roll(&mut self) -> io::Result<()> {
        if self.next == self.base {
            return Ok(());
        }
        let file = File::create_new(segment::path_of(&self.dir, self.next))?;
        file.sync_all()?;
        segment::sync_dir(&self.dir)?;
        self.file = file;
        self.base = self.next;
        self.len = 0;
        self.first_ts = None;
        Ok(())
    }

    /// Writes the records of every append in `pending` with one write and one fsync; each
    /// append's positions, or its error (a record too large fails only its own request).
    fn append(&mut self, pending: &[&[LogRecord]]) -> io::Result<Vec<Result<Vec<Position>, LogError>>> {
        let now = chrono::Utc::now().timestamp_millis().max(self.last_ts);
        let full = self.len >= self.config.segment_bytes;
        let old = self.first_ts.is_some_and(|t| now - t >= self.config.segment_age.as_millis() as i64);
        if full || old {
            self.roll()?;
        }
        self.buf.clear();
        let mut next = self.next;
        let mut results = Vec::with_capacity(pending.len());
        for records in pending {
            let (mark, first) = (self.buf.len(), next);
            let encoded: Result<(), String> = records
                .iter()
                .enumerate()
                .try_for_each(|(i, r)| segment::encode(&mut self.buf, first + i as i64, now, r));
            match encoded {
                Ok(()) => {
                    next += records.len() as i64;
                    results.push(Ok((first..next).map(|offset| Position { partition: 0, offset }).collect()));
                }
                Err(e) => {
                    self.buf.truncate(mark);
                    results.push(Err(LogError::Other(e)));
                }
            }
        }
        if self.buf.is_empty() {
            return Ok(results);
        }
        let written = self.file.write_all_at(&self.buf, self.len).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave no partial frame behind for the next write to follow.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.next = next;
        self.first_ts.get_or_insert(now);
        self.last_ts = now;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(results)
    }

    fn truncate(&mut self, before_ms: i64) -> io::Result<u64> {
        if self.next > self.base && self.last_ts < before_ms {
            self.roll()?;
        }
        delete_closed(&self.dir, before_ms)
    }

    fn run(mut self, rx: mpsc::Receiver<Op>, shared: &Shared, queued: &AtomicUsize, max_records: usize) {
        let mut pending: Vec<Op> = Vec::new();
        let linger = self.config.commit_linger;
        while let Ok(first) = rx.recv() {
            let arrived = Instant::now();
            pending.push(first);
            let count = |op: &Op| match op {
                Op::Append { records, .. } => records.len(),
                Op::Truncate { .. } => 0,
            };
            let mut records = count(&pending[0]);
            // Group commit: take everything already waiting, up to the batch bound; under
            // concurrent load, a small group waits up to `linger` for more.
            while records < max_records {
                let op = match rx.try_recv() {
                    Ok(op) => op,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        let left = (arrived + linger).saturating_duration_since(Instant::now());
                        // Only requests that arrived together are worth waiting for.
                        if pending.len() < 2 || records >= LINGER_RECORDS || left.is_zero() {
                            break;
                        }
                        // Asleep, not waiting on the channel: a receiver blocked in
                        // `recv_timeout` is woken by every send, a futex wake and two context
                        // switches per request (40 % of the server's switches under the burst,
                        // `perf record -e context-switches`); asleep, senders only queue.
                        std::thread::sleep(left);
                        continue;
                    }
                };
                records += count(&op);
                pending.push(op);
            }
            let started = Instant::now();
            let appends: Vec<&[LogRecord]> = pending
                .iter()
                .filter_map(|op| match op {
                    Op::Append { records, .. } => Some(records.as_slice()),
                    Op::Truncate { .. } => None,
                })
                .collect();
            let requests = appends.len();
            let result = self.append(&appends);
            metrics::histogram!("daybook_log_group_commit_records").record(records as f64);
            metrics::histogram!("daybook_log_group_commit_requests").record(requests as f64);
            metrics::histogram!("daybook_log_commit_seconds").record(started.elapsed().as_secs_f64());
            let mut results = match result {
                Ok(results) => {
                    shared.head.send_replace(self.next);
                    results.into_iter()
                }
                Err(e) => {
                    tracing::error!(error = %e, "embedded log write failed");
                    metrics::counter!("daybook_log_commit_errors_total").increment(1);
                    vec![Err(unavailable(&e)); requests].into_iter()
                }
            };
            for op in pending.drain(..) {
                match op {
                    Op::Append { records, reply } => {
                        queued.fetch_sub(records.len(), Ordering::Relaxed);
                        let _ = reply.send(results.next().expect("one result per append"));
                    }
                    Op::Truncate { before_ms, reply } => {
                        let _ = reply.send(self.truncate(before_ms).map_err(unavailable));
                    }
                }
            }
            metrics::gauge!("daybook_log_queue_records").set(queued.load(Ordering::Relaxed) as f64);
        }
    }
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
        if let Err(e) = self.send(Op::Append { records, reply }).await {
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

/// Where a reader is: a segment and a reader in it.
#[derive(Debug)]
struct Cursor {
    base: i64,
    reader: Reader,
}

/// A reader of the embedded log. One partition, so a group has one useful member.
#[derive(Debug)]
struct EmbeddedConsumer {
    shared: Arc<Shared>,
    head: watch::Receiver<i64>,
    group: String,
    /// The next offset to hand out.
    next: i64,
    /// `None` until the first read (and while a read has it).
    cursor: Option<Cursor>,
}

/// Opens a cursor at the first record at or after `next` (the oldest record left, when
/// `next` was truncated away); `None` when the log has no segment yet.
fn seek(dir: &Path, next: i64) -> io::Result<Option<Cursor>> {
    let bases = segment::list(dir)?;
    let Some(&base) = bases.iter().rev().find(|&&b| b <= next).or(bases.first()) else { return Ok(None) };
    let mut reader = Reader::open(&segment::path_of(dir, base), 0)?;
    loop {
        let at = reader.pos;
        match reader.next_frame()? {
            Ok(f) if f.consumed.position.offset < next => {}
            Ok(_) | Err(_) => {
                reader.pos = at;
                return Ok(Some(Cursor { base, reader }));
            }
        }
    }
}

/// Reads up to `max` records from `next` on, stopping before `bound` (the durable head of
/// this process's writer) when given.
fn read(
    dir: &Path,
    cursor: Option<Cursor>,
    next: i64,
    max: usize,
    bound: Option<i64>,
) -> io::Result<(Option<Cursor>, Vec<Consumed>)> {
    let mut cursor = match cursor {
        Some(c) => c,
        None => match seek(dir, next)? {
            Some(c) => c,
            None => return Ok((None, Vec::new())),
        },
    };
    let mut out = Vec::new();
    while out.len() < max {
        let at = cursor.reader.pos;
        match cursor.reader.next_frame()? {
            Ok(frame) => {
                let offset = frame.consumed.position.offset;
                if bound.is_some_and(|b| offset >= b) {
                    cursor.reader.pos = at;
                    break;
                }
                if offset >= next {
                    out.push(frame.consumed);
                }
            }
            Err(stop) => {
                cursor.reader.pos = at;
                // The end of this segment so far. A newer segment means this one is closed:
                // go on there. (In the writer's process, only when the head says there is
                // more; elsewhere, look every time.)
                if bound.is_some_and(|b| out.last().map_or(next, |c| c.position.offset + 1) >= b) {
                    break;
                }
                let newer = segment::list(dir)?.into_iter().find(|&b| b > cursor.base);
                match (newer, stop) {
                    (Some(base), Stop::Incomplete) => {
                        cursor = Cursor { base, reader: Reader::open(&segment::path_of(dir, base), 0)? };
                    }
                    (Some(_), Stop::Corrupt(why)) => {
                        let path = segment::path_of(dir, cursor.base);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display())));
                    }
                    // The newest segment: a frame still being written (by another process).
                    (None, _) => break,
                }
            }
        }
    }
    Ok((Some(cursor), out))
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let bound = self.shared.writing.load(Ordering::Acquire).then(|| *self.head.borrow_and_update());
            let (dir, cursor, next) = (self.shared.dir.clone(), self.cursor.take(), self.next);
            let (cursor, batch) = blocking(move || read(&dir, cursor, next, max_records.max(1), bound)).await?;
            self.cursor = cursor;
            if let Some(last) = batch.last() {
                self.next = last.position.offset + 1;
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Woken at once by appends of this process; the tick also sees appends made by
            // another process on the same directory.
            let tick = (now + READER_TICK).min(deadline);
            let _ = tokio::time::timeout_at(tick, self.head.changed()).await;
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        let Some(next) = positions.iter().filter(|p| p.partition == 0).map(|p| p.offset).max() else {
            return Ok(());
        };
        let (dir, group) = (self.shared.groups_dir(), self.group.clone());
        let now = chrono::Utc::now().timestamp_millis();
        blocking(move || groups::write(&dir, &group, next, now)).await
    }

    /// The embedded log has one partition, and every member of a group reads all of it.
    fn owns(&self, partition: i32) -> bool {
        partition == 0
    }

    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        let shared = self.shared.clone();
        let head = blocking(move || shared.head()).await?;
        Ok(vec![(0, (head - self.next).max(0))])
    }
}

#[cfg(test)]
mod tests {
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
    /// rolls to a new segment, and leaves a torn frame that the next writer cuts.
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
        assert_eq!(reader.head().await.unwrap(), FIRST_OFFSET + appended + 2);
        writer.shutdown().await.unwrap();
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
