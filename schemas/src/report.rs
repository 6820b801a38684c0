//! The reports devices make, as carried on the topic, and their validation
//! (docs/device-api.md).

use serde::{Deserialize, Serialize};

use crate::columns::{bigint_column, int_column, Unstorable};
use crate::error_code::ErrorCode;
use crate::export::{ExportCompleted, ExportOutcome, ExportRequested, MAX_EXPORT_DAYS, MAX_EXPORT_REASON};
use crate::ids::{Day, DeviceId, EventId, EventType, SegmentId};
pub use crate::kind::ReportKind;
use crate::owner::{DeviceErased, EventDeleted, EventKept, EventUnkept, PlanSet, MAX_PLAN_DAYS, MIN_PLAN_DAYS};
use crate::subscription::{DeadLettersReleased, SubscriptionDeadLettered, SubscriptionDeleted, SubscriptionSet};
use crate::time::{DayOffset, Timestamp};

/// Largest object a segment or digest report may describe (5 GiB, S3's single PUT limit).
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Most keyframe offsets one segment may carry.
pub const MAX_KEYFRAMES: usize = 4096;
/// Most events one segment may map into.
pub const MAX_MAPPINGS: usize = 64;
/// Longest segment or digest (24 h).
pub const MAX_DURATION_MS: u32 = 24 * 3600 * 1000;
/// Most segments one event can hold: a mapping's `index` is below this. Bounding the index
/// bounds the distinct (event, index) keys, so no device can grow an event's detail past it,
/// and no store needs to read before writing to enforce it (docs/device-api.md).
pub const MAX_SEGMENTS_PER_EVENT: u32 = 2048;

// The OpenAPI document states these limits as literals (`#[schema(maximum = …)]` takes no
// constants): keep them in step.
const _: () = assert!(MAX_OBJECT_SIZE == 5_368_709_120 && MAX_SEGMENTS_PER_EVENT == 2048);
const _: () = assert!(MAX_DURATION_MS == 86_400_000 && MAX_KEYFRAMES == 4096 && MAX_MAPPINGS == 64);

/// A device opened an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventStarted {
    /// The device.
    pub cid: DeviceId,
    /// `EventId::new(cid, event_type, triggered_at)`.
    pub event_id: EventId,
    /// What triggered it (`motion`, `sound`, …).
    pub event_type: EventType,
    /// When it fired, by the camera's clock (possibly wrong: see `clock_skew_ms`).
    pub triggered_at: Timestamp,
    /// The camera's UTC offset at the trigger (sent with `triggered_at`, else its configured
    /// zone's, else `--day-offset`): the event's day is `triggered_at`'s date at this offset.
    pub utc_offset: DayOffset,
    /// How far ahead of the server's clock `triggered_at` was on arrival, when more than the
    /// future tolerance (the event is then filed by the server's time: see [`EventId::filed`]).
    pub clock_skew_ms: Option<i64>,
    /// The snapshot's size in bytes as the device stated it (`snapshot_size`), for which its
    /// upload was signed: what storage used counts for the snapshot (schema version 5; `None`
    /// in older records, in batches, and from devices that do not state it).
    pub snapshot_size: Option<u64>,
}

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    /// Recorded in full.
    Complete,
    /// Cut short (device shut down, storage full, …).
    Aborted,
}

impl EndStatus {
    /// `complete` / `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Aborted => "aborted",
        }
    }
    /// Inverse of [`EndStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "complete" => Some(Self::Complete),
            "aborted" => Some(Self::Aborted),
            _ => None,
        }
    }
}

/// A device closed an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnded {
    /// The device.
    pub cid: DeviceId,
    /// The event.
    pub event_id: EventId,
    /// When it ended.
    pub ended_at: Timestamp,
    /// The UTC offset sent with `ended_at` (may differ from the start's: the event's day
    /// comes from its id either way).
    pub utc_offset: DayOffset,
    /// How.
    pub status: EndStatus,
}

/// How a segment is encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Media {
    /// Codec token (`h264`, `h265`, …).
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,32}$", min_length = 1, max_length = 32)]
    pub codec: String,
    /// Pixels.
    #[schema(minimum = 1, maximum = 16384)]
    pub width: u32,
    /// Pixels.
    #[schema(minimum = 1, maximum = 16384)]
    pub height: u32,
    /// Frames per second.
    #[schema(exclusive_minimum = 0, maximum = 1000)]
    pub fps: f64,
    /// Audio sample rate in Hz, if the segment has audio.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 384000)]
    pub audio_sample_rate: Option<u32>,
}

/// Where part of a segment belongs to an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventMapping {
    /// The event.
    pub event_id: EventId,
    /// Position of this segment within the event (0-based, below [`MAX_SEGMENTS_PER_EVENT`]).
    #[schema(minimum = 0, maximum = 2047)]
    pub index: u32,
    /// First byte of the event within the segment.
    #[schema(minimum = 0, maximum = 5368709120.0)]
    pub start_offset: u64,
    /// End byte (exclusive) of the event within the segment; `start ≤ end ≤ size`.
    #[schema(minimum = 0, maximum = 5368709120.0)]
    pub end_offset: u64,
}

/// A device finished uploading a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentReported {
    /// The device.
    pub cid: DeviceId,
    /// The id the server issued with the upload URL.
    pub segment_id: SegmentId,
    /// Bytes.
    pub size: u64,
    /// First frame's time.
    pub started_at: Timestamp,
    /// The UTC offset sent with `started_at`: the segment's own row lives on its local day.
    pub utc_offset: DayOffset,
    /// Length.
    pub duration_ms: u32,
    /// Encoding.
    pub media: Media,
    /// Byte offsets of keyframes, ascending (for seeking).
    pub keyframes: Vec<u64>,
    /// The events this segment holds parts of.
    pub events: Vec<EventMapping>,
}

