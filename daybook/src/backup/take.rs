//! Taking a backup: full, differential or incremental, then pruning.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use infra::embedded_log::files as logfiles;
use sha2::{Digest, Sha256};

use super::crypto::{self, KeyRing};
use super::dest::{self, Dest, S3Options};
use super::manifest::{self, Counts, FileEntry, Kind, LogRange, Manifest, FORMAT, MANIFEST};
use super::packs::{self, Indexed};
use super::stored::{self, chain, read_manifest, write_file, Opened};
use super::{objects_pack, BackupError, OBJECTS_INDEX, OBJECTS_PACK_BYTES, SECRETS, SECRETS_FILE, STORE_FILE};
use crate::audit::{self, Action, Entry};

pub(crate) const BACKUP_PRUNE_PROBLEMS_TOTAL: seams::metric::Metric = seams::metric::Metric {
    name: "daybook_backup_prune_problems_total",
    kind: seams::metric::Kind::Counter,
    unit: None,
    labels: &["repo"],
    help: "Problems met while pruning old backups (--keep-full) after a complete backup: a backup that cannot be read (kept, never deleted) or cannot be deleted; the backup just taken stands.",
};

/// What `daybook backup` does.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub data_dir: PathBuf,
    /// A directory or `s3://BUCKET/PREFIX`.
    pub to: String,
    /// A full backup even when DEST already holds one.
    pub full: bool,
    /// A differential backup (everything since the chain's full) instead of an incremental.
    pub differential: bool,
    /// Seal with the first key; open the chain with any.
    pub key: Option<KeyRing>,
    /// Keep this many full backups (with the backups that depend on them); delete older ones
    /// that no kept backup needs.
    pub keep_full: Option<usize>,
    pub s3: S3Options,
}

/// A backup taken, and what went wrong after it was complete (pruning), which does not undo
/// it.
#[derive(Debug, Clone)]
pub struct Taken {
    pub manifest: Manifest,
    /// Backups pruning deleted.
    pub pruned: Vec<String>,
    /// Problems met while pruning (each also logged): backups it could not read (kept) or
    /// could not delete.
    pub prune_problems: Vec<String>,
}

/// When a scheduled backup is a full or a differential one rather than an incremental.
#[derive(Debug, Clone, Copy, Default)]
pub struct Due {
    /// A full backup when the chain's full is older than this.
    pub full_after: Option<Duration>,
    /// A differential when the chain's newest full or differential is older than this.
    pub differential_after: Option<Duration>,
}

/// Takes one backup of `opts.data_dir` into `opts.to`: full when asked, when DEST holds none,
/// or when the newest one cannot be continued; differential when asked; else incremental.
pub fn backup(opts: &BackupOptions) -> anyhow::Result<Taken> {
    backup_with(opts, Due::default())
}

/// As [`backup`]; also full or differential when `due` says so. Appends the backup, and each
/// backup pruning deleted, to the data directory's audit trail (see [`crate::audit`]).
pub fn backup_with(opts: &BackupOptions, due: Due) -> anyhow::Result<Taken> {
    let started = Instant::now();
    let result = backup_and_prune(opts, due, started);
    let repo = dest::repo_label(&opts.to);
    let mut entry = Entry::new(Action::Backup, Some(repo.clone()), started, &result);
    match &result {
        Ok(t) => {
            entry.ids.push(t.manifest.id.clone());
            entry.detail("kind", t.manifest.kind.as_str());
            entry.detail("parent", t.manifest.parent.clone());
            entry.detail("records", t.manifest.counts.records);
            entry.detail("stored_bytes", t.manifest.stored_bytes());
        }
        Err(_) => entry.detail("kind", requested(opts)),
    }
    audit::record(&opts.data_dir, entry);
    if let Ok(t) = &result {
        for id in &t.pruned {
            let mut e = Entry::new(Action::Prune, Some(repo.clone()), started, &Ok::<(), anyhow::Error>(()));
            e.ids.push(id.clone());
            e.detail("after", t.manifest.id.clone());
            audit::record(&opts.data_dir, e);
        }
        for (id, why) in &t.not_pruned {
            let mut e = Entry::new(Action::Prune, Some(repo.clone()), started, &Err::<(), _>(anyhow::anyhow!("{why}")));
            e.ids.push(id.clone());
            audit::record(&opts.data_dir, e);
        }
    }
    result.map(|t| Taken { manifest: t.manifest, pruned: t.pruned, prune_problems: t.prune_problems })
}

