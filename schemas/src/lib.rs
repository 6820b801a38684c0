//! daybook's contracts as types.
//!
//! * [`ids`]: validated identifiers parsed at the edge (device, event, segment, event type, day).
//! * [`time`]: millisecond timestamps and the service's day boundary.
//! * [`report`]: every report a device can make and its validation (docs/device-api.md).
//! * [`rows`]: the rows a report writes in a projection store: their partition (device, day)
//!   and expiry.
//! * [`error_code`]: every machine-readable error code, as one enum.
//! * [`envelope`]: the versioned bincode envelope carried on the topic (docs/topic.md).
//! * [`subscription`]: notification subscriptions, as reports on the log (schema version 3).
//! * [`kind`]: the report kinds (`daybook.type`).
//! * [`owner`]: the owner's reports: deletions, keeps, erasures, plans (schema version 4).
//! * [`export`]: the owner's copy: exports asked for and completed (schema version 5).
//! * [`json`]: the envelope as the flat JSON object `daybook tail` prints (docs/topic.md).
//!
//! This crate is also the decoder analytics consumers use: `Envelope::decode` reads every
//! schema version ever written.

pub mod columns;
pub mod day;
pub mod envelope;
pub mod error_code;
pub mod export;
pub mod id_error;
pub mod ids;
pub mod json;
pub mod kind;
pub mod owner;
pub mod report;
pub mod rows;
pub mod subscription;
pub mod time;

pub use envelope::{DecodeError, Envelope, SCHEMA_VERSION};
pub use error_code::ErrorCode;
pub use export::{ExportCompleted, ExportOutcome, ExportRequested};
pub use ids::{
    Day, DeviceId, EventId, EventType, ExportId, IdError, SegmentId, SubscriptionId, DAY_PATTERN, EVENT_ID_PATTERN,
};
pub use owner::{DeviceErased, EventDeleted, EventKept, EventUnkept, PlanSet};
pub use report::{
    DigestReported, EndStatus, EventEnded, EventMapping, EventStarted, Invalid, Media, Report, ReportKind,
    SegmentReported, TimePolicy,
};
pub use subscription::{
    Blob, DeadLettersReleased, ReplayedLetter, Sealed, SubscriptionDeadLettered, SubscriptionDeleted, SubscriptionSet,
};
pub use time::{DayOffset, DeviceZone, LocalTime, Timestamp, ZoneRule};
