//! Continuous shipping (`run --replicate-to DEST`): every `--replicate-every` the log's
//! records since the last shipped offset, the objects the embedded S3 endpoint stored since,
//! and the secrets files when they changed go to each repository, as pieces of this process's
//! generation (layout and reading back: `wal.rs`). Between backups a repository then holds
//! everything but the last interval, so a lost disk costs seconds of reports, not an hour.
//!
//! The shipper is a reader of the data directory like a backup: it reads frames only through
//! the log's own format (`infra::embedded_log::files`) and never past the durable head the
//! writer published. Each repository has its own thread (and, for S3, its own runtime): one
//! that is down, full or slow holds back only its own shipping; the service never waits for
//! it. A piece that cannot be stored is read again and retried at the next tick; nothing is
//! skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use infra::embedded_log::files as logfiles;
use seams::metric::{Kind, Metric, Unit};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::crypto::KeyRing;
use super::dest::{self, Dest, S3Options};
use super::manifest::Manifest;
use super::packs;
use super::stored::read_manifest;
use super::wal::{self, Generation};
use super::SECRETS;

pub const REPLICA_SHIPPED_OFFSET: Metric = Metric {
    name: "daybook_replica_shipped_offset",
    kind: Kind::Gauge,
    unit: None,
    labels: &["repo"],
    help: "The log offset up to which (exclusive) records are stored in the repository by `run --replicate-to`.",
};

pub const REPLICA_LAG_SECONDS: Metric = Metric {
    name: "daybook_replica_lag_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "Age of the oldest durable log record not yet stored in the repository (0 when it holds everything): what losing the disk now would cost. The DaybookReplicationLagging alert watches it.",
};

pub const REPLICA_SHIP_DELAY_SECONDS: Metric = Metric {
    name: "daybook_replica_ship_delay_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "For each log piece stored, the time from its oldest record's append to the piece being stored: the recovery point of those records.",
};

pub const REPLICA_LAST_SUCCESS_TIMESTAMP_SECONDS: Metric = Metric {
    name: "daybook_replica_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "Unix time of the last shipping round that stored everything due in the repository.",
};

pub const REPLICA_FAILURES_TOTAL: Metric = Metric {
    name: "daybook_replica_failures_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["repo", "what"],
    help: "Shipping rounds that failed, by what could not be stored (start, log, objects, secrets, journal); retried at the next round.",
};

pub const REPLICA_BYTES_TOTAL: Metric = Metric {
    name: "daybook_replica_bytes_total",
    kind: Kind::Counter,
    unit: Some(Unit::Bytes),
    labels: &["repo", "what"],
    help: "Bytes stored in the repository by shipping (compressed, sealed), by what (log, objects, secrets).",
};

/// Most frame bytes in one log piece (a shipper that fell behind catches up in several).
const MAX_PIECE_BYTES: usize = 64 << 20;
/// Most object bytes in one pack.
const MAX_PACK_BYTES: u64 = 256 << 20;
/// Objects stored this long before a generation's base backup are shipped again by it (clock
/// steps, an mtime set by the writer before the backup walked).
const OBJECT_SLACK: Duration = Duration::from_secs(60);
/// Object keys the endpoint may report before a shipper reads them; past it, the shipper walks
/// the objects directory instead.
pub const FEED_CAPACITY: usize = 65_536;

/// One repository to ship to.
#[derive(Debug, Clone)]
pub struct Replica {
    /// A directory or `s3://BUCKET/PREFIX`.
    pub to: String,
    pub every: Duration,
    pub key_file: Option<PathBuf>,
    pub s3: S3Options,
}

/// The paths (under `objects/`) the embedded S3 endpoint stored, as it stores them.
pub type ObjectFeed = broadcast::Sender<String>;

/// A feed for [`Shipper::start`].
pub fn object_feed() -> ObjectFeed {
    broadcast::channel(FEED_CAPACITY).0
}

/// A running shipper (its thread).
#[derive(Debug)]
pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    repo: String,
}

