//! Validated identifiers. Each one is parsed once, at the edge, and is valid from then on:
//! deserialising (JSON or bincode) goes through the same parser.

use std::fmt;
use std::str::FromStr;

use chrono::Datelike;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::day::{Day, DAY_PATTERN};
use crate::id_error::err;
pub use crate::id_error::IdError;
use crate::time::{DayOffset, Timestamp};

fn check_token(
    what: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(u8) -> bool,
    rule: &str,
) -> Result<(), IdError> {
    if s.is_empty() || s.len() > max {
        return Err(err(what, format!("{s:?} must be 1 to {max} characters")));
    }
    if !s.bytes().all(allowed) {
        return Err(err(what, format!("{s:?} may only contain {rule}")));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr, $rule:literal, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_token($what, s, $max, $allowed, $rule)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($rule))
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some($pattern))
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

string_id!(
    /// A device (camera) id: 1–64 of `A-Z a-z 0-9 _ -`.
    DeviceId, "device id", 64,
    |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
    "1 to 64 of A-Z a-z 0-9 _ -",
    "^[A-Za-z0-9_-]{1,64}$"
);
string_id!(
    /// An event type token (`motion`, `sound`, `person`, …): 1–32 of `a-z 0-9 _`.
    EventType, "event type", 32,
    |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
    "1 to 32 of a-z 0-9 _",
    "^[a-z0-9_]{1,32}$"
);
string_id!(
    /// A segment id, built by the server when it signs the upload: 1–80 of `A-Z a-z 0-9 _ -`.
    SegmentId, "segment id", 80,
    |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
    "1 to 80 of A-Z a-z 0-9 _ -",
    "^[A-Za-z0-9_-]{1,80}$"
);

string_id!(
    /// A notification subscription's id (`daybook subscriptions add` issues `sub-<16 hex>`):
    /// 1–64 of `A-Z a-z 0-9 _ -`.
    SubscriptionId, "subscription id", 64,
    |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
    "1 to 64 of A-Z a-z 0-9 _ -",
    "^[A-Za-z0-9_-]{1,64}$"
);

string_id!(
    /// An export's id (the viewer API issues `exp-<12 hex: request time, ms>-<16 hex: random>`
    /// when the owner asks for one, so ids sort by request time): 1–64 of `A-Z a-z 0-9 _ -`.
    ExportId, "export id", 64,
    |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
    "1 to 64 of A-Z a-z 0-9 _ -",
    "^[A-Za-z0-9_-]{1,64}$"
);

impl ExportId {
    /// A fresh, unguessable id for a request received at `at`, from 64 random bits.
    pub fn generate(at: crate::time::Timestamp, random: u64) -> Self {
        Self(format!("exp-{:012x}-{random:016x}", at.millis().max(0)))
    }
}

impl SubscriptionId {
    /// A fresh id from 64 random bits.
    pub fn generate(random: u64) -> Self {
        Self(format!("sub-{random:016x}"))
    }
}

impl SegmentId {
    /// A fresh, unguessable segment id that starts with the day it was issued.
    pub fn generate(day: Day, random: u128) -> Self {
        Self(format!("{}-{random:032x}", day.compact()))
    }
}

/// An [`EventId`]'s shape, as a regular expression (ECMA-262 and Python alike): what a
/// stateless check of the text can say. The day is `YYYYMMDD` with a four-digit year from 1000
/// (as [`EventId::parse`] requires), month 01–12 and day 01–31; the offset `±HHMM` has hours
/// 00–23 and minutes 00–59, and is never `-0000`. What only [`EventId::parse`] checks: that
/// the date exists (`20260230` matches; the server answers 422 `invalid_event_id`) and the
/// filing day against the trigger time.
pub const EVENT_ID_PATTERN: &str = concat!(
    "^[1-9][0-9]{3}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])",
    "\\.[A-Za-z0-9_-]{1,64}",
    "\\.(0|[1-9][0-9]{0,14})",
    "([+]([01][0-9]|2[0-3])[0-5][0-9]|-(00(0[1-9]|[1-5][0-9])|(0[1-9]|1[0-9]|2[0-3])[0-5][0-9]))?",
    "\\.[a-z0-9_]{1,32}$"
);

