//! Backups of an embedded data directory, built on the log's own positions.
//!
//! A **full** backup holds the log's records (the frames of every segment, up to the last
//! frame that checks), the consumer-group positions, a consistent snapshot of `store.db`
//! (SQLite's online backup API, taken *after* the group positions: a restored projector
//! resumes at or before what the store holds, and replays are idempotent), every object under
//! `objects/`, and the secrets files. An **incremental** holds the log records from its
//! parent's end to now, the objects added or changed since (by path, size and mtime against
//! the chain's indexes), and the group positions and secrets again — not the store: the store
//! is a function of the log, so restoring at an incremental takes the full's store and group
//! positions plus the log up to the incremental, and the projector replays the tail at the
//! next `run` (or `daybook rebuild`). Copying the store each time would make every
//! incremental as large as a full.
//!
//! The backup is a separate reader of the data directory: it never stops or pauses `run`. It
//! reads the log's files through the log's own format code
//! (`infra::embedded_log::files`), up to the durable head the writer publishes, and snapshots
//! the store through `infra::embedded_store::files`: the formats have one owner.
//!
//! Files are zstd-compressed and, with a key ring, sealed with its first key (see [`crypto`]);
//! the manifest lists each with its size, stored size and SHA-256 of the stored bytes (see
//! [`manifest`]). With keys given, everything read back must be sealed and open with one of
//! them: a plain backup in an encrypted destination is refused, never read unauthenticated.
//!
//! A **differential** holds everything since its full — the log from the full's end, the
//! objects added or changed since the full's index, group positions and secrets — with the
//! full as its parent: a restore at it reads the full and the differential only, however many
//! incrementals came between. Incrementals may continue a differential (`[full, differential,
//! incremental…]`). Pruning keeps every backup a kept backup's chain needs.
//!
//! Between backups, `run --replicate-to` ships the log's records, new objects and changed
//! secrets to the repository every second or so ([`ship`], layout in [`wal`]); a restore
//! continues the newest backup with them, and can stop at any instant or offset (a
//! point-in-time restore cuts the log on its own append time, then the store is rebuilt).
//!
//! Modules by role: [`stored`] (the file pipeline, manifests, chains), [`packs`] (objects and
//! secrets), [`take`] (backup and prune), [`restore`], [`verify`], [`list`], [`schedule`]
//! (`run --backup-to`, a task per repository), [`trial`] (scheduled verifies), [`ship`] and
//! [`wal`] (continuous shipping); `daybook rebuild` is a replay, in `crate::rebuild`. Every
//! backup, verify, restore, pruned backup and rebuild is recorded in the audit trail
//! ([`crate::audit`]).

pub mod crypto;
mod dest;
mod journal;
mod list;
pub mod manifest;
mod packs;
mod restore;
pub mod schedule;
pub mod ship;
mod stored;
mod take;
pub mod trial;
mod verify;
mod wal;

pub use crypto::KeyRing;
pub use dest::{repo_label, S3Options};
pub use list::{list, Listed};
pub use manifest::{Counts, FileEntry, Kind, LogRange, Manifest};
pub use restore::{restore, RestoreOptions, Restored, Until};
pub(crate) use take::BACKUP_PRUNE_PROBLEMS_TOTAL;
pub use take::{backup, backup_with, BackupOptions, Due, Taken};
pub use verify::{verify, Verified};

/// The secrets files of a data directory (see `secrets.rs`).
pub const SECRETS: [&str; 4] =
    ["token-secret", crate::secrets::KEYS_FILE, crate::secrets::REVOKED_FILE, "s3-credentials"];

const STORE_FILE: &str = "store.db.zst";
/// Objects go into packs `objects-0001.pack.zst`, … of about this many plain bytes each
/// (under S3's 5 GiB limit on one PUT, and a unit a failed upload repeats).
const OBJECTS_PACK_BYTES: u64 = if cfg!(test) { 64 << 10 } else { 1 << 30 };
const OBJECTS_INDEX: &str = "objects.idx.zst";
const SECRETS_FILE: &str = "secrets.pack.zst";

fn objects_pack(n: usize) -> String {
    format!("objects-{n:04}.pack.zst")
}

fn is_objects_pack(name: &str) -> bool {
    name.starts_with("objects-") && name.ends_with(".pack.zst")
}

/// Why a backup is refused or cannot be taken, continued or restored (beside plain I/O
/// errors). Found in an `anyhow` chain with [`BackupError::of`].
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A sealed backup read without keys.
    #[error("{what}: the backup is encrypted: give --encryption-key-file")]
    NeedsKey { what: String },
    /// No key given opens it.
    #[error("{what}: wrong key or tampered (no key of the key file opens it)")]
    WrongKey { what: String },
    /// Plain, where keys were given: with keys, everything must be sealed.
    #[error("{what}: not encrypted, but a key was given: refused (with a key every backup must be sealed; a plain backup in an encrypted destination is not read)")]
    NotSealed { what: String },
    /// Unreadable or inconsistent content.
    #[error("{what}: {why}")]
    Damaged { what: String, why: String },
    /// A chain that does not hold together (a parent missing, ranges that do not meet).
    #[error("{0}")]
    Broken(String),
    /// Retention deleted log records the incremental needs.
    #[error("the log no longer holds offset {from} (its oldest segment starts at {oldest}): retention deleted records after the newest backup")]
    LogMoved { from: i64, oldest: i64 },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl BackupError {
    /// The backup error in `e`'s chain, if any.
    pub fn of(e: &anyhow::Error) -> Option<&BackupError> {
        e.chain().find_map(|c| {
            c.downcast_ref::<BackupError>().or_else(|| {
                c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
            })
        })
    }
}

#[cfg(test)]
mod tests;
