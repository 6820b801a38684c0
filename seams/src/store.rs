//! The projection store: the tables the viewer API reads.

use async_trait::async_trait;
use schemas::{
    Day, DayOffset, DeviceId, EndStatus, Envelope, EventId, EventType, ExportId, ExportOutcome, Media, SegmentId,
    SubscriptionDeadLettered, SubscriptionId, SubscriptionSet, Timestamp,
};

use crate::log::Position;

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
    /// Whether the owner keeps it past retention (`schemas::EventKept`).
    pub kept: bool,
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

/// An event with (a page of) its segments in index order. Segments whose own report has not
/// arrived yet are left out until it does.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    /// The event.
    pub event: EventView,
    /// Its segments, ascending by index.
    pub segments: Vec<SegmentView>,
    /// When more segments follow this page: the index to pass as `after` for the next one.
    pub next_index: Option<u32>,
}

/// A log record the projector set aside because no store can ever accept it (it does not
/// decode, or a store refused it as [`StoreError::Rejected`]), kept with the reason until an
/// operator replays or drops it (`daybook quarantine`).
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    /// Where it is in the log (its identity: quarantining it again changes nothing).
    pub position: Position,
    /// The record's key (the device id).
    pub key: String,
    /// The record's bytes, as in the log.
    pub value: Vec<u8>,
    /// Why it was set aside.
    pub reason: String,
    /// When it was set aside.
    pub quarantined_at: Timestamp,
}

/// A notification subscription as the store holds it: the newest [`SubscriptionSet`] applied
/// (by `schemas::rows::write_stamp`), unless a newer deletion ended it.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionView {
    /// The subscription as of its latest change.
    pub subscription: SubscriptionSet,
    /// When ingest of that change happened (its envelope's `received_at`).
    pub changed_at: Timestamp,
}

/// A dead letter as the store holds it, until a newer release (replay or purge) of its
/// `webhook-id` removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterView {
    /// The dead letter.
    pub letter: SubscriptionDeadLettered,
    /// When it was put on the log (its envelope's `received_at`).
    pub dead_at: Timestamp,
}

/// An object of the object store that a deletion left to no live event: the deleted event's
/// snapshot, or a segment no other live event maps. Kept by the store, in the deleted event's
/// partition (it expires with it), until whoever deletes objects confirms it
/// ([`ProjectionStore::purged`]); a rebuild from the log lists it again, and deleting an object
/// that is gone is no error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    /// The device.
    pub cid: DeviceId,
    /// The deleted event's day (the partition the purge is kept in).
    pub day: Day,
    /// The object's key (`crate::blob::ObjectKey`'s layout).
    pub key: String,
}

impl Purge {
    /// The objects a report names (an event's snapshot, a segment, a digest), each in the
    /// partition of the row that names it (`schemas::rows::plan` under `policy`, rows still
    /// alive at `now`): what an erasure purges of a report it covers that it never applies.
    pub fn named_by(envelope: &Envelope, policy: &schemas::TimePolicy, now: Timestamp) -> Vec<Purge> {
        use schemas::rows::RowData;
        let mut out: Vec<Purge> = Vec::new();
        for row in schemas::rows::plan(envelope, policy).into_iter().filter(|r| r.live_at(now)) {
            let key = match row.data {
                RowData::EventStart { event_id, .. } => crate::ObjectKey::snapshot(event_id),
                RowData::Segment(s) => crate::ObjectKey::segment(row.cid, &s.segment_id),
                RowData::Digest(d) => crate::ObjectKey::digest(row.cid, &d.segment_id),
                _ => continue,
            };
            let purge = Purge { cid: row.cid.clone(), day: row.day, key: key.as_str().to_owned() };
            if !out.contains(&purge) {
                out.push(purge);
            }
        }
        out.extend(export_purges(envelope));
        out
    }
}

