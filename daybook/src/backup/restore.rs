//! Restoring a backup (and the chain it continues) into a data directory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::Context;
use infra::embedded_log::files as logfiles;
use sha2::{Digest, Sha256};

use super::crypto::KeyRing;
use super::dest::{self, Dest, S3Options};
use super::journal;
use super::manifest::{FileEntry, LogRange};
use super::packs::{self, Indexed};
use super::stored::{self, chain, read_manifest, FileReader};
use super::wal::{self, End};
use super::{is_objects_pack, BackupError, SECRETS, SECRETS_FILE, STORE_FILE};
use crate::audit::{self, Action, Entry};
use crate::in_use::{self, AppendLock};

/// What `daybook restore` does.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub from: String,
    /// The backup to restore (default: the newest).
    pub at: Option<String>,
    pub data_dir: PathBuf,
    /// Restore into a directory that is not empty (what the backup holds is replaced).
    pub force: bool,
    pub key: Option<KeyRing>,
    pub s3: S3Options,
    /// A point in time: restore the log only up to it (and the store is then rebuilt from
    /// that log by the caller).
    pub until: Option<Until>,
}

/// Where a point-in-time restore cuts the log: on the log's own append time (which never
/// goes back from one record to the next) or at an offset. The restored log is a prefix of
/// the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// Records appended at or before this instant (Unix ms).
    Time(i64),
    /// Records at or below this offset.
    Offset(i64),
}

impl Until {
    fn keeps(self, offset: i64, ts_ms: i64) -> bool {
        match self {
            Self::Time(t) => ts_ms <= t,
            Self::Offset(n) => offset <= n,
        }
    }

    /// Whether an object stored at `mtime_ns` belongs before the cut (a cut at an offset
    /// keeps every object: objects carry no offset).
    fn keeps_object(self, mtime_ns: i64) -> bool {
        match self {
            Self::Time(t) => mtime_ns / 1_000_000 <= t,
            Self::Offset(_) => true,
        }
    }
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Restored {
    /// The repository restored from.
    pub repo: String,
    pub id: String,
    pub chain: Vec<String>,
    /// The shipped generation whose pieces continued the chain, and how many records came
    /// from them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<String>,
    pub shipped_records: u64,
    /// The point in time restored to, and the offset of the last record restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<Until>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_offset: Option<i64>,
    pub log: LogRange,
    pub records: u64,
    pub objects: u64,
    pub groups: BTreeMap<String, i64>,
    pub store_rows: BTreeMap<String, u64>,
    /// Erasures of the repository's journal applied again (appended to the restored log).
    pub erasures: u64,
}

/// Restores backup `at` (and the chain it continues) into an empty data directory, or with
/// `force` over one that no process uses. Appends the outcome to the target's audit trail
/// (see [`crate::audit`]).
pub fn restore(opts: &RestoreOptions) -> anyhow::Result<Restored> {
    let started = std::time::Instant::now();
    let result = restore_checked(opts);
    let mut entry = Entry::new(Action::Restore, Some(dest::repo_label(&opts.from)), started, &result);
    match &result {
        Ok(r) => {
            entry.ids.push(r.id.clone());
            entry.detail("chain", &r.chain);
            entry.detail("records", r.records);
        }
        Err(_) => entry.ids.extend(opts.at.clone()),
    }
    entry.detail("data_dir", opts.data_dir.display().to_string());
    audit::record(&opts.data_dir, entry);
    result
}

fn restore_checked(opts: &RestoreOptions) -> anyhow::Result<Restored> {
    let dest = dest::open(&opts.from, &opts.s3, false)?;
    let ids = dest.ids()?;
    // Never serve erased data again: every erasure of the journal is applied again (an entry
    // this build cannot read stops the restore).
    let erasures = journal::read(dest.as_ref(), opts.key.as_ref())?;
    let at = match (&opts.at, opts.until) {
        (Some(id), _) => {
            anyhow::ensure!(ids.contains(id), "no complete backup {id} in {}", dest.describe());
            id.clone()
        }
        (None, Some(until)) => before(dest.as_ref(), &ids, until, opts.key.as_ref())?,
        (None, None) => ids.last().cloned().with_context(|| format!("no complete backup in {}", dest.describe()))?,
    };
    // The shipped log continues the newest backup, or the one a point in time starts from.
    let extend = opts.at.is_none();
    let target = &opts.data_dir;
    // The audit trail alone (a restore that failed before writing anything) is no data.
    let busy = fs::read_dir(target).map(|d| d.flatten().any(|e| e.file_name() != crate::audit::FILE)).unwrap_or(false);
    // Held until the restore is done: nothing starts appending to the directory meanwhile.
    let mut _lock = None;
    if busy {
        anyhow::ensure!(
            opts.force,
            "{} is not empty: restore into a new directory (or --force to replace its log, store, objects and secrets)",
            target.display()
        );
        // A running daybook would go on writing into unlinked files: acknowledged reports lost.
        _lock = Some(AppendLock::take(target)?);
        in_use::ensure_unused(target, target)?;
        // Everything of the log but its lock, which this process holds.
        let log_dir = target.join("log");
        for entry in fs::read_dir(&log_dir)? {
            let entry = entry?;
            if entry.file_name() == "LOCK" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)?
            } else {
                fs::remove_file(&path)?
            }
        }
        match fs::remove_dir_all(target.join("objects")) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        for f in ["store.db", "store.db-wal", "store.db-shm"].iter().chain(SECRETS.iter()) {
            let _ = fs::remove_file(target.join(f));
        }
    }
    let how = How { until: opts.until, extend };
    let failed =
        || format!("restore of {at} into {} failed; that directory is incomplete, do not run on it", target.display());
    let mut restored = restore_into(dest.as_ref(), &ids, &at, target, opts.key.as_ref(), how).with_context(failed)?;
    drop(_lock);
    restored.erasures = journal::reapply(&erasures, target).with_context(failed)?;
    Ok(restored)
}