/// A device uploaded its daily condensed video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestReported {
    /// The device.
    pub cid: DeviceId,
    /// The day it condenses (the camera's local date).
    pub date: Day,
    /// The camera's UTC offset for that date: the day's first instant is its retention start.
    pub utc_offset: DayOffset,
    /// The id the server issued with the upload URL.
    pub segment_id: SegmentId,
    /// Bytes.
    pub size: u64,
    /// Length.
    pub duration_ms: u32,
}

/// Every report on the log: the four a device makes, (since schema version 3) the changes of
/// notification subscriptions, (since version 4) the owner's, and (since version 5) exports. New variants are appended at the end only: bincode
/// numbers variants by position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Report {
    /// See [`EventStarted`].
    EventStarted(EventStarted),
    /// See [`EventEnded`].
    EventEnded(EventEnded),
    /// See [`SegmentReported`].
    SegmentReported(SegmentReported),
    /// See [`DigestReported`].
    DigestReported(DigestReported),
    /// See [`SubscriptionSet`] (schema version 3).
    SubscriptionSet(SubscriptionSet),
    /// See [`SubscriptionDeleted`] (schema version 3).
    SubscriptionDeleted(SubscriptionDeleted),
    /// See [`SubscriptionDeadLettered`] (schema version 3).
    SubscriptionDeadLettered(SubscriptionDeadLettered),
    /// See [`DeadLettersReleased`] (schema version 3).
    DeadLettersReleased(DeadLettersReleased),
    /// See [`EventDeleted`] (schema version 4).
    EventDeleted(EventDeleted),
    /// See [`EventKept`] (schema version 4).
    EventKept(EventKept),
    /// See [`EventUnkept`] (schema version 4).
    EventUnkept(EventUnkept),
    /// See [`DeviceErased`] (schema version 4).
    DeviceErased(DeviceErased),
    /// See [`PlanSet`] (schema version 4).
    PlanSet(PlanSet),
    /// See [`ExportRequested`] (schema version 5).
    ExportRequested(ExportRequested),
    /// See [`ExportCompleted`] (schema version 5).
    ExportCompleted(ExportCompleted),
}

/// The time rules every report is held to.
#[derive(Debug, Clone, Copy)]
pub struct TimePolicy {
    /// Which day an instant belongs to.
    pub offset: DayOffset,
    /// Days a report is kept, counted from its trigger time.
    pub retention_days: u32,
    /// How far in the future a device clock may run.
    pub future_tolerance_ms: i64,
}

impl Default for TimePolicy {
    fn default() -> Self {
        Self { offset: DayOffset::default(), retention_days: 30, future_tolerance_ms: 5 * 60 * 1000 }
    }
}

