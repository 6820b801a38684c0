//! Putting a subscription change on the log, from the command line (and an owner's report, from a
//! `daybook api` process beside the one that ingests).
//!
//! Kafka takes appends from any process. The embedded log has one appending process (the one
//! holding `log/LOCK`): when no daybook runs on the data directory, the command appends itself;
//! when one does, the command hands the change over through `DATA_DIR/notify/inbox/` — one
//! file per change, written whole then renamed into place — and the running process appends
//! each file within a quarter of a second and deletes it ([`drain_inbox`]); the command waits
//! for that, so it returns once the change is durable on the log either way. (The same channel
//! as token revocations: files of the data directory, which only its operator can write.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use infra::LogUrl;
use schemas::{Envelope, Report, Timestamp, SCHEMA_VERSION};
use seams::{LogRecord, ReportLog};
use tokio::sync::watch;

use crate::config::LogConfig;

/// How long a command waits for a running process to take its change.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(15);
const INBOX_POLL: Duration = Duration::from_millis(250);

fn inbox(data_dir: &Path) -> PathBuf {
    data_dir.join("notify").join("inbox")
}

/// The log record of a change.
pub fn record(report: Report) -> LogRecord {
    LogRecord::of(&Envelope::new(report, Timestamp::now()))
}

/// Appends `report` (a subscription change) to the log `config` names; returns once durable.
pub async fn submit(report: Report, config: &LogConfig, data_dir: &Path) -> anyhow::Result<()> {
    debug_assert!(!report.kind().is_device_report());
    submit_record(record(report), config, data_dir).await
}

/// [`submit`] for a record made already (an owner's report, from a `daybook api` process that
/// does not append to the embedded log itself).
pub async fn submit_record(record: LogRecord, config: &LogConfig, data_dir: &Path) -> anyhow::Result<()> {
    if matches!(config.url, LogUrl::Embedded) {
        match crate::in_use::AppendLock::take(data_dir) {
            // Nobody appends: this process may (the lock is dropped for the log to take it).
            Ok(lock) => drop(lock),
            Err(_) => return hand_over(record, data_dir).await,
        }
    }
    let log = crate::resolve::open_log(config, data_dir).await?.log;
    let appended = log.append(vec![record]).await;
    log.shutdown().await?;
    appended.context("appending the change")?;
    Ok(())
}

async fn hand_over(record: LogRecord, data_dir: &Path) -> anyhow::Result<()> {
    let dir = inbox(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Named by time, so changes are appended in the order they were made.
    let name = format!("{:020}-{}.change", Timestamp::now().millis(), uuid::Uuid::new_v4().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, &record.value).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all())?;
    let path = dir.join(&name);
    std::fs::rename(&tmp, &path)?;
    let deadline = Instant::now() + HANDOVER_TIMEOUT;
    while path.exists() {
        if Instant::now() > deadline {
            let _ = std::fs::remove_file(&path);
            anyhow::bail!(
                "the daybook process appending to {} did not take the change within {}s (is it an older release?)",
                data_dir.display(),
                HANDOVER_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// In the process that appends to the embedded log: appends the changes commands left in the
/// inbox, oldest first, deleting each once durable, until `shutdown`.
pub async fn drain_inbox(log: Arc<dyn ReportLog>, data_dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let dir = inbox(&data_dir);
    loop {
        if let Err(e) = drain_once(log.as_ref(), &dir).await {
            tracing::warn!(error = %e, dir = %dir.display(), "subscription changes: inbox not drained; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(INBOX_POLL) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

async fn drain_once(log: &dyn ReportLog, dir: &Path) -> anyhow::Result<()> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "change"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    for path in names {
        let value = std::fs::read(&path)?;
        match Envelope::decode(&value) {
            // Only subscription changes come this way: anything else is not appended.
            Ok(env) if !env.report.kind().is_device_report() => {
                let schema = Envelope::version_of(&value).unwrap_or(SCHEMA_VERSION);
                let (key, report_kind) = (env.report.key(), env.report.kind().as_str().to_owned());
                log.append(vec![LogRecord { key, report_kind, schema, value }]).await?;
            }
            Ok(_) | Err(_) => tracing::warn!(file = %path.display(), "not a subscription change; dropped"),
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
