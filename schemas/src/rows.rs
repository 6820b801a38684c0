//! Where a report's data lives and when it expires: the one rule every projection store
//! follows (docs/data-model.md).
//!
//! [`plan`] turns a report into the rows it writes. Each row names its partition — one
//! device's day — and its expiry; a store maps the rows onto its tables and writes only those
//! still alive ([`Row::live_at`]). Neither store decides a day or an expiry itself.
//!
//! Days are the camera's local days (docs/data-model.md): an event's day is in its id (the
//! trigger's date at the camera's UTC offset); other rows take the offset their report carries.
//! A camera clock ahead of the server by more than the tolerance is filed by the server's
//! time: its event ids say so ([`EventId::filed_at`]), a segment uses `received_at`.
//!
//! A row expires its report's retention ([`Envelope::retention_days`]: the device's plan when
//! ingest accepted it; for an older record, the deployment's) after the instant below — but
//! the owner's marks on an event (deleted, kept), which carry no plan of their own and outlive
//! the longest plan's rows of their event ([`MAX_PLAN_DAYS`]). A plan change applies to the
//! reports received from then on: rows already written keep the expiry they were written with.
//!
//! | report | rows | day | retention counted from |
//! |---|---|---|---|
//! | event started | [`RowData::EventStart`] | the event's day (from its id) | the event's filing time (its trigger time, or clamped into its day) |
//! | | [`RowData::DeviceOffset`] | the event's day | the event's filing time |
//! | | [`RowData::SnapshotBytes`], when the start states `snapshot_size` | the event's day | the event's filing time |
//! | event ended | [`RowData::EventEnd`] | the event's day (from its id) | the event's filing time |
//! | segment | [`RowData::Segment`] | the local day the segment started | the segment's start (or `received_at`, for a fast clock) |
//! | | a copy of [`RowData::Segment`] per day of the events it maps | each event's day | the latest filing time of those events |
//! | | one [`RowData::Mapping`] per event it maps | each event's day (from its id) | each event's filing time |
//! | digest | [`RowData::Digest`] | its date | the first instant of its date at its offset |
//! | | [`RowData::SegmentBytes`] | the local day the segment started | the segment's start (as its own row) |
//! | event deleted | [`RowData::EventDeleted`] | the event's day (from its id) | the event's filing time, for [`MAX_PLAN_DAYS`] |
//! | event kept / un-kept | [`RowData::EventKept`] | the event's day (from its id) | the event's filing time, for [`MAX_PLAN_DAYS`] (a kept event never expires while kept, see below) |
//! | device erased | none: device-wide, its erasure mark (below) | — | never expires |
//! | export requested / completed | none: device-wide, its export's row ([`crate::export`]) | — | the export's own expiry ([`crate::export::expiry`]) |
//!
//! A deletion marks the event's row deleted (creating it, deleted, if nothing of the event has
//! arrived yet), and the mark is never taken back: the event leaves every read, and a start, an
//! end or a segment of it applied later — replayed, duplicated, or simply late — leaves it
//! deleted. Its count is the partition's live events: a deletion lowers it by one only when
//! it marks a row that was counted and not yet deleted, in the same write; a row created
//! deleted is never counted.
//!
//! A keep ([`RowData::EventKept`], `kept: true`) exempts the event from expiry until an
//! un-keep (`kept: false`) of a newer write stamp: its event row, its mappings and the copies
//! of its segments in its partition outlive retention, and are then written whatever their
//! age. Of a keep and an un-keep of one event the newer report wins ([`write_stamp`]), in
//! any order. An un-kept event expires by the normal rule — at once if it is already past it.
//! The keep row itself is always written ([`Row::live_at`]): an un-keep of an event past
//! retention must reach the store.
//!
//! The calendar reads a count per partition rather than counting rows: every store keeps, per
//! (device, day), the number of event rows in it, raised in the same write as the row and only
//! when that write created it ([`RowData::counted_event`]: the first start *or* end of an event
//! creates its row), so a replay, a duplicate report or a second projector never counts an
//! event twice. The count expires with its day.
//!
//! Storage used is counted the same way, per (device, day): a segment's bytes as its report
//! states them, once, in the partition of its own row ([`RowData::SegmentBytes`]) — never per
//! copy or per event that maps it — raised only by the write that created its usage row, and
//! lowered once when a deletion leaves its object to no live event (the object is purged). An
//! event's snapshot is counted likewise, by the size its start states
//! ([`RowData::SnapshotBytes`], in the event's partition), and lowered once when the event is
//! deleted — whichever of the start and the deletion is applied first. Both expire with their
//! day.
//!
//! A mapping points at the copy of its segment in its own event's partition, so a segment
//! lives exactly as long as the longest-lived event that maps it (a pre-roll segment that
//! started the day before its event does not vanish from the event a day early).
//!
//! [`Report::storable`] is the one rule for the values: every numeric field must fit the
//! narrowest column any store keeps it in. Validation refuses a report that breaks it, and both stores
//! convert through [`int_column`] and [`bigint_column`], so a store can refuse a report only
//! if validation let it through by mistake — and then it refuses it as permanent
//! (`StoreError::Rejected`), never as a failure to retry.
//!
//! [`write_stamp`] orders the versions of one row: newer wins, whoever writes it and when.
//!
//! An erasure (`crate::DeviceErased`) is kept by every store as the device's *erasure mark*:
//! the greatest write stamp of its erasures, never expired. Applying one removes every row,
//! count, quarantined record and dead letter of the device and lists each of its objects the
//! rows name to purge, in the same write; and from then on a report [`erasable`] of the device
//! whose stamp is not above the mark — replayed, rebuilt, late, or from a second projector — is
//! not applied at all (an erasure so covered changes nothing). A report newer than the mark
//! (the device reporting again after it) is applied as usual. Within one batch the rule holds
//! by stamp, whatever the order of the reports in it.