/// What a failed backup was asked to be (what it would have been is not known).
fn requested(opts: &BackupOptions) -> &'static str {
    if opts.full {
        "full"
    } else if opts.differential {
        "differential"
    } else {
        "any"
    }
}

/// [`Taken`], and the backups pruning could not delete (for the audit trail).
struct TakenPruned {
    manifest: Manifest,
    pruned: Vec<String>,
    not_pruned: Vec<(String, String)>,
    prune_problems: Vec<String>,
}

fn backup_and_prune(opts: &BackupOptions, due: Due, started: Instant) -> anyhow::Result<TakenPruned> {
    let log_dir = opts.data_dir.join("log");
    anyhow::ensure!(
        log_dir.is_dir(),
        "no embedded log at {} (a deployment on Kafka and ScyllaDB is backed up with their own tools: infra/README.md)",
        log_dir.display()
    );
    let dest = dest::open(&opts.to, &opts.s3, true)?;
    let ids = dest.ids().with_context(|| format!("cannot list {}", dest.describe()))?;
    let base = if opts.full { None } else { base_of(dest.as_ref(), &ids, opts, &log_dir, due)? };
    // The erasures applied so far, into the journal every restore applies again (before the
    // backup: a repository never holds a backup without the erasures known when it was taken).
    super::journal::record(dest.as_ref(), opts.key.as_ref(), &opts.data_dir, &mut None)?;
    let m = match take_one(opts, dest.as_ref(), &ids, base.as_ref(), started) {
        // Retention deleted records after the parent between the checks and the copy: a
        // full backup instead (an incremental with a hole would be refused by every restore).
        Err(e) if base.is_some() && matches!(BackupError::of(&e), Some(BackupError::LogMoved { .. })) => {
            tracing::warn!(error = %format!("{e:#}"), "taking a full backup instead");
            take_one(opts, dest.as_ref(), &ids, None, started)?
        }
        other => other?,
    };
    let mut pruned = match opts.keep_full {
        Some(keep) => prune(dest.as_ref(), keep.max(1), opts.key.as_ref(), &m.id),
        None => Pruned::default(),
    };
    // The shipped pieces this backup holds are redundant now.
    pruned.problems.extend(super::ship::fold(dest.as_ref(), &log_dir, &m));
    Ok(TakenPruned {
        manifest: m,
        pruned: pruned.deleted,
        not_pruned: pruned.not_deleted,
        prune_problems: pruned.problems,
    })
}

/// What the next backup builds on: the backups it continues (the whole chain for an
/// incremental, the full alone for a differential) and its kind.
pub(super) struct Base {
    chain: Vec<Opened>,
    kind: Kind,
}

/// Whether `created_at` (RFC 3339) is at least `after` ago.
fn older_than(created_at: &str, after: Duration) -> bool {
    let created = chrono::DateTime::parse_from_rfc3339(created_at).map(|t| t.with_timezone(&chrono::Utc));
    let age = created.map(|t| chrono::Utc::now() - t).unwrap_or_default();
    age.to_std().unwrap_or_default() >= after
}

