//! Restore tests on a schedule (`run --backup-verify-every`): every interval, the newest backup
//! of each repository is verified — every file of its chain read whole, then a trial restore
//! into a scratch directory checked (see [`super::verify`]) — so a repository that has gone bad
//! is known before it is needed.
//!
//! A trial restore writes the chain's plain size into the scratch directory. It starts only
//! when that fits with room to spare, and, when the scratch directory is on the data
//! directory's filesystem, only when it leaves [`RESERVE_PERCENT`] % of that filesystem free:
//! a restore test must never be why ingest runs out of disk. Otherwise it is skipped, counted
//! (`daybook_backup_verify_skipped_total`) and logged with why. It runs on a thread of its own
//! at a lower CPU priority (nice 10; on Linux its I/O priority follows), not on the blocking
//! pool the backups use.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use seams::metric::{Kind, Metric, Unit};
use tokio::sync::watch;

use super::dest;
use super::schedule::{unix_now, Schedule};
use super::stored::chain;
use super::{KeyRing, Verified};
use crate::audit::{self, Action, Entry};

pub const BACKUP_VERIFY_LAST_SUCCESS_TIMESTAMP_SECONDS: Metric = Metric {
    name: "daybook_backup_verify_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "Unix time of the last scheduled verify (every file read, a trial restore checked) of a repository's newest backup that passed (`run --backup-verify-every`; the DaybookBackupVerifyFailing alert fires 50 h after it).",
};

pub const BACKUP_VERIFY_FAILURES_TOTAL: Metric = Metric {
    name: "daybook_backup_verify_failures_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["repo"],
    help: "Scheduled verifies that found a problem (a damaged or missing file, a chain that does not hold, a trial restore that does not check), by repository; the log and the audit trail name the file.",
};

pub const BACKUP_VERIFY_SKIPPED_TOTAL: Metric = Metric {
    name: "daybook_backup_verify_skipped_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["repo"],
    help: "Scheduled verifies not started because the scratch directory lacks room for the trial restore (or would eat into the data directory's free-space reserve), by repository; the log says how much was needed.",
};

pub const BACKUP_VERIFY_DURATION_SECONDS: Metric = Metric {
    name: "daybook_backup_verify_duration_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "Time the last scheduled verify that passed took, by repository.",
};

/// Percent of the data directory's filesystem a trial restore on it must leave free (ingest
/// has no free-space setting of its own; this keeps room for a day of reports on any
/// reasonably sized volume).
pub const RESERVE_PERCENT: u64 = 10;

/// Room kept beyond the chain's plain size: at least 64 MiB, and a tenth of it (the store's
/// WAL and the restore's own files).
fn margin(plain: u64) -> u64 {
    (64 << 20u64).max(plain / 10)
}

/// Why a scheduled verify did not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoRoom(pub String);

