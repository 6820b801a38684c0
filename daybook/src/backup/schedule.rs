//! Scheduled backups inside `daybook run` (`--backup-to`): one at start, then every
//! `--backup-every`; a full one when the newest full in the destination is older than
//! `--backup-full-every`, incrementals in between. Each backup runs on a blocking thread
//! beside the services, reading the data directory as `daybook backup` would: nothing pauses.
//!
//! Metrics: `daybook_backup_last_success_timestamp_seconds` (the alert
//! `DaybookBackupsStopped` in infra/prometheus/alerts.yml watches it),
//! `daybook_backup_duration_seconds`, `daybook_backup_bytes`, `daybook_backup_failures_total`.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{BackupOptions, KeyRing, S3Options};

/// What `run --backup-to …` backs up, where and how often.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// A directory or `s3://BUCKET/PREFIX`.
    pub to: String,
    pub interval: Duration,
    /// A full backup when the newest full is older than this.
    pub full_every: Duration,
    pub keep_full: Option<usize>,
    pub key_file: Option<PathBuf>,
    pub s3: S3Options,
}

/// Takes backups of `data_dir` on `schedule` until `shutdown` turns true.
pub async fn run(schedule: Schedule, data_dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    tracing::info!(to = %schedule.to, interval = ?schedule.interval, "scheduled backups on");
    loop {
        let started = Instant::now();
        let (s, dir) = (schedule.clone(), data_dir.clone());
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<super::Taken> {
            let key = s.key_file.as_deref().map(KeyRing::from_file).transpose()?;
            let opts = BackupOptions {
                data_dir: dir,
                to: s.to.clone(),
                full: false,
                key,
                keep_full: s.keep_full,
                s3: s.s3.clone(),
            };
            super::backup_with(&opts, Some(s.full_every))
        })
        .await;
        match result {
            Ok(Ok(super::Taken { manifest: m, .. })) => {
                let kind = match m.kind {
                    super::Kind::Full => "full",
                    super::Kind::Incremental => "incremental",
                };
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
                metrics::gauge!("daybook_backup_last_success_timestamp_seconds").set(now);
                metrics::gauge!("daybook_backup_duration_seconds", "kind" => kind).set(started.elapsed().as_secs_f64());
                metrics::gauge!("daybook_backup_bytes", "kind" => kind).set(m.stored_bytes() as f64);
                tracing::info!(id = %m.id, kind, records = m.counts.records, objects = m.counts.objects,
                    stored_bytes = m.stored_bytes(), seconds = started.elapsed().as_secs_f64(), "backup complete");
            }
            Ok(Err(e)) => {
                metrics::counter!("daybook_backup_failures_total").increment(1);
                tracing::error!(error = %format!("{e:#}"), to = %schedule.to, "backup failed");
            }
            Err(e) => {
                metrics::counter!("daybook_backup_failures_total").increment(1);
                tracing::error!(error = %e, "backup task failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(schedule.interval) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}
