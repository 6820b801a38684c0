//! Scheduled backups inside `daybook run` (`--backup-to`, once per repository): one at start,
//! then every `--backup-every`; a full one when the newest full in the repository is older
//! than `--backup-full-every`, a differential when its newest full or differential is older
//! than `--backup-differential-every` (off by default), incrementals in between. Each backup
//! runs on a blocking thread beside the services, reading the data directory as `daybook
//! backup` would: nothing pauses.
//!
//! Every repository has its own task, decisions (taken from what that repository holds) and
//! metrics (label `repo`): one that is down, full or slow holds up neither the others nor the
//! service — its task waits or fails alone, and only its failure counter moves. With
//! `--backup-verify-every`, each repository's newest backup is also verified on a schedule
//! (see [`super::trial`]).
//!
//! Metrics: `daybook_backup_last_success_timestamp_seconds` (the alert
//! `DaybookBackupsStopped` in infra/prometheus/alerts.yml watches it, per repository),
//! `daybook_backup_duration_seconds`, `daybook_backup_bytes`, `daybook_backup_failures_total`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use seams::metric::{Kind, Metric, Unit};
use tokio::sync::watch;

use super::dest::repo_label;
use super::{BackupOptions, Due, KeyRing, S3Options};

pub const BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS: Metric = Metric {
    name: "daybook_backup_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo"],
    help: "Unix time of the last complete backup taken by `run --backup-to`, by repository (the DaybookBackupsStopped alert fires 26 h after it).",
};

pub const BACKUP_DURATION_SECONDS: Metric = Metric {
    name: "daybook_backup_duration_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["repo", "kind"],
    help: "Time the last complete backup took, by repository and kind (full, differential, incremental).",
};

pub const BACKUP_BYTES: Metric = Metric {
    name: "daybook_backup_bytes",
    kind: Kind::Gauge,
    unit: Some(Unit::Bytes),
    labels: &["repo", "kind"],
    help: "Bytes the last complete backup stored in its repository (compressed, encrypted), by repository and kind (full, differential, incremental).",
};

pub const BACKUP_FAILURES_TOTAL: Metric = Metric {
    name: "daybook_backup_failures_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["repo"],
    help: "Scheduled backups that failed, by repository (the log names the reason); the previous complete backups stay usable, and the other repositories go on.",
};

/// How each repository is backed up and checked: everything of a [`Schedule`] but where.
#[derive(Debug, Clone)]
pub struct Plan {
    pub interval: Duration,
    /// A full backup when the newest full is older than this.
    pub full_every: Duration,
    /// A differential backup when the newest full or differential is older than this.
    pub differential_every: Option<Duration>,
    pub keep_full: Option<usize>,
    pub key_file: Option<PathBuf>,
    pub s3: S3Options,
    /// Verify the newest backup (a trial restore) this often (see [`super::trial`]).
    pub verify_every: Option<Duration>,
    /// Where the trial restores go (default: the system's temporary directory).
    pub verify_scratch: Option<PathBuf>,
}

/// What `run --backup-to …` backs up into one repository, how and how often.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// A directory or `s3://BUCKET/PREFIX`.
    pub to: String,
    pub plan: Plan,
}

impl Schedule {
    /// The repository's name in metrics, logs and the audit trail (no credentials).
    pub fn repo(&self) -> String {
        repo_label(&self.to)
    }
}

/// One schedule per repository, in the order given, each repository once: what `run` starts a
/// task for. Any list of destinations goes (`--backup-to` given several times, a replica
/// added to them).
pub fn schedules(repos: impl IntoIterator<Item = String>, plan: &Plan) -> Vec<Schedule> {
    let mut out: Vec<Schedule> = Vec::new();
    for to in repos {
        if !to.is_empty() && !out.iter().any(|s| s.repo() == repo_label(&to)) {
            out.push(Schedule { to, plan: plan.clone() });
        }
    }
    out
}

/// Takes backups of `data_dir` into the schedule's repository until `shutdown` turns true.
/// (Its verifies, `plan.verify_every`, run in a task of their own: `super::trial::run`.)
pub async fn run(schedule: Schedule, data_dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let repo = schedule.repo();
    tracing::info!(repo = %repo, interval = ?schedule.plan.interval, "scheduled backups on");
    loop {
        let (s, dir) = (schedule.clone(), data_dir.clone());
        let task = tokio::task::spawn_blocking(move || backup_once(&s, dir));
        // A repository that hangs holds up its own task only; shutdown does not wait for it.
        let result = tokio::select! {
            r = task => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        if let Err(e) = result {
            metrics::counter!(BACKUP_FAILURES_TOTAL.name, "repo" => repo.clone()).increment(1);
            tracing::error!(error = %e, repo = %repo, "backup task failed");
        }
        tokio::select! {
            () = tokio::time::sleep(schedule.plan.interval) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// One scheduled backup into the schedule's repository, with its metrics and log lines.
pub fn backup_once(s: &Schedule, data_dir: PathBuf) -> anyhow::Result<super::Taken> {
    let repo = s.repo();
    let started = Instant::now();
    let result = (|| {
        let key = s.plan.key_file.as_deref().map(KeyRing::from_file).transpose()?;
        let opts = BackupOptions {
            data_dir,
            to: s.to.clone(),
            full: false,
            differential: false,
            key,
            keep_full: s.plan.keep_full,
            s3: s.plan.s3.clone(),
        };
        let due = Due { full_after: Some(s.plan.full_every), differential_after: s.plan.differential_every };
        super::backup_with(&opts, due)
    })();
    match &result {
        Ok(super::Taken { manifest: m, .. }) => {
            let kind = m.kind.as_str();
            metrics::gauge!(BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS.name, "repo" => repo.clone()).set(unix_now());
            metrics::gauge!(BACKUP_DURATION_SECONDS.name, "repo" => repo.clone(), "kind" => kind)
                .set(started.elapsed().as_secs_f64());
            metrics::gauge!(BACKUP_BYTES.name, "repo" => repo.clone(), "kind" => kind).set(m.stored_bytes() as f64);
            tracing::info!(repo = %repo, id = %m.id, kind, records = m.counts.records, objects = m.counts.objects,
                stored_bytes = m.stored_bytes(), seconds = started.elapsed().as_secs_f64(), "backup complete");
        }
        Err(e) => {
            metrics::counter!(BACKUP_FAILURES_TOTAL.name, "repo" => repo.clone()).increment(1);
            tracing::error!(error = %format!("{e:#}"), repo = %repo, "backup failed");
        }
    }
    result.map_err(|e| e.context(format!("backup into {repo}")))
}

/// Now as Unix time, in seconds.
pub(super) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
