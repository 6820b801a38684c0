//! The owner's copy (schema version 5, docs/topic.md, docs/viewer-api.md, Exports): the owner
//! asks for an archive of a camera's events between two of its days ([`ExportRequested`], put
//! on the log by the viewer API), and the export worker answers with where the archive is, or
//! why there is none ([`ExportCompleted`]). Both are keyed by the device, so they keep their
//! order with its reports, and an erasure of the device covers them like every report of it.

use serde::{Deserialize, Serialize};

use crate::ids::{Day, DeviceId, ExportId};
use crate::time::Timestamp;

/// Most days one export spans (`from` and `to` included): a month of footage per archive.
pub const MAX_EXPORT_DAYS: u32 = 31;
/// How long an export that was asked for stays pending without a completion before it is
/// dropped (the worker completes every export it finds long before: this bounds what a
/// deployment without a worker accumulates).
pub const PENDING_EXPORT_MS: i64 = 7 * 86_400_000;
/// Longest reason a failed export carries.
pub const MAX_EXPORT_REASON: usize = 500;

/// The owner asked for an archive of the device's events triggered on its local days `from` to
/// `to` (both included, at most [`MAX_EXPORT_DAYS`], inside retention when asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequested {
    /// The device.
    pub cid: DeviceId,
    /// The export (issued by the viewer API).
    pub export_id: ExportId,
    /// The first day.
    pub from: Day,
    /// The last day.
    pub to: Day,
}

/// How an export ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportOutcome {
    /// The archive is in the object store.
    Ready {
        /// Its key: `exports/<cid>/<export_id>.tar`.
        key: String,
        /// Its size in bytes.
        bytes: u64,
        /// How many events it holds.
        events: u32,
    },
    /// No archive: why (at most [`MAX_EXPORT_REASON`] bytes).
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// The export worker finished an export (docs/viewer-api.md, Exports): the archive is ready, or
/// the export failed. Of a requested and a completed report of one export, the completed one
/// decides, whatever their order. The export, and its archive, are gone at `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCompleted {
    /// The device.
    pub cid: DeviceId,
    /// The export.
    pub export_id: ExportId,
    /// When its request was received (its envelope's `received_at`): an erasure of the device
    /// received after it covers the completion too (`crate::rows::erasable`), so an archive
    /// built while the device was being erased is never listed.
    pub requested_at: Timestamp,
    /// The first day asked for (as in the request: the completion describes the export whole).
    pub from: Day,
    /// The last day asked for.
    pub to: Day,
    /// Ready or failed.
    pub outcome: ExportOutcome,
    /// When the export (its listing and its archive) expires: completion + `--export-ttl`.
    pub expires_at: Timestamp,
}

/// The object key of an export's archive.
pub fn archive_key(cid: &DeviceId, export_id: &ExportId) -> String {
    format!("exports/{cid}/{export_id}.tar")
}

/// An export as the log's reports about it make it: its state (the completion, when one was
/// applied), the days asked for (when the request was), and when it expires. Stores keep one per
/// (device, export id): a completion beats a request whatever their order, and of two
/// reports of the same rank the newer write stamp wins (`crate::rows::write_stamp`).
///
/// Returns the rank (0: requested, 1: completed) and the expiry of `envelope`'s export report,
/// `None` for any other report. A pending export expires [`PENDING_EXPORT_MS`] after it was
/// asked for, a completed one at its `expires_at`; a store writes no export row past its
/// expiry and drops it then (with its archive).
pub fn expiry(envelope: &crate::Envelope) -> Option<(u8, Timestamp)> {
    match &envelope.report {
        crate::Report::ExportRequested(_) => Some((0, envelope.received_at.plus_millis(PENDING_EXPORT_MS))),
        crate::Report::ExportCompleted(r) => Some((1, r.expires_at)),
        _ => None,
    }
}