/// An export as a store holds it (`schemas::export::expiry`): the newest of its reports, a
/// completion before a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportView {
    /// The device.
    pub cid: DeviceId,
    /// The export.
    pub export_id: ExportId,
    /// The first day asked for.
    pub from: Day,
    /// The last day asked for.
    pub to: Day,
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// How it ended, once the worker completed it (`None`: pending).
    pub outcome: Option<ExportOutcome>,
    /// When it completed (`None`: pending).
    pub completed_at: Option<Timestamp>,
    /// When it (and its archive) expires.
    pub expires_at: Timestamp,
}

/// The objects an export report names (its archive's key, whatever its outcome: a worker may
/// have written it before failing), in the partition of the day it was received: what an
/// erasure purges of a completion it covers.
pub fn export_purges(envelope: &Envelope) -> Vec<Purge> {
    let (cid, export_id) = match &envelope.report {
        schemas::Report::ExportRequested(r) => (&r.cid, &r.export_id),
        schemas::Report::ExportCompleted(r) => (&r.cid, &r.export_id),
        _ => return Vec::new(),
    };
    let day = DayOffset::default().day_of(envelope.received_at).unwrap_or(DayOffset::default().today());
    vec![Purge { cid: cid.clone(), day, key: crate::ObjectKey::export(cid, export_id).as_str().to_owned() }]
}

/// A device's kept events restated as the reports that make them (see
/// [`ProjectionStore::kept_reports`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KeptReports {
    /// The device.
    pub cid: DeviceId,
    /// Per kept event: its start and end as stored, one segment report per segment its kept
    /// events map (naming only the kept events' mappings), and the keep itself with its own
    /// `received_at` (so it carries the same write stamp as on the log). Starts, ends and
    /// segments carry their event's filing time as `received_at`: older than any report the
    /// log may still hold about them, which therefore wins where versions are ordered by stamp.
    /// Made by [`restate`].
    pub reports: Vec<Envelope>,
}

/// A kept event as a store holds it: what [`restate`] turns back into reports.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptEvent {
    /// The event.
    pub event: EventView,
    /// Whether its start was applied (an end alone also makes an event's row).
    pub started: bool,
    /// When the keep was received (its envelope's `received_at`).
    pub kept_at: Timestamp,
    /// Every segment it maps.
    pub segments: Vec<SegmentView>,
    /// The plan (days) it was written under, restated with its reports so that an un-keep
    /// after a rebuild lets it go by it; `None`: unknown (written before rows kept their plan).
    pub retention_days: Option<u32>,
}

/// The reports that make `events` (one device's kept events) again: per event its keep, its
/// start and its end; then one segment report per segment, naming the mappings of every kept
/// event that maps it ([`KeptReports`]), each with the plan its event was written under (a
/// segment: the longest of its kept events'). `fallback`: the offset of version 1 ids.
pub fn restate(cid: &DeviceId, events: &[KeptEvent], fallback: DayOffset) -> Vec<Envelope> {
    use schemas::{EventEnded, EventKept, EventMapping, EventStarted, Report, SegmentReported};
    let mut out = Vec::new();
    type Restated<'a> = (&'a SegmentView, Vec<EventMapping>, Timestamp, DayOffset, Option<u32>);
    let mut segments: std::collections::BTreeMap<&str, Restated<'_>> = std::collections::BTreeMap::new();
    for k in events {
        let e = &k.event;
        let filed = e.event_id.filed_at(fallback);
        out.push(Envelope::new(
            Report::EventKept(EventKept { cid: cid.clone(), event_id: e.event_id.clone() }),
            k.kept_at,
        ));
        if k.started {
            let report = Report::EventStarted(EventStarted {
                cid: cid.clone(),
                event_id: e.event_id.clone(),
                event_type: e.event_type.clone(),
                triggered_at: e.triggered_at,
                utc_offset: e.utc_offset,
                clock_skew_ms: e.clock_skew_ms,
                snapshot_size: None,
            });
            out.push(Envelope::new(report, filed).with_retention(k.retention_days));
        }
        let status = match e.status {
            EventStatus::Open => None,
            EventStatus::Complete => Some(EndStatus::Complete),
            EventStatus::Aborted => Some(EndStatus::Aborted),
        };
        if let (Some(ended_at), Some(status)) = (e.ended_at, status) {
            let report = Report::EventEnded(EventEnded {
                cid: cid.clone(),
                event_id: e.event_id.clone(),
                ended_at,
                utc_offset: e.utc_offset,
                status,
            });
            out.push(Envelope::new(report, filed).with_retention(k.retention_days));
        }
        for s in &k.segments {
            let mapping = EventMapping {
                event_id: e.event_id.clone(),
                index: s.index,
                start_offset: s.start_offset,
                end_offset: s.end_offset,
            };
            let entry =
                segments.entry(s.segment_id.as_str()).or_insert((s, Vec::new(), filed, e.utc_offset, k.retention_days));
            entry.1.push(mapping);
            entry.2 = entry.2.max(filed);
            entry.4 = entry.4.max(k.retention_days);
        }
    }
    for (s, events, filed, offset, retention_days) in segments.into_values() {
        let report = Report::SegmentReported(SegmentReported {
            cid: cid.clone(),
            segment_id: s.segment_id.clone(),
            size: s.size,
            started_at: s.started_at,
            utc_offset: offset,
            duration_ms: s.duration_ms,
            media: s.media.clone(),
            keyframes: s.keyframes.clone(),
            events,
        });
        // Received no earlier than it started: never taken for a fast clock's.
        out.push(Envelope::new(report, filed.max(s.started_at)).with_retention(retention_days));
    }
    out
}