use crate::envelope::Envelope;
use crate::ids::{Day, DeviceId, EventId, SegmentId};
use crate::owner::MAX_PLAN_DAYS;
use crate::report::{DigestReported, EndStatus, EventMapping, Report, SegmentReported, TimePolicy};
use crate::time::{DayOffset, Timestamp};

pub use crate::columns::{bigint_column, int_column, Unstorable};

/// The write timestamp (microseconds) of every row `envelope` writes, for stores that resolve
/// concurrent versions of a cell by timestamp (ScyllaDB's `USING TIMESTAMP`): when ingest
/// accepted the report, in microseconds, plus a tiebreak in the sub-millisecond digits from a
/// hash of the envelope's bytes.
///
/// It is a function of the report alone — not of the writing process's clock, not of the log
/// position — so the same report always carries the same stamp: a replay, a retried append
/// that stored the report twice, or a stale projector writing after a rebalance can never
/// overwrite a row with an older version. Two different reports accepted in the same
/// millisecond are ordered by the hash: arbitrary but the same everywhere, every time.
pub fn write_stamp(envelope: &Envelope) -> i64 {
    // FNV-1a: tiny, stable across builds and platforms (unlike std's hasher).
    let hash = envelope
        .encode()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    envelope.received_at.millis().saturating_mul(1000).saturating_add((hash % 1000) as i64)
}

/// The device whose erasure covers `envelope`'s report, and the write stamp compared with its
/// erasure mark (see the module docs): a report about a device (its own, or its owner's) with
/// its own stamp; a dead letter with the stamp of the record it holds, when that record is a
/// device's report; nothing for the other subscription reports. An export's completion carries
/// the (lowest) stamp of its request's millisecond.
pub fn erasable(envelope: &Envelope) -> Option<(DeviceId, i64)> {
    match (&envelope.report, envelope.report.cid()) {
        // A completion is as old as its request: an erasure received after the request covers
        // it, whenever the worker finished (its archive may hold what the erasure removed).
        (Report::ExportCompleted(r), Some(cid)) => Some((cid.clone(), r.requested_at.millis().saturating_mul(1000))),
        (_, Some(cid)) => Some((cid.clone(), write_stamp(envelope))),
        (Report::SubscriptionDeadLettered(letter), None) => {
            let record = Envelope::decode(&letter.record.0).ok()?;
            let cid = record.report.cid()?.clone();
            Some((cid, write_stamp(&record)))
        }
        (_, None) => None,
    }
}

/// The erasures of `batch` that no stored mark covers yet (`mark`: a device's stored mark;
/// `erasable`: [`erasable`] of each report), the newest of each device: its stamp and when it
/// was received. A store applies these, then leaves out what the marks cover.
pub fn new_erasures(
    batch: &[Envelope],
    erasable: &[Option<(DeviceId, i64)>],
    mark: impl Fn(&DeviceId) -> Option<i64>,
) -> std::collections::HashMap<DeviceId, (i64, Timestamp)> {
    let mut newest = std::collections::HashMap::new();
    for (env, of) in batch.iter().zip(erasable) {
        if let (Report::DeviceErased(_), Some((cid, stamp))) = (&env.report, of) {
            if !erased(*stamp, mark(cid)) {
                let n = newest.entry(cid.clone()).or_insert((*stamp, env.received_at));
                if *stamp > n.0 {
                    *n = (*stamp, env.received_at);
                }
            }
        }
    }
    newest
}

