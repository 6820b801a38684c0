//! The audit trail: one JSON line per backup, verify, restore, pruned backup and rebuild,
//! appended to `DATA_DIR/audit.log` and logged.
//!
//! Who did what to the backups and when is asked after an incident, when the process logs may
//! be gone: the trail lives beside the data it is about. Each line is written with one
//! `write` on a file opened `O_APPEND` and fsync'd, so lines of concurrent writers (scheduled
//! backups to several repositories, a `daybook backup` from a shell) never interleave and a
//! line acknowledged survives a crash. Writing it never fails the operation it records: a
//! failure is logged and counted (`daybook_audit_write_failures_total`), and the line is in
//! the process log all the same.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use seams::metric::{Kind, Metric};
use serde::Serialize;
use serde_json::{Map, Value};

/// The file in the data directory.
pub const FILE: &str = "audit.log";

pub const AUDIT_WRITE_FAILURES_TOTAL: Metric = Metric {
    name: "daybook_audit_write_failures_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Audit lines (backup, verify, restore, prune, rebuild) that could not be appended to the audit log; each is still in the process log, and the operation it records is unaffected.",
};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Backup,
    Verify,
    Restore,
    /// One backup deleted by `--keep-full` (a line per backup).
    Prune,
    Rebuild,
}

/// One line of the trail, but for the time, user and process it adds.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: Action,
    /// The backup repository (a directory or `s3://BUCKET/PREFIX`), when there is one.
    pub repo: Option<String>,
    /// The backups it concerns.
    pub ids: Vec<String>,
    /// `None`: it succeeded; else why it failed.
    pub error: Option<String>,
    pub seconds: f64,
    /// What else the action tells (a backup's kind, a restore's chain…).
    pub details: Map<String, Value>,
}

impl Entry {
    /// An entry for `action` begun at `started`, ok or failed as `result` is.
    pub fn new<T>(action: Action, repo: Option<String>, started: Instant, result: &anyhow::Result<T>) -> Self {
        Self {
            action,
            repo,
            ids: Vec::new(),
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            seconds: started.elapsed().as_secs_f64(),
            details: Map::new(),
        }
    }

    /// Adds detail `key`.
    pub fn detail(&mut self, key: &str, value: impl Serialize) {
        self.details.insert(key.to_owned(), serde_json::to_value(value).unwrap_or(Value::Null));
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    user: String,
    pid: u32,
    action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<&'a str>,
    ids: &'a [String],
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    seconds: f64,
    #[serde(flatten)]
    details: &'a Map<String, Value>,
}

/// The OS user this process runs as: its uid's name, else `$USER`, else the uid.
fn user() -> String {
    uzers::get_current_username()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uzers::get_current_uid().to_string())
}

/// The line `entry` is written as.
fn line(entry: &Entry) -> String {
    let line = Line {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        user: user(),
        pid: std::process::id(),
        action: entry.action,
        repo: entry.repo.as_deref(),
        ids: &entry.ids,
        outcome: if entry.error.is_none() { "ok" } else { "failed" },
        error: entry.error.as_deref(),
        seconds: entry.seconds,
        details: &entry.details,
    };
    serde_json::to_string(&line).expect("an audit line serializes")
}

/// Appends `entry` to `DATA_DIR/audit.log` and logs it.
pub fn record(data_dir: &Path, entry: Entry) {
    record_in(Some(&data_dir.join(FILE)), entry);
}

/// Appends `entry` to `file`, if any, and logs it (`daybook backup verify` has no data
/// directory: its `--audit-log FILE`, else the log only).
pub fn record_in(file: Option<&Path>, entry: Entry) {
    let text = line(&entry);
    tracing::info!(target: "daybook::audit", "{text}");
    let Some(path) = file else { return };
    let append = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(path)?;
        f.write_all(format!("{text}\n").as_bytes())?;
        f.sync_data()
    };
    if let Err(e) = append() {
        metrics::counter!(AUDIT_WRITE_FAILURES_TOTAL.name).increment(1);
        tracing::error!(error = %e, file = %path.display(), line = %text, "cannot append to the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_its_details_and_a_failure_is_not_fatal() {
        let tmp = tempfile::tempdir().unwrap();
        let mut e = Entry::new(Action::Verify, Some("s3://b/p".into()), Instant::now(), &Ok::<(), anyhow::Error>(()));
        e.ids.push("20261201T000000000Z".into());
        e.detail("files", 3);
        record(tmp.path(), e.clone());
        let failed = Entry::new(Action::Verify, None, Instant::now(), &Err::<(), _>(anyhow::anyhow!("broken")));
        record(tmp.path(), failed.clone());
        let text = fs::read_to_string(tmp.path().join(FILE)).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["action"], "verify");
        assert_eq!(lines[0]["repo"], "s3://b/p");
        assert_eq!(lines[0]["ids"], serde_json::json!(["20261201T000000000Z"]));
        assert_eq!((lines[0]["outcome"].as_str(), lines[0]["files"].as_u64()), (Some("ok"), Some(3)));
        assert_eq!(lines[0]["pid"].as_u64(), Some(u64::from(std::process::id())));
        assert!(!lines[0]["user"].as_str().unwrap().is_empty());
        assert!(chrono::DateTime::parse_from_rfc3339(lines[0]["time"].as_str().unwrap()).is_ok());
        assert!(lines[0].get("error").is_none());
        assert_eq!((lines[1]["outcome"].as_str(), lines[1]["error"].as_str()), (Some("failed"), Some("broken")));
        // Where the file cannot be written, the operation goes on.
        record(&tmp.path().join("missing/dir"), e);
        assert!(!tmp.path().join("missing").exists());
    }
}
