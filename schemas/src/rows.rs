//! Where a report's data lives and when it expires: the one rule every projection store
//! follows (README.md, Data model and retention).
//!
//! [`plan`] turns a report into the rows it writes. Each row names its partition — one
//! device's day — and its expiry; a store maps the rows onto its tables and writes only those
//! still alive ([`Row::live_at`]). Neither store decides a day or an expiry itself.
//!
//! | report | rows | day | retention counted from |
//! |---|---|---|---|
//! | event started | [`RowData::EventStart`] | the event's trigger day (from its id) | the event's trigger time |
//! | event ended | [`RowData::EventEnd`] | the event's trigger day (from its id) | the event's trigger time |
//! | segment | [`RowData::Segment`] | the day the segment started | the segment's start |
//! | | one [`RowData::Mapping`] per event it maps | each event's trigger day (from its id) | each event's trigger time |
//! | digest | [`RowData::Digest`] | its date | the first instant of its date |

use crate::ids::{Day, DeviceId, EventId, SegmentId};
use crate::report::{DigestReported, EndStatus, EventMapping, Report, SegmentReported, TimePolicy};
use crate::time::Timestamp;

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
    /// A segment's own row.
    Segment(&'a SegmentReported),
    /// Part of an event held by a segment, stored with the event and pointing at the segment.
    Mapping {
        /// The event, its index and byte range within the segment.
        mapping: &'a EventMapping,
        /// The segment holding it.
        segment_id: &'a SegmentId,
        /// The partition day of the segment's own row.
        segment_day: Day,
    },
    /// A digest's row.
    Digest(&'a DigestReported),
}

impl Row<'_> {
    /// Whether the row is still inside retention at `now` (a row that is not must not be
    /// written: a TTL store would expire it at once, a day-partitioned one has dropped its day).
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

/// The rows `report` writes under `policy`. A segment whose start lies outside the calendar's
/// range writes nothing (validation refuses it before it reaches the log).
pub fn plan<'a>(report: &'a Report, policy: &TimePolicy) -> Vec<Row<'a>> {
    let cid = report.cid();
    let row = |day: Day, trigger: Timestamp, data: RowData<'a>| Row {
        cid,
        day,
        trigger,
        expires_at: policy.expires_at(trigger),
        data,
    };
    let event_row = |event_id: &'a EventId, data: RowData<'a>| row(event_id.day(), event_id.triggered_at(), data);
    match report {
        Report::EventStarted(r) => vec![event_row(&r.event_id, RowData::EventStart { event_id: &r.event_id })],
        Report::EventEnded(r) => vec![event_row(
            &r.event_id,
            RowData::EventEnd { event_id: &r.event_id, ended_at: r.ended_at, status: r.status },
        )],
        Report::SegmentReported(r) => {
            let Some(segment_day) = policy.offset.day_of(r.started_at) else { return Vec::new() };
            let mut rows = Vec::with_capacity(1 + r.events.len());
            rows.push(row(segment_day, r.started_at, RowData::Segment(r)));
            rows.extend(r.events.iter().map(|m| {
                event_row(&m.event_id, RowData::Mapping { mapping: m, segment_id: &r.segment_id, segment_day })
            }));
            rows
        }
        Report::DigestReported(r) => vec![row(r.date, policy.offset.start_of(r.date), RowData::Digest(r))],
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::EventType;
    use crate::report::{EventEnded, EventStarted, Media};
    use crate::time::DayOffset;

    fn arb_offset() -> impl Strategy<Value = DayOffset> {
        (-14 * 60..=14 * 60i32)
            .prop_map(|minutes| DayOffset(chrono::FixedOffset::east_opt(minutes * 60).expect("within ±14 h")))
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

    fn event_id(t: Timestamp, offset: DayOffset) -> EventId {
        EventId::new(&cid(), &EventType::parse("motion").unwrap(), t, offset).unwrap()
    }

    /// A report of every shape, its ids made at `policy`'s offset (as validation requires).
    fn arb_report(policy: TimePolicy) -> impl Strategy<Value = Report> {
        let offset = policy.offset;
        prop_oneof![
            arb_ts().prop_map(move |t| Report::EventStarted(EventStarted {
                cid: cid(),
                event_id: event_id(t, offset),
                event_type: EventType::parse("motion").unwrap(),
                triggered_at: t,
            })),
            (arb_ts(), 0i64..86_400_000, any::<bool>()).prop_map(move |(t, after, complete)| {
                Report::EventEnded(EventEnded {
                    cid: cid(),
                    event_id: event_id(t, offset),
                    ended_at: t.plus_millis(after),
                    status: if complete { EndStatus::Complete } else { EndStatus::Aborted },
                })
            }),
            (arb_ts(), proptest::collection::vec(arb_ts(), 0..5)).prop_map(move |(start, events)| {
                Report::SegmentReported(SegmentReported {
                    cid: cid(),
                    segment_id: SegmentId::parse("seg-1").unwrap(),
                    size: 100,
                    started_at: start,
                    duration_ms: 10_000,
                    media: Media { codec: "h264".into(), width: 640, height: 480, fps: 25.0, audio_sample_rate: None },
                    keyframes: vec![0],
                    events: events
                        .into_iter()
                        .enumerate()
                        .map(|(i, t)| EventMapping {
                            event_id: event_id(t, offset),
                            index: i as u32,
                            start_offset: 0,
                            end_offset: 100,
                        })
                        .collect(),
                })
            }),
            arb_ts().prop_map(move |t| Report::DigestReported(DigestReported {
                cid: cid(),
                date: offset.day_of(t).unwrap(),
                segment_id: SegmentId::parse("dg-1").unwrap(),
                size: 100,
                duration_ms: 60_000,
            })),
        ]
    }

    fn arb_case() -> impl Strategy<Value = (TimePolicy, Report)> {
        arb_policy().prop_flat_map(|policy| (Just(policy), arb_report(policy)))
    }

    proptest! {
        #[test]
        fn every_row_lands_on_its_trigger_day_and_expires_a_retention_later((policy, report) in arb_case()) {
            for row in plan(&report, &policy) {
                prop_assert_eq!(Some(row.day), policy.offset.day_of(row.trigger));
                prop_assert_eq!(row.expires_at, row.trigger.plus_millis(policy.retention_ms()));
                prop_assert_eq!(row.cid, report.cid());
                prop_assert!(row.live_at(row.trigger) && !row.live_at(row.expires_at));
            }
        }

        #[test]
        fn a_reports_own_row_counts_from_its_trigger_time((policy, report) in arb_case()) {
            let rows = plan(&report, &policy);
            prop_assert_eq!(rows[0].trigger, report.trigger_time(policy.offset));
            let own = rows.iter().filter(|r| !matches!(r.data, RowData::Mapping { .. })).count();
            prop_assert_eq!(own, 1);
        }

        #[test]
        fn events_and_their_mappings_live_in_the_events_partition((policy, report) in arb_case()) {
            let rows = plan(&report, &policy);
            let segment_day = rows.iter().find_map(|r| matches!(r.data, RowData::Segment(_)).then_some(r.day));
            for row in &rows {
                match &row.data {
                    RowData::EventStart { event_id } | RowData::EventEnd { event_id, .. } => {
                        prop_assert_eq!(row.day, event_id.day());
                        prop_assert_eq!(row.trigger, event_id.triggered_at());
                    }
                    RowData::Mapping { mapping, segment_day: points_at, .. } => {
                        prop_assert_eq!(row.day, mapping.event_id.day());
                        prop_assert_eq!(row.trigger, mapping.event_id.triggered_at());
                        prop_assert_eq!(Some(*points_at), segment_day);
                    }
                    RowData::Segment(s) => prop_assert_eq!(row.trigger, s.started_at),
                    RowData::Digest(d) => {
                        prop_assert_eq!(row.day, d.date);
                        prop_assert_eq!(row.trigger, policy.offset.start_of(d.date));
                    }
                }
            }
            if let Report::SegmentReported(s) = &report {
                prop_assert_eq!(rows.len(), 1 + s.events.len());
            } else {
                prop_assert_eq!(rows.len(), 1);
            }
        }
    }

    #[test]
    fn a_segment_can_hold_the_end_of_yesterdays_event() {
        let policy = TimePolicy::default();
        let yesterday = Timestamp::parse_rfc3339("2026-11-21T23:59:00Z").unwrap();
        let today = Timestamp::parse_rfc3339("2026-11-22T00:00:30Z").unwrap();
        let event = event_id(yesterday, policy.offset);
        let report = Report::SegmentReported(SegmentReported {
            cid: cid(),
            segment_id: SegmentId::parse("seg-1").unwrap(),
            size: 100,
            started_at: today,
            duration_ms: 10_000,
            media: Media { codec: "h264".into(), width: 640, height: 480, fps: 25.0, audio_sample_rate: None },
            keyframes: vec![],
            events: vec![EventMapping { event_id: event, index: 3, start_offset: 0, end_offset: 50 }],
        });
        let rows = plan(&report, &policy);
        let days: Vec<String> = rows.iter().map(|r| r.day.to_string()).collect();
        assert_eq!(days, ["2026-11-22", "2026-11-21"], "segment with its day, mapping with its event");
        let RowData::Mapping { segment_day, .. } = rows[1].data else { panic!("{rows:?}") };
        assert_eq!(segment_day.to_string(), "2026-11-22");
    }
}
