//! The projection store: the tables the viewer API reads.

use async_trait::async_trait;
use schemas::{Day, DayOffset, DeviceId, EndStatus, Envelope, EventId, EventType, Media, SegmentId, Timestamp};

/// An event's state as the viewer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Started, not yet ended.
    Open,
    /// Ended in full.
    Complete,
    /// Cut short.
    Aborted,
}

impl EventStatus {
    /// `open` / `complete` / `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Complete => "complete",
            Self::Aborted => "aborted",
        }
    }

    /// The status an event has given its end report, if any.
    pub fn from_end(end: Option<EndStatus>) -> Self {
        match end {
            None => Self::Open,
            Some(EndStatus::Complete) => Self::Complete,
            Some(EndStatus::Aborted) => Self::Aborted,
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// Its id (which carries device, day, type and trigger time).
    pub event_id: EventId,
    /// What triggered it (`motion`, `sound`, …).
    pub event_type: EventType,
    /// When it fired.
    pub triggered_at: Timestamp,
    /// When it ended, once reported.
    pub ended_at: Option<Timestamp>,
    /// Open until its end is reported.
    pub status: EventStatus,
    /// The camera's UTC offset at the trigger (from the id; a version 1 id: `--day-offset`).
    pub utc_offset: DayOffset,
    /// How far ahead of the server the camera's clock was at the start, if beyond the
    /// tolerance (`triggered_at` is then the camera's claim; the event is filed by the server).
    pub clock_skew_ms: Option<i64>,
}

impl EventView {
    /// `ended_at - triggered_at`, once ended.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at.map(|e| e.millis() - self.triggered_at.millis())
    }
}

/// One segment of an event, with the event's byte range inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentView {
    /// The segment.
    pub segment_id: SegmentId,
    /// Position within the event.
    pub index: u32,
    /// Object size in bytes.
    pub size: u64,
    /// Event's first byte in the segment.
    pub start_offset: u64,
    /// Event's end byte (exclusive) in the segment.
    pub end_offset: u64,
    /// First frame's time.
    pub started_at: Timestamp,
    /// Length.
    pub duration_ms: u32,
    /// Encoding.
    pub media: Media,
    /// Keyframe byte offsets.
    pub keyframes: Vec<u64>,
}

/// An event with its segments in index order. Segments whose own report has not arrived
/// yet are left out until it does.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    /// The event.
    pub event: EventView,
    /// Its segments, ascending by index.
    pub segments: Vec<SegmentView>,
}

/// A device's digest for one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestView {
    /// The day condensed.
    pub date: Day,
    /// The uploaded object.
    pub segment_id: SegmentId,
    /// Bytes.
    pub size: u64,
    /// Length.
    pub duration_ms: u32,
}

/// One page of a day's events.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPage {
    /// Events in trigger order.
    pub events: Vec<EventView>,
    /// Opaque store position after the last event; `None` on the last page.
    pub next: Option<Vec<u8>>,
}

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine is unreachable or timed out; the call may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A cursor that this store did not produce.
    #[error("invalid cursor")]
    BadCursor,
    /// Anything else.
    #[error("store error: {0}")]
    Other(String),
}

/// The day-partitioned projections of the report log.
///
/// Contract (checked by `conformance::store`):
/// * `apply` is idempotent and order-insensitive per event: applying a batch twice, or the
///   whole log again from the start, yields identical tables; an end or a segment that
///   arrives before its event's start is kept and merged when the start arrives.
/// * Everything lives in the partition of its trigger day (events and their segment mappings:
///   the event's trigger day; segments: the day they started; digests: their date) and
///   expires with it.
/// * Queries see everything applied before they started.
#[async_trait]
pub trait ProjectionStore: Send + Sync + std::fmt::Debug {
    /// Applies a batch of reports (in log order). Returns the rows written.
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError>;

    /// Event counts per day for `cid` on days `from..=to`; days with no events are omitted.
    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError>;

    /// Up to `limit` events of `cid` on `day` in trigger order, optionally of one type,
    /// starting after `cursor` (a `DayPage::next` this store returned for the same query).
    /// Events that arrive while a viewer pages never shift the pages already served.
    async fn day_page(
        &self,
        cid: &DeviceId,
        day: Day,
        event_type: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError>;

    /// One event and its segments, or `None` if nothing about it has been applied.
    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError>;

    /// The digest of `cid` for `day`.
    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError>;

    /// The UTC offset `cid` reported with its latest event start (by filing time), if any
    /// is still inside retention: the reads' "today" is the camera's.
    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError>;

    /// Drops every partition of a day before `oldest_kept` (engines with TTL may do nothing).
    /// Returns the number of days dropped.
    async fn drop_expired(&self, oldest_kept: Day) -> Result<u64, StoreError>;

    /// Whether the store answers right now.
    async fn health(&self) -> Result<(), StoreError>;

    /// A short name for logs and metrics (`embedded`, `scylla`).
    fn backend(&self) -> &'static str;
}
