//! Where a report's data lives and when it expires: the one rule every projection store
//! follows (README.md, Data model and retention).
//!
//! [`plan`] turns a report into the rows it writes. Each row names its partition — one
//! device's day — and its expiry; a store maps the rows onto its tables and writes only those
//! still alive ([`Row::live_at`]). Neither store decides a day or an expiry itself.
//!
//! Days are the camera's local days (README.md, Contracts): an event's day is in its id (the
//! trigger's date at the camera's UTC offset); other rows take the offset their report carries.
//! A camera clock ahead of the server by more than the tolerance is filed by the server's
//! time: its event ids say so ([`EventId::filed_at`]), a segment uses `received_at`.
//!
//! | report | rows | day | retention counted from |
//! |---|---|---|---|
//! | event started | [`RowData::EventStart`] | the event's day (from its id) | the event's filing time (its trigger time, or clamped into its day) |
//! | | [`RowData::DeviceOffset`] | the event's day | the event's filing time |
//! | event ended | [`RowData::EventEnd`] | the event's day (from its id) | the event's filing time |
//! | segment | [`RowData::Segment`] | the local day the segment started | the segment's start (or `received_at`, for a fast clock) |
//! | | one [`RowData::Mapping`] per event it maps | each event's day (from its id) | each event's filing time |
//! | digest | [`RowData::Digest`] | its date | the first instant of its date at its offset |

use crate::envelope::Envelope;
use crate::ids::{Day, DeviceId, EventId, SegmentId};
use crate::report::{DigestReported, EndStatus, EventMapping, Report, SegmentReported, TimePolicy};
use crate::time::{DayOffset, Timestamp};

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

/// The rows `envelope`'s report writes under `policy`. A segment whose start lies outside the
/// calendar's range writes nothing (validation refuses it before it reaches the log).
pub fn plan<'a>(envelope: &'a Envelope, policy: &TimePolicy) -> Vec<Row<'a>> {
    let report = &envelope.report;
    let cid = report.cid();
    let row = |day: Day, trigger: Timestamp, data: RowData<'a>| Row {
        cid,
        day,
        trigger,
        expires_at: policy.expires_at(trigger),
        data,
    };
    let event_row =
        |event_id: &'a EventId, data: RowData<'a>| row(event_id.day(), event_id.filed_at(policy.offset), data);
    match report {
        Report::EventStarted(r) => vec![
            event_row(&r.event_id, RowData::EventStart { event_id: &r.event_id, clock_skew_ms: r.clock_skew_ms }),
            event_row(&r.event_id, RowData::DeviceOffset { offset: r.utc_offset }),
        ],
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
            let mut rows = Vec::with_capacity(1 + r.events.len());
            rows.push(row(segment_day, filed, RowData::Segment(r)));
            rows.extend(r.events.iter().map(|m| {
                event_row(&m.event_id, RowData::Mapping { mapping: m, segment_id: &r.segment_id, segment_day })
            }));
            rows
        }
        Report::DigestReported(r) => vec![row(r.date, r.utc_offset.start_of(r.date), RowData::Digest(r))],
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
        Envelope { report, received_at }
    }

    /// A report of every shape, with the camera at any offset and clock skew.
    fn arb_report(policy: TimePolicy) -> impl Strategy<Value = Envelope> {
        prop_oneof![
            (arb_ts(), arb_offset(), arb_ts()).prop_map(move |(t, o, rx)| {
                let (event_id, clock_skew_ms) = policy.start_id(&cid(), &motion(), t, o, false, rx).unwrap();
                env(
                    Report::EventStarted(EventStarted {
                        cid: cid(),
                        event_id,
                        event_type: motion(),
                        triggered_at: t,
                        utc_offset: o,
                        clock_skew_ms,
                    }),
                    rx,
                )
            }),
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
        arb_policy().prop_flat_map(|policy| (Just(policy), arb_report(policy)))
    }

    proptest! {
        #[test]
        fn every_row_expires_a_retention_after_its_filing_time((policy, envelope) in arb_case()) {
            for row in plan(&envelope, &policy) {
                prop_assert_eq!(row.expires_at, row.trigger.plus_millis(policy.retention_ms()));
                prop_assert_eq!(row.cid, envelope.report.cid());
                prop_assert!(row.live_at(row.trigger) && !row.live_at(row.expires_at));
            }
        }

        #[test]
        fn a_reports_own_row_counts_from_its_trigger_time((policy, envelope) in arb_case()) {
            let rows = plan(&envelope, &policy);
            if !matches!(envelope.report, Report::SegmentReported(_)) {
                prop_assert_eq!(rows[0].trigger, envelope.report.trigger_time(policy.offset));
            }
            let own = rows.iter().filter(|r| !matches!(r.data, RowData::Mapping { .. } | RowData::DeviceOffset { .. })).count();
            prop_assert_eq!(own, 1);
        }

        #[test]
        fn events_and_their_mappings_live_on_the_events_local_day((policy, envelope) in arb_case()) {
            let rows = plan(&envelope, &policy);
            let segment_day = rows.iter().find_map(|r| matches!(r.data, RowData::Segment(_)).then_some(r.day));
            for row in &rows {
                match &row.data {
                    RowData::EventStart { event_id, .. } | RowData::EventEnd { event_id, .. } => {
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
                        prop_assert_eq!(Some(*points_at), segment_day);
                    }
                    RowData::Segment(s) => {
                        prop_assert_eq!(s.utc_offset.day_of(row.trigger), Some(row.day));
                        prop_assert!(row.trigger == s.started_at || row.trigger == envelope.received_at);
                    }
                    RowData::Digest(d) => {
                        prop_assert_eq!(row.day, d.date);
                        prop_assert_eq!(row.trigger, d.utc_offset.start_of(d.date));
                    }
                }
            }
            match &envelope.report {
                Report::SegmentReported(s) => prop_assert_eq!(rows.len(), 1 + s.events.len()),
                Report::EventStarted(_) => prop_assert_eq!(rows.len(), 2),
                _ => prop_assert_eq!(rows.len(), 1),
            }
        }
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
        assert_eq!(days, ["2026-11-22", "2026-11-21"], "segment with its day, mapping with its event");
        let RowData::Mapping { segment_day, .. } = rows[1].data else { panic!("{rows:?}") };
        assert_eq!(segment_day.to_string(), "2026-11-22");
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
