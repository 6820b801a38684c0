//! The topic's value: a versioned envelope, bincode-encoded.
//!
//! Wire format (documented in docs/topic.md):
//!
//! ```text
//! varint u16  schema version (currently 4)
//! ...         the version's body, bincode 2 "standard" config (varint integers,
//!             little-endian, enum variants by position)
//! ```
//!
//! Version 4's body is version 3's with the owner's reports as variants 8 to 12
//! (`crate::owner`). Version 3's body is `(Report, received_at: i64 epoch ms)`: version 2's,
//! with the notification subscriptions' changes as report variants 4 to 7. Version 2's body is the
//! same without those two variants, with the camera's UTC offsets and clock skew in the
//! reports. Version 1's body has the same shape without them; it is
//! decoded into today's types by [`v1`] (offsets +00:00, no skew; its event ids keep their
//! version 1 form and day). A new version adds a new body type and a new arm in
//! [`Envelope::decode`]; old arms are never removed, so everything ever written stays
//! decodable.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use serde::{Deserialize, Serialize};

use crate::report::Report;
use crate::time::Timestamp;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u16 = 5;

/// Upper bound on one decoded envelope; protects decoders from hostile length prefixes.
pub const MAX_ENVELOPE_BYTES: usize = 1 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_ENVELOPE_BYTES>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_ENVELOPE_BYTES>()
}

/// A report as the log carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The report.
    pub report: Report,
    /// When ingest accepted it.
    pub received_at: Timestamp,
}

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The version prefix names a schema this build does not know (written by a newer one).
    #[error("unknown schema version {0}")]
    UnknownVersion(u16),
    /// The bytes are not a valid envelope of their version.
    #[error("malformed envelope: {0}")]
    Malformed(String),
}

impl Envelope {
    /// Encodes with the current schema version.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec((SCHEMA_VERSION, self), config()).expect("an in-memory envelope always encodes")
    }

    /// Decodes any schema version this build knows. Never panics on arbitrary input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let malformed = |e: bincode::error::DecodeError| DecodeError::Malformed(e.to_string());
        let (version, used): (u16, usize) = bincode::serde::decode_from_slice(bytes, config()).map_err(malformed)?;
        let body = &bytes[used..];
        let (envelope, used) = match version {
            1 => {
                let (old, used) =
                    bincode::serde::decode_from_slice::<v1::Envelope, _>(body, config()).map_err(malformed)?;
                (old.into(), used)
            }
            2..=5 => {
                let (envelope, used) =
                    bincode::serde::decode_from_slice::<Envelope, _>(body, config()).map_err(malformed)?;
                // Each version knew only the variants of its time (version 2 the four device
                // reports, 3 also the subscription changes): a later variant under an older
                // prefix is damage, not a newer report.
                if envelope.report.kind().since_schema() > version {
                    return Err(DecodeError::Malformed(format!("unknown variant index for schema version {version}")));
                }
                (envelope, used)
            }
            v => return Err(DecodeError::UnknownVersion(v)),
        };
        if used != body.len() {
            return Err(DecodeError::Malformed(format!("{} trailing bytes", body.len() - used)));
        }
        Ok(envelope)
    }

    /// Reads only the schema version prefix (what the `daybook.schema` header also says).
    pub fn version_of(bytes: &[u8]) -> Option<u16> {
        bincode::serde::decode_from_slice::<u16, _>(bytes, config()).ok().map(|(v, _)| v)
    }
}

/// Schema version 1, as written before reports carried the camera's UTC offsets and clock
/// skew: decoded, then mapped onto today's types.
pub mod v1 {
    use serde::Deserialize;

    use crate::ids::{Day, DeviceId, EventId, EventType, SegmentId};
    use crate::report::{self, EndStatus, EventMapping, Media};
    use crate::time::{DayOffset, Timestamp};

