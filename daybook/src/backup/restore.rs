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
use super::manifest::{FileEntry, LogRange};
use super::packs::{self, Indexed};
use super::stored::{self, chain, FileReader};
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
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Restored {
    pub id: String,
    pub chain: Vec<String>,
    pub log: LogRange,
    pub records: u64,
    pub objects: u64,
    pub groups: BTreeMap<String, i64>,
    pub store_rows: BTreeMap<String, u64>,
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
    let at = match &opts.at {
        Some(id) => {
            anyhow::ensure!(ids.contains(id), "no complete backup {id} in {}", dest.describe());
            id.clone()
        }
        None => ids.last().cloned().with_context(|| format!("no complete backup in {}", dest.describe()))?,
    };
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
    restore_into(dest.as_ref(), &ids, &at, target, opts.key.as_ref()).with_context(|| {
        format!("restore of {at} into {} failed; that directory is incomplete, do not run on it", target.display())
    })
}

pub(super) fn restore_into(
    dest: &dyn Dest,
    ids: &[String],
    at: &str,
    target: &Path,
    key: Option<&KeyRing>,
) -> anyhow::Result<Restored> {
    let chain = chain(dest, ids, at, key)?;
    let full = &chain[0];
    let last = chain.last().expect("one");
    let log_dir = target.join("log");
    fs::create_dir_all(log_dir.join("groups"))?;
    let mut restored = Restored {
        id: at.to_owned(),
        chain: chain.iter().map(|m| m.id.clone()).collect(),
        log: LogRange { first: full.log.first, next: last.log.next },
        store_rows: full.counts.store_rows.clone(),
        ..Restored::default()
    };

    // The log: each piece is a segment named by the start of the range it covers.
    let mut expect = None;
    for m in &chain {
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
            let mut out = BufWriter::new(fs::File::create(&path)?);
            let mut r = FileReader::open(dest, m, entry, key)?;
            io::copy(&mut r, &mut out)?;
            r.finish()?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            restored.records += entry.records.unwrap_or((range.next - range.first) as u64);
            expect = Some(range.next);
        }
    }
    if restored.records == 0 {
        // An empty log that had already handed out offsets: start the next one where it was.
        fs::File::create(logfiles::segment_path(&log_dir, last.log.next.max(1)))?.sync_all()?;
    }
    // All of it is durable: readers in any process may read it, a writer goes on after it.
    logfiles::publish_head(&log_dir, last.log.next.max(1))?;
    // Group positions of the full (consistent with its store), never past the restored log.
    for (group, next) in &full.groups {
        let next = (*next).min(last.log.next);
        logfiles::set_group(&log_dir, group, next)?;
        restored.groups.insert(group.clone(), next);
    }

    // The store of the full.
    if let Some(entry) = full.file(STORE_FILE) {
        let mut out = BufWriter::new(fs::File::create(target.join("store.db"))?);
        let mut r = FileReader::open(dest, full, entry, key)?;
        io::copy(&mut r, &mut out)?;
        r.finish()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }

    // Objects, oldest backup first (a later copy of a path wins), checked against the index.
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
            restored.objects += packs::unpack(&mut r, &target.join("objects"), |path, data| {
                let o = index.get(path).with_context(|| format!("{what}: {path} is not in the index"))?;
                anyhow::ensure!(
                    o.s == data.len() as u64 && o.h == stored::hex(&Sha256::digest(data)),
                    "{what}: {path} does not match its checksum"
                );
                Ok(())
            })?;
            r.finish()?;
        }
    }

    // The newest secrets.
    if let Some(entry) = last.file(SECRETS_FILE) {
        let mut r = FileReader::open(dest, last, entry, key)?;
        packs::unpack(&mut r, target, |_, _| Ok(()))?;
        r.finish()?;
    }
    fs::File::open(target)?.sync_all()?;
    Ok(restored)
}