impl Shipper {
    /// Starts shipping `data_dir` to `replica.to`, on a thread of its own.
    pub fn start(replica: Replica, data_dir: PathBuf, feed: Option<&ObjectFeed>) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let feed = feed.map(broadcast::Sender::subscribe);
        let repo = super::repo_label(&replica.to);
        let (s, r) = (stop.clone(), repo.clone());
        let thread = std::thread::Builder::new()
            .name("daybook-ship".into())
            .spawn(move || run(replica, data_dir, feed, &s, &r))
            .context("cannot start the shipping thread")?;
        Ok(Self { stop, thread, repo })
    }

    /// Ships what is durable one last time and stops (the log is shut down first, so that
    /// this round holds everything acknowledged). A repository that hangs does not hold the
    /// process: after `STOP_WAIT` the thread is left to the process's exit, and the
    /// repository misses what that round would have stored (logged).
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        let deadline = Instant::now() + STOP_WAIT;
        while !self.thread.is_finished() {
            if Instant::now() >= deadline {
                tracing::error!(repo = %self.repo, "the last shipping round did not finish within {STOP_WAIT:?}; stopping without it");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.join().is_err() {
            tracing::error!(repo = %self.repo, "the shipping thread panicked");
        }
    }
}

/// The shipping threads' nice value.
const SHIPPER_NICE: i32 = 5;

/// How long stopping waits for the last round.
const STOP_WAIT: Duration = Duration::from_secs(if cfg!(test) { 2 } else { 15 });

fn run(replica: Replica, data_dir: PathBuf, feed: Option<broadcast::Receiver<String>>, stop: &AtomicBool, repo: &str) {
    tracing::info!(repo, every = ?replica.every, "shipping the log, objects and secrets");
    // Below the services: under a burst, accepting reports comes first, and a round that
    // waits a little longer for the CPU only widens the window by as much (on Linux the
    // thread's I/O priority follows its nice value).
    crate::priority::lower_this_thread(SHIPPER_NICE);
    let mut state: Option<State> = None;
    let mut feed = feed;
    loop {
        let last_round = stop.load(Ordering::SeqCst);
        let started = Instant::now();
        if state.is_none() {
            match State::start(&replica, &data_dir, feed.take(), repo) {
                Ok(s) => state = Some(s),
                Err((e, f)) => {
                    feed = f;
                    metrics::counter!(REPLICA_FAILURES_TOTAL.name, "repo" => repo.to_owned(), "what" => "start")
                        .increment(1);
                    tracing::error!(repo, error = %format!("{e:#}"), "cannot start shipping; retrying");
                }
            }
        }
        if let Some(s) = &mut state {
            match s.round() {
                Ok(()) => {}
                Err(Restart(why)) => {
                    tracing::warn!(repo, why, "starting a new generation");
                    feed = state.take().and_then(|s| s.feed);
                }
            }
        }
        if last_round {
            return;
        }
        // Sleeps the rest of the interval; `stop` unparks.
        let left = replica.every.saturating_sub(started.elapsed());
        let until = Instant::now() + left;
        while !stop.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
        }
    }
}

/// Why a generation cannot go on (its log moved under it): the next round starts a new one.
struct Restart(String);