/// An event id. Two forms, each with exactly one spelling per event:
///
/// * `YYYYMMDD.<device>.<trigger ms><±HHMM>.<type>` (written since schema version 2), e.g.
///   `20261201.cam-1.1795362627000+0800.motion`: the camera's UTC offset at the trigger is
///   part of the id, so any report naming the event can be checked alone.
/// * `YYYYMMDD.<device>.<trigger ms>.<type>` (version 1, still accepted): its day is the trigger
///   day at the deployment's `--day-offset`.
///
/// `YYYYMMDD` is the day the event is filed under (its partition): the calendar date of the
/// trigger at the id's offset — or, for a camera whose clock ran ahead of the server by more
/// than the tolerance, the date at which the server received the start ([`EventId::filed`]),
/// which is earlier. The milliseconds have no leading zeros. It is deterministic for (device,
/// type, triggered_at, offset) on one filing day, so a repeated start gets the same id, and it
/// carries everything needed to find the event's partition without a lookup
/// (docs/data-model.md, "Event ids have exactly one spelling").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    text: String,
    day: Day,
    cid: DeviceId,
    triggered_at: Timestamp,
    offset: Option<DayOffset>,
    event_type: EventType,
}

impl EventId {
    /// The id of the event of type `event_type` that `cid` triggered at `triggered_at`, its
    /// clock at UTC offset `offset`: filed under the trigger's local day.
    pub fn new(
        cid: &DeviceId,
        event_type: &EventType,
        triggered_at: Timestamp,
        offset: DayOffset,
    ) -> Result<Self, IdError> {
        let day = offset.day_of(triggered_at).ok_or_else(|| err("event id", "trigger time out of range"))?;
        Self::filed(cid, event_type, triggered_at, offset, day)
    }

    /// As [`EventId::new`], filed under `day` instead (a fast clock's event: the server's
    /// day at the trigger's offset; never later than the trigger's own local day).
    pub fn filed(
        cid: &DeviceId,
        event_type: &EventType,
        triggered_at: Timestamp,
        offset: DayOffset,
        day: Day,
    ) -> Result<Self, IdError> {
        if !(1000..=9999).contains(&day.date().year()) {
            return Err(err("event id", "trigger year must have four digits"));
        }
        if triggered_at.0 < 0 || Some(day) > offset.day_of(triggered_at) {
            return Err(err("event id", "trigger time out of range"));
        }
        let text = format!("{}.{}.{}{}.{}", day.compact(), cid, triggered_at.0, offset.compact(), event_type);
        Ok(Self { text, day, cid: cid.clone(), triggered_at, offset: Some(offset), event_type: event_type.clone() })
    }

    /// A version 1 id (no offset; its day is the trigger day at `offset`, the deployment's
    /// `--day-offset`). Written only by old builds; kept for tests of the old form.
    pub fn new_v1(
        cid: &DeviceId,
        event_type: &EventType,
        triggered_at: Timestamp,
        offset: DayOffset,
    ) -> Result<Self, IdError> {
        let day = offset.day_of(triggered_at).ok_or_else(|| err("event id", "trigger time out of range"))?;
        if !(1000..=9999).contains(&day.date().year()) || triggered_at.0 < 0 {
            return Err(err("event id", "trigger year must have four digits"));
        }
        let text = format!("{}.{}.{}.{}", day.compact(), cid, triggered_at.0, event_type);
        Ok(Self { text, day, cid: cid.clone(), triggered_at, offset: None, event_type: event_type.clone() })
    }

