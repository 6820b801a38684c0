//! `daybook rebuild`: the store again from the log. The store is a function of the log, so a
//! store lost, damaged, or restored from an older backup is rebuilt by replaying the log from
//! its start into an empty store with a fresh consumer group, up to the head seen at start.
//!
//! Embedded default: the new store is built in `store.db.rebuild` beside the old one and
//! swapped in with one rename only once it is complete; the projector group is then moved to
//! where the rebuild stopped. `run` must be stopped meanwhile (the log's `LOCK` is held so that
//! nothing appends, and refuses to start while another process has `store.db` open).
//!
//! Kept events outlive the log (the embedded log keeps a retention, a Kafka topic often less):
//! once their reports have left it, the store is their source of truth. So a rebuild first
//! applies to the new store the kept events of the old one, restated as reports
//! ([`ProjectionStore::kept_reports`]; the embedded default: `store.db`, also the one a
//! point-in-time restore puts there from its backup; otherwise `--kept-from`), then replays
//! the log over them: what the log still holds about them applies as it did live (a newer
//! un-keep wins), and nothing else of the old store is carried.
//!
//! Any other pair (`kafka://…` log, `scylla://…` store): [`rebuild_into`] replays the log into
//! the store it is given, which must be empty (a new keyspace, or a fresh data directory),
//! with a fresh group `daybook-rebuild-<ms>` until that group has consumed everything that was
//! in the log at start; the projectors are then pointed at that store with `--group` set to
//! that group, and resume where the rebuild stopped.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use infra::embedded_log::files as logfiles;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::{self, files as storefiles, EmbeddedStore, OpenMode};
use schemas::TimePolicy;
use seams::{ProjectionStore, ReportLog};
use tokio::sync::watch;

use crate::audit::{self, Action, Entry};
use crate::in_use::{self, AppendLock};

/// What `rebuild` does.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    pub data_dir: PathBuf,
    /// The projector group whose position follows the new store.
    pub group: String,
    pub policy: TimePolicy,
    pub max_batch: usize,
    /// Print a progress line this often.
    pub progress_every: Duration,
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rebuilt {
    pub records: i64,
    pub reports: u64,
    pub rows: u64,
    pub quarantined: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// The offset the projector group resumes at.
    pub next: i64,
    /// Kept events carried over from the old store before the log was replayed.
    pub kept: u64,
}

/// Applies every kept event of `from`, restated as reports, to `to` (before the log is
/// replayed into it). Returns the kept events carried.
pub async fn carry_kept(from: &dyn ProjectionStore, to: &dyn ProjectionStore) -> anyhow::Result<u64> {
    let mut carried = 0u64;
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = from.kept_reports(cursor.as_deref()).await.context("reading the kept events of the old store")?;
        for device in &page.devices {
            to.apply(&device.reports).await.context("writing the kept events into the new store")?;
            carried +=
                device.reports.iter().filter(|e| matches!(e.report, schemas::Report::EventKept(_))).count() as u64;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(carried),
        }
    }
}

/// The projector of a replay into an empty store: unpaced, short lingers, the next batch read
/// while the store writes one.
fn replay_config(group: &str, max_batch: usize) -> projector::ProjectorConfig {
    projector::ProjectorConfig {
        group: group.to_owned(),
        max_batch: max_batch.max(1),
        linger: Duration::from_millis(5),
        max_rows_per_s: None,
        prefetch: true,
        ..projector::ProjectorConfig::default()
    }
}

/// Rebuilds `DATA_DIR/store.db` from `DATA_DIR/log`, and appends the outcome to the data
/// directory's audit trail (see [`crate::audit`]).
pub async fn rebuild(opts: &RebuildOptions, progress: impl FnMut(&str)) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    let result = rebuild_embedded(opts, progress).await;
    let mut entry = Entry::new(Action::Rebuild, None, started, &result);
    entry.detail("store", "embedded");
    entry.detail("group", &opts.group);
    if let Ok(r) = &result {
        entry.detail("records", r.records);
        entry.detail("rows", r.rows);
    }
    audit::record(&opts.data_dir, entry);
    result
}

