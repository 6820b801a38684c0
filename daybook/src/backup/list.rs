//! `daybook backup list`: the backups in a destination.

use super::crypto::KeyRing;
use super::dest::{self, S3Options};
use super::manifest::{Kind, LogRange};
use super::stored::read_manifest;
use super::BackupError;

/// One line of `daybook backup list`.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The complete backups in `to`, oldest first, and those left incomplete.
pub fn list(to: &str, key: Option<&KeyRing>, s3: &S3Options) -> anyhow::Result<Vec<Listed>> {
    let dest = dest::open(to, s3, false)?;
    let mut out = Vec::new();
    for id in dest.ids()? {
        let listed = match read_manifest(dest.as_ref(), &id, key) {
            Ok(m) => Listed {
                id,
                kind: Some(m.kind),
                parent: m.parent.clone(),
                encrypted: m.encrypted,
                created_at: Some(m.created_at.clone()),
                log: Some(m.log),
                records: Some(m.counts.records),
                objects: Some(m.counts.objects),
                stored_bytes: Some(m.stored_bytes()),
                problem: None,
            },
            Err(e) => Listed {
                encrypted: matches!(
                    BackupError::of(&e),
                    Some(BackupError::NeedsKey { .. } | BackupError::WrongKey { .. })
                ),
                id,
                kind: None,
                parent: None,
                created_at: None,
                log: None,
                records: None,
                objects: None,
                stored_bytes: None,
                problem: Some(format!("{e:#}")),
            },
        };
        out.push(listed);
    }
    for id in dest.incomplete()? {
        out.push(Listed {
            id,
            kind: None,
            parent: None,
            encrypted: false,
            created_at: None,
            log: None,
            records: None,
            objects: None,
            stored_bytes: None,
            problem: Some("incomplete (no manifest): never used, deleted by the next backup with --keep-full".into()),
        });
    }
    Ok(out)
}
