//! Checking backups: every stored file read whole, then a trial restore checked.

use std::fs;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context};
use infra::embedded_log::files as logfiles;

use super::crypto::KeyRing;
use super::dest::{self, S3Options};
use super::manifest::Kind;
use super::restore::{self, Restored};
use super::stored::{chain, read_manifest, FileReader};

/// What `verify` checked.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verified {
    pub backups: Vec<String>,
    pub files: u64,
    pub stored_bytes: u64,
    pub trial_restore: Option<Restored>,
}

/// Checks every file of the backups in `to` (or of `id`'s chain): each is read whole —
/// stored size and SHA-256, then opened and decompressed — and then `id` (default: the newest)
/// is restored into a scratch directory and the result checked (log frames and offsets, store
/// integrity and row counts, objects against their checksums). The first problem is an error
/// naming the file.
pub fn verify(
    to: &str,
    id: Option<&str>,
    key: Option<&KeyRing>,
    s3: &S3Options,
    scratch: Option<&Path>,
) -> anyhow::Result<Verified> {
    let dest = dest::open(to, s3, false)?;
    let ids = dest.ids()?;
    anyhow::ensure!(!ids.is_empty(), "no complete backup in {}", dest.describe());
    let target = match id {
        Some(id) => {
            anyhow::ensure!(ids.contains(&id.to_owned()), "no complete backup {id} in {}", dest.describe());
            id.to_owned()
        }
        None => ids.last().cloned().expect("not empty"),
    };
    let scope: Vec<String> = match id {
        Some(id) => chain(dest.as_ref(), &ids, id, key)?.into_iter().map(|m| m.manifest.id).collect(),
        None => ids.clone(),
    };
    let mut v = Verified::default();
    for b in &scope {
        let m = read_manifest(dest.as_ref(), b, key)?;
        if m.kind != Kind::Full {
            chain(dest.as_ref(), &ids, b, key)?;
        }
        for entry in &m.files {
            FileReader::open(dest.as_ref(), &m, entry, key)?.finish()?;
            v.files += 1;
            v.stored_bytes += entry.stored_size;
        }
        v.backups.push(b.clone());
    }

    let scratch_dir = match scratch {
        Some(dir) => tempfile::Builder::new().prefix("daybook-verify-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("daybook-verify-").tempdir()?,
    };
    let restored = restore::restore_into(dest.as_ref(), &ids, &target, scratch_dir.path(), key, Default::default())?;
    check_restored(scratch_dir.path(), &restored).with_context(|| format!("trial restore of {target}"))?;
    v.trial_restore = Some(restored);
    Ok(v)
}

/// Checks a restored data directory against what the restore said it wrote: every segment's
/// frames check, rise, and start at or after the segment's name; the records add up and end
/// before the restored head; the store passes its integrity check with the backup's row counts.
fn check_restored(dir: &Path, r: &Restored) -> anyhow::Result<()> {
    let log_dir = dir.join("log");
    let mut prev: Option<i64> = None;
    let mut records = 0u64;
    let mut buf = Vec::new();
    for base in logfiles::segments(&log_dir)? {
        let path = logfiles::segment_path(&log_dir, base);
        let mut reader = BufReader::new(fs::File::open(&path)?);
        loop {
            match logfiles::read_raw(&mut reader, &mut buf)? {
                Ok(Some(offset)) => {
                    anyhow::ensure!(
                        offset >= base && prev.is_none_or(|p| offset > p),
                        "{}: offset {offset} after {prev:?}",
                        path.display()
                    );
                    prev = Some(offset);
                    records += 1;
                }
                Ok(None) => break,
                Err(stop) => bail!("{}: {stop}", path.display()),
            }
        }
    }
    anyhow::ensure!(records == r.records, "the restored log holds {records} records, the backups {}", r.records);
    if let Some(last) = prev {
        anyhow::ensure!(last < r.log.next, "the restored log ends at {last}, past the backups' {}", r.log.next);
    }
    if !r.store_rows.is_empty() {
        infra::embedded_store::files::check(&dir.join("store.db"), &r.store_rows).context("store.db")?;
    }
    Ok(())
}
