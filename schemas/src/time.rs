//! Millisecond timestamps and the configured day boundary.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::Day;

/// A point in time with millisecond precision, as milliseconds since the Unix epoch.
///
/// JSON (and any human-readable format) carries it as RFC 3339 (`2026-11-22T00:00:00.123Z`);
/// bincode carries the bare `i64`, so the topic stays compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time, truncated to milliseconds.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339, truncating below the millisecond.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))
    }

    /// The UTC date-time, or `None` outside chrono's range.
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.0)
    }

    /// Adds milliseconds, saturating.
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Self)
        }
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)))
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}

/// The UTC offset that decides which calendar day an instant belongs to (default +00:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayOffset(pub FixedOffset);

impl Default for DayOffset {
    fn default() -> Self {
        Self(FixedOffset::east_opt(0).expect("zero offset"))
    }
}

impl DayOffset {
    /// Parses `+HH:MM` / `-HH:MM` (or `Z`).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("z") || s == "UTC" {
            return Ok(Self::default());
        }
        s.parse::<FixedOffset>().map(Self).map_err(|e| format!("invalid UTC offset {s:?} (want +HH:MM): {e}"))
    }

    /// The day `t` falls on at this offset.
    pub fn day_of(self, t: Timestamp) -> Option<Day> {
        t.to_datetime().map(|d| Day::from_date(d.with_timezone(&self.0).date_naive()))
    }

    /// The first instant of `day` at this offset.
    pub fn start_of(self, day: Day) -> Timestamp {
        let naive = day.date().and_hms_opt(0, 0, 0).expect("midnight exists");
        let secs = naive.and_utc().timestamp() - i64::from(self.0.local_minus_utc());
        Timestamp(secs * 1000)
    }

    /// Today at this offset.
    pub fn today(self) -> Day {
        self.day_of(Timestamp::now()).expect("now is in range")
    }
}

impl fmt::Display for DayOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Naive date helper used by tests and the id codec.
pub(crate) fn naive_from_compact(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_rfc3339_and_bincode_is_i64() {
        let t = Timestamp(1_763_769_600_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2025-11-22T00:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let bin = bincode::serde::encode_to_vec(t, bincode::config::standard()).unwrap();
        assert!(bin.len() <= 9, "varint i64, not a string: {bin:?}");
    }

    #[test]
    fn day_offset_moves_the_boundary() {
        let t = Timestamp::parse_rfc3339("2026-11-21T23:30:00Z").unwrap();
        assert_eq!(DayOffset::default().day_of(t).unwrap().to_string(), "2026-11-21");
        let plus_one = DayOffset::parse("+01:00").unwrap();
        assert_eq!(plus_one.day_of(t).unwrap().to_string(), "2026-11-22");
        let start = plus_one.start_of(Day::parse("2026-11-22").unwrap());
        assert_eq!(start.to_string(), "2026-11-21T23:00:00.000Z");
    }
}