/// The newest backup that ends before `until` (every record in it is before the cut), else
/// the oldest one (the cut falls inside its chain).
fn before(dest: &dyn Dest, ids: &[String], until: Until, key: Option<&KeyRing>) -> anyhow::Result<String> {
    anyhow::ensure!(!ids.is_empty(), "no complete backup in {}", dest.describe());
    for id in ids.iter().rev() {
        let m = read_manifest(dest, id, key)?;
        let ends_before = match until {
            Until::Time(t) => {
                chrono::DateTime::parse_from_rfc3339(&m.created_at).is_ok_and(|c| c.timestamp_millis() <= t)
            }
            Until::Offset(n) => m.log.next <= n + 1,
        };
        if ends_before {
            return Ok(id.clone());
        }
    }
    Ok(ids[0].clone())
}

/// How [`restore_into`] restores.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct How {
    /// Cut the log there; no store (the caller rebuilds it from the restored log).
    pub until: Option<Until>,
    /// Go on with the shipped pieces that continue the chain.
    pub extend: bool,
}

/// Writes frames into one segment file, keeping those before the cut.
struct SegmentOut {
    out: BufWriter<fs::File>,
    until: Option<Until>,
    /// The last record written.
    last: Option<(i64, u32)>,
    records: u64,
    /// A record past the cut was met: nothing after it is restored.
    cut: bool,
}

impl SegmentOut {
    fn create(path: &Path, until: Option<Until>) -> io::Result<Self> {
        Ok(Self { out: BufWriter::new(fs::File::create(path)?), until, last: None, records: 0, cut: false })
    }

    /// Writes the frame `buf` unless the cut is past; whether it was written.
    fn frame(&mut self, buf: &[u8]) -> io::Result<bool> {
        let offset = logfiles::raw_offset(buf);
        if self.cut || self.until.is_some_and(|u| !u.keeps(offset, logfiles::raw_ts(buf))) {
            self.cut = true;
            return Ok(false);
        }
        io::Write::write_all(&mut self.out, buf)?;
        self.last = Some((offset, logfiles::raw_crc(buf)));
        self.records += 1;
        Ok(true)
    }