/// Whether a device's erasure mark `mark` covers a report of it stamped `stamp`.
pub fn erased(stamp: i64, mark: Option<i64>) -> bool {
    mark.is_some_and(|m| stamp <= m)
}

/// One row a report writes, with where it lands and when it expires.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a> {
    /// The device: first half of the partition.
    pub cid: &'a DeviceId,
    /// The day: second half of the partition.
    pub day: Day,
    /// The instant the day and the expiry are counted from.
    pub trigger: Timestamp,
    /// `trigger` + retention: from then on the row is gone.
    pub expires_at: Timestamp,
    /// What the row holds.
    pub data: RowData<'a>,
}

/// What a row holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RowData<'a> {
    /// The event has started (its `started` flag).
    EventStart {
        /// The event (its device, trigger time and type are in the id).
        event_id: &'a EventId,
        /// How far ahead the camera's clock was, if beyond the tolerance.
        clock_skew_ms: Option<i64>,
    },
    /// The device's UTC offset as of `Row::trigger`: the reads' "today" is the camera's. A
    /// store keeps, per device, the one with the latest `trigger` (ties: either — they are
    /// the same report), so applying in any order gives the same result.
    DeviceOffset {
        /// The offset.
        offset: DayOffset,
    },
    /// The event has ended (its end columns).
    EventEnd {
        /// The event.
        event_id: &'a EventId,
        /// When it ended.
        ended_at: Timestamp,
        /// How it ended.
        status: EndStatus,
    },
    /// A segment's row: its own (in the day it started) or a copy in the partition of
    /// events it maps.
    Segment(&'a SegmentReported),
    /// Part of an event held by a segment, stored with the event and pointing at the segment.
    Mapping {
        /// The event, its index and byte range within the segment.
        mapping: &'a EventMapping,
        /// The segment holding it.
        segment_id: &'a SegmentId,
        /// The partition day of the segment row the mapping points at: the event's own day,
        /// where the segment's copy lives as long as the event.
        segment_day: Day,
    },
    /// A digest's row.
    Digest(&'a DigestReported),
    /// The event is deleted: its row's deleted mark (see the module docs).
    EventDeleted {
        /// The event.
        event_id: &'a EventId,
    },
    /// A segment's object counted in its device's storage used, once, in the partition of
    /// the segment's own row (see the module docs).
    SegmentBytes {
        /// The segment (its object's key is `devices/<cid>/segments/<id>`).
        segment_id: &'a SegmentId,
        /// Its size as reported.
        bytes: u64,
    },
    /// An event's snapshot counted in its device's storage used, once, in the event's
    /// partition (see the module docs).
    SnapshotBytes {
        /// The event (its snapshot's key is `devices/<cid>/snapshots/<id>.jpg`).
        event_id: &'a EventId,
        /// The size its start stated.
        bytes: u64,
    },
    /// The owner keeps the event past retention (`kept`), or no longer (see the module docs).
    EventKept {
        /// The event.
        event_id: &'a EventId,
        /// Kept (a keep) or not (an un-keep).
        kept: bool,
    },
}

impl<'a> RowData<'a> {
    /// The event this row writes the row of — a start or an end, whichever arrives first
    /// creates it — and so the event the partition's count counts (once, when its row is
    /// created). Other rows count nothing.
    pub fn counted_event(&self) -> Option<&'a EventId> {
        match self {
            Self::EventStart { event_id, .. } | Self::EventEnd { event_id, .. } => Some(event_id),
            Self::DeviceOffset { .. }
            | Self::Segment(_)
            | Self::Mapping { .. }
            | Self::Digest(_)
            | Self::EventDeleted { .. }
            | Self::SegmentBytes { .. }
            | Self::SnapshotBytes { .. }
            | Self::EventKept { .. } => None,
        }
    }
}

