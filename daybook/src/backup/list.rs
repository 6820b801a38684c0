//! `daybook backup list`: the backups in a destination.

use std::collections::HashMap;

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
    /// Every backup a restore at this one reads besides it, oldest first: its full, then (for
    /// a backup after a differential) the differential and the incrementals between.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
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
    let ids = dest.ids()?;
    let ids_count = ids.len();
    for id in ids {
        let listed = match read_manifest(dest.as_ref(), &id, key) {
            Ok(m) => Listed {
                id,
                kind: Some(m.kind),
                parent: m.parent.clone(),
                needs: None,
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
                needs: None,
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
    // What each needs, from the parents just read: a backup whose parents cannot all be read
    // has no list (its problem is in the row of the one that cannot).
    let parents: HashMap<String, Option<String>> =
        out.iter().filter(|l| l.kind.is_some()).map(|l| (l.id.clone(), l.parent.clone())).collect();
    for l in out.iter_mut().filter(|l| l.kind.is_some()) {
        let mut needs = Vec::new();
        let mut at = l.parent.clone();
        let whole = loop {
            match at {
                None => break true,
                Some(p) => match parents.get(&p) {
                    Some(next) if needs.len() < ids_count => {
                        at = next.clone();
                        needs.push(p);
                    }
                    _ => break false,
                },
            }
        };
        if whole {
            needs.reverse();
            l.needs = Some(needs);
        }
    }
    for id in dest.incomplete()? {
        out.push(Listed {
            id,
            kind: None,
            parent: None,
            needs: None,
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
