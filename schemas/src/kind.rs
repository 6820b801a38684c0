//! The kinds of reports: the `daybook.type` header's values.

use serde::{Deserialize, Serialize};

/// The kind of a report, as written in the `daybook.type` topic header. Serialized (in a
/// subscription's filter) by position on the wire, by its header name in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// `event_started`
    EventStarted,
    /// `event_ended`
    EventEnded,
    /// `segment_reported`
    SegmentReported,
    /// `digest_reported`
    DigestReported,
    /// `subscription_set`
    SubscriptionSet,
    /// `subscription_deleted`
    SubscriptionDeleted,
    /// `subscription_dead_lettered`
    SubscriptionDeadLettered,
    /// `dead_letters_released`
    DeadLettersReleased,
    /// `event_deleted`
    EventDeleted,
    /// `event_kept`
    EventKept,
    /// `event_unkept`
    EventUnkept,
    /// `device_erased`
    DeviceErased,
    /// `plan_set`
    PlanSet,
    /// `export_requested`
    ExportRequested,
    /// `export_completed`
    ExportCompleted,
}

/// Every kind, in wire order.
pub const ALL_KINDS: [ReportKind; 15] = [
    ReportKind::EventStarted,
    ReportKind::EventEnded,
    ReportKind::SegmentReported,
    ReportKind::DigestReported,
    ReportKind::SubscriptionSet,
    ReportKind::SubscriptionDeleted,
    ReportKind::SubscriptionDeadLettered,
    ReportKind::DeadLettersReleased,
    ReportKind::EventDeleted,
    ReportKind::EventKept,
    ReportKind::EventUnkept,
    ReportKind::DeviceErased,
    ReportKind::PlanSet,
    ReportKind::ExportRequested,
    ReportKind::ExportCompleted,
];

impl ReportKind {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventStarted => "event_started",
            Self::EventEnded => "event_ended",
            Self::SegmentReported => "segment_reported",
            Self::DigestReported => "digest_reported",
            Self::SubscriptionSet => "subscription_set",
            Self::SubscriptionDeleted => "subscription_deleted",
            Self::SubscriptionDeadLettered => "subscription_dead_lettered",
            Self::DeadLettersReleased => "dead_letters_released",
            Self::EventDeleted => "event_deleted",
            Self::EventKept => "event_kept",
            Self::EventUnkept => "event_unkept",
            Self::DeviceErased => "device_erased",
            Self::PlanSet => "plan_set",
            Self::ExportRequested => "export_requested",
            Self::ExportCompleted => "export_completed",
        }
    }

    /// Inverse of [`ReportKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// The schema version that introduced the kind: a record of an older version holding it
    /// is malformed.
    pub fn since_schema(self) -> u16 {
        match self {
            Self::EventStarted | Self::EventEnded | Self::SegmentReported | Self::DigestReported => 1,
            Self::SubscriptionSet
            | Self::SubscriptionDeleted
            | Self::SubscriptionDeadLettered
            | Self::DeadLettersReleased => 3,
            Self::EventDeleted | Self::EventKept | Self::EventUnkept | Self::DeviceErased | Self::PlanSet => 4,
            Self::ExportRequested | Self::ExportCompleted => 5,
        }
    }

    /// Whether the owner of a device makes reports of this kind (through the viewer API), or
    /// the export worker on the owner's behalf.
    pub fn is_owner_report(self) -> bool {
        self.since_schema() >= 4
    }

    /// Whether a device makes reports of this kind (the first four).
    pub fn is_device_report(self) -> bool {
        matches!(self, Self::EventStarted | Self::EventEnded | Self::SegmentReported | Self::DigestReported)
    }
}