/// The keys of every kept event's objects — its snapshot, the segments it maps — as `store`
/// restates them ([`ProjectionStore::kept_reports`]): what the object janitor spares.
pub async fn kept_objects(store: &dyn ProjectionStore) -> Result<std::collections::HashSet<String>, StoreError> {
    use schemas::Report;
    let mut keys = std::collections::HashSet::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = store.kept_reports(cursor.as_deref()).await?;
        for env in page.devices.iter().flat_map(|d| &d.reports) {
            match &env.report {
                Report::EventKept(r) => {
                    keys.insert(crate::ObjectKey::snapshot(&r.event_id).as_str().to_owned());
                }
                Report::SegmentReported(r) => {
                    keys.insert(crate::ObjectKey::segment(&r.cid, &r.segment_id).as_str().to_owned());
                }
                _ => {}
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

/// The oldest day of `cid`'s objects the object janitor keeps at `now`: the deployment's
/// retention, or the device's plan ([`ProjectionStore::plan`]) when it is longer
/// (docs/data-model.md, Plans).
pub async fn oldest_object_day(
    store: &dyn ProjectionStore,
    cid: &DeviceId,
    policy: &schemas::TimePolicy,
    now: Timestamp,
) -> Result<Day, StoreError> {
    let longer = store.plan(cid).await?.unwrap_or(0).saturating_sub(policy.retention_days);
    Ok(policy.oldest_kept_day(now).add_days(-i64::from(longer)))
}

/// One page of [`ProjectionStore::kept_reports`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeptPage {
    /// Devices with kept events, each whole.
    pub devices: Vec<KeptReports>,
    /// Opaque store position after the last device; `None` on the last page.
    pub next: Option<Vec<u8>>,
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
    /// The batch holds a record this store can never accept (a value no column holds): retrying
    /// cannot help. Nothing of the batch was written.
    #[error("store refused a record{}: {reason}", index.map(|i| format!(" (batch item {i})")).unwrap_or_default())]
    Rejected {
        /// The refused record's index in the batch, when the store knows it (without it, the
        /// caller narrows the batch down to find the record).
        index: Option<usize>,
        /// Why.
        reason: String,
    },
    /// Anything else.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether retrying the same call can never succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
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
/// * The calendar reads a count kept per (device, day), never the rows: each event counts
///   once, when the first of its rows (start or end) is created, in the same write — so a
///   replayed batch, a duplicate report, or two projectors applying the same reports at once
///   leave every count exact (equal to the events the day page lists). A count expires with
///   its day.
/// * Queries see everything applied before they started.
/// * A segment row lives as long as every event that maps it (`schemas::rows`).
/// * Versions of one row resolve the same everywhere: the newer report wins (by
///   `schemas::rows::write_stamp` where the engine orders by timestamp; in log order where it
///   applies one batch after another), so a replay leaves identical tables.
/// * `apply` refuses a batch holding a record that breaks `schemas::Report::storable` with
///   [`StoreError::Rejected`] naming the record, before writing anything.
/// * A deletion (`schemas::EventDeleted`) marks the event deleted for good (`schemas::rows`):
///   no read returns it, its partition's count drops by one exactly once (a count is of the
///   live events), and a start, end or segment of it applied before or after — replayed,
///   duplicated, late — leaves it deleted. In the same `apply`, the store lists the event's
///   snapshot, and each segment it maps that no other event not deleted maps, as
///   [`Purge`]s. A segment whose report is applied after the deletion is hidden with the event,
///   and listed as a [`Purge`] too if it maps a deleted event and no live one (an event with no
///   row yet is neither): whichever comes last decides, so the result does not depend on the
///   order or batching of a replay.
/// * Storage used (`usage`) is kept like the counts, per (device, day): each segment's bytes as
///   reported, counted once in the partition of its own row (`schemas::rows::RowData::SegmentBytes`)
///   however many events map it and however often its report is applied, and taken off once,
///   in the same `apply`, when its object is listed as a [`Purge`]. It expires with its day.
/// * A keep (`schemas::EventKept`) exempts the event from expiry until an un-keep with a newer
///   write stamp (in any order, newer wins): its row, its mappings and the copies of its
///   segments in its partition outlive retention (they are written even past it), and reads
///   mark it [`EventView::kept`]. An un-kept event expires by the normal rule; one already past
///   it leaves every read at once. A deleted event is not kept. Counts are unchanged by
///   keeps: the calendar spans retention, and a kept event past it is reached through
///   [`ProjectionStore::kept`].
/// * An erasure (`schemas::DeviceErased`) raises the device's erasure mark, kept outside the
///   day partitions for good, and in the same `apply` removes every row, count, offset,
///   quarantined record and dead letter of the device (but those of reports newer than it) and
///   lists every object its rows name as [`Purge`]s; a report of the device whose write stamp is
///   not above the mark is never applied, whenever it comes, and the objects it names are listed
///   ([`Purge::named_by`]); a newer one is applied as usual (`schemas::rows`, module docs).
/// * Subscription changes are kept outside the day partitions, never expire, and resolve by
///   write stamp like every row: of a subscription's changes the newest wins, a deletion
///   included (an older change replayed after it does not bring it back). Dead letters
///   likewise, per (subscription, `webhook-id`): a release removes the ones it names, a newer
///   dead letter of the same id is kept again.
/// * Exports (`schemas::ExportRequested`, `schemas::ExportCompleted`) are kept outside the day
///   partitions, one per (device, export id): a completion wins over a request whatever their
///   order, and of two reports of the same kind the newer write stamp wins. Each lives until
///   its own expiry (`schemas::export::expiry`): reads leave it out from then on and the store
///   drops it (TTL or janitor); a report past it is not written. An erasure removes the
///   device's exports (those asked for before it: a completion counts as its request's) and
///   lists their archives as [`Purge`]s.
#[async_trait]
pub trait ProjectionStore: Send + Sync + std::fmt::Debug {
    /// Applies a batch of reports (in log order). Returns the rows written.
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError>;

    /// Sets records aside in the store's dead-letter table (idempotent per position).
    async fn quarantine(&self, records: &[Quarantined]) -> Result<(), StoreError>;

    /// Up to `limit` quarantined records, ascending by position.
    async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>, StoreError>;

    /// Removes records (as `quarantined` returned them) from the dead-letter table, after a
    /// replay took them or to drop them.
    async fn release(&self, records: &[Quarantined]) -> Result<(), StoreError>;

    /// Every subscription not deleted, ascending by id.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, StoreError>;

    /// Up to `limit` dead letters of `subscription`, oldest first (then by `webhook-id`).
    async fn dead_letters(&self, subscription: &SubscriptionId, limit: u32) -> Result<Vec<DeadLetterView>, StoreError>;

    /// Up to `limit` objects left to no live event by deletions ([`Purge`]), in no particular
    /// order, until [`ProjectionStore::purged`] forgets them.
    async fn purges(&self, limit: u32) -> Result<Vec<Purge>, StoreError>;

    /// Forgets purges (as `purges` returned them) whose objects are deleted.
    async fn purged(&self, done: &[Purge]) -> Result<(), StoreError>;

    /// Up to `limit` kept events of `cid` (not deleted), ascending by event id, after `after`.
    async fn kept(&self, cid: &DeviceId, after: Option<&EventId>, limit: u32) -> Result<Vec<EventView>, StoreError>;

    /// Every device's kept events restated as reports ([`KeptReports`]), a few devices per
    /// page, starting after `cursor` (a [`KeptPage::next`] of this store). Applied to an empty
    /// store (before the log is replayed into it), they give back the kept events whole: the
    /// store is their source of truth once the log no longer holds their reports (`daybook
    /// rebuild`; the object janitor spares their objects by it).
    async fn kept_reports(&self, cursor: Option<&[u8]>) -> Result<KeptPage, StoreError>;

    /// Up to `limit` exports of `cid` not expired, newest first (descending by export id: ids
    /// sort by request time), before `before` (exclusive) when given.
    async fn exports(
        &self,
        cid: &DeviceId,
        before: Option<&ExportId>,
        limit: u32,
    ) -> Result<Vec<ExportView>, StoreError>;

    /// One export of `cid`, if it is held and not expired.
    async fn export(&self, cid: &DeviceId, id: &ExportId) -> Result<Option<ExportView>, StoreError>;

    /// Up to `limit` exports of any device asked for and not completed (nor expired), oldest
    /// first: what the export worker does next.
    async fn pending_exports(&self, limit: u32) -> Result<Vec<ExportView>, StoreError>;

    /// Event counts per day for `cid` on days `from..=to`; days with no events are omitted.
    /// Reads one kept count per day (see the contract above), whatever the day holds.
    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError>;

    /// Bytes of `cid`'s segments per day on days `from..=to` (storage used, see the contract
    /// above); days with none omitted. Reads one kept figure per day, as `calendar` does.
    async fn usage(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError>;

    /// Storage used by every device on every day still kept: the sum of every `usage` figure
    /// (a scan of the kept figures, not of the rows: for a metric, not a request path).
    async fn usage_total(&self) -> Result<u64, StoreError>;

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

    /// One event and up to `limit` of its segments with an index above `after` (from the
    /// first when `None`), or `None` if nothing about the event has been applied.
    async fn event_page(&self, id: &EventId, after: Option<u32>, limit: u32)
        -> Result<Option<EventDetail>, StoreError>;

    /// One event and all its segments (at most `schemas::report::MAX_SEGMENTS_PER_EVENT`).
    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        self.event_page(id, None, schemas::report::MAX_SEGMENTS_PER_EVENT).await
    }

    /// The digest of `cid` for `day`.
    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError>;

    /// The UTC offset `cid` reported with its latest event start (by filing time), if any
    /// is still inside retention: the reads' "today" is the camera's.
    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError>;

    /// The plan of `cid`: the retention (days) its latest event start (by filing time, as
    /// [`ProjectionStore::utc_offset`]) carried, while that start is inside it; `None` when it
    /// carried none or there is none (the deployment's retention then applies).
    async fn plan(&self, cid: &DeviceId) -> Result<Option<u32>, StoreError>;

    /// Drops the expired partitions (engines with TTL may do nothing): `oldest_kept` is the
    /// oldest day the deployment's retention keeps; a partition whose rows were written under a
    /// longer or shorter plan is kept that many days more or fewer (docs/data-model.md, Plans).
    /// Returns the number of partitions dropped.
    async fn drop_expired(&self, oldest_kept: Day) -> Result<u64, StoreError>;

    /// Whether the store answers right now.
    async fn health(&self) -> Result<(), StoreError>;

    /// A short name for logs and metrics (`embedded`, `scylla`).
    fn backend(&self) -> &'static str;
}