impl<'a> Row<'a> {
    /// The events whose keep spares this row from expiry: an event's own rows (start, end,
    /// deletion mark, mapping) by that event; a segment's row by the events it maps in the
    /// row's partition (a copy lives as long as the longest-lived of them). A device's offset,
    /// a digest and the bytes in storage used (which counts the days of retention) are spared
    /// by none.
    pub fn kept_by(&self) -> Vec<&'a EventId> {
        match &self.data {
            RowData::EventStart { event_id, .. }
            | RowData::EventEnd { event_id, .. }
            | RowData::EventDeleted { event_id }
            | RowData::EventKept { event_id, .. } => vec![*event_id],
            RowData::Mapping { mapping, .. } => vec![&mapping.event_id],
            RowData::Segment(s) => s.events.iter().map(|m| &m.event_id).filter(|e| e.day() == self.day).collect(),
            RowData::DeviceOffset { .. }
            | RowData::Digest(_)
            | RowData::SegmentBytes { .. }
            | RowData::SnapshotBytes { .. } => Vec::new(),
        }
    }

    /// Whole days the row is kept from its trigger: its report's retention (the longest plan
    /// for the owner's marks).
    pub fn retention_days(&self) -> u32 {
        u32::try_from(self.expires_at.millis().saturating_sub(self.trigger.millis()) / 86_400_000).unwrap_or(u32::MAX)
    }

    /// Whether the row is still inside retention at `now` (a row that is not must not be
    /// written: a TTL store would expire it at once, a day-partitioned one has dropped its day).
    /// A keep or an un-keep is always live: it changes the expiry of rows that may be past it.
    pub fn live_at(&self, now: Timestamp) -> bool {
        matches!(self.data, RowData::EventKept { .. }) || self.expires_at > now
    }
}

/// How long the rows of `envelope` are kept (ms): its own retention, else `policy`'s.
pub fn retention_ms(envelope: &Envelope, policy: &TimePolicy) -> i64 {
    i64::from(envelope.retention_days.unwrap_or(policy.retention_days)) * 86_400_000
}