    /// Parses and validates, accepting only the canonical spelling: milliseconds without
    /// leading zeros, an offset as `±HHMM` (not `-0000`), and a day the filing rule allows —
    /// the trigger's local day, or an earlier one (a fast clock's event). A version 1 id's
    /// day must be the trigger day at *some* UTC offset (±1 day); whether it matches the
    /// deployment's `--day-offset` is checked by [`crate::Report::validate`].
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const WHAT: &str = "event id";
        if s.len() > 200 {
            return Err(err(WHAT, "longer than 200 characters"));
        }
        let mut parts = s.split('.');
        let (Some(day), Some(cid), Some(when), Some(event_type), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err(WHAT, format!("{s:?} is not YYYYMMDD.<device>.<ms>±HHMM.<type>")));
        };
        let day = Day::parse_compact(day).map_err(|e| err(WHAT, e.reason))?;
        // As every id the server builds (`filed`, `new_v1`): an earlier filing day is allowed,
        // but not one before year 1000 (found by fuzz/, target `ids`).
        if !(1000..=9999).contains(&day.date().year()) {
            return Err(err(WHAT, format!("day {} must have a four-digit year", day.compact())));
        }
        let cid = DeviceId::parse(cid).map_err(|e| err(WHAT, e.to_string()))?;
        let (ms, offset) = match when.find(['+', '-']) {
            Some(i) => {
                let offset = DayOffset::parse_compact(&when[i..])
                    .ok_or_else(|| err(WHAT, format!("utc offset {:?} is not ±HHMM", &when[i..])))?;
                (&when[..i], Some(offset))
            }
            None => (when, None),
        };
        let canonical = !ms.is_empty() && ms.len() <= 15 && ms.bytes().all(|b| b.is_ascii_digit());
        if !canonical || (ms.len() > 1 && ms.starts_with('0')) {
            return Err(err(WHAT, format!("trigger time {ms:?} is not epoch milliseconds without leading zeros")));
        }
        let triggered_at = Timestamp(ms.parse().map_err(|_| err(WHAT, "trigger time"))?);
        let event_type = EventType::parse(event_type).map_err(|e| err(WHAT, e.to_string()))?;
        match offset {
            Some(offset) => {
                let local = offset.day_of(triggered_at).ok_or_else(|| err(WHAT, "trigger time out of range"))?;
                if day > local {
                    return Err(err(
                        WHAT,
                        format!("day {} is after its trigger day {}", day.compact(), local.compact()),
                    ));
                }
            }
            None => {
                let utc_day =
                    DayOffset::default().day_of(triggered_at).ok_or_else(|| err(WHAT, "trigger time out of range"))?;
                if day.days_since(utc_day).abs() > 1 {
                    return Err(err(WHAT, format!("day {} does not match its trigger time", day.compact())));
                }
            }
        }
        Ok(Self { text: s.to_owned(), day, cid, triggered_at, offset, event_type })
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The day it is filed under (the partition).
    pub fn day(&self) -> Day {
        self.day
    }
    /// The device that triggered it.
    pub fn device(&self) -> &DeviceId {
        &self.cid
    }
    /// When it was triggered, by the camera's clock.
    pub fn triggered_at(&self) -> Timestamp {
        self.triggered_at
    }
    /// The camera's UTC offset at the trigger (`None` for a version 1 id).
    pub fn offset(&self) -> Option<DayOffset> {
        self.offset
    }
    /// Whether it is filed under an earlier day than its trigger's (a fast clock's event).
    pub fn filed_early(&self) -> bool {
        self.offset.is_some_and(|o| o.day_of(self.triggered_at) != Some(self.day))
    }
    /// The instant the event is filed at, from which its retention counts and by which it
    /// is ordered within its day: the trigger time, clamped into its filing day (at the id's
    /// offset, or `fallback` for a version 1 id). Equal to the trigger time unless the event
    /// is [filed early](EventId::filed_early).
    pub fn filed_at(&self, fallback: DayOffset) -> Timestamp {
        let offset = self.offset.unwrap_or(fallback);
        let last = offset.start_of(self.day.add_days(1)).plus_millis(-1);
        self.triggered_at.min(last)
    }
    /// What triggered it (`motion`, `sound`, …).
    pub fn event_type(&self) -> &EventType {
        &self.event_type
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for EventId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for EventId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("YYYYMMDD.<device>.<trigger epoch ms>±HHMM.<type>"))
            .min_length(Some(14))
            .max_length(Some(127))
            .pattern(Some(EVENT_ID_PATTERN))
            .into()
    }
}
impl utoipa::ToSchema for EventId {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn event_id_is_deterministic_and_starts_with_the_day() {
        let t = Timestamp::parse_rfc3339("2026-11-22T08:00:00.5Z").unwrap();
        let motion = EventType::parse("motion").unwrap();
        let a = EventId::new(&cid("cam-1"), &motion, t, DayOffset::default()).unwrap();
        let b = EventId::new(&cid("cam-1"), &motion, t, DayOffset::default()).unwrap();
        assert_eq!(a, b);
        assert!(a.as_str().starts_with("20261122."), "{a}");
        assert_eq!(EventId::parse(a.as_str()).unwrap(), a);
        let other = EventId::new(&cid("cam-1"), &EventType::parse("sound").unwrap(), t, DayOffset::default()).unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn event_ids_carry_the_cameras_offset_and_local_day() {
        let motion = EventType::parse("motion").unwrap();
        let shanghai = DayOffset::parse("+08:00").unwrap();
        let t = Timestamp::parse_rfc3339("2026-12-01T07:30:00+08:00").unwrap();
        let id = EventId::new(&cid("cam-1"), &motion, t, shanghai).unwrap();
        assert_eq!(id.as_str(), format!("20261201.cam-1.{}+0800.motion", t.millis()));
        assert_eq!(EventId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.offset(), Some(shanghai));
        let la = DayOffset::parse("-08:00").unwrap();
        let t = Timestamp::parse_rfc3339("2026-11-30T23:30:00-08:00").unwrap();
        assert!(EventId::new(&cid("cam-1"), &motion, t, la).unwrap().as_str().starts_with("20261130."));
        let v1 = EventId::new_v1(&cid("cam-1"), &motion, t, DayOffset::default()).unwrap();
        assert_eq!(EventId::parse(v1.as_str()).unwrap(), v1);
        assert_eq!(v1.offset(), None);
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        let good = "20261122.cam-1.1795362627000+0000.motion";
        assert!(EventId::parse(good).is_ok());
        assert!(EventId::parse("20261122.cam-1.1795362627000.motion").is_ok(), "version 1");
        for bad in [
            "20261122.cam-1.01795362627000.motion",
            "20261122.cam-1.01795362627000+0000.motion",
            "20261122.cam-1.1795362627000-0000.motion",
            "20261122.cam-1.1795362627000+00:00.motion",
            "20261122.cam-1.1795362627000+000.motion",
            "20261122.cam-1.1795362627000Z.motion",
            "20261123.cam-1.1795362627000+0000.motion",
        ] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        // Filed early (a fast clock): an earlier day is a valid id, a later one is not.
        assert!(EventId::parse("20261121.cam-1.1795362627000+0000.motion").unwrap().filed_early());
    }

