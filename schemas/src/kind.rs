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
}

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
        }
    }

    /// Inverse of [`ReportKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::EventStarted,
            Self::EventEnded,
            Self::SegmentReported,
            Self::DigestReported,
            Self::SubscriptionSet,
            Self::SubscriptionDeleted,
            Self::SubscriptionDeadLettered,
            Self::DeadLettersReleased,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether a device makes reports of this kind (the first four).
    pub fn is_device_report(self) -> bool {
        matches!(self, Self::EventStarted | Self::EventEnded | Self::SegmentReported | Self::DigestReported)
    }
}