/// What the next backup builds on: the newest complete backup's chain, if it is whole, opens
/// with the keys given and is of this log (`None`: take a full), and whether it is
/// continued (an incremental) or only its full (a differential: asked, or the chain's newest
/// full or differential is older than `due.differential_after`).
fn base_of(
    dest: &dyn Dest,
    ids: &[String],
    opts: &BackupOptions,
    log_dir: &Path,
    due: Due,
) -> anyhow::Result<Option<Base>> {
    let Some(mut c) = parent_chain(dest, ids, opts, log_dir, due.full_after)? else { return Ok(None) };
    let newest_base = c.iter().rev().find(|m| m.kind != Kind::Incremental).expect("a chain starts with a full");
    let differential =
        opts.differential || due.differential_after.is_some_and(|after| older_than(&newest_base.created_at, after));
    if differential {
        c.truncate(1);
        return Ok(Some(Base { chain: c, kind: Kind::Differential }));
    }
    Ok(Some(Base { chain: c, kind: Kind::Incremental }))
}

/// The chain the next backup continues: the newest complete backup's, if it is whole, opens
/// with the keys given and is of this log. `None`: take a full.
fn parent_chain(
    dest: &dyn Dest,
    ids: &[String],
    opts: &BackupOptions,
    log_dir: &Path,
    full_after: Option<Duration>,
) -> anyhow::Result<Option<Vec<Opened>>> {
    let Some(last) = ids.last() else { return Ok(None) };
    let c = match chain(dest, ids, last, opts.key.as_ref()) {
        Ok(c) => c,
        // A plain backup into an encrypted destination would mix them: the key file is missing.
        Err(e) if matches!(BackupError::of(&e), Some(BackupError::NeedsKey { .. })) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the newest backup cannot be continued; taking a full backup");
            return Ok(None);
        }
    };
    if full_after.is_some_and(|after| older_than(&c[0].created_at, after)) {
        return Ok(None);
    }
    let newest = c.last().expect("one");
    if let (Some(at), Some(crc)) = (newest.last_frame_at(), newest.last_frame_crc) {
        if logfiles::crc_at(log_dir, at)? != Some(crc) {
            tracing::warn!(backup = %newest.id, "the newest backup is not of this log (another data directory, or one restored from an older backup); taking a full backup");
            return Ok(None);
        }
    }
    // Whether the log still holds everything after it is checked by the copy itself
    // (`LogMoved`, then a full backup: see `backup_with`), where retention cannot race it.
    Ok(Some(c))
}

/// Whether the log still holds every record from `from` on: the segment that covers `from` is
/// still there (segment names leave no offset uncovered).
fn log_covers(log_dir: &Path, from: i64) -> Result<(), BackupError> {
    let bases = logfiles::segments(log_dir).map_err(|e| BackupError::Other(e.into()))?;
    match bases.first() {
        Some(&oldest) if oldest > from => Err(BackupError::LogMoved { from, oldest }),
        _ => Ok(()),
    }
}

/// Takes one backup (its id after every id in DEST) and cleans up after a failure.
fn take_one(
    opts: &BackupOptions,
    dest: &dyn Dest,
    ids: &[String],
    base: Option<&Base>,
    started: Instant,
) -> anyhow::Result<Manifest> {
    let now = chrono::Utc::now();
    let id = manifest::next_id(now, ids.last().map(String::as_str));
    if id != manifest::new_id(now) {
        tracing::warn!(newest = ?ids.last(), id, "the destination holds a backup named after this clock's time; this one is named after it");
    }
    let stage = dest.stage(&id).with_context(|| format!("cannot write into {}", dest.describe()))?;
    let result = take(opts, dest, &id, &stage, base, started);
    if result.is_err() {
        let _ = dest.delete(&id);
    }
    result
}