/// Verifies the schedule's repository every `every` (the first one after `every`, so that a
/// start takes no trial restore) until `shutdown` turns true.
pub async fn run(schedule: Schedule, data_dir: PathBuf, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let (s, dir) = (schedule.clone(), data_dir.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("daybook-verify".into()).spawn(move || {
            // This thread only: Linux priorities are per thread.
            crate::priority::lower_this_thread(10);
            let _ = tx.send(verify_scheduled(&s, &dir));
        });
        if let Err(e) = spawned {
            metrics::counter!(BACKUP_VERIFY_FAILURES_TOTAL.name, "repo" => schedule.repo()).increment(1);
            tracing::error!(error = %e, repo = %schedule.repo(), "cannot start the scheduled verify");
            continue;
        }
        // A verify still running at shutdown is left to the process's exit.
        tokio::select! {
            _ = rx => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// One scheduled verify of the repository's newest backup, as the schedule runs it: the room
/// check, the verify, its metrics, log line and audit line. The error names the repository
/// and, for damage, the file.
pub fn verify_scheduled(s: &Schedule, data_dir: &Path) -> anyhow::Result<Verified> {
    let repo = s.repo();
    let started = Instant::now();
    let result = verify_newest(s, data_dir).with_context(|| format!("scheduled verify of {repo}"));
    let mut entry = Entry::new(Action::Verify, Some(repo.clone()), started, &result);
    match &result {
        Ok(v) => {
            entry.ids = v.backups.clone();
            entry.detail("files", v.files);
            entry.detail("stored_bytes", v.stored_bytes);
            metrics::gauge!(BACKUP_VERIFY_LAST_SUCCESS_TIMESTAMP_SECONDS.name, "repo" => repo.clone()).set(unix_now());
            metrics::gauge!(BACKUP_VERIFY_DURATION_SECONDS.name, "repo" => repo.clone())
                .set(started.elapsed().as_secs_f64());
            tracing::info!(repo = %repo, backups = ?v.backups, files = v.files,
                seconds = started.elapsed().as_secs_f64(), "scheduled verify passed");
        }
        Err(e) if e.chain().any(|c| c.is::<NoRoom>()) => {
            entry.detail("skipped", true);
            metrics::counter!(BACKUP_VERIFY_SKIPPED_TOTAL.name, "repo" => repo.clone()).increment(1);
            tracing::error!(error = %format!("{e:#}"), repo = %repo, "scheduled verify skipped");
        }
        Err(e) => {
            metrics::counter!(BACKUP_VERIFY_FAILURES_TOTAL.name, "repo" => repo.clone()).increment(1);
            tracing::error!(error = %format!("{e:#}"), repo = %repo, "scheduled verify failed");
        }
    }
    entry.detail("scheduled", true);
    audit::record(data_dir, entry);
    result
}

/// Verifies the newest backup of the schedule's repository and its chain, once the room
/// check passes.
fn verify_newest(s: &Schedule, data_dir: &Path) -> anyhow::Result<Verified> {
    let key = s.plan.key_file.as_deref().map(KeyRing::from_file).transpose()?;
    let scratch = s.plan.verify_scratch.clone().unwrap_or_else(std::env::temp_dir);
    let d = dest::open(&s.to, &s.plan.s3, false)?;
    let ids = d.ids().with_context(|| format!("cannot list {}", d.describe()))?;
    let newest = ids.last().with_context(|| format!("no complete backup in {}", d.describe()))?;
    let c = chain(d.as_ref(), &ids, newest, key.as_ref())?;
    let plain: u64 = c.iter().flat_map(|m| &m.files).map(|f| f.size).sum();
    check_room(&scratch, data_dir, plain).with_context(|| format!("trial restore of {newest}"))?;
    super::verify(&s.to, Some(newest), key.as_ref(), &s.plan.s3, Some(&scratch))
}

/// Whether a trial restore of `plain` bytes fits in `scratch` (see the module's doc).
fn check_room(scratch: &Path, data_dir: &Path, plain: u64) -> anyhow::Result<()> {
    let st = rustix::fs::statvfs(scratch).with_context(|| format!("scratch directory {}", scratch.display()))?;
    let same_fs = match (std::fs::metadata(scratch), std::fs::metadata(data_dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    };
    let fs = Fs { avail: st.f_bavail * st.f_frsize, total: st.f_blocks * st.f_frsize, same_as_data: same_fs };
    room(scratch, fs, plain)?;
    Ok(())
}

/// The scratch directory's filesystem.
#[derive(Debug, Clone, Copy)]
struct Fs {
    /// Bytes free for this process.
    avail: u64,
    total: u64,
    /// The data directory is on it.
    same_as_data: bool,
}

fn room(scratch: &Path, fs: Fs, plain: u64) -> Result<(), NoRoom> {
    let need = plain + margin(plain);
    if fs.avail < need {
        return Err(NoRoom(format!(
            "not enough room in {}: {} bytes free, the trial restore needs {need} (the chain's {plain} plain bytes \
             and a margin); give --backup-verify-scratch another directory",
            scratch.display(),
            fs.avail
        )));
    }
    let reserve = fs.total / 100 * RESERVE_PERCENT;
    if fs.same_as_data && fs.avail - need < reserve {
        return Err(NoRoom(format!(
            "{} is on the data directory's filesystem, and the trial restore ({need} bytes) would leave {} of its \
             {} bytes free, under the {RESERVE_PERCENT} % kept for ingest; give --backup-verify-scratch a directory \
             on another filesystem",
            scratch.display(),
            fs.avail - need,
            fs.total
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trial_restore_needs_its_size_and_leaves_the_data_filesystem_its_reserve() {
        let dir = Path::new("/scratch");
        let gib = 1u64 << 30;
        let fs = |avail, same_as_data| Fs { avail: avail * gib, total: 100 * gib, same_as_data };
        assert!(room(dir, fs(50, false), 10 * gib).is_ok());
        let err = room(dir, fs(10, false), 10 * gib).unwrap_err();
        assert!(err.0.contains("not enough room in /scratch"), "{}", err.0);
        // 20 GiB free on the data filesystem: 11 GiB for the trial would leave 9, under 10 %.
        let err = room(dir, fs(20, true), 10 * gib).unwrap_err();
        assert!(err.0.contains("under the 10 % kept for ingest"), "{}", err.0);
        assert!(room(dir, fs(20, false), 10 * gib).is_ok(), "another filesystem has no reserve");
        assert!(room(dir, fs(22, true), 10 * gib).is_ok());
        // Small chains still keep the 64 MiB margin.
        assert!(room(dir, Fs { avail: 32 << 20, total: 100 * gib, same_as_data: false }, 1).is_err());
    }

    #[test]
    fn the_room_check_reads_the_scratch_filesystem() {
        let tmp = tempfile::tempdir().unwrap();
        check_room(tmp.path(), tmp.path(), 0).unwrap_or_else(|e| {
            // A nearly full test machine: the reason must say so, not fail to read.
            assert!(e.chain().any(|c| c.is::<NoRoom>()), "{e:#}");
        });
        let err = check_room(&tmp.path().join("missing"), tmp.path(), 0).unwrap_err();
        assert!(format!("{err:#}").contains("scratch directory"), "{err:#}");
        let err = check_room(tmp.path(), tmp.path(), u64::MAX / 4).unwrap_err();
        assert!(err.chain().any(|c| c.is::<NoRoom>()), "{err:#}");
    }
}
