//! The erasure journal of a repository (`journal/`, docs/backups.md): one entry per erasure
//! the data directory's store has applied, so that every restore from the repository — of a
//! backup taken before the erasure, at a point in time before it, or from shipped pieces cut
//! before it — applies it again and serves nothing the device reported before it.
//!
//! An entry is `journal/<received_at ms, 20 digits>-<cid>.json`, sealed like every piece of the
//! repository (`wal::encode`): `{"format": 1, "cid": …, "received_at_ms": …}` — the erasure's
//! report is `DeviceErased { cid }` received then, so re-applied it carries the same write stamp
//! (`schemas::rows::write_stamp`), the same mark, and covers the same reports. Entries are
//! written by every backup and every shipping round (from the store's erasure marks: those it
//! lacks), and never removed. A restore appends each entry's erasure to the restored log, after
//! everything restored: the projector (or the rebuild of a point-in-time restore) applies it
//! like any erasure, and purges the objects its rows name.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use schemas::{DeviceErased, DeviceId, Envelope, Report, Timestamp};
use seams::ReportLog;
use serde::{Deserialize, Serialize};

use super::crypto::KeyRing;
use super::dest::Dest;
use super::wal::{self, JOURNAL};

const FORMAT: u32 = 1;

/// One erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) format: u32,
    pub(super) cid: String,
    pub(super) received_at_ms: i64,
}

impl Entry {
    fn path(&self) -> String {
        format!("{JOURNAL}{:020}-{}.json", self.received_at_ms, self.cid)
    }

    /// The erasure's report as it was put on the log.
    pub(super) fn envelope(&self) -> anyhow::Result<Envelope> {
        let cid = DeviceId::parse(&self.cid)?;
        Ok(Envelope::new(Report::DeviceErased(DeviceErased { cid }), Timestamp(self.received_at_ms)))
    }
}

/// Puts into `dest` an entry for each erasure the store of `data_dir` has applied that the
/// journal lacks; `known` caches the journal's entries between calls (listed when `None`).
/// Returns the entries written.
pub(super) fn record(
    dest: &dyn Dest,
    key: Option<&KeyRing>,
    data_dir: &Path,
    known: &mut Option<BTreeSet<String>>,
) -> anyhow::Result<usize> {
    let store = data_dir.join("store.db");
    let marks = infra::embedded_store::files::erasures(&store)
        .with_context(|| format!("cannot read the erasures of {}", store.display()))?;
    if marks.is_empty() {
        return Ok(0);
    }
    if known.is_none() {
        let listed = dest.list_paths(JOURNAL).with_context(|| format!("cannot list {}{JOURNAL}", dest.describe()))?;
        *known = Some(listed.into_iter().collect());
    }
    let known = known.as_mut().expect("listed");
    let mut written = 0;
    for (cid, received_at_ms) in marks {
        let entry = Entry { format: FORMAT, cid, received_at_ms };
        let path = entry.path();
        if known.contains(&path) {
            continue;
        }
        let json = serde_json::to_vec(&entry)?;
        dest.put_path(&path, &wal::encode(key, &path, &json)?)
            .with_context(|| format!("cannot store {path} in {}", dest.describe()))?;
        known.insert(path);
        written += 1;
    }
    Ok(written)
}

/// Every entry of the journal, oldest first. An entry this build cannot read stops the restore:
/// one it skipped would serve erased data again.
pub(super) fn read(dest: &dyn Dest, key: Option<&KeyRing>) -> anyhow::Result<Vec<Entry>> {
    let paths = dest.list_paths(JOURNAL).with_context(|| format!("cannot list {}{JOURNAL}", dest.describe()))?;
    let mut entries = Vec::with_capacity(paths.len());
    for path in paths {
        let stored = dest.get_path(&path).with_context(|| format!("cannot read {path} from {}", dest.describe()))?;
        let entry = wal::decode(key, &path, &stored)
            .map_err(anyhow::Error::from)
            .and_then(|plain| Ok(serde_json::from_slice::<Entry>(&plain)?))
            .ok()
            .filter(|e| e.format == FORMAT && e.path() == path && e.envelope().is_ok());
        let Some(entry) = entry else {
            anyhow::bail!(
                "{}: the erasure journal's entry {path} is not one this daybook can apply; restore with the daybook version that wrote it",
                dest.describe()
            );
        };
        entries.push(entry);
    }
    entries.sort_by_key(|e| (e.received_at_ms, e.cid.clone()));
    Ok(entries)
}

/// Appends the erasures of `entries` to the restored log of `target` (no process uses it), in
/// the order they were made, and applies them to its restored store, if it has one, so that
/// nothing erased is served even before the projector reaches them. Returns how many.
pub(super) fn reapply(entries: &[Entry], target: &Path) -> anyhow::Result<u64> {
    if entries.is_empty() {
        return Ok(0);
    }
    let envelopes = entries.iter().map(Entry::envelope).collect::<anyhow::Result<Vec<_>>>()?;
    let records: Vec<seams::LogRecord> = envelopes.iter().map(seams::LogRecord::of).collect();
    let append = async move {
        let store = target.join("store.db");
        if store.exists() {
            let store = infra::embedded_store::EmbeddedStore::open(&store, schemas::TimePolicy::default())?;
            seams::ProjectionStore::apply(store.as_ref(), &envelopes).await?;
        }
        let log = EmbeddedLog::open(&target.join("log"), EmbeddedLogConfig::default())?;
        let n = records.len() as u64;
        let appended = log.append(records).await;
        log.shutdown().await?;
        appended.context("appending the journal's erasures to the restored log")?;
        Ok::<u64, anyhow::Error>(n)
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(append),
        Err(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(append),
    }
}