    #[test]
    fn malformed_event_ids_are_refused() {
        for bad in [
            "",
            "20261122",
            "20261122.cam.1.motion.extra",
            "2026112.cam.1795305600000.motion",
            "20261122.cam.abc.motion",
            "20261122.c am.1795305600000.motion",
            "20261122.cam.1795305600000.Motion",
            "20260101.cam.1795305600000.motion",
            "20261340.cam.1795305600000.motion",
        ] {
            assert!(EventId::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn device_ids_are_checked() {
        assert!(DeviceId::parse("cam_1-A").is_ok());
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse("a.b").is_err());
        assert!(DeviceId::parse(&"x".repeat(65)).is_err());
    }

    proptest! {
        #[test]
        fn event_ids_round_trip(c in "[A-Za-z0-9_-]{1,64}", k in "[a-z0-9_]{1,32}",
                                ms in 0i64..4_000_000_000_000, off in -14i32*60..=14*60) {
            let offset = DayOffset(chrono::FixedOffset::east_opt(off * 60).unwrap());
            let id = EventId::new(&cid(&c), &EventType::parse(&k).unwrap(), Timestamp(ms), offset).unwrap();
            prop_assert_eq!(EventId::parse(id.as_str()).unwrap(), id.clone());
            prop_assert_eq!(id.day(), offset.day_of(Timestamp(ms)).unwrap());
            prop_assert_eq!(id.filed_at(DayOffset::default()), Timestamp(ms));
            let v1 = EventId::new_v1(&cid(&c), &EventType::parse(&k).unwrap(), Timestamp(ms), offset).unwrap();
            prop_assert_eq!(EventId::parse(v1.as_str()).unwrap(), v1);
        }

        #[test]
        fn no_other_spelling_of_an_id_parses(ms in 0i64..4_000_000_000_000, off in -14i32*60..=14*60, zeros in 1usize..3) {
            let offset = DayOffset(chrono::FixedOffset::east_opt(off * 60).unwrap());
            let id = EventId::new(&cid("c"), &EventType::parse("motion").unwrap(), Timestamp(ms), offset).unwrap();
            let padded = id.as_str().replacen(".c.", &format!(".c.{}", "0".repeat(zeros)), 1);
            prop_assert!(EventId::parse(&padded).is_err(), "{}", padded);
            let colon = format!("{}:{}", &id.as_str()[..id.as_str().len() - 9], &id.as_str()[id.as_str().len() - 9..]);
            prop_assert!(EventId::parse(&colon).is_err(), "{}", colon);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".{0,120}") {
            let _ = EventId::parse(&s);
            let _ = DeviceId::parse(&s);
            let _ = Day::parse(&s);
        }
    }
}