    fn finish(self) -> io::Result<()> {
        self.out.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}

pub(super) fn restore_into(
    dest: &dyn Dest,
    ids: &[String],
    at: &str,
    target: &Path,
    key: Option<&KeyRing>,
    how: How,
) -> anyhow::Result<Restored> {
    let chain = chain(dest, ids, at, key)?;
    let full = &chain[0];
    let last = chain.last().expect("one");
    let log_dir = target.join("log");
    fs::create_dir_all(log_dir.join("groups"))?;
    let mut restored = Restored {
        repo: dest.describe(),
        id: at.to_owned(),
        chain: chain.iter().map(|m| m.id.clone()).collect(),
        log: LogRange { first: full.log.first, next: last.log.next },
        store_rows: if how.until.is_some() { Default::default() } else { full.counts.store_rows.clone() },
        until: how.until,
        ..Restored::default()
    };

    // The log: each piece is a segment named by the start of the range it covers.
    let mut expect = None;
    let mut end = End { next: last.log.next, last: last.last_frame_at().zip(last.last_frame_crc) };
    let mut cut = false;
    let mut buf = Vec::new();
    'chain: for m in &chain {
        for entry in m.files.iter().filter(|f| f.log.is_some()) {
            let range = entry.log.expect("filtered");
            if expect.is_some_and(|e| e != range.first) {
                return Err(BackupError::Broken(format!(
                    "{}/{}: covers the log from {} where {expect:?} was due",
                    m.id, entry.name, range.first
                ))
                .into());
            }
            let path = logfiles::segment_path(&log_dir, range.first);
            let mut r = FileReader::open(dest, m, entry, key)?;
            match how.until {
                None => {
                    let mut out = BufWriter::new(fs::File::create(&path)?);
                    io::copy(&mut r, &mut out)?;
                    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    restored.records += entry.records.unwrap_or((range.next - range.first) as u64);
                }
                Some(until) => {
                    let mut out = SegmentOut::create(&path, Some(until))?;
                    let what = format!("{}/{}", m.id, entry.name);
                    loop {
                        match logfiles::read_raw(&mut r, &mut buf)? {
                            Ok(Some(_)) => {
                                out.frame(&buf)?;
                            }
                            Ok(None) => break,
                            Err(stop) => return Err(BackupError::Damaged { what, why: stop.to_string() }.into()),
                        }
                    }
                    restored.records += out.records;
                    if out.cut {
                        cut = true;
                        end = End { next: out.last.map_or(range.first, |(o, _)| o + 1), last: out.last };
                        if out.records == 0 {
                            // Nothing of this piece: no segment for it (the previous one ends
                            // where this would have begun).
                            drop(out);
                            fs::remove_file(&path)?;
                        } else {
                            out.finish()?;
                        }
                        r.finish()?;
                        break 'chain;
                    }
                    out.finish()?;
                }
            }
            r.finish()?;
            expect = Some(range.next);
        }
    }

    // The shipped pieces after the chain, from the newest generation that continues it.
    let mut extension = None;
    if how.extend && !cut {
        let shipped = wal::list(dest).with_context(|| format!("cannot list {}{}", dest.describe(), wal::WAL))?;
        if let Some(c) = wal::continuation(dest, key, &shipped, end)? {
            let path = logfiles::segment_path(&log_dir, end.next);
            let mut out = SegmentOut::create(&path, how.until)?;
            let mut covered = end.next;
            for p in &c.pieces {
                let frames = wal::read_piece(dest, key, p)?;
                for (offset, _, _, range) in &frames.frames {
                    if *offset >= covered && !out.frame(&frames.bytes[range.clone()])? {
                        break;
                    }
                }
                if out.cut {
                    break;
                }
                covered = p.next;
            }
            let next = if out.cut { out.last.map_or(end.next, |(o, _)| o + 1) } else { covered };
            restored.shipped_records = out.records;
            restored.records += out.records;
            if out.records == 0 {
                drop(out);
                fs::remove_file(&path)?;
            } else {
                end = End { next, last: out.last };
                out.finish()?;
            }
            end.next = end.next.max(next);
            restored.generation = Some(c.generation.clone());
            extension = Some(c);
        }
    }
    restored.log.next = end.next.max(1);
    restored.last_offset = end.last.map(|(o, _)| o);
    if restored.records == 0 && logfiles::segments(&log_dir)?.is_empty() {
        // An empty log that had already handed out offsets: start the next one where it was.
        fs::File::create(logfiles::segment_path(&log_dir, restored.log.next))?.sync_all()?;
    }
    // All of it is durable: readers in any process may read it, a writer goes on after it.
    logfiles::publish_head(&log_dir, restored.log.next)?;
    // Group positions of the full (consistent with its store), never past the restored log.
    for (group, next) in &full.groups {
        let next = (*next).min(restored.log.next);
        logfiles::set_group(&log_dir, group, next)?;
        restored.groups.insert(group.clone(), next);
    }