/// The rows `envelope`'s report writes under `policy`. A segment whose start lies outside the
/// calendar's range writes nothing (validation refuses it before it reaches the log).
pub fn plan<'a>(envelope: &'a Envelope, policy: &TimePolicy) -> Vec<Row<'a>> {
    let report = &envelope.report;
    // A subscription change writes no day-partitioned row (stores keep it in their
    // subscriptions table).
    let Some(cid) = report.cid() else { return Vec::new() };
    // The report's own retention (its device's plan when ingest accepted it), else the
    // deployment's: a record written before reports carried one.
    let retention = retention_ms(envelope, policy);
    let row = |day: Day, trigger: Timestamp, data: RowData<'a>| Row {
        cid,
        day,
        trigger,
        expires_at: trigger.plus_millis(retention),
        data,
    };
    let event_row =
        |event_id: &'a EventId, data: RowData<'a>| row(event_id.day(), event_id.filed_at(policy.offset), data);
    // The owner's marks on an event carry no plan of their own: they outlive every plan's rows
    // of the event they mark (a deletion must hide its event as long as any row of it lives).
    let mark_row = |event_id: &'a EventId, data: RowData<'a>| {
        let filed = event_id.filed_at(policy.offset);
        let expires_at = filed.plus_millis(i64::from(MAX_PLAN_DAYS) * 86_400_000);
        Row { cid, day: event_id.day(), trigger: filed, expires_at, data }
    };
    match report {
        Report::EventStarted(r) => {
            let mut rows = vec![
                event_row(&r.event_id, RowData::EventStart { event_id: &r.event_id, clock_skew_ms: r.clock_skew_ms }),
                event_row(&r.event_id, RowData::DeviceOffset { offset: r.utc_offset }),
            ];
            if let Some(bytes) = r.snapshot_size {
                rows.push(event_row(&r.event_id, RowData::SnapshotBytes { event_id: &r.event_id, bytes }));
            }
            rows
        }
        Report::EventEnded(r) => vec![event_row(
            &r.event_id,
            RowData::EventEnd { event_id: &r.event_id, ended_at: r.ended_at, status: r.status },
        )],
        Report::SegmentReported(r) => {
            // A fast clock's segment is filed when the server received it, as its events are.
            let filed = match policy.clock_skew_ms(r.started_at, envelope.received_at) {
                Some(_) => envelope.received_at,
                None => r.started_at,
            };
            let Some(segment_day) = r.utc_offset.day_of(filed) else { return Vec::new() };
            let mut rows = Vec::with_capacity(2 + 2 * r.events.len());
            rows.push(row(segment_day, filed, RowData::Segment(r)));
            // One copy per day of the events it maps, expiring with the latest of them. A copy
            // in the segment's own day that would expire no later than the own row is left out;
            // one that would expire later is written too (stores keep the later expiry).
            let mut copies: Vec<(Day, Timestamp)> = Vec::new();
            for m in &r.events {
                let (day, filed_at) = (m.event_id.day(), m.event_id.filed_at(policy.offset));
                match copies.iter_mut().find(|c| c.0 == day) {
                    Some(c) => c.1 = c.1.max(filed_at),
                    None => copies.push((day, filed_at)),
                }
            }
            for (day, filed_at) in copies {
                if day != segment_day || filed_at > filed {
                    rows.push(row(day, filed_at, RowData::Segment(r)));
                }
            }
            rows.extend(r.events.iter().map(|m| {
                let mapping = RowData::Mapping { mapping: m, segment_id: &r.segment_id, segment_day: m.event_id.day() };
                event_row(&m.event_id, mapping)
            }));
            rows.push(row(segment_day, filed, RowData::SegmentBytes { segment_id: &r.segment_id, bytes: r.size }));
            rows
        }
        Report::DigestReported(r) => vec![row(r.date, r.utc_offset.start_of(r.date), RowData::Digest(r))],
        Report::EventDeleted(r) => vec![mark_row(&r.event_id, RowData::EventDeleted { event_id: &r.event_id })],
        // An erasure is device-wide: every store applies it outside the day partitions (see the
        // module docs).
        Report::DeviceErased(_) => Vec::new(),
        // Exports are device-wide too: every store keeps them in its exports table, each until
        // its own expiry (`crate::export::expiry`).
        Report::ExportRequested(_) | Report::ExportCompleted(_) => Vec::new(),
        Report::EventKept(r) => vec![mark_row(&r.event_id, RowData::EventKept { event_id: &r.event_id, kept: true })],
        Report::EventUnkept(r) => {
            vec![mark_row(&r.event_id, RowData::EventKept { event_id: &r.event_id, kept: false })]
        }
        // A plan change writes no row: every report carries its own retention.
        Report::PlanSet(_) => Vec::new(),
        Report::SubscriptionSet(_)
        | Report::SubscriptionDeleted(_)
        | Report::SubscriptionDeadLettered(_)
        | Report::DeadLettersReleased(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::EventType;
    use crate::report::{EventEnded, EventStarted, Media};

    fn arb_offset() -> impl Strategy<Value = DayOffset> {
        (-14 * 60..=14 * 60i32).prop_map(|minutes| DayOffset::from_minutes(minutes).expect("within ±14 h"))
    }

    fn arb_policy() -> impl Strategy<Value = TimePolicy> {
        (arb_offset(), 1..=3650u32).prop_map(|(offset, retention_days)| TimePolicy {
            offset,
            retention_days,
            ..TimePolicy::default()
        })
    }

    fn arb_ts() -> impl Strategy<Value = Timestamp> {
        // Years 1970..2096: every event id has a four-digit year at any offset.
        (0i64..4_000_000_000_000).prop_map(Timestamp)
    }

    fn cid() -> DeviceId {
        DeviceId::parse("cam-7").unwrap()
    }

    fn motion() -> EventType {
        EventType::parse("motion").unwrap()
    }

    /// An event id as ingest makes it: at the camera's offset, filed by `received` if the
    /// clock was ahead.
    fn event_id(policy: &TimePolicy, t: Timestamp, offset: DayOffset, received: Timestamp) -> EventId {
        policy.start_id(&cid(), &motion(), t, offset, false, received).unwrap().0
    }

    fn env(report: Report, received_at: Timestamp) -> Envelope {
        Envelope::new(report, received_at)
    }

    /// A report of every shape, with the camera at any offset and clock skew.
    fn arb_report(policy: TimePolicy) -> impl Strategy<Value = Envelope> {
        prop_oneof![
            (arb_ts(), arb_offset(), arb_ts(), proptest::option::of(1u64..=1 << 24)).prop_map(
                move |(t, o, rx, snap)| {
                    let (event_id, clock_skew_ms) = policy.start_id(&cid(), &motion(), t, o, false, rx).unwrap();
                    env(
                        Report::EventStarted(EventStarted {
                            cid: cid(),
                            event_id,
                            event_type: motion(),
                            triggered_at: t,
                            utc_offset: o,
                            clock_skew_ms,
                            snapshot_size: snap,
                        }),
                        rx,
                    )
                }
            ),
            (arb_ts(), arb_offset(), arb_offset(), 0i64..86_400_000, any::<bool>(), arb_ts()).prop_map(
                move |(t, o, end_o, after, complete, rx)| {
                    env(
                        Report::EventEnded(EventEnded {
                            cid: cid(),
                            event_id: event_id(&policy, t, o, rx),
                            ended_at: t.plus_millis(after),
                            utc_offset: end_o,
                            status: if complete { EndStatus::Complete } else { EndStatus::Aborted },
                        }),
                        rx,
                    )
                }
            ),
            (arb_ts(), arb_offset(), proptest::collection::vec((arb_ts(), arb_offset()), 0..5), arb_ts()).prop_map(
                move |(start, o, events, rx)| {
                    env(
                        Report::SegmentReported(SegmentReported {
                            cid: cid(),
                            segment_id: SegmentId::parse("seg-1").unwrap(),
                            size: 100,
                            started_at: start,
                            utc_offset: o,
                            duration_ms: 10_000,
                            media: Media {
                                codec: "h264".into(),
                                width: 640,
                                height: 480,
                                fps: 25.0,
                                audio_sample_rate: None,
                            },
                            keyframes: vec![0],
                            events: events
                                .into_iter()
                                .enumerate()
                                .map(|(i, (t, eo))| EventMapping {
                                    event_id: event_id(&policy, t, eo, rx),
                                    index: i as u32,
                                    start_offset: 0,
                                    end_offset: 100,
                                })
                                .collect(),
                        }),
                        rx,
                    )
                }
            ),
            (arb_ts(), arb_offset(), arb_ts()).prop_map(move |(t, o, rx)| env(
                Report::EventDeleted(crate::owner::EventDeleted { cid: cid(), event_id: event_id(&policy, t, o, rx) }),
                rx
            )),
            (arb_ts(), arb_offset(), arb_ts()).prop_map(move |(t, o, rx)| env(
                Report::DigestReported(DigestReported {
                    cid: cid(),
                    date: o.day_of(t).unwrap(),
                    utc_offset: o,
                    segment_id: SegmentId::parse("dg-1").unwrap(),
                    size: 100,
                    duration_ms: 60_000,
                }),
                rx
            )),
        ]
    }

    fn arb_case() -> impl Strategy<Value = (TimePolicy, Envelope)> {
        // Reports with a retention of their own (a device's plan) and without (older records).
        let plan = proptest::option::of(crate::owner::MIN_PLAN_DAYS..=crate::owner::MAX_PLAN_DAYS);
        arb_policy()
            .prop_flat_map(move |policy| (Just(policy), arb_report(policy), plan.clone()))
            .prop_map(|(policy, envelope, days)| (policy, envelope.with_retention(days)))
    }

    proptest! {
        #[test]
        fn every_row_expires_a_retention_after_its_filing_time((policy, envelope) in arb_case()) {
            for row in plan(&envelope, &policy) {
                let days = match row.data {
                    RowData::EventDeleted { .. } | RowData::EventKept { .. } => MAX_PLAN_DAYS,
                    _ => envelope.retention_days.unwrap_or(policy.retention_days),
                };
                prop_assert_eq!(row.expires_at, row.trigger.plus_millis(i64::from(days) * 86_400_000));
                prop_assert_eq!(Some(row.cid), envelope.report.cid());
                prop_assert!(row.live_at(row.trigger) && !row.live_at(row.expires_at));
            }
        }

        #[test]
        fn a_reports_own_row_counts_from_its_trigger_time((policy, envelope) in arb_case()) {
            let rows = plan(&envelope, &policy);
            if !matches!(envelope.report, Report::SegmentReported(_)) {
                prop_assert_eq!(rows[0].trigger, envelope.report.trigger_time(policy.offset).unwrap());
            }
            if let Report::SegmentReported(s) = &envelope.report {
                let own = &rows[0];
                prop_assert!(matches!(own.data, RowData::Segment(_)));
                prop_assert!(own.trigger == s.started_at || own.trigger == envelope.received_at);
            }
        }

        #[test]
        fn events_and_their_mappings_live_in_the_events_partition((policy, envelope) in arb_case()) {
            let rows = plan(&envelope, &policy);
            for row in &rows {
                match &row.data {
                    RowData::EventStart { event_id, .. }
                    | RowData::EventEnd { event_id, .. }
                    | RowData::EventDeleted { event_id }
                    | RowData::EventKept { event_id, .. } => {
                        prop_assert_eq!(row.day, event_id.day());
                        prop_assert_eq!(row.trigger, event_id.filed_at(policy.offset));
                        let offset = event_id.offset().unwrap();
                        prop_assert_eq!(offset.day_of(row.trigger), Some(row.day));
                    }
                    RowData::DeviceOffset { offset } => {
                        let Report::EventStarted(r) = &envelope.report else { panic!("only starts") };
                        prop_assert_eq!(*offset, r.utc_offset);
                    }
                    RowData::Mapping { mapping, segment_day: points_at, .. } => {
                        prop_assert_eq!(row.day, mapping.event_id.day());
                        prop_assert_eq!(row.trigger, mapping.event_id.filed_at(policy.offset));
                        prop_assert_eq!(*points_at, row.day);
                    }
                    RowData::Segment(s) => {
                        let own = row.trigger == s.started_at || row.trigger == envelope.received_at;
                        let copy = s.events.iter().any(|m| m.event_id.filed_at(policy.offset) == row.trigger);
                        prop_assert!(own || copy);
                        if own && !copy {
                            prop_assert_eq!(s.utc_offset.day_of(row.trigger), Some(row.day));
                        }
                    }
                    RowData::Digest(d) => {
                        prop_assert_eq!(row.day, d.date);
                        prop_assert_eq!(row.trigger, d.utc_offset.start_of(d.date));
                    }
                    RowData::SegmentBytes { segment_id, bytes } => {
                        let Report::SegmentReported(s) = &envelope.report else { panic!("only segments") };
                        prop_assert_eq!((*segment_id, *bytes), (&s.segment_id, s.size));
                        prop_assert_eq!((row.day, row.trigger), (rows[0].day, rows[0].trigger), "with the own row");
                    }
                    RowData::SnapshotBytes { event_id, bytes } => {
                        let Report::EventStarted(r) = &envelope.report else { panic!("only starts") };
                        prop_assert_eq!((*event_id, Some(*bytes)), (&r.event_id, r.snapshot_size));
                        prop_assert_eq!((row.day, row.trigger), (rows[0].day, rows[0].trigger), "with the event's row");
                    }
                }
            }
            match &envelope.report {
                Report::SegmentReported(s) => {
                    let mappings = rows.iter().filter(|r| matches!(r.data, RowData::Mapping { .. })).count();
                    prop_assert_eq!(mappings, s.events.len());
                    let counted = rows.iter().filter(|r| matches!(r.data, RowData::SegmentBytes { .. })).count();
                    prop_assert_eq!(counted, usize::from(!rows.is_empty()), "a segment's bytes count once");
                }
                Report::EventStarted(r) => prop_assert_eq!(rows.len(), 2 + usize::from(r.snapshot_size.is_some())),
                _ => prop_assert_eq!(rows.len(), 1),
            }
        }

        #[test]
        fn a_segment_lives_as_long_as_every_event_that_maps_it((policy, envelope) in arb_case()) {
            let rows = plan(&envelope, &policy);
            for row in &rows {
                if let RowData::Mapping { segment_day, .. } = row.data {
                    let kept_until = rows
                        .iter()
                        .filter(|r| matches!(r.data, RowData::Segment(_)) && r.day == segment_day)
                        .map(|r| r.expires_at)
                        .max();
                    prop_assert!(kept_until.is_some_and(|k| k >= row.expires_at), "{rows:?}");
                }
            }
        }

        #[test]
        fn every_valid_report_is_storable(report in arb_wild_segment()) {
            let now = report.trigger_time(DayOffset::default()).unwrap();
            let policy = TimePolicy::default();
            if report.validate(&policy, now).is_ok() {
                prop_assert_eq!(report.storable(), Ok(()));
            }
            // And the rule is exactly the column conversions.
            let Report::SegmentReported(r) = &report else { unreachable!() };
            let fits = i64::try_from(r.size).is_ok()
                && r.events.iter().all(|m| {
                    i32::try_from(m.index).is_ok()
                        && i64::try_from(m.start_offset).is_ok()
                        && i64::try_from(m.end_offset).is_ok()
                })
                && r.keyframes.iter().all(|k| i64::try_from(*k).is_ok());
            prop_assert_eq!(report.storable().is_ok(), fits);
        }
    }

    /// Segments whose numbers straddle every limit: of validation and of the columns.
    fn arb_wild_segment() -> impl Strategy<Value = Report> {
        let u64s = || prop_oneof![0u64..200, Just(crate::report::MAX_OBJECT_SIZE), Just(i64::MAX as u64), any::<u64>()];
        let u32s = || prop_oneof![0u32..3000, Just(i32::MAX as u32), Just(1u32 << 31), any::<u32>()];
        let t = Timestamp(1_800_000_000_000);
        (u64s(), proptest::collection::vec((u32s(), u64s(), u64s()), 0..3), proptest::collection::vec(u64s(), 0..3))
            .prop_map(move |(size, maps, keyframes)| {
                Report::SegmentReported(SegmentReported {
                    cid: cid(),
                    segment_id: SegmentId::parse("seg-w").unwrap(),
                    size,
                    started_at: t,
                    duration_ms: 10_000,
                    media: Media { codec: "h264".into(), width: 640, height: 480, fps: 25.0, audio_sample_rate: None },
                    keyframes,
                    utc_offset: DayOffset::default(),
                    events: maps
                        .into_iter()
                        .enumerate()
                        .map(|(i, (index, start_offset, end_offset))| EventMapping {
                            event_id: event_id(
                                &TimePolicy::default(),
                                t.plus_millis(-(i as i64)),
                                DayOffset::default(),
                                t,
                            ),
                            index,
                            start_offset,
                            end_offset,
                        })
                        .collect(),
                })
            })
    }

    #[test]
    fn the_write_stamp_is_the_reports_own_and_orders_by_receipt() {
        let t = Timestamp(1_800_000_000_000);
        let (earlier, later) = (started(t, t), started(t, t.plus_millis(1)));
        assert_eq!(write_stamp(&earlier), write_stamp(&earlier.clone()), "a replay carries the same stamp");
        assert!(write_stamp(&earlier) < write_stamp(&later));
        assert_eq!(write_stamp(&earlier) / 1000, t.millis());
    }

    fn started(t: Timestamp, received_at: Timestamp) -> Envelope {
        let event_type = EventType::parse("motion").unwrap();
        let offset = DayOffset::default();
        let event_id = event_id(&TimePolicy::default(), t, offset, t);
        Envelope::new(
            Report::EventStarted(EventStarted {
                cid: cid(),
                event_id,
                event_type,
                triggered_at: t,
                utc_offset: offset,
                clock_skew_ms: None,
                snapshot_size: None,
            }),
            received_at,
        )
    }

    #[test]
    fn a_segment_can_hold_the_end_of_yesterdays_event() {
        let policy = TimePolicy::default();
        let la = DayOffset::parse("-08:00").unwrap();
        let yesterday = Timestamp::parse_rfc3339("2026-11-21T23:59:00-08:00").unwrap();
        let today = Timestamp::parse_rfc3339("2026-11-22T00:00:30-08:00").unwrap();
        let event = event_id(&policy, yesterday, la, today);
        let report = Report::SegmentReported(SegmentReported {
            cid: cid(),
            segment_id: SegmentId::parse("seg-1").unwrap(),
            size: 100,
            started_at: today,
            utc_offset: la,
            duration_ms: 10_000,
            media: Media { codec: "h264".into(), width: 640, height: 480, fps: 25.0, audio_sample_rate: None },
            keyframes: vec![],
            events: vec![EventMapping { event_id: event, index: 3, start_offset: 0, end_offset: 50 }],
        });
        let envelope = env(report, today);
        let rows = plan(&envelope, &policy);
        let days: Vec<String> = rows.iter().map(|r| r.day.to_string()).collect();
        assert_eq!(
            days,
            ["2026-11-22", "2026-11-21", "2026-11-21", "2026-11-22"],
            "segment with its day, a copy, the mapping with its event, and its bytes counted once in its own day"
        );
        assert!(matches!(rows[1].data, RowData::Segment(_)) && rows[1].trigger == yesterday, "{rows:?}");
        let RowData::Mapping { segment_day, .. } = rows[2].data else { panic!("{rows:?}") };
        assert_eq!(segment_day.to_string(), "2026-11-21", "the mapping points at the copy in its event's day");
    }

    #[test]
    fn a_fast_clocks_event_is_filed_on_the_servers_day() {
        let policy = TimePolicy::default();
        let now = Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        let claim = now.plus_millis(2 * 86_400_000);
        let (id, skew) = policy.start_id(&cid(), &motion(), claim, DayOffset::default(), true, now).unwrap();
        assert_eq!(skew, Some(2 * 86_400_000));
        assert_eq!(id.day().to_string(), "2026-12-01");
        assert_eq!(id.filed_at(policy.offset).to_string(), "2026-12-01T23:59:59.999Z");
        // Ten minutes fast at noon: same day, same id as a right clock, only marked.
        let (id10, skew10) =
            policy.start_id(&cid(), &motion(), now.plus_millis(600_000), DayOffset::default(), true, now).unwrap();
        assert_eq!(skew10, Some(600_000));
        assert!(!id10.filed_early());
    }
}
