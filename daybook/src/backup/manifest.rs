//! The manifest of one backup: `<id>/manifest.json` in the destination, written last (a backup
//! without one is incomplete and ignored). Sealed with the key when the backup is encrypted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build writes; it reads this one only.
pub const FORMAT: u32 = 1;

/// The file name of a backup's manifest.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Log, group positions, store snapshot, every object, secrets.
    Full,
    /// Log since the parent's end, group positions, objects added since, secrets.
    Incremental,
    /// Everything since its full (the parent): the log from the full's end, the objects added
    /// or changed since the full's index, group positions and secrets. A restore at a
    /// differential needs only its full; incrementals may continue it.
    Differential,
}

impl Kind {
    /// The name in metrics labels, logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Differential => "differential",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Sortable and time-based: `YYYYMMDDTHHMMSSmmmZ` (UTC).
    pub id: String,
    pub kind: Kind,
    /// The backup this one continues (an incremental: the newest backup of the chain; a
    /// differential: its full).
    pub parent: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The daybook version that wrote it.
    pub daybook_version: String,
    /// Whether its files (and this manifest) are sealed with a key.
    pub encrypted: bool,
    /// The log offsets this backup covers, `[first, next)`: every record the log held in that
    /// range (offsets a failed commit burned hold none). Consecutive backups of a chain cover
    /// consecutive ranges.
    pub log: LogRange,
    /// CRC-32C of the last log record backed up in this chain: an incremental continues only
    /// a log whose record at [`last_frame_offset`](Self::last_frame_offset) still has it (not
    /// another data directory's, nor one restored from an older backup that went on with other
    /// records).
    #[serde(default)]
    pub last_frame_crc: Option<u32>,
    /// The offset of that record (older manifests: `log.next - 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_frame_offset: Option<i64>,
    /// Consumer group positions (next offset), read before the store snapshot.
    pub groups: BTreeMap<String, i64>,
    /// Every file of this backup.
    pub files: Vec<FileEntry>,
    pub counts: Counts,
    /// Seconds the backup took.
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRange {
    pub first: i64,
    pub next: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name inside the backup (`log-00000000000000000001.seg.zst`, `store.db.zst`, …).
    pub name: String,
    /// Bytes before compression and encryption.
    pub size: u64,
    /// Bytes in the destination.
    pub stored_size: u64,
    /// SHA-256 of the stored bytes (hex): checkable without the key.
    pub sha256: String,
    /// For a log piece: the offsets it covers, `[first, next)` (it is restored as a segment
    /// named `first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogRange>,
    /// For a log piece: how many records it holds (older manifests: `next - first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Log records in this backup.
    pub records: u64,
    /// Objects in this backup (for an incremental: added or changed since its parent).
    pub objects: u64,
    pub object_bytes: u64,
    /// Rows per table of the store snapshot (full only).
    #[serde(default)]
    pub store_rows: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Bytes this backup occupies in its destination (manifest excluded).
    pub fn stored_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.stored_size).sum()
    }
}

const ID_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

/// A new backup id for `now`.
pub fn new_id(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format(ID_FORMAT).to_string()
}

/// The time an id names.
fn id_time(id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::NaiveDateTime::parse_from_str(id, ID_FORMAT).ok().map(|t| t.and_utc())
}

/// Whether `name` is a backup id.
pub fn is_id(name: &str) -> bool {
    name.len() == 19 && id_time(name).is_some()
}

/// The id of a backup taken at `now` into a destination whose newest id is `newest`: sorts
/// after it even when it names a later time (a clock that ran ahead, then was corrected).
pub fn next_id(now: chrono::DateTime<chrono::Utc>, newest: Option<&str>) -> String {
    let id = new_id(now);
    match newest.and_then(id_time) {
        Some(t) if new_id(t) >= id => new_id(t + chrono::Duration::milliseconds(1)),
        _ => id,
    }
}

impl Manifest {
    /// The offset of the last record of the chain this manifest ends, if any.
    pub fn last_frame_at(&self) -> Option<i64> {
        self.last_frame_crc.map(|_| self.last_frame_offset.unwrap_or(self.log.next - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_after_the_newest_even_when_it_is_in_the_future() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00.123Z").unwrap().to_utc();
        assert_eq!(next_id(now, None), "20261207T100000123Z");
        assert_eq!(next_id(now, Some("20261207T095959000Z")), "20261207T100000123Z");
        assert_eq!(next_id(now, Some("20261207T100000123Z")), "20261207T100000124Z");
        assert_eq!(next_id(now, Some("20271231T235959999Z")), "20280101T000000000Z");
        assert!(is_id("20261207T100000123Z") && !is_id("20261307T100000123Z") && !is_id("x"));
    }
}