    // The store of the full. At a point in time it is rebuilt from the log, carrying over the
    // kept events this store holds (their reports may have left the log: `crate::rebuild`).
    if let Some(entry) = full.file(STORE_FILE) {
        let mut out = BufWriter::new(fs::File::create(target.join("store.db"))?);
        let mut r = FileReader::open(dest, full, entry, key)?;
        io::copy(&mut r, &mut out)?;
        r.finish()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }

    // Objects, oldest backup first (a later copy of a path wins), checked against the index.
    let keeps = |mtime: i64| how.until.is_none_or(|u| u.keeps_object(mtime));
    for m in &chain {
        let packs: Vec<&FileEntry> = m.files.iter().filter(|f| is_objects_pack(&f.name)).collect();
        if packs.is_empty() {
            continue;
        }
        let index: HashMap<String, Indexed> =
            packs::read_index(dest, m, key)?.into_iter().map(|o| (o.p.clone(), o)).collect();
        for entry in packs {
            let mut r = FileReader::open(dest, m, entry, key)?;
            let what = format!("{}/{}", m.id, entry.name);
            restored.objects += packs::unpack(&mut r, &target.join("objects"), |path, data, mtime| {
                let o = index.get(path).with_context(|| format!("{what}: {path} is not in the index"))?;
                anyhow::ensure!(
                    o.s == data.len() as u64 && o.h == stored::hex(&Sha256::digest(data)),
                    "{what}: {path} does not match its checksum"
                );
                Ok(keeps(mtime))
            })?;
            r.finish()?;
        }
    }
    // Then the objects shipped since (each pack checked whole by its seal or zstd checksum).
    if let Some(c) = &extension {
        for p in &c.objects {
            let stored =
                dest.get_path(&p.path).with_context(|| format!("cannot read {} from {}", p.path, dest.describe()))?;
            let plain = wal::decode(key, &p.path, &stored)?;
            restored.objects += packs::unpack(&mut &plain[..], &target.join("objects"), |_, _, mtime| Ok(keeps(mtime)))
                .with_context(|| format!("{}/{}", dest.describe(), p.path))?;
        }
    }

    // The newest secrets: the chain's, or shipped since it. Always the newest, even at a point
    // in time: a restore must never bring back a revoked device's tokens.
    if let Some(entry) = last.file(SECRETS_FILE) {
        let mut r = FileReader::open(dest, last, entry, key)?;
        packs::unpack(&mut r, target, |_, _, _| Ok(true))?;
        r.finish()?;
    }
    let chain_ms = chrono::DateTime::parse_from_rfc3339(&last.created_at).map_or(0, |t| t.timestamp_millis());
    let newest_shipped = extension.iter().flat_map(|c| &c.secrets).filter(|p| p.ms > chain_ms).max_by_key(|p| p.ms);
    if let Some(p) = newest_shipped {
        let stored =
            dest.get_path(&p.path).with_context(|| format!("cannot read {} from {}", p.path, dest.describe()))?;
        match wal::decode(key, &p.path, &stored) {
            Ok(plain) => {
                packs::unpack(&mut &plain[..], target, |_, _, _| Ok(true))
                    .with_context(|| format!("{}/{}", dest.describe(), p.path))?;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("the newest shipped secrets cannot be read")),
        }
    }
    fs::File::open(target)?.sync_all()?;
    Ok(restored)
}
