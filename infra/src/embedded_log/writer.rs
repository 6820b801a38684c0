//! The one appender of the embedded log: owns the newest segment, group-commits what the
//! requests queue (one `pwrite` and one fsync per group) and publishes the durable head.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use seams::metric::{Kind, Metric, Unit};
use seams::{LogError, LogRecord, Position};
use tokio::sync::oneshot;

use super::head::{self, Head};
use super::{segment, unavailable, EmbeddedLogConfig, Shared, FIRST_OFFSET, LINGER_RECORDS};

pub const LOG_QUEUE_RECORDS: Metric = Metric {
    name: "daybook_log_queue_records",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Embedded log: records queued for the writer thread, after each group commit (appends are refused \
           with 503 log_full when the queue is full).",
};

pub const LOG_COMMIT_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_log_commit_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Embedded log: group commits (one write and fsync) that failed; every append in them was answered 503 and their offsets are never used again.",
};

pub const LOG_COMMIT_SECONDS: Metric = Metric {
    name: "daybook_log_commit_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Embedded log: time of one group commit (one write of the group's frames and its fsync).",
};

pub const LOG_GROUP_COMMIT_RECORDS: Metric = Metric {
    name: "daybook_log_group_commit_records",
    kind: Kind::Histogram,
    unit: Some(Unit::Count),
    labels: &[],
    help: "Embedded log: records written by one group commit.",
};

pub const LOG_GROUP_COMMIT_REQUESTS: Metric = Metric {
    name: "daybook_log_group_commit_requests",
    kind: Kind::Histogram,
    unit: Some(Unit::Count),
    labels: &[],
    help: "Embedded log: append requests answered by one group commit.",
};

/// Room in the log's queue held by one append, from admission until the writer answered it
/// (or the append was dropped before it got there): given back when dropped, so a request
/// cancelled at any point (its deadline, a client gone while the writer starts) cannot leak it.
#[derive(Debug)]
pub(super) struct Reservation {
    queued: Arc<AtomicUsize>,
    records: usize,
}

impl Reservation {
    /// Reserves room for `records`, or `None` when that would pass `limit`.
    pub(super) fn take(queued: &Arc<AtomicUsize>, records: usize, limit: usize) -> Option<Self> {
        let before = queued.fetch_add(records, Ordering::Relaxed);
        let reservation = Self { queued: queued.clone(), records };
        (before + records <= limit).then_some(reservation)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.records, Ordering::Relaxed);
    }
}

pub(super) enum Op {
    Append { records: Vec<LogRecord>, reply: oneshot::Sender<Result<Vec<Position>, LogError>>, _room: Reservation },
    Truncate { before_ms: i64, reply: oneshot::Sender<Result<u64, LogError>> },
}

