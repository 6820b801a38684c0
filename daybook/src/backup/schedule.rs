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

use seams::metric::{Kind, Metric, Unit};
use tokio::sync::watch;

use super::{BackupOptions, KeyRing, S3Options};

pub const BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS: Metric = Metric {
    name: "daybook_backup_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Unix time of the last complete backup taken by `run --backup-to` (the DaybookBackupsStopped alert fires 26 h after it).",
};

pub const BACKUP_DURATION_SECONDS: Metric = Metric {
    name: "daybook_backup_duration_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["kind"],
    help: "Time the last complete backup took, by kind (full, incremental).",
};

pub const BACKUP_BYTES: Metric = Metric {
    name: "daybook_backup_bytes",
    kind: Kind::Gauge,
    unit: Some(Unit::Bytes),
    labels: &["kind"],
    help:
        "Bytes the last complete backup stored in its destination (compressed, encrypted), by kind (full, incremental).",
};

pub const BACKUP_FAILURES_TOTAL: Metric = Metric {
    name: "daybook_backup_failures_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Scheduled backups that failed (the log names the reason); the previous complete backups stay usable.",
};

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
                metrics::gauge!(BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS.name).set(now);
                metrics::gauge!(BACKUP_DURATION_SECONDS.name, "kind" => kind).set(started.elapsed().as_secs_f64());
                metrics::gauge!(BACKUP_BYTES.name, "kind" => kind).set(m.stored_bytes() as f64);
                tracing::info!(id = %m.id, kind, records = m.counts.records, objects = m.counts.objects,
                    stored_bytes = m.stored_bytes(), seconds = started.elapsed().as_secs_f64(), "backup complete");
            }
            Ok(Err(e)) => {
                metrics::counter!(BACKUP_FAILURES_TOTAL.name).increment(1);
                tracing::error!(error = %format!("{e:#}"), to = %schedule.to, "backup failed");
            }
            Err(e) => {
                metrics::counter!(BACKUP_FAILURES_TOTAL.name).increment(1);
                tracing::error!(error = %e, "backup task failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(schedule.interval) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}