impl TimePolicy {
    /// Retention in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::from(self.retention_days) * 86_400_000
    }

    /// When data triggered at `t` expires.
    pub fn expires_at(&self, t: Timestamp) -> Timestamp {
        t.plus_millis(self.retention_ms())
    }

    /// The oldest day still inside retention on `today`.
    pub fn oldest_kept_day(&self, now: Timestamp) -> Day {
        let today = self.offset.day_of(now).expect("now is in range");
        // A day is dropped whole once its *last* instant is past retention.
        today.add_days(-i64::from(self.retention_days))
    }

    /// How far `claimed` (a camera's clock) is ahead of the server's `now`, when by more
    /// than the tolerance. Such a claim is kept, but filed by the server's time.
    pub fn clock_skew_ms(&self, claimed: Timestamp, now: Timestamp) -> Option<i64> {
        let skew = claimed.millis().saturating_sub(now.millis());
        (skew > self.future_tolerance_ms).then_some(skew)
    }

    /// The id of a start the camera claims at `triggered_at` (at `offset`) and the server
    /// receives at `now`, with the clock skew if any. The rule (docs/data-model.md, Wrong clocks): the
    /// event is filed under the local day of the claim, unless the claim is more than the
    /// tolerance ahead of `now` — then under the local day of `now` (the claim clamped to the
    /// receive time). The id keeps the claimed milliseconds, so a start re-sent on the same
    /// filing day gets the same id.
    ///
    /// `legacy`: the time came without an offset (`Z`) and the device has no configured zone,
    /// so `offset` is `--day-offset`: the id keeps the version 1 form (no offset), exactly as
    /// before offsets were kept, so a device that spells its ids itself keeps working — unless
    /// the event is filed early, which only the version 2 form can say.
    pub fn start_id(
        &self,
        cid: &DeviceId,
        event_type: &EventType,
        triggered_at: Timestamp,
        offset: DayOffset,
        legacy: bool,
        now: Timestamp,
    ) -> Result<(EventId, Option<i64>), Invalid> {
        let invalid = |e: crate::ids::IdError| Invalid::new(ErrorCode::InvalidTriggerTime, e.to_string());
        match self.clock_skew_ms(triggered_at, now) {
            None if legacy => Ok((EventId::new_v1(cid, event_type, triggered_at, offset).map_err(invalid)?, None)),
            None => Ok((EventId::new(cid, event_type, triggered_at, offset).map_err(invalid)?, None)),
            Some(skew) => {
                let day = offset.day_of(now).expect("now is in range");
                Ok((EventId::filed(cid, event_type, triggered_at, offset, day).map_err(invalid)?, Some(skew)))
            }
        }
    }

    /// Refuses `t` once it is past retention. A time ahead of the server's clock is a
    /// camera's wrong clock: kept (see [`TimePolicy::start_id`]), never refused.
    fn check_time(&self, what: &'static str, t: Timestamp, now: Timestamp) -> Result<(), Invalid> {
        if self.expires_at(t) <= now {
            return Err(Invalid::new(
                ErrorCode::PastRetention,
                format!("{what} {t} is older than the {}-day retention", self.retention_days),
            ));
        }
        Ok(())
    }

    fn check_event(&self, cid: &DeviceId, id: &EventId, now: Timestamp) -> Result<(), Invalid> {
        self.check_event_id(cid, id, now)?;
        self.check_time("event trigger time", id.filed_at(self.offset), now)
    }

    /// The rules of an event id named by a report, whatever its age.
    fn check_event_id(&self, cid: &DeviceId, id: &EventId, now: Timestamp) -> Result<(), Invalid> {
        if id.device() != cid {
            return Err(Invalid::new(ErrorCode::ForeignEvent, format!("event {id} belongs to another device")));
        }
        match id.offset() {
            // Version 1: the day is the trigger day at the deployment's offset.
            None if self.offset.day_of(id.triggered_at()) != Some(id.day()) => {
                return Err(Invalid::new(
                    ErrorCode::InvalidEventId,
                    format!("event id {id} does not carry its trigger day at offset {}", self.offset),
                ));
            }
            None => {}
            // Filed early: only a fast clock's start, received on that (past or current) day.
            Some(offset) if id.filed_early() && Some(id.day()) > offset.day_of(now) => {
                return Err(Invalid::new(
                    ErrorCode::InvalidEventId,
                    format!("event id {id} is filed under a day that has not begun"),
                ));
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// A well-formed report that breaks a rule (HTTP 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// Which rule it breaks.
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// A new refusal.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

fn check_size(what: &str, size: u64) -> Result<(), Invalid> {
    if size == 0 || size > MAX_OBJECT_SIZE {
        return Err(Invalid::new(ErrorCode::InvalidSize, format!("{what} size {size} must be 1..={MAX_OBJECT_SIZE}")));
    }
    Ok(())
}

fn check_duration(duration_ms: u32) -> Result<(), Invalid> {
    if duration_ms == 0 || duration_ms > MAX_DURATION_MS {
        return Err(Invalid::new(
            ErrorCode::InvalidDuration,
            format!("duration_ms {duration_ms} must be 1..={MAX_DURATION_MS}"),
        ));
    }
    Ok(())
}

impl Report {
    /// The device it is about: the one that made it, or whose owner did (`None`: a
    /// subscription change).
    pub fn cid(&self) -> Option<&DeviceId> {
        match self {
            Self::EventStarted(r) => Some(&r.cid),
            Self::EventEnded(r) => Some(&r.cid),
            Self::SegmentReported(r) => Some(&r.cid),
            Self::DigestReported(r) => Some(&r.cid),
            Self::EventDeleted(r) => Some(&r.cid),
            Self::EventKept(r) => Some(&r.cid),
            Self::EventUnkept(r) => Some(&r.cid),
            Self::DeviceErased(r) => Some(&r.cid),
            Self::PlanSet(r) => Some(&r.cid),
            Self::ExportRequested(r) => Some(&r.cid),
            Self::ExportCompleted(r) => Some(&r.cid),
            Self::SubscriptionSet(_)
            | Self::SubscriptionDeleted(_)
            | Self::SubscriptionDeadLettered(_)
            | Self::DeadLettersReleased(_) => None,
        }
    }

    /// The subscription a subscription report is about.
    pub fn subscription_id(&self) -> Option<&crate::ids::SubscriptionId> {
        match self {
            Self::SubscriptionSet(r) => Some(&r.subscription_id),
            Self::SubscriptionDeleted(r) => Some(&r.subscription_id),
            Self::SubscriptionDeadLettered(r) => Some(&r.subscription_id),
            Self::DeadLettersReleased(r) => Some(&r.subscription_id),
            _ => None,
        }
    }

    /// The topic key: the device id, or `subscription:<id>` for a subscription change (the
    /// changes of one subscription keep their order in one partition).
    pub fn key(&self) -> String {
        match (self.cid(), self.subscription_id()) {
            (Some(cid), _) => cid.to_string(),
            (None, Some(id)) => format!("subscription:{id}"),
            (None, None) => unreachable!("every report has a device or a subscription"),
        }
    }

    /// Which report it is (the `daybook.type` header).
    pub fn kind(&self) -> ReportKind {
        match self {
            Self::EventStarted(_) => ReportKind::EventStarted,
            Self::EventEnded(_) => ReportKind::EventEnded,
            Self::SegmentReported(_) => ReportKind::SegmentReported,
            Self::DigestReported(_) => ReportKind::DigestReported,
            Self::SubscriptionSet(_) => ReportKind::SubscriptionSet,
            Self::SubscriptionDeleted(_) => ReportKind::SubscriptionDeleted,
            Self::SubscriptionDeadLettered(_) => ReportKind::SubscriptionDeadLettered,
            Self::DeadLettersReleased(_) => ReportKind::DeadLettersReleased,
            Self::EventDeleted(_) => ReportKind::EventDeleted,
            Self::EventKept(_) => ReportKind::EventKept,
            Self::EventUnkept(_) => ReportKind::EventUnkept,
            Self::DeviceErased(_) => ReportKind::DeviceErased,
            Self::PlanSet(_) => ReportKind::PlanSet,
            Self::ExportRequested(_) => ReportKind::ExportRequested,
            Self::ExportCompleted(_) => ReportKind::ExportCompleted,
        }
    }

    /// The instant its own row's day and retention are counted from (a segment's event
    /// mappings count from their events' trigger times instead: see [`crate::rows`]).
    /// `None` for a subscription change, which is kept until replaced, not for a retention,
    /// and for the owner's reports about a whole device.
    pub fn trigger_time(&self, fallback: DayOffset) -> Option<Timestamp> {
        match self {
            Self::EventStarted(r) => Some(r.event_id.filed_at(fallback)),
            Self::EventEnded(r) => Some(r.event_id.filed_at(fallback)),
            Self::EventDeleted(r) => Some(r.event_id.filed_at(fallback)),
            Self::EventKept(r) => Some(r.event_id.filed_at(fallback)),
            Self::EventUnkept(r) => Some(r.event_id.filed_at(fallback)),
            Self::SegmentReported(r) => Some(r.started_at),
            Self::DigestReported(r) => Some(r.utc_offset.start_of(r.date)),
            _ => None,
        }
    }

    /// How far ahead of the server the camera's clock was, when beyond the tolerance.
    pub fn clock_skew_ms(&self, policy: &TimePolicy, now: Timestamp) -> Option<i64> {
        match self {
            Self::EventStarted(r) => r.clock_skew_ms,
            Self::EventEnded(r) => policy.clock_skew_ms(r.ended_at, now),
            Self::SegmentReported(r) => policy.clock_skew_ms(r.started_at, now),
            _ => None,
        }
    }

    /// Checks every rule of a report (docs/device-api.md) that can be checked without
    /// reading stored state, and that every store can hold each of its values
    /// ([`Report::storable`]): a report accepted here is never refused by a store.
    pub fn validate(&self, policy: &TimePolicy, now: Timestamp) -> Result<(), Invalid> {
        self.check_rules(policy, now)?;
        self.storable().map_err(|e| Invalid::new(ErrorCode::Invalid, e.to_string()))
    }

    /// Whether every store can hold every value of the report (see `rows`' module docs).
    pub fn storable(&self) -> Result<(), Unstorable> {
        match self {
            Report::SegmentReported(r) => {
                bigint_column("size", r.size)?;
                int_column("duration_ms", r.duration_ms)?;
                int_column("media.width", r.media.width)?;
                int_column("media.height", r.media.height)?;
                if let Some(rate) = r.media.audio_sample_rate {
                    int_column("media.audio_sample_rate", rate)?;
                }
                for k in &r.keyframes {
                    bigint_column("keyframe", *k)?;
                }
                for m in &r.events {
                    int_column("index", m.index)?;
                    bigint_column("start_offset", m.start_offset)?;
                    bigint_column("end_offset", m.end_offset)?;
                }
                Ok(())
            }
            Report::DigestReported(r) => {
                bigint_column("size", r.size)?;
                int_column("duration_ms", r.duration_ms).map(drop)
            }
            Report::EventStarted(r) => r.snapshot_size.map_or(Ok(()), |n| bigint_column("snapshot_size", n).map(drop)),
            Report::ExportCompleted(ExportCompleted {
                outcome: ExportOutcome::Ready { bytes, events, .. }, ..
            }) => {
                bigint_column("bytes", *bytes)?;
                int_column("events", *events).map(drop)
            }
            // Subscription reports, deletions, keeps, erasures and plans hold no numeric column.
            Report::PlanSet(_)
            | Report::EventEnded(_)
            | Report::EventDeleted(_)
            | Report::EventKept(_)
            | Report::EventUnkept(_)
            | Report::DeviceErased(_)
            | Report::ExportRequested(_)
            | Report::ExportCompleted(_)
            | Report::SubscriptionSet(_)
            | Report::SubscriptionDeleted(_)
            | Report::SubscriptionDeadLettered(_)
            | Report::DeadLettersReleased(_) => Ok(()),
        }
    }

    fn check_rules(&self, policy: &TimePolicy, now: Timestamp) -> Result<(), Invalid> {
        match self {
            Self::EventStarted(r) => {
                let legacy = r.event_id.offset().is_none();
                if legacy && r.utc_offset != policy.offset {
                    return Err(Invalid::new(
                        ErrorCode::InvalidEventId,
                        format!("event id {} has no offset but the start is at {}", r.event_id, r.utc_offset),
                    ));
                }
                let (expected, skew) =
                    policy.start_id(&r.cid, &r.event_type, r.triggered_at, r.utc_offset, legacy, now)?;
                if r.snapshot_size.is_some_and(|n| n == 0 || n > MAX_OBJECT_SIZE) {
                    return Err(Invalid::new(
                        ErrorCode::InvalidSize,
                        format!("snapshot_size must be 1..={MAX_OBJECT_SIZE}"),
                    ));
                }
                if expected != r.event_id || skew != r.clock_skew_ms {
                    return Err(Invalid::new(
                        ErrorCode::InvalidEventId,
                        format!("event id {} does not match its device, type and trigger time", r.event_id),
                    ));
                }
                policy.check_event(&r.cid, &r.event_id, now)
            }
            Self::EventEnded(r) => {
                policy.check_event(&r.cid, &r.event_id, now)?;
                if r.ended_at < r.event_id.triggered_at() {
                    return Err(Invalid::new(
                        ErrorCode::EndedBeforeStart,
                        format!("ended_at {} is before the trigger time {}", r.ended_at, r.event_id.triggered_at()),
                    ));
                }
                Ok(())
            }
            Self::SegmentReported(r) => {
                policy.check_time("segment start", r.started_at, now)?;
                check_size("segment", r.size)?;
                check_duration(r.duration_ms)?;
                let m = &r.media;
                if m.codec.is_empty()
                    || m.codec.len() > 32
                    || !m.codec.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
                {
                    return Err(Invalid::new(
                        ErrorCode::InvalidMedia,
                        "media.codec must be 1 to 32 of A-Z a-z 0-9 _ - .",
                    ));
                }
                if m.width == 0 || m.height == 0 || m.width > 16_384 || m.height > 16_384 {
                    return Err(Invalid::new(ErrorCode::InvalidMedia, "media width and height must be 1..=16384"));
                }
                if !(m.fps.is_finite() && m.fps > 0.0 && m.fps <= 1000.0) {
                    return Err(Invalid::new(ErrorCode::InvalidMedia, "media.fps must be in (0, 1000]"));
                }
                if matches!(m.audio_sample_rate, Some(0)) || m.audio_sample_rate.is_some_and(|r| r > 384_000) {
                    return Err(Invalid::new(ErrorCode::InvalidMedia, "media.audio_sample_rate must be 1..=384000"));
                }
                if r.keyframes.len() > MAX_KEYFRAMES {
                    return Err(Invalid::new(
                        ErrorCode::InvalidKeyframes,
                        format!("at most {MAX_KEYFRAMES} keyframes"),
                    ));
                }
                if r.keyframes.windows(2).any(|w| w[0] >= w[1]) || r.keyframes.last().is_some_and(|&k| k >= r.size) {
                    return Err(Invalid::new(
                        ErrorCode::InvalidKeyframes,
                        "keyframes must be strictly ascending offsets below size",
                    ));
                }
                if r.events.len() > MAX_MAPPINGS {
                    return Err(Invalid::new(
                        ErrorCode::InvalidMapping,
                        format!("a segment maps into at most {MAX_MAPPINGS} events"),
                    ));
                }
                for (i, e) in r.events.iter().enumerate() {
                    policy.check_event(&r.cid, &e.event_id, now)?;
                    if e.index >= MAX_SEGMENTS_PER_EVENT {
                        return Err(Invalid::new(
                            ErrorCode::InvalidMapping,
                            format!(
                                "event {}: index {} must be below {MAX_SEGMENTS_PER_EVENT} (segments per event)",
                                e.event_id, e.index
                            ),
                        ));
                    }
                    if !(e.start_offset <= e.end_offset && e.end_offset <= r.size) {
                        return Err(Invalid::new(
                            ErrorCode::InvalidOffsets,
                            format!(
                                "event {}: need 0 <= start_offset ({}) <= end_offset ({}) <= size ({})",
                                e.event_id, e.start_offset, e.end_offset, r.size
                            ),
                        ));
                    }
                    if r.events[..i].iter().any(|p| p.event_id == e.event_id) {
                        return Err(Invalid::new(
                            ErrorCode::InvalidMapping,
                            format!("event {} is mapped twice", e.event_id),
                        ));
                    }
                }
                Ok(())
            }
            Self::DigestReported(r) => {
                check_size("digest", r.size)?;
                check_duration(r.duration_ms)?;
                // A digest condenses a whole day: it is in retention while its day's first
                // instant is, and may not be for a day that has not begun (a date names no
                // instant that could be clamped, unlike a fast clock's trigger time).
                let start = r.utc_offset.start_of(r.date);
                policy.check_time("digest date", start, now)?;
                if start.millis() > now.millis() + policy.future_tolerance_ms {
                    return Err(Invalid::new(ErrorCode::InFuture, format!("digest date {} has not begun", r.date)));
                }
                Ok(())
            }
            Self::SubscriptionSet(r) => r.check().map_err(|e| Invalid::new(ErrorCode::Invalid, e)),
            Self::SubscriptionDeleted(_) | Self::SubscriptionDeadLettered(_) | Self::DeadLettersReleased(_) => Ok(()),
            Self::EventDeleted(EventDeleted { cid, event_id }) | Self::EventKept(EventKept { cid, event_id }) => {
                policy.check_event(cid, event_id, now)
            }
            // An un-keep is for any age: a kept event past retention is un-kept to let it go.
            Self::EventUnkept(EventUnkept { cid, event_id }) => policy.check_event_id(cid, event_id, now),
            Self::DeviceErased(_) => Ok(()),
            Self::PlanSet(r) if !(MIN_PLAN_DAYS..=MAX_PLAN_DAYS).contains(&r.retention_days) => Err(Invalid::new(
                ErrorCode::Invalid,
                format!("retention_days {} must be {MIN_PLAN_DAYS}..={MAX_PLAN_DAYS}", r.retention_days),
            )),
            Self::PlanSet(_) => Ok(()),
            Self::ExportRequested(r) => policy.check_export_range(r.from, r.to, now),
            Self::ExportCompleted(r) => check_export_completed(r),
        }
    }
}

/// The rules of an export's completion: the archive under its own key, a reason of bounded
/// length.
fn check_export_completed(r: &ExportCompleted) -> Result<(), Invalid> {
    match &r.outcome {
        ExportOutcome::Ready { key, .. } if *key != crate::export::archive_key(&r.cid, &r.export_id) => {
            Err(Invalid::new(ErrorCode::Invalid, format!("export {} has its archive under another key", r.export_id)))
        }
        ExportOutcome::Failed { reason } if reason.len() > MAX_EXPORT_REASON => Err(Invalid::new(
            ErrorCode::Invalid,
            format!("a failed export's reason is at most {MAX_EXPORT_REASON} bytes"),
        )),
        _ => Ok(()),
    }
}

impl TimePolicy {
    /// The rules of an export's days (the camera's local days, `from..=to`): in order, at most
    /// [`MAX_EXPORT_DAYS`], the last one begun somewhere on earth by `now`, the first one not
    /// past retention at any offset.
    pub fn check_export_range(&self, from: Day, to: Day, now: Timestamp) -> Result<(), Invalid> {
        let invalid = |m: String| Err(Invalid::new(ErrorCode::InvalidRange, m));
        if from > to {
            return invalid(format!("from {from} is after to {to}"));
        }
        let days = to.days_since(from) + 1;
        if days > i64::from(MAX_EXPORT_DAYS) {
            return invalid(format!("{days} days from {from} to {to}: an export spans at most {MAX_EXPORT_DAYS}"));
        }
        // A camera's day begins up to 14 hours before UTC's and ends up to 12 after.
        let latest = DayOffset::from_minutes(14 * 60).expect("+14:00").day_of(now).expect("now is in range");
        if to > latest {
            return invalid(format!("to {to} has not begun"));
        }
        let oldest = DayOffset::from_minutes(-12 * 60).expect("-12:00").day_of(now.plus_millis(-self.retention_ms()));
        if oldest.is_some_and(|oldest| from < oldest) {
            return invalid(format!("from {from} is past the {}-day retention", self.retention_days));
        }
        Ok(())
    }
}

impl SubscriptionSet {
    /// Whether a record with this kind and key (its `daybook.type` and log key, as on the log)
    /// may pass the filters: `false` rules it out without decoding it (a subscription to
    /// `person` starts skips a midnight burst of digests at the cost of a string compare);
    /// `true` leaves it to [`matches`](Self::matches) on the decoded report.
    pub fn may_match(&self, kind: &str, key: &str) -> bool {
        let Some(kind) = ReportKind::parse(kind) else { return true };
        // Not a device's report: only `matches` on the decoded record says (it is false for
        // every kind but a device's today, and the notifier reads dead letters released to it
        // before asking).
        !kind.is_device_report() || self.takes_kind(kind) && self.takes_device(key)
    }

    /// The kind filter: none, or one that lists `kind`.
    fn takes_kind(&self, kind: ReportKind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// The device filters: none, or a device id or prefix that `cid` matches.
    fn takes_device(&self, cid: &str) -> bool {
        self.devices.is_empty() && self.device_prefixes.is_empty()
            || self.devices.iter().any(|d| d.as_str() == cid)
            || self.device_prefixes.iter().any(|p| cid.starts_with(p.as_str()))
    }

    /// Whether the filters let `report` through (cooldown and max age aside: they depend on
    /// what was sent before and on the time).
    pub fn matches(&self, report: &Report) -> bool {
        let Some(cid) = report.cid() else { return false };
        // Exports are between the owner and the api: no subscription is sent them.
        if matches!(report, Report::ExportRequested(_) | Report::ExportCompleted(_)) {
            return false;
        }
        if !self.takes_device(cid.as_str()) || !self.takes_kind(report.kind()) {
            return false;
        }
        if self.event_types.is_empty() {
            return true;
        }
        let of_type = |id: &EventId| self.event_types.contains(id.event_type());
        match report {
            Report::EventStarted(r) => self.event_types.contains(&r.event_type),
            Report::EventEnded(r) => of_type(&r.event_id),
            Report::SegmentReported(r) => r.events.iter().any(|m| of_type(&m.event_id)),
            Report::DigestReported(_) => true,
            Report::EventDeleted(r) => of_type(&r.event_id),
            // An erasure, and a plan change, are of every type the device had.
            Report::DeviceErased(_) | Report::PlanSet(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> TimePolicy {
        TimePolicy::default()
    }

    fn started(at: Timestamp) -> Report {
        started_with(at, at)
    }

    fn started_with(at: Timestamp, now: Timestamp) -> Report {
        let cid = DeviceId::parse("cam-1").unwrap();
        let event_type = EventType::parse("motion").unwrap();
        let (event_id, clock_skew_ms) =
            policy().start_id(&cid, &event_type, at, DayOffset::default(), false, now).unwrap();
        Report::EventStarted(EventStarted {
            cid,
            event_id,
            event_type,
            triggered_at: at,
            utc_offset: DayOffset::default(),
            clock_skew_ms,
            snapshot_size: None,
        })
    }

    #[test]
    fn retention_and_future_are_enforced() {
        let now = Timestamp::now();
        assert!(started(now).validate(&policy(), now).is_ok());
        assert!(started(now.plus_millis(-3 * 86_400_000)).validate(&policy(), now).is_ok());
        assert_eq!(
            started(now.plus_millis(-31 * 86_400_000)).validate(&policy(), now).unwrap_err().code,
            ErrorCode::PastRetention
        );
        // A fast clock is accepted, marked, and filed by the server's day.
        let fast = started_with(now.plus_millis(2 * 86_400_000), now);
        assert!(fast.validate(&policy(), now).is_ok());
        let Report::EventStarted(fast) = fast else { unreachable!() };
        assert_eq!(fast.clock_skew_ms, Some(2 * 86_400_000));
        assert!(fast.event_id.filed_early());
        assert_eq!(fast.event_id.day(), DayOffset::default().today());
        assert_eq!(EventId::parse(fast.event_id.as_str()).unwrap(), fast.event_id);
    }

    #[test]
    fn an_end_naming_another_spelling_is_refused() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let padded = ev.event_id.as_str().replacen(".cam-1.", ".cam-1.0", 1);
        assert!(EventId::parse(&padded).is_err(), "{padded}");
        // A version 1 id is accepted only with the deployment's day.
        let v1 = EventId::new_v1(&ev.cid, &ev.event_type, now, DayOffset::parse("+14:00").unwrap()).unwrap();
        let end = |event_id: EventId| {
            Report::EventEnded(EventEnded {
                cid: ev.cid.clone(),
                event_id,
                ended_at: now,
                utc_offset: DayOffset::default(),
                status: EndStatus::Complete,
            })
        };
        let same_day = DayOffset::default().day_of(now) == DayOffset::parse("+14:00").unwrap().day_of(now);
        assert_eq!(end(v1).validate(&policy(), now).is_ok(), same_day);
        assert!(end(EventId::new_v1(&ev.cid, &ev.event_type, now, DayOffset::default()).unwrap())
            .validate(&policy(), now)
            .is_ok());
    }

    #[test]
    fn offsets_outside_the_segment_are_refused() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let seg = |start, end| {
            Report::SegmentReported(SegmentReported {
                cid: ev.cid.clone(),
                segment_id: SegmentId::parse("s1").unwrap(),
                size: 100,
                started_at: now,
                utc_offset: DayOffset::default(),
                duration_ms: 10_000,
                media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: None },
                keyframes: vec![0, 50],
                events: vec![EventMapping {
                    event_id: ev.event_id.clone(),
                    index: 0,
                    start_offset: start,
                    end_offset: end,
                }],
            })
        };
        assert!(seg(0, 100).validate(&policy(), now).is_ok());
        assert_eq!(seg(10, 101).validate(&policy(), now).unwrap_err().code, ErrorCode::InvalidOffsets);
        assert_eq!(seg(20, 10).validate(&policy(), now).unwrap_err().code, ErrorCode::InvalidOffsets);
    }

    #[test]
    fn another_devices_event_is_refused() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let end = Report::EventEnded(EventEnded {
            cid: DeviceId::parse("cam-2").unwrap(),
            event_id: ev.event_id,
            ended_at: now,
            utc_offset: DayOffset::default(),
            status: EndStatus::Complete,
        });
        assert_eq!(end.validate(&policy(), now).unwrap_err().code, ErrorCode::ForeignEvent);
    }

    #[test]
    fn a_mapping_index_past_the_per_event_cap_is_refused() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let seg = |index| {
            Report::SegmentReported(SegmentReported {
                cid: ev.cid.clone(),
                segment_id: SegmentId::parse("s1").unwrap(),
                size: 100,
                started_at: now,
                duration_ms: 10_000,
                media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: None },
                keyframes: vec![0],
                utc_offset: ev.utc_offset,
                events: vec![EventMapping { event_id: ev.event_id.clone(), index, start_offset: 0, end_offset: 100 }],
            })
        };
        assert!(seg(0).validate(&policy(), now).is_ok());
        assert!(seg(2047).validate(&policy(), now).is_ok());
        // 2^31 does not fit ScyllaDB's `int` column: accepting it once halted the projector.
        for index in [2048, 1 << 31, u32::MAX] {
            assert_eq!(seg(index).validate(&policy(), now).unwrap_err().code, ErrorCode::InvalidMapping, "{index}");
        }
    }

    #[test]
    fn an_owners_deletion_is_checked_like_a_devices_report_of_the_event() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let deletion = |cid: &str, event_id: EventId| {
            Report::EventDeleted(EventDeleted { cid: DeviceId::parse(cid).unwrap(), event_id })
        };
        assert!(deletion("cam-1", ev.event_id.clone()).validate(&policy(), now).is_ok());
        assert_eq!(
            deletion("cam-2", ev.event_id.clone()).validate(&policy(), now).unwrap_err().code,
            ErrorCode::ForeignEvent
        );
        let Report::EventStarted(old) = started(now.plus_millis(-31 * 86_400_000)) else { unreachable!() };
        assert_eq!(
            deletion("cam-1", old.event_id).validate(&policy(), now).unwrap_err().code,
            ErrorCode::PastRetention
        );
        let d = deletion("cam-1", ev.event_id.clone());
        assert_eq!(
            (d.cid().map(DeviceId::as_str), d.key(), d.kind().as_str()),
            (Some("cam-1"), "cam-1".into(), "event_deleted")
        );
    }

    #[test]
    fn a_keep_is_for_an_event_inside_retention_an_unkeep_for_any_age() {
        let now = Timestamp::now();
        let old = now.plus_millis(-policy().retention_ms() - 86_400_000);
        for (at, keep_ok) in [(now.plus_millis(-60_000), true), (old, false)] {
            let Report::EventStarted(ev) = started(at) else { unreachable!() };
            let keep = Report::EventKept(EventKept { cid: ev.cid.clone(), event_id: ev.event_id.clone() });
            let unkeep = Report::EventUnkept(EventUnkept { cid: ev.cid.clone(), event_id: ev.event_id.clone() });
            assert_eq!(keep.validate(&policy(), now).is_ok(), keep_ok, "{at}");
            assert!(unkeep.validate(&policy(), now).is_ok(), "{at}");
            let other = DeviceId::parse("cam-other").unwrap();
            let foreign = Report::EventUnkept(EventUnkept { cid: other, event_id: ev.event_id.clone() });
            assert_eq!(foreign.validate(&policy(), now).unwrap_err().code, ErrorCode::ForeignEvent);
        }
    }

    #[test]
    fn a_plan_change_is_valid_within_the_plans_bounds() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let cid = ev.cid.clone();
        let report = Report::PlanSet(PlanSet { cid: cid.clone(), retention_days: 60 });
        assert_eq!((report.storable(), report.validate(&policy(), now)), (Ok(()), Ok(())));
        assert!(Report::PlanSet(PlanSet { cid: cid.clone(), retention_days: 6 }).validate(&policy(), now).is_err());
        let plan = |retention_days| Report::PlanSet(PlanSet { cid: cid.clone(), retention_days });
        assert!(plan(6).check_rules(&policy(), now).is_err() && plan(366).check_rules(&policy(), now).is_err());
        assert!(plan(7).check_rules(&policy(), now).is_ok() && plan(365).check_rules(&policy(), now).is_ok());
    }

    /// A subscription to `kinds` of events of `types`, of every device.
    fn subscription(kinds: Vec<ReportKind>, types: &[&str], now: Timestamp) -> crate::SubscriptionSet {
        crate::SubscriptionSet {
            subscription_id: crate::SubscriptionId::parse("s").unwrap(),
            url: "https://h.example/x".into(),
            secrets: vec![crate::Sealed(vec![1; 44])],
            devices: vec![],
            device_prefixes: vec![],
            kinds,
            event_types: types.iter().map(|t| EventType::parse(t).unwrap()).collect(),
            cooldown_ms: 0,
            max_age_ms: None,
            paused: false,
            created_at: now,
        }
    }

    #[test]
    fn an_erasure_is_valid_stored_and_sent_to_every_subscription_of_its_device() {
        let now = Timestamp::now();
        let erased = Report::DeviceErased(DeviceErased { cid: DeviceId::parse("cam-1").unwrap() });
        assert_eq!(erased.validate(&policy(), now), Ok(()));
        assert_eq!((erased.key(), erased.kind().as_str()), ("cam-1".into(), "device_erased"));
        let sub = |kinds: Vec<ReportKind>, types: &[&str], devices: &[&str]| {
            let mut s = subscription(kinds, types, now);
            s.devices = devices.iter().map(|d| DeviceId::parse(d).unwrap()).collect();
            s
        };
        assert!(sub(vec![], &[], &[]).matches(&erased));
        assert!(sub(vec![ReportKind::DeviceErased], &["person"], &["cam-1"]).matches(&erased));
        assert!(!sub(vec![ReportKind::DeviceErased], &[], &["cam-2"]).matches(&erased));
        assert!(!sub(vec![ReportKind::EventStarted], &[], &[]).matches(&erased));
        assert!(sub(vec![ReportKind::DeviceErased], &[], &[]).check().is_ok());
    }

    #[test]
    fn a_deletion_is_sent_to_subscriptions_of_its_event_type() {
        let now = Timestamp::now();
        let Report::EventStarted(ev) = started(now) else { unreachable!() };
        let deletion = Report::EventDeleted(EventDeleted { cid: ev.cid.clone(), event_id: ev.event_id.clone() });
        let sub = |kinds: Vec<ReportKind>, types: &[&str]| subscription(kinds, types, now);
        assert!(sub(vec![], &[]).matches(&deletion));
        assert!(sub(vec![ReportKind::EventDeleted], &["motion"]).matches(&deletion));
        assert!(!sub(vec![ReportKind::EventDeleted], &["person"]).matches(&deletion));
        assert!(!sub(vec![ReportKind::EventStarted], &[]).matches(&deletion));
        assert!(sub(vec![ReportKind::EventDeleted], &[]).check().is_ok());
        assert!(sub(vec![ReportKind::EventKept], &[]).check().is_err(), "not sent by this release");
        // A plan change is sent to every subscription of its device whatever the type filter.
        let plan = Report::PlanSet(PlanSet { cid: ev.cid.clone(), retention_days: 60 });
        assert!(sub(vec![ReportKind::PlanSet], &["person"]).matches(&plan) && sub(vec![], &[]).matches(&plan));
        assert!(sub(vec![ReportKind::PlanSet], &[]).check().is_ok());
    }

    #[test]
    fn an_export_spans_at_most_a_month_inside_retention_and_completes_under_its_own_key() {
        use crate::ids::ExportId;
        let now = Timestamp::now();
        let today = DayOffset::default().day_of(now).unwrap();
        let cid = DeviceId::parse("cam-1").unwrap();
        let export_id = ExportId::generate(now, 7);
        let request = |from: Day, to: Day| {
            Report::ExportRequested(ExportRequested { cid: cid.clone(), export_id: export_id.clone(), from, to })
        };
        assert!(request(today, today).validate(&policy(), now).is_ok());
        assert!(request(today.add_days(-30), today).validate(&policy(), now).is_ok());
        for (from, to) in [
            (today, today.add_days(-1)),
            (today.add_days(-31), today),
            (today.add_days(2), today.add_days(2)),
            (today.add_days(-40), today.add_days(-35)),
        ] {
            assert_eq!(
                request(from, to).validate(&policy(), now).unwrap_err().code,
                ErrorCode::InvalidRange,
                "{from} {to}"
            );
        }
        let completed = |outcome| {
            Report::ExportCompleted(ExportCompleted {
                cid: cid.clone(),
                export_id: export_id.clone(),
                requested_at: now,
                from: today,
                to: today,
                outcome,
                expires_at: now,
            })
        };
        let key = crate::export::archive_key(&cid, &export_id);
        assert!(completed(ExportOutcome::Ready { key, bytes: 10, events: 1 }).validate(&policy(), now).is_ok());
        let elsewhere = ExportOutcome::Ready { key: "devices/cam-1/x".into(), bytes: 10, events: 1 };
        assert!(completed(elsewhere).validate(&policy(), now).is_err());
        assert!(completed(ExportOutcome::Failed { reason: "x".repeat(501) }).validate(&policy(), now).is_err());
        // No subscription is sent them, and none may ask for them.
        assert!(!subscription(vec![], &[], now).matches(&request(today, today)));
        assert!(subscription(vec![ReportKind::ExportRequested], &[], now).check().is_err());
    }
}