    /// A version 1 envelope.
    #[derive(Debug, Deserialize)]
    pub struct Envelope {
        report: Report,
        received_at: Timestamp,
    }

    #[derive(Debug, Deserialize)]
    enum Report {
        EventStarted {
            cid: DeviceId,
            event_id: EventId,
            event_type: EventType,
            triggered_at: Timestamp,
        },
        EventEnded {
            cid: DeviceId,
            event_id: EventId,
            ended_at: Timestamp,
            status: EndStatus,
        },
        SegmentReported {
            cid: DeviceId,
            segment_id: SegmentId,
            size: u64,
            started_at: Timestamp,
            duration_ms: u32,
            media: Media,
            keyframes: Vec<u64>,
            events: Vec<EventMapping>,
        },
        DigestReported {
            cid: DeviceId,
            date: Day,
            segment_id: SegmentId,
            size: u64,
            duration_ms: u32,
        },
    }

    impl From<Envelope> for super::Envelope {
        fn from(e: Envelope) -> Self {
            // Version 1 knew no camera offsets: its event ids carry their day themselves, and
            // everything else is read at +00:00.
            let utc = DayOffset::default();
            let report = match e.report {
                Report::EventStarted { cid, event_id, event_type, triggered_at } => {
                    report::Report::EventStarted(report::EventStarted {
                        cid,
                        event_id,
                        event_type,
                        triggered_at,
                        utc_offset: utc,
                        clock_skew_ms: None,
                    })
                }
                Report::EventEnded { cid, event_id, ended_at, status } => {
                    report::Report::EventEnded(report::EventEnded { cid, event_id, ended_at, utc_offset: utc, status })
                }
                Report::SegmentReported {
                    cid,
                    segment_id,
                    size,
                    started_at,
                    duration_ms,
                    media,
                    keyframes,
                    events,
                } => report::Report::SegmentReported(report::SegmentReported {
                    cid,
                    segment_id,
                    size,
                    started_at,
                    utc_offset: utc,
                    duration_ms,
                    media,
                    keyframes,
                    events,
                }),
                Report::DigestReported { cid, date, segment_id, size, duration_ms } => {
                    report::Report::DigestReported(report::DigestReported {
                        cid,
                        date,
                        utc_offset: utc,
                        segment_id,
                        size,
                        duration_ms,
                    })
                }
            };
            Self { report, received_at: e.received_at }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::report::*;
    use crate::time::DayOffset;
    use proptest::prelude::*;

    fn arb_cid() -> impl Strategy<Value = DeviceId> {
        "[A-Za-z0-9_-]{1,64}".prop_map(|s| DeviceId::parse(&s).unwrap())
    }
    fn arb_event_type() -> impl Strategy<Value = EventType> {
        "[a-z0-9_]{1,32}".prop_map(|s| EventType::parse(&s).unwrap())
    }
    fn arb_ts() -> impl Strategy<Value = Timestamp> {
        (0i64..4_000_000_000_000).prop_map(Timestamp)
    }
    fn arb_offset() -> impl Strategy<Value = DayOffset> {
        (-14 * 60..=14 * 60i32).prop_map(|m| DayOffset::from_minutes(m).unwrap())
    }
    fn arb_event_id() -> impl Strategy<Value = EventId> {
        (arb_cid(), arb_event_type(), arb_ts(), arb_offset(), 0i64..3).prop_map(|(c, k, t, o, early)| {
            let day = o.day_of(t).unwrap().add_days(-early);
            EventId::filed(&c, &k, t, o, day).unwrap()
        })
    }
    fn arb_seg() -> impl Strategy<Value = SegmentId> {
        "[A-Za-z0-9_-]{1,80}".prop_map(|s| SegmentId::parse(&s).unwrap())
    }
    fn arb_report() -> impl Strategy<Value = Report> {
        prop_oneof![
            (arb_cid(), arb_event_type(), arb_ts(), arb_offset(), proptest::option::of(any::<i64>())).prop_map(
                |(cid, event_type, t, utc_offset, clock_skew_ms)| {
                    let event_id = EventId::new(&cid, &event_type, t, utc_offset).unwrap();
                    Report::EventStarted(EventStarted {
                        cid,
                        event_id,
                        event_type,
                        triggered_at: t,
                        utc_offset,
                        clock_skew_ms,
                    })
                }
            ),
            (arb_cid(), arb_event_id(), arb_ts(), arb_offset(), any::<bool>()).prop_map(
                |(cid, event_id, ended_at, utc_offset, ok)| {
                    Report::EventEnded(EventEnded {
                        cid,
                        event_id,
                        ended_at,
                        utc_offset,
                        status: if ok { EndStatus::Complete } else { EndStatus::Aborted },
                    })
                }
            ),
            (
                arb_cid(),
                arb_seg(),
                any::<u64>(),
                arb_ts(),
                any::<u32>(),
                ("[a-z0-9]{1,8}", any::<u32>(), any::<u32>(), 0.1f64..240.0, proptest::option::of(any::<u32>())),
                proptest::collection::vec(any::<u64>(), 0..8),
                proptest::collection::vec((arb_event_id(), any::<u32>(), any::<u64>(), any::<u64>()), 0..4),
            )
                .prop_map(
                    |(
                        cid,
                        segment_id,
                        size,
                        started_at,
                        duration_ms,
                        (codec, width, height, fps, audio_sample_rate),
                        keyframes,
                        events,
                    )| {
                        Report::SegmentReported(SegmentReported {
                            cid,
                            segment_id,
                            size,
                            started_at,
                            utc_offset: DayOffset::from_minutes(345).unwrap(),
                            duration_ms,
                            media: Media { codec, width, height, fps, audio_sample_rate },
                            keyframes,
                            events: events
                                .into_iter()
                                .map(|(event_id, index, start_offset, end_offset)| EventMapping {
                                    event_id,
                                    index,
                                    start_offset,
                                    end_offset,
                                })
                                .collect(),
                        })
                    }
                ),
            (arb_cid(), 0u32..3_000_000, arb_seg(), any::<u64>(), any::<u32>()).prop_map(
                |(cid, d, segment_id, size, duration_ms)| {
                    let date = Day::from_date(chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap())
                        .add_days(i64::from(d % 20_000));
                    let utc_offset = DayOffset::from_minutes(-480).unwrap();
                    Report::DigestReported(DigestReported { cid, date, utc_offset, segment_id, size, duration_ms })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(report in arb_report(), at in arb_ts()) {
            let e = Envelope { report, received_at: at };
            let bytes = e.encode();
            prop_assert_eq!(Envelope::version_of(&bytes), Some(SCHEMA_VERSION));
            prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e.clone());
            // JSON (what `daybook tail` prints) round-trips as well.
            let json = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(serde_json::from_str::<Envelope>(&json).unwrap(), e);
        }

        #[test]
        fn arbitrary_bytes_are_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn mutated_envelopes_never_panic(report in arb_report(), pos in any::<usize>(), byte in any::<u8>()) {
            let mut bytes = Envelope { report, received_at: Timestamp(0) }.encode();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = Envelope::decode(&bytes);
            bytes.truncate(i);
            prop_assert!(Envelope::decode(&bytes).is_err());
        }
    }

    #[test]
    fn unknown_versions_are_named() {
        let bytes = bincode::serde::encode_to_vec(7u16, config()).unwrap();
        assert!(matches!(Envelope::decode(&bytes), Err(DecodeError::UnknownVersion(7))));
    }

    #[test]
    fn version_one_bytes_stay_decodable() {
        // A fixed v1 envelope, as the previous build wrote it: it decodes into today's types
        // with its version 1 id and +00:00.
        let cid = DeviceId::parse("cam-1").unwrap();
        let event_type = EventType::parse("motion").unwrap();
        let t = Timestamp(1_795_305_600_000);
        let event_id = EventId::new_v1(&cid, &event_type, t, DayOffset::default()).unwrap();
        let e = Envelope {
            report: Report::EventStarted(EventStarted {
                cid,
                event_id,
                event_type,
                triggered_at: t,
                utc_offset: DayOffset::default(),
                clock_skew_ms: None,
            }),
            received_at: t,
        };
        let golden: &[u8] = &[
            1, 0, 5, 99, 97, 109, 45, 49, 35, 50, 48, 50, 54, 49, 49, 50, 50, 46, 99, 97, 109, 45, 49, 46, 49, 55, 57,
            53, 51, 48, 53, 54, 48, 48, 48, 48, 48, 46, 109, 111, 116, 105, 111, 110, 6, 109, 111, 116, 105, 111, 110,
            253, 0, 232, 26, 1, 68, 3, 0, 0, 253, 0, 232, 26, 1, 68, 3, 0, 0,
        ];
        assert_eq!(Envelope::decode(golden).unwrap(), e);
        assert_eq!(Envelope::version_of(golden), Some(1));
    }

    #[test]
    fn version_two_bytes_stay_decodable() {
        // A fixed v2 envelope, as the previous build wrote it; version 3 writes the same body
        // under its own prefix. If this changes, the schema changed without a new version.
        let cid = DeviceId::parse("cam-1").unwrap();
        let event_type = EventType::parse("motion").unwrap();
        let t = Timestamp(1_795_305_600_000);
        let utc_offset = DayOffset::parse("+08:00").unwrap();
        let event_id = EventId::new(&cid, &event_type, t, utc_offset).unwrap();
        let e = Envelope {
            report: Report::EventStarted(EventStarted {
                cid,
                event_id: event_id.clone(),
                event_type,
                triggered_at: t,
                utc_offset,
                clock_skew_ms: Some(600_000),
            }),
            received_at: t,
        };
        let golden: &[u8] = &[
            2, 0, 5, 99, 97, 109, 45, 49, 40, 50, 48, 50, 54, 49, 49, 50, 50, 46, 99, 97, 109, 45, 49, 46, 49, 55, 57,
            53, 51, 48, 53, 54, 48, 48, 48, 48, 48, 43, 48, 56, 48, 48, 46, 109, 111, 116, 105, 111, 110, 6, 109, 111,
            116, 105, 111, 110, 253, 0, 232, 26, 1, 68, 3, 0, 0, 251, 192, 3, 1, 252, 128, 79, 18, 0, 253, 0, 232, 26,
            1, 68, 3, 0, 0,
        ];
        assert_eq!(Envelope::decode(golden).unwrap(), e);
        assert_eq!(e.encode(), [&[SCHEMA_VERSION as u8], &golden[1..]].concat(), "{:?}", e.encode());
        // A subscription change under version 2's prefix is malformed.
        let change = Envelope {
            report: Report::SubscriptionDeleted(crate::SubscriptionDeleted {
                subscription_id: SubscriptionId::parse("sub-1").unwrap(),
            }),
            received_at: t,
        };
        let v3 = change.encode();
        assert_eq!(Envelope::decode(&v3).unwrap(), change);
        assert!(matches!(Envelope::decode(&[&[2u8], &v3[1..]].concat()), Err(DecodeError::Malformed(_))));
        // An owner's report under version 3's prefix likewise.
        let deleted = Envelope {
            report: Report::EventDeleted(crate::EventDeleted { cid: e.report.cid().unwrap().clone(), event_id }),
            received_at: t,
        };
        let v4 = deleted.encode();
        assert_eq!(Envelope::decode(&v4).unwrap(), deleted);
        assert!(matches!(Envelope::decode(&[&[3u8], &v4[1..]].concat()), Err(DecodeError::Malformed(_))));
    }
}