async fn rebuild_embedded(opts: &RebuildOptions, mut progress: impl FnMut(&str)) -> anyhow::Result<Rebuilt> {
    let log_dir = opts.data_dir.join("log");
    anyhow::ensure!(log_dir.is_dir(), "no embedded log at {}", log_dir.display());
    // Nothing may append while the store is rebuilt: hold the writer's lock.
    let lock = AppendLock::take(&opts.data_dir)?;
    in_use::ensure_unused(&opts.data_dir.join("store.db"), &opts.data_dir)?;
    let log = EmbeddedLog::open(&log_dir, EmbeddedLogConfig::default())?;
    let head = log.head().await?;
    let oldest = logfiles::oldest(&log_dir)?.unwrap_or(head);
    let total = (head - oldest).max(0);

    let new_path = opts.data_dir.join("store.db.rebuild");
    storefiles::remove(&new_path)?;
    // A scratch file until the swap: no fsync while it fills, one at the end (docs/backups.md).
    let store: Arc<dyn ProjectionStore> = EmbeddedStore::open_with(&new_path, opts.policy, OpenMode::BulkLoad)?;
    let old_path = opts.data_dir.join("store.db");
    let kept = if old_path.exists() {
        let old = EmbeddedStore::open(&old_path, opts.policy)?;
        let carried = carry_kept(old.as_ref(), store.as_ref()).await;
        drop(old);
        match carried {
            Ok(n) => n,
            Err(e) => {
                drop(store);
                storefiles::remove(&new_path)?;
                return Err(e.context("the old store is untouched"));
            }
        }
    } else {
        0
    };
    let group = format!("daybook-rebuild-{}", chrono::Utc::now().timestamp_millis());
    logfiles::delete_group(&log_dir, &group)?;
    progress(&format!(
        "rebuilding {} from the log: offsets {oldest}..{head} ({total} records), over {kept} kept events of the old store",
        new_path.display()
    ));

    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let config = replay_config(&group, opts.max_batch);
    let running = tokio::spawn(projector::run(log.clone() as Arc<dyn ReportLog>, store.clone(), config, stopped));
    let mut last_print = Instant::now();
    let next = loop {
        if running.is_finished() {
            break None;
        }
        let next = log.groups().await?.into_iter().find(|g| g.group == group).map_or(oldest, |g| g.next);
        if next >= head {
            break Some(next);
        }
        if last_print.elapsed() >= opts.progress_every {
            let done = (next - oldest).max(0);
            let secs = started.elapsed().as_secs_f64();
            progress(&format!(
                "{done}/{total} records ({:.0} %), {:.0} records/s",
                100.0 * done as f64 / total.max(1) as f64,
                done as f64 / secs.max(1e-9)
            ));
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop.send(true);
    let result = running.await.context("the rebuild projector")?;
    let outcome = match (next, result) {
        (Some(next), Ok(p)) => Ok((next, p)),
        (_, Err(e)) => Err(anyhow::anyhow!("the rebuild projector failed: {e}")),
        (None, Ok(_)) => Err(anyhow::anyhow!("the rebuild projector stopped before the head")),
    };
    drop(store);
    log.shutdown().await?;
    logfiles::delete_group(&log_dir, &group)?;
    let (next, p) = match outcome {
        Ok(x) => x,
        Err(e) => {
            storefiles::remove(&new_path)?;
            return Err(e.context("the old store is untouched"));
        }
    };

    // Swap: the new file a normal store and on disk, the old one whole (its WAL folded in), then
    // one rename; then the group follows.
    let store_path = opts.data_dir.join("store.db");
    if let Err(e) = embedded_store::finish_bulk_load(&new_path) {
        storefiles::remove(&new_path)?;
        return Err(anyhow::Error::from(e).context("the old store is untouched"));
    }
    // Counted to here: the new store is on disk.
    let seconds = started.elapsed().as_secs_f64();
    if store_path.exists() {
        storefiles::checkpoint(&store_path)?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", new_path.display()));
        let _ = fs::remove_file(format!("{}{suffix}", store_path.display()));
    }
    fs::rename(&new_path, &store_path)?;
    fs::File::open(&opts.data_dir)?.sync_all()?;
    logfiles::set_group(&log_dir, &opts.group, next)?;
    drop(lock);

    let rebuilt = Rebuilt {
        records: total,
        reports: p.reports,
        rows: p.rows,
        quarantined: p.quarantined,
        seconds,
        rows_per_s: p.rows as f64 / seconds.max(1e-9),
        next,
        kept,
    };
    progress(&format!(
        "rebuilt {}: {} records, {} rows in {:.1} s ({:.0} rows/s); group {} resumes at {next}",
        store_path.display(),
        total,
        p.rows,
        seconds,
        rebuilt.rows_per_s,
        opts.group
    ));
    Ok(rebuilt)
}

/// What [`rebuild_into`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuiltInto {
    /// The rebuild's consumer group: start the projectors of the new store with it.
    pub group: String,
    /// Kept events carried over from the old store (`--kept-from`).
    pub kept: u64,
    pub reports: u64,
    pub rows: u64,
    pub quarantined: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// Replays `log` from its start into `store` (which must be empty) with a fresh consumer group
/// `daybook-rebuild-<ms>`, until the group has consumed everything the log held at start
/// ([`projector::run_until_caught_up`]); the group's positions stay committed, so projectors
/// started with it resume where the rebuild stopped. Works through the seams, so with any
/// log and store. The kept events of `kept_from` (the old store) are applied first.
pub async fn rebuild_into(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    kept_from: Option<Arc<dyn ProjectionStore>>,
    max_batch: usize,
    progress_every: Duration,
    mut progress: impl FnMut(&str) + Send,
) -> anyhow::Result<RebuiltInto> {
    let kept = match &kept_from {
        Some(old) => carry_kept(old.as_ref(), store.as_ref()).await?,
        None => 0,
    };
    let group = format!("daybook-rebuild-{}", chrono::Utc::now().timestamp_millis());
    progress(&format!(
        "rebuilding the {} store from the {} log with the fresh group {group}",
        store.backend(),
        log.backend()
    ));
    let config = replay_config(&group, max_batch);
    let started = Instant::now();
    let mut last_print: Option<Instant> = None;
    // Never turned: the run ends when caught up (or fails).
    let (_stop, stopped) = watch::channel(false);
    let p = projector::run_until_caught_up(log, store, config, stopped, |c| {
        if c.caught_up || last_print.is_none_or(|t| t.elapsed() >= progress_every) {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            progress(&format!(
                "{} reports, {} rows, {} records left ({:.0} rows/s)",
                c.progress.reports,
                c.progress.rows,
                c.lag,
                c.progress.rows as f64 / secs
            ));
            last_print = Some(Instant::now());
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("the rebuild projector failed: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let r = RebuiltInto {
        group,
        kept,
        reports: p.reports,
        rows: p.rows,
        quarantined: p.quarantined,
        seconds,
        rows_per_s: p.rows as f64 / seconds.max(1e-9),
    };
    progress(&format!(
        "rebuilt: {} reports, {} rows in {:.1} s ({:.0} rows/s); start the projectors on the new store with \
         --group {} (they resume where the rebuild stopped), then switch the api over",
        r.reports, r.rows, r.seconds, r.rows_per_s, r.group
    ));
    Ok(r)
}
