//! The owner's reports (schema version 4, docs/topic.md): what a camera's owner asks of its
//! footage, put on the log by the viewer API (an erasure also by `daybook erase device`) like a
//! device's reports, keyed by the device so they keep their order with its reports. This build
//! produces and projects every one of them: the viewer API the owner's changes, ingest a
//! device's [`PlanSet`] when its plan changes.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, EventId};

/// Fewest days a plan may keep a device's history.
pub const MIN_PLAN_DAYS: u32 = 7;
/// Most days a plan may keep a device's history.
pub const MAX_PLAN_DAYS: u32 = 365;

/// The owner deleted an event: it leaves the day page and the calendar's count, its snapshot
/// and the segments no other live event maps are deleted, and a report about it that arrives
/// later (an end, a segment) does not bring it back (docs/data-model.md, Deletions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDeleted {
    /// The device (the topic key).
    pub cid: DeviceId,
    /// The event.
    pub event_id: EventId,
}

/// The owner asked to keep an event past the device's retention (docs/data-model.md, Keeping
/// events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventKept {
    /// The device.
    pub cid: DeviceId,
    /// The event.
    pub event_id: EventId,
}

/// The owner no longer keeps an event: it expires by the normal rule, at once if it is past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUnkept {
    /// The device.
    pub cid: DeviceId,
    /// The event.
    pub event_id: EventId,
}

/// Everything of a device is erased: every row, count, object and quarantined record of it and
/// its dead letters, and any report of it not newer than the erasure (by
/// `crate::rows::write_stamp`) applied later — replayed, late, from a second projector — is
/// never served; reports newer than it are (the device reports again). See `crate::rows` and
/// docs/data-model.md, Erasures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceErased {
    /// The device.
    pub cid: DeviceId,
}

/// A device's plan changed: how many days of its history are kept, from this report on. Ingest
/// appends one before a device's report when the plan its token carries differs from the last
/// it saw for the device (docs/data-model.md, Plans); every report also carries its own
/// retention (`crate::Envelope::retention_days`), which is what the stores expire rows by, so
/// this report writes no row: it tells the topic's consumers and notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSet {
    /// The device.
    pub cid: DeviceId,
    /// Days of history, [`MIN_PLAN_DAYS`]`..=`[`MAX_PLAN_DAYS`].
    pub retention_days: u32,
}
