//! daybook's contracts as types.
//!
//! * [`ids`]: validated identifiers parsed at the edge (device, event, segment, event type, day).
//! * [`time`]: millisecond timestamps and the service's day boundary.
//! * [`report`]: every report a device can make (BRIEF §3–4) and its validation.
//! * [`envelope`]: the versioned bincode envelope carried on the topic (BRIEF §6).
//! * [`json`]: the envelope as the flat JSON object `daybook tail` prints (docs/topic.md).
//!
//! This crate is also the decoder analytics consumers use: `Envelope::decode` reads every
//! schema version ever written.

pub mod envelope;
pub mod ids;
pub mod json;
pub mod report;
pub mod time;

pub use envelope::{DecodeError, Envelope, SCHEMA_VERSION};
pub use ids::{Day, DeviceId, EventId, EventType, IdError, SegmentId};
pub use report::{
    DigestReported, EndStatus, EventEnded, EventMapping, EventStarted, Invalid, Media, Report, ReportKind,
    SegmentReported, TimePolicy,
};
pub use time::{DayOffset, Timestamp};