struct State {
    dest: Box<dyn Dest>,
    key: Option<KeyRing>,
    repo: String,
    data_dir: PathBuf,
    log_dir: PathBuf,
    generation: String,
    /// The next offset to ship.
    shipped: i64,
    /// The last record shipped.
    prev: Option<(i64, u32)>,
    /// Where reading goes on: a segment's base and a byte position in it.
    cursor: Option<(i64, u64)>,
    seq: u64,
    feed: Option<broadcast::Receiver<String>>,
    /// Objects to ship (paths under `objects/`).
    objects: BTreeSet<String>,
    /// Walk `objects/` for files modified since then (start, or a feed that overflowed).
    walk_since: Option<SystemTime>,
    /// The secrets as last shipped.
    secrets: Option<Vec<u8>>,
    /// The erasure journal's entries in the repository, once listed.
    journal: Option<BTreeSet<String>>,
    /// The first offset of this generation, and whether a backup in the repository ends at or
    /// before it (else, until one does, the repository cannot restore it: see `round`).
    start: i64,
    based: bool,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl State {
    /// Opens the repository and begins a generation: from the end of the newest backup in it
    /// when that backup is of this log and the log still holds what follows (so the repository
    /// is whole from that backup on), else from the durable head (whole once the next backup,
    /// taken at start, completes). On failure the feed is handed back for the next attempt.
    #[allow(clippy::result_large_err)]
    fn start(
        replica: &Replica,
        data_dir: &Path,
        feed: Option<broadcast::Receiver<String>>,
        repo: &str,
    ) -> Result<Self, (anyhow::Error, Option<broadcast::Receiver<String>>)> {
        match Self::begin(replica, data_dir, repo) {
            Ok(s) => Ok(Self { feed, ..s }),
            Err(e) => Err((e, feed)),
        }
    }

    fn begin(replica: &Replica, data_dir: &Path, repo: &str) -> anyhow::Result<Self> {
        let key = replica.key_file.as_deref().map(KeyRing::from_file).transpose()?;
        let dest = dest::open(&replica.to, &replica.s3, true)?;
        let log_dir = data_dir.join("log");
        let head = logfiles::durable_head(&log_dir)?;
        let (start, prev, based_on, walk_since) = match base_backup(dest.as_ref(), key.as_ref(), &log_dir)? {
            Some(Base { manifest: m, last }) => {
                let created = chrono::DateTime::parse_from_rfc3339(&m.created_at)
                    .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
                    .unwrap_or_else(|_| SystemTime::now());
                let since =
                    created.checked_sub(OBJECT_SLACK + Duration::from_secs_f64(m.seconds)).unwrap_or(UNIX_EPOCH);
                (m.log.next, last, Some(m.id.clone()), Some(since))
            }
            None => (head, logfiles::last_before(&log_dir, head)?, None, None),
        };
        let g = Generation {
            format: 1,
            id: wal::new_generation_id(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            host: fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned(),
            pid: std::process::id(),
            data_dir: data_dir.display().to_string(),
            start,
            based_on,
        };
        wal::put_generation(dest.as_ref(), key.as_ref(), &g)
            .with_context(|| format!("cannot store {} in {}", wal::generation_path(&g.id), dest.describe()))?;
        tracing::info!(repo, generation = %g.id, start = g.start, based_on = ?g.based_on, "shipping generation started");
        Ok(Self {
            dest,
            key,
            repo: repo.to_owned(),
            data_dir: data_dir.to_owned(),
            log_dir,
            start: g.start,
            based: g.based_on.is_some(),
            generation: g.id,
            shipped: g.start,
            prev,
            cursor: None,
            seq: 0,
            feed: None,
            objects: BTreeSet::new(),
            walk_since,
            secrets: None,
            journal: None,
        })
    }

    fn failed(&self, what: &'static str, e: &anyhow::Error) {
        metrics::counter!(REPLICA_FAILURES_TOTAL.name, "repo" => self.repo.clone(), "what" => what).increment(1);
        tracing::warn!(repo = %self.repo, what, error = %format!("{e:#}"), "shipping failed; retrying at the next round");
    }

    /// One round: the log, then the objects, the secrets, the erasure journal.
    fn round(&mut self) -> Result<(), Restart> {
        if !self.based {
            // Started at the log's head, with no backup of this log in the repository: the
            // first backup there (taken at start) may have read the log before this generation
            // began, leaving a gap no restore could cross. Once it exists, ship from its end.
            match base_backup(self.dest.as_ref(), self.key.as_ref(), &self.log_dir) {
                Ok(Some(Base { manifest: m, .. })) if m.log.next < self.start => {
                    return Err(Restart(format!(
                        "backup {} ends at offset {}, before this generation's start {}",
                        m.id, m.log.next, self.start
                    )))
                }
                Ok(Some(_)) => self.based = true,
                Ok(None) => {}
                Err(e) => self.failed("start", &e),
            }
        }
        let mut whole = true;
        match self.ship_log() {
            Ok(()) => {}
            Err(e) => {
                if let Some(r) = e.downcast_ref::<super::BackupError>() {
                    if matches!(r, super::BackupError::LogMoved { .. }) {
                        return Err(Restart(format!("{e:#}")));
                    }
                }
                self.failed("log", &e);
                whole = false;
            }
        }
        if let Err(e) = self.ship_objects() {
            self.failed("objects", &e);
            whole = false;
        }
        if let Err(e) = self.ship_secrets() {
            self.failed("secrets", &e);
            whole = false;
        }
        if let Err(e) = super::journal::record(self.dest.as_ref(), self.key.as_ref(), &self.data_dir, &mut self.journal)
        {
            self.failed("journal", &e);
            whole = false;
        }
        if whole {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
            metrics::gauge!(REPLICA_LAST_SUCCESS_TIMESTAMP_SECONDS.name, "repo" => self.repo.clone()).set(now);
        }
        Ok(())
    }

    fn ship_log(&mut self) -> anyhow::Result<()> {
        let repo = self.repo.clone();
        loop {
            let head = logfiles::durable_head(&self.log_dir)?;
            if self.shipped >= head {
                metrics::gauge!(REPLICA_LAG_SECONDS.name, "repo" => repo.clone()).set(0.0);
                return Ok(());
            }
            let read = read_frames(&self.log_dir, self.cursor, self.shipped, head, MAX_PIECE_BYTES)?;
            let Some(first_ts) = read.first_ts else {
                // Only offsets a failed commit burned: the next piece covers them.
                return Ok(());
            };
            let lag = (now_ms() - first_ts).max(0) as f64 / 1000.0;
            metrics::gauge!(REPLICA_LAG_SECONDS.name, "repo" => repo.clone()).set(lag);
            let (last, crc) = read.last.expect("frames were read");
            let ms = now_ms();
            let path = wal::log_piece_path(&self.generation, self.shipped, read.next, last, crc, ms);
            let stored = wal::encode(self.key.as_ref(), &path, &wal::piece_bytes(self.prev, &read.frames))?;
            self.dest
                .put_path(&path, &stored)
                .with_context(|| format!("cannot store {path} in {}", self.dest.describe()))?;
            metrics::counter!(REPLICA_BYTES_TOTAL.name, "repo" => repo.clone(), "what" => "log")
                .increment(stored.len() as u64);
            metrics::histogram!(REPLICA_SHIP_DELAY_SECONDS.name, "repo" => repo.clone())
                .record((now_ms() - first_ts).max(0) as f64 / 1000.0);
            self.shipped = read.next;
            self.prev = Some((last, crc));
            self.cursor = Some(read.cursor);
            metrics::gauge!(REPLICA_SHIPPED_OFFSET.name, "repo" => repo.clone()).set(self.shipped as f64);
            if read.next >= head {
                metrics::gauge!(REPLICA_LAG_SECONDS.name, "repo" => repo.clone()).set(0.0);
                return Ok(());
            }
        }
    }

    fn ship_objects(&mut self) -> anyhow::Result<()> {
        if let Some(feed) = &mut self.feed {
            loop {
                match feed.try_recv() {
                    Ok(path) => {
                        self.objects.insert(path);
                    }
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        tracing::warn!(repo = %self.repo, missed = n, "more objects stored than the feed holds; walking the objects directory");
                        let since = SystemTime::now().checked_sub(OBJECT_SLACK).unwrap_or(UNIX_EPOCH);
                        self.walk_since = Some(self.walk_since.map_or(since, |s| s.min(since)));
                    }
                    Err(_) => break,
                }
            }
        }
        let root = self.data_dir.join("objects");
        if let Some(since) = self.walk_since {
            let mut all = Vec::new();
            packs::walk(&root, &root, &mut all)?;
            for (rel, meta) in all {
                if meta.modified().is_ok_and(|m| m >= since) {
                    self.objects.insert(rel);
                }
            }
            self.walk_since = None;
        }
        while !self.objects.is_empty() {
            let mut plain = Vec::new();
            let mut taken = Vec::new();
            let mut bytes = 0u64;
            for rel in &self.objects {
                if bytes >= MAX_PACK_BYTES {
                    break;
                }
                taken.push(rel.clone());
                let path = root.join(rel);
                let (data, meta) = match fs::read(&path).and_then(|d| Ok((d, fs::metadata(&path)?))) {
                    Ok(x) => x,
                    // Expired, deleted or replaced since.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
                };
                packs::pack_entry(&mut plain, rel, &data, packs::mtime_ns(&meta), 0o644)?;
                bytes += data.len() as u64;
            }
            if !plain.is_empty() {
                self.seq += 1;
                let path = wal::pack_path(&self.generation, "objects", now_ms(), self.seq);
                let stored = wal::encode(self.key.as_ref(), &path, &plain)?;
                self.dest
                    .put_path(&path, &stored)
                    .with_context(|| format!("cannot store {path} in {}", self.dest.describe()))?;
                metrics::counter!(REPLICA_BYTES_TOTAL.name, "repo" => self.repo.clone(), "what" => "objects")
                    .increment(stored.len() as u64);
            }
            for rel in taken {
                self.objects.remove(&rel);
            }
        }
        Ok(())
    }

    fn ship_secrets(&mut self) -> anyhow::Result<()> {
        let mut plain = Vec::new();
        for name in SECRETS {
            let path = self.data_dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => {
                    packs::pack_entry(&mut plain, name, &bytes, packs::mtime_ns(&fs::metadata(&path)?), 0o600)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            }
        }
        let digest = Sha256::digest(&plain).to_vec();
        if self.secrets.as_ref() == Some(&digest) {
            return Ok(());
        }
        self.seq += 1;
        let path = wal::pack_path(&self.generation, "secrets", now_ms(), self.seq);
        let stored = wal::encode(self.key.as_ref(), &path, &plain)?;
        self.dest
            .put_path(&path, &stored)
            .with_context(|| format!("cannot store {path} in {}", self.dest.describe()))?;
        metrics::counter!(REPLICA_BYTES_TOTAL.name, "repo" => self.repo.clone(), "what" => "secrets")
            .increment(stored.len() as u64);
        self.secrets = Some(digest);
        Ok(())
    }
}

/// A backup a generation can start from.
struct Base {
    manifest: Manifest,
    /// Its last record: offset and checksum.
    last: Option<(i64, u32)>,
}

/// The newest backup in `dest` if it is of this log and the log holds everything after it.
fn base_backup(dest: &dyn Dest, key: Option<&KeyRing>, log_dir: &Path) -> anyhow::Result<Option<Base>> {
    let ids = dest.ids().with_context(|| format!("cannot list {}", dest.describe()))?;
    let Some(newest) = ids.last() else { return Ok(None) };
    let m = match read_manifest(dest, newest, key) {
        Ok(m) => m.manifest,
        Err(e) => {
            tracing::warn!(backup = %newest, error = %format!("{e:#}"), "the newest backup cannot be read; shipping from the log's head");
            return Ok(None);
        }
    };
    let last = match (m.last_frame_at(), m.last_frame_crc) {
        (Some(at), Some(crc)) => {
            if logfiles::crc_at(log_dir, at)? != Some(crc) {
                return Ok(None);
            }
            Some((at, crc))
        }
        _ => None,
    };
    let oldest = logfiles::segments(log_dir)?.first().copied();
    if oldest.is_some_and(|o| o > m.log.next) {
        return Ok(None);
    }
    Ok(Some(Base { manifest: m, last }))
}

/// Frames read for one piece.
struct Read {
    frames: Vec<u8>,
    /// The offset the piece covers up to (exclusive).
    next: i64,
    last: Option<(i64, u32)>,
    first_ts: Option<i64>,
    /// Where the next read goes on.
    cursor: (i64, u64),
}

/// Reads the durable frames from offset `from` (below `head`), at most about `max` bytes,
/// from `cursor` when given (else from the segment that holds `from`).
fn read_frames(log_dir: &Path, cursor: Option<(i64, u64)>, from: i64, head: i64, max: usize) -> anyhow::Result<Read> {
    let bases = logfiles::segments(log_dir)?;
    let (mut base, mut pos) = match cursor {
        Some(c) => c,
        None => match bases.iter().rev().find(|&&b| b <= from) {
            Some(&b) => (b, 0),
            None => {
                let oldest = bases.first().copied().unwrap_or(head);
                return Err(super::BackupError::LogMoved { from, oldest }.into());
            }
        },
    };
    let mut out = Read { frames: Vec::new(), next: from, last: None, first_ts: None, cursor: (base, pos) };
    let mut buf = Vec::new();
    // The last record read, to check that the next segment starts right after it.
    let mut prev: Option<i64> = None;
    loop {
        let path = logfiles::segment_path(log_dir, base);
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(super::BackupError::LogMoved { from, oldest: bases.first().copied().unwrap_or(head) }.into())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        file.seek(SeekFrom::Start(pos))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let end = loop {
            match logfiles::read_raw(&mut r, &mut buf)? {
                Ok(Some(offset)) if offset >= head => break None,
                Ok(Some(offset)) => {
                    pos += buf.len() as u64;
                    prev = Some(offset);
                    if offset < from {
                        continue;
                    }
                    out.frames.extend_from_slice(&buf);
                    out.last = Some((offset, logfiles::raw_crc(&buf)));
                    out.first_ts.get_or_insert(logfiles::raw_ts(&buf));
                    out.cursor = (base, pos);
                    out.next = offset + 1;
                    if out.frames.len() >= max {
                        return Ok(out);
                    }
                }
                Ok(None) => break Some(None),
                // In the newest segment, a frame past the head being written; in an older one,
                // damage (checked below).
                Err(stop) => break Some(Some(stop)),
            }
        };
        let Some(stop) = end else {
            out.next = head;
            return Ok(out);
        };
        // The next segment, if the writer moved on.
        let bases = logfiles::segments(log_dir)?;
        match bases.iter().find(|&&b| b > base) {
            Some(&b) if b < head => {
                if let Some(stop) = stop {
                    anyhow::bail!(
                        "{}: the log is damaged: {stop} after offset {prev:?}, and segment {b} follows",
                        logfiles::segment_path(log_dir, base).display()
                    );
                }
                anyhow::ensure!(
                    prev.is_none_or(|p| p < b),
                    "{}: the log is damaged: segment {b} follows records up to {prev:?}",
                    log_dir.display()
                );
                base = b;
                pos = 0;
                out.cursor = (base, pos);
            }
            _ => {
                // Every durable record was read: the piece covers up to the head.
                out.next = head;
                return Ok(out);
            }
        }
    }
}

/// For every record shipped to `to` and still there (not folded into a backup): how long
/// after its append it was stored in the repository, in seconds, by offset. The recovery point
/// each record had; benchmarks read it.
pub fn ship_delays(to: &str, key: Option<&KeyRing>, s3: &S3Options) -> anyhow::Result<BTreeMap<i64, f64>> {
    let dest = dest::open(to, s3, false)?;
    let mut out = BTreeMap::new();
    for g in wal::list(dest.as_ref())? {
        for p in &g.log {
            let frames = wal::read_piece(dest.as_ref(), key, p)?;
            for &(offset, ts, _, _) in &frames.frames {
                out.entry(offset).or_insert(((p.ms - ts).max(0)) as f64 / 1000.0);
            }
        }
    }
    Ok(out)
}

/// After a backup into `dest` is complete: deletes the shipped pieces it makes redundant, so
/// that a day of one-second pieces never piles up. A log piece goes once the backup's log
/// holds it (its last record, with the same checksum, is in this data directory's log below
/// the backup's end); object and secrets packs of such a generation go once older than the
/// backup's start; a whole generation goes once it shipped nothing since the oldest backup in
/// `dest` began (it can extend no backup kept there). Never deletes what it cannot place;
/// problems are returned (and logged), never an error: the backup stands.
pub(super) fn fold(dest: &dyn Dest, log_dir: &Path, backup: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let shipped = match wal::list(dest) {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot list {}{}: {e}", dest.describe(), wal::WAL)],
    };
    if shipped.is_empty() {
        return problems;
    }
    let started_ms = chrono::DateTime::parse_from_rfc3339(&backup.created_at)
        .map(|t| t.timestamp_millis() - (backup.seconds * 1000.0) as i64)
        .unwrap_or(0);
    let oldest_backup_ms = dest
        .ids()
        .ok()
        .and_then(|ids| ids.first().cloned())
        .and_then(|id| chrono::NaiveDateTime::parse_from_str(&id, "%Y%m%dT%H%M%S%3fZ").ok())
        .map_or(0, |t| t.and_utc().timestamp_millis());
    let wanted: BTreeSet<i64> =
        shipped.iter().flat_map(|g| g.log.iter()).filter(|p| p.next <= backup.log.next).map(|p| p.last).collect();
    let local: BTreeMap<i64, u32> = match logfiles::crcs_at(log_dir, &wanted) {
        Ok(c) => c,
        Err(e) => return vec![format!("cannot read {}: {e}", log_dir.display())],
    };
    let delete = |path: &str, problems: &mut Vec<String>| {
        if let Err(e) = dest.delete_path(path) {
            problems.push(format!("cannot delete {path} from {}: {e}", dest.describe()));
        }
    };
    for g in &shipped {
        if g.newest_ms() < oldest_backup_ms && g.unknown.is_empty() {
            for path in g.paths() {
                delete(&path, &mut problems);
            }
            continue;
        }
        let mut ours = false;
        for p in g.log.iter().filter(|p| p.next <= backup.log.next) {
            if local.get(&p.last) == Some(&p.crc) {
                ours = true;
                delete(&p.path, &mut problems);
            }
        }
        if ours {
            for p in g.objects.iter().chain(&g.secrets).filter(|p| p.ms < started_ms) {
                delete(&p.path, &mut problems);
            }
        }
    }
    for p in &problems {
        tracing::warn!(problem = %p, "folding shipped pieces");
    }
    problems
}

#[cfg(test)]
mod tests;