/// Deletes closed segments (never the newest) whose every record is older than `before_ms`;
/// returns how many offsets they covered. A segment's records are all older than the first
/// record of the segment after it (timestamps never go back: the writer stamps
/// `max(now, last)`).
pub(super) fn delete_closed(dir: &Path, before_ms: i64) -> io::Result<u64> {
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
pub(super) struct Writer {
    dir: PathBuf,
    config: EmbeddedLogConfig,
    /// Held for the writer's life: a second appending process fails to take it.
    _lock: File,
    file: File,
    base: i64,
    /// Bytes durably written to `file`.
    len: u64,
    /// The offset after the last durable record: the head readers may read up to.
    pub(super) end: i64,
    /// The offset the next record gets: `end`, or past it when a failed commit burned offsets
    /// (never handed out again, see [`head`]).
    next: i64,
    head: head::Publisher,
    first_ts: Option<i64>,
    last_ts: i64,
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn open(dir: &Path, config: EmbeddedLogConfig) -> io::Result<Self> {
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
        let end = scan.next.unwrap_or(base);
        let published = head::read(dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "embedded log: the published head is unreadable; taking it from the segments");
            None
        });
        if let Some(h) = published.filter(|h| h.durable > end) {
            tracing::error!(
                published = h.durable,
                found = end,
                "embedded log: records published as durable are missing from the newest segment"
            );
        }
        // Offsets a failed commit burned before a restart stay burned.
        let next = published.map_or(end, |h| h.reserved.max(end));
        let head = head::Publisher::open(dir)?;
        head.publish(Head { durable: end, reserved: next }, true)?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            _lock: lock,
            file,
            base,
            len: scan.valid_len,
            end,
            next,
            head,
            first_ts: scan.first_ts,
            last_ts: scan.last_ts.unwrap_or(i64::MIN),
            buf: Vec::new(),
        })
    }

    /// Closes the newest segment and starts the next one (no-op when it is empty). The new
    /// segment is named by the offset after the last record, so the names show no gap.
    fn roll(&mut self) -> io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let file = File::create_new(segment::path_of(&self.dir, self.end))?;
        file.sync_all()?;
        segment::sync_dir(&self.dir)?;
        self.file = file;
        self.base = self.end;
        self.len = 0;
        self.first_ts = None;
        Ok(())
    }

    /// Writes the records of every append in `pending` with one write and one fsync; each
    /// append's positions, or its error (a record too large fails only its own request).
    pub(super) fn append(&mut self, pending: &[&[LogRecord]]) -> io::Result<Vec<Result<Vec<Position>, LogError>>> {
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
            // Those offsets are burned: part of the group may be on disk (and, before the cut
            // below, readable), so no other record may ever carry them. The burn is fsync'd so
            // that it outlives a crash; no reader passes `end`, which stays.
            self.next = next;
            // Leave no partial frame behind for the next write to follow.
            if let Err(cut) = self.file.set_len(self.len) {
                tracing::error!(error = %cut, "embedded log: cannot cut a failed commit's bytes");
            }
            if let Err(burn) = self.head.publish(Head { durable: self.end, reserved: self.next }, true) {
                tracing::error!(error = %burn, "embedded log: cannot record burned offsets in HEAD");
            }
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.end = next;
        self.next = next;
        // Not fsync'd: a HEAD behind the segments only holds readers back until the next start.
        if let Err(e) = self.head.publish(Head { durable: next, reserved: next }, false) {
            tracing::error!(error = %e, "embedded log: cannot publish the durable head to other processes");
        }
        self.first_ts.get_or_insert(now);
        self.last_ts = now;
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(results)
    }

    fn truncate(&mut self, before_ms: i64) -> io::Result<u64> {
        if self.len > 0 && self.last_ts < before_ms {
            self.roll()?;
        }
        delete_closed(&self.dir, before_ms)
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Op>, shared: &Shared, queued: &AtomicUsize, max_records: usize) {
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
            metrics::histogram!(LOG_GROUP_COMMIT_RECORDS.name).record(records as f64);
            metrics::histogram!(LOG_GROUP_COMMIT_REQUESTS.name).record(requests as f64);
            metrics::histogram!(LOG_COMMIT_SECONDS.name).record(started.elapsed().as_secs_f64());
            let mut results = match result {
                Ok(results) => {
                    shared.head.send_replace(self.end);
                    results.into_iter()
                }
                Err(e) => {
                    tracing::error!(error = %e, "embedded log write failed");
                    metrics::counter!(LOG_COMMIT_ERRORS_TOTAL.name).increment(1);
                    vec![Err(unavailable(&e)); requests].into_iter()
                }
            };
            for op in pending.drain(..) {
                match op {
                    // Dropping the op gives its queue room back.
                    Op::Append { reply, .. } => {
                        let _ = reply.send(results.next().expect("one result per append"));
                    }
                    Op::Truncate { before_ms, reply } => {
                        let _ = reply.send(self.truncate(before_ms).map_err(unavailable));
                    }
                }
            }
            metrics::gauge!(LOG_QUEUE_RECORDS.name).set(queued.load(Ordering::Relaxed) as f64);
        }
    }
}