fn take(
    opts: &BackupOptions,
    dest: &dyn Dest,
    id: &str,
    stage: &Path,
    base: Option<&Base>,
    started: Instant,
) -> anyhow::Result<Manifest> {
    let data = &opts.data_dir;
    let log_dir = data.join("log");
    let key = opts.key.as_ref();
    let kind = base.map_or(Kind::Full, |b| b.kind);
    // The backups this one continues: its log starts where the last of them ends, its objects
    // are those their indexes do not hold.
    let parent = base.map(|b| b.chain.as_slice());
    let mut files = Vec::new();
    let mut counts = Counts::default();
    let put =
        |name: &str| dest.put(id, name).with_context(|| format!("cannot store {id}/{name} in {}", dest.describe()));

    // 1. Group positions, before the store snapshot: the store holds at least what they say.
    let groups =
        logfiles::groups(&log_dir).with_context(|| format!("cannot read the groups of {}", log_dir.display()))?;

    // 2. The store (full only): a consistent snapshot that does not block the writer.
    let store = data.join("store.db");
    if kind == Kind::Full && store.exists() {
        let snapshot = stage.join("store.db.snapshot");
        counts.store_rows = infra::embedded_store::files::snapshot(&store, &snapshot)
            .with_context(|| format!("cannot snapshot {}", store.display()))?;
        let mut src = fs::File::open(&snapshot)?;
        files.push(write_file(stage, id, STORE_FILE, key, |out| io::copy(&mut src, out).map(drop))?);
        fs::remove_file(&snapshot)?;
        put(STORE_FILE)?;
    }

    // 3. The log, after the groups and the store: it ends at or after both.
    let from = parent.map(|c| c.last().expect("one").log.next);
    let copied = copy_log(&log_dir, from, stage, id, key, dest)?;
    counts.records = copied.records;
    files.extend(copied.pieces);
    let (last_frame_offset, last_frame_crc) = match copied.last {
        Some((offset, crc)) => (Some(offset), Some(crc)),
        None => parent.map_or((None, None), |c| {
            let newest = c.last().expect("one");
            (newest.last_frame_at(), newest.last_frame_crc)
        }),
    };

    // 4. Objects new or changed since the backups it continues.
    let known = match parent {
        Some(c) => packs::known_objects(dest, c, key)?,
        None => HashMap::new(),
    };
    let root = data.join("objects");
    let mut all = Vec::new();
    packs::walk(&root, &root, &mut all)?;
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let changed: Vec<_> =
        all.into_iter().filter(|(rel, meta)| known.get(rel) != Some(&(meta.len(), packs::mtime_ns(meta)))).collect();
    if !changed.is_empty() {
        let mut index = Vec::new();
        let mut pending = changed.iter().peekable();
        let mut pack = 0;
        while pending.peek().is_some() {
            pack += 1;
            let name = objects_pack(pack);
            files.push(write_file(stage, id, &name, key, |out| {
                let mut bytes = 0u64;
                while bytes < OBJECTS_PACK_BYTES {
                    let Some((rel, meta)) = pending.next() else { break };
                    let data = match fs::read(root.join(rel)) {
                        Ok(d) => d,
                        // Expired or replaced since the listing.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    let m = packs::mtime_ns(meta);
                    packs::pack_entry(out, rel, &data, m, 0o644)?;
                    bytes += data.len() as u64;
                    index.push(Indexed {
                        p: rel.clone(),
                        s: data.len() as u64,
                        m,
                        h: stored::hex(&Sha256::digest(&data)),
                    });
                }
                Ok(())
            })?);
            put(&name)?;
        }
        counts.objects = index.len() as u64;
        counts.object_bytes = index.iter().map(|o| o.s).sum();
        files.push(write_file(stage, id, OBJECTS_INDEX, key, |out| {
            for o in &index {
                serde_json::to_writer(&mut *out, o)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })?);
        put(OBJECTS_INDEX)?;
    }

    // 5. The secrets.
    files.push(write_file(stage, id, SECRETS_FILE, key, |out| {
        for name in SECRETS {
            match fs::read(data.join(name)) {
                Ok(bytes) => {
                    packs::pack_entry(out, name, &bytes, packs::mtime_ns(&fs::metadata(data.join(name))?), 0o600)?
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })?);
    put(SECRETS_FILE)?;

    let m = Manifest {
        format: FORMAT,
        id: id.to_owned(),
        kind,
        parent: parent.map(|c| c.last().expect("one").id.clone()),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        daybook_version: env!("CARGO_PKG_VERSION").to_owned(),
        encrypted: key.is_some(),
        log: copied.range,
        last_frame_crc,
        last_frame_offset,
        groups,
        files,
        counts,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&m)?;
    let bytes = match key {
        Some(k) => crypto::seal_bytes(k.sealing(), &format!("{id}/{MANIFEST}"), &json)?,
        None => json,
    };
    dest.commit(id, &bytes).with_context(|| format!("cannot complete {id} in {}", dest.describe()))?;
    Ok(m)
}

/// What [`copy_log`] copied.
pub(super) struct Copied {
    pieces: Vec<FileEntry>,
    /// The offsets covered: from where the parent ended (a full: the oldest segment) to after
    /// the last durable record.
    range: LogRange,
    records: u64,
    /// The last record copied: its offset and checksum.
    last: Option<(i64, u32)>,
}

/// Copies the durable records from offset `from` on (a full backup: `None`, the whole log)
/// into log pieces, one per segment. Piece `i` covers the offsets from where piece `i - 1`
/// ended to where its segment ends (the next segment's name), so consecutive pieces, and
/// consecutive backups, cover consecutive ranges; a restore writes each as a segment named by
/// the start of its range. Reads frames only through the log's own format
/// ([`logfiles::read_raw`]) and never past its durable head.
pub(super) fn copy_log(
    log_dir: &Path,
    from: Option<i64>,
    stage: &Path,
    id: &str,
    key: Option<&KeyRing>,
    dest: &dyn Dest,
) -> anyhow::Result<Copied> {
    let head =
        logfiles::durable_head(log_dir).with_context(|| format!("cannot read the head of {}", log_dir.display()))?;
    let bases = logfiles::segments(log_dir).with_context(|| format!("cannot list {}", log_dir.display()))?;
    let from = match from {
        Some(from) => {
            log_covers(log_dir, from)?;
            from
        }
        None => bases.first().copied().unwrap_or(head),
    };
    let mut pieces = Vec::new();
    let mut cover = from;
    let mut records = 0u64;
    let mut last = None;
    let mut buf = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let end = bases.get(i + 1).copied();
        if end.is_some_and(|end| end <= cover) || base >= head {
            continue;
        }
        let path = logfiles::segment_path(log_dir, base);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            // Retention deleted it since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound && pieces.is_empty() && cover == from => {
                return Err(BackupError::LogMoved { from, oldest: end.unwrap_or(head) }.into());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let damaged = |why: String| BackupError::Damaged { what: path.display().to_string(), why };
        let name = format!("log-{cover:020}.seg.zst");
        let mut n = 0u64;
        let mut failure = None;
        let mut entry = write_file(stage, id, &name, key, |out| {
            let mut prev = None;
            loop {
                match logfiles::read_raw(&mut reader, &mut buf)? {
                    Ok(Some(offset)) if offset >= head => return Ok(()),
                    Ok(Some(offset)) if prev.is_some_and(|p| offset <= p) || offset < base => {
                        failure = Some(damaged(format!("offset {offset} after {prev:?}")));
                        return Ok(());
                    }
                    Ok(Some(offset)) => {
                        prev = Some(offset);
                        if offset < cover {
                            continue;
                        }
                        out.write_all(&buf)?;
                        last = Some((offset, logfiles::raw_crc(&buf)));
                        n += 1;
                    }
                    Ok(None) => return Ok(()),
                    // After the last durable record: a frame being written, or a failed
                    // commit's rest, which the writer cuts.
                    Err(_) if prev == Some(head - 1) => return Ok(()),
                    // Below the durable head every frame checks: this is damage.
                    Err(stop) => {
                        failure = Some(damaged(format!("{stop} after offset {prev:?}")));
                        return Ok(());
                    }
                }
            }
        })?;
        if let Some(f) = failure {
            return Err(anyhow::Error::from(f).context("the log is damaged"));
        }
        let next = match end {
            Some(end) if end <= head => end,
            // The newest segment (or the one the head lies in): after its last durable record.
            _ => last.map_or(cover, |(offset, _)| offset + 1).max(cover),
        };
        if n == 0 {
            // Nothing of this segment from `cover` on: the next piece takes its range over.
            let _ = fs::remove_file(stage.join(&name));
            continue;
        }
        records += n;
        entry.log = Some(LogRange { first: cover, next });
        entry.records = Some(n);
        dest.put(id, &name).with_context(|| format!("cannot store {id}/{name} in {}", dest.describe()))?;
        pieces.push(entry);
        cover = next;
    }
    Ok(Copied { pieces, range: LogRange { first: from.max(1), next: cover.max(1) }, records, last })
}

/// What [`prune`] did.
#[derive(Debug, Default)]
pub(super) struct Pruned {
    pub deleted: Vec<String>,
    /// Backups it meant to delete and could not, with why.
    pub not_deleted: Vec<(String, String)>,
    /// Every problem met (also logged): the backups above, and those it could not read.
    pub problems: Vec<String>,
}

/// Keeps the `keep` newest full backups, every backup after the oldest of them, and every
/// backup the chain of a kept one needs (a differential's full, an incremental's parents,
/// however old); deletes the rest (and incomplete backups older than `current`). Never
/// deletes a backup it cannot read (a damaged manifest, another key's): those are reported
/// and kept. Returns what it did and the problems met, logged, never an error: the backup just
/// written stands.
pub(super) fn prune(dest: &dyn Dest, keep: usize, keys: Option<&KeyRing>, current: &str) -> Pruned {
    let mut out = Pruned::default();
    let ids = match dest.ids() {
        Ok(ids) => ids,
        Err(e) => {
            out.problems.push(format!("cannot list {}: {e}", dest.describe()));
            return out;
        }
    };
    let mut fulls = Vec::new();
    let mut parents: HashMap<&str, Option<String>> = HashMap::new();
    let mut unreadable = Vec::new();
    for id in &ids {
        match read_manifest(dest, id, keys) {
            Ok(m) => {
                if m.kind == Kind::Full {
                    fulls.push(id.clone());
                }
                parents.insert(id, m.manifest.parent);
            }
            Err(e) => {
                out.problems.push(format!("backup {id} cannot be read, so it is kept: {e:#}"));
                unreadable.push(id.clone());
            }
        }
    }
    if fulls.len() > keep {
        let oldest_kept = &fulls[fulls.len() - keep];
        let mut needed: HashSet<&str> =
            ids.iter().filter(|id| *id >= oldest_kept || unreadable.contains(id)).map(String::as_str).collect();
        for id in ids.iter().filter(|id| *id >= oldest_kept) {
            let mut at = parents.get(id.as_str()).cloned().flatten();
            while let Some(parent) = at {
                let Some(known) = ids.iter().find(|i| **i == parent) else { break };
                if !needed.insert(known.as_str()) {
                    break;
                }
                at = parents.get(known.as_str()).cloned().flatten();
            }
        }
        for id in ids.iter().filter(|id| !needed.contains(id.as_str())) {
            match dest.delete(id) {
                Ok(()) => {
                    tracing::info!(backup = %id, "deleted (--keep-full)");
                    out.deleted.push(id.clone());
                }
                Err(e) => {
                    out.problems.push(format!("cannot delete backup {id}: {e}"));
                    out.not_deleted.push((id.clone(), e.to_string()));
                }
            }
        }
    }
    match dest.incomplete() {
        Ok(incomplete) => {
            for id in incomplete.iter().filter(|id| id.as_str() < current) {
                if let Err(e) = dest.delete(id) {
                    out.problems.push(format!("cannot delete the incomplete backup {id}: {e}"));
                }
            }
        }
        Err(e) => out.problems.push(format!("cannot list the incomplete backups of {}: {e}", dest.describe())),
    }
    for p in &out.problems {
        tracing::warn!(problem = %p, "pruning backups");
    }
    metrics::counter!(BACKUP_PRUNE_PROBLEMS_TOTAL.name, "repo" => dest.describe()).increment(out.problems.len() as u64);
    out
}
