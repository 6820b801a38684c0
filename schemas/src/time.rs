//! Millisecond timestamps, UTC offsets and the rule that turns an instant into a camera's
//! local day (docs/data-model.md, "Days are the camera's local days").

use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::day::Day;

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

    /// RFC 3339 at `offset` (`2026-12-01T07:30:00.000+08:00`; `Z` at +00:00).
    pub fn to_rfc3339_at(self, offset: DayOffset) -> String {
        match self.to_datetime() {
            Some(t) => t.with_timezone(&offset.0).to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("{}ms", self.0),
        }
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

/// A UTC offset: the one a camera's clock reported with a timestamp, or the deployment's
/// `--day-offset` that decides the day of a timestamp sent without one (default +00:00).
///
/// JSON carries it as `+08:00`; bincode as the signed number of minutes east of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Minutes east of UTC.
    pub fn minutes(self) -> i32 {
        self.0.local_minus_utc() / 60
    }

    /// From minutes east of UTC (less than 24 h either way).
    pub fn from_minutes(minutes: i32) -> Option<Self> {
        FixedOffset::east_opt(minutes.checked_mul(60)?).map(Self)
    }

    /// The form used inside event ids: `+0800`, `-0800`, `+0545`, `+0000` (never `-0000`).
    pub fn compact(self) -> String {
        let m = self.minutes();
        let sign = if m < 0 { '-' } else { '+' };
        format!("{sign}{:02}{:02}", m.abs() / 60, m.abs() % 60)
    }

    /// Inverse of [`DayOffset::compact`], accepting only that one spelling: a sign, four
    /// digits, minutes below 60, hours below 24, and `+0000` rather than `-0000`.
    pub fn parse_compact(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let hours = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
        let minutes = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
        if hours > 23 || minutes > 59 || (b[0] == b'-' && hours == 0 && minutes == 0) {
            return None;
        }
        let total = hours * 60 + minutes;
        Self::from_minutes(if b[0] == b'-' { -total } else { total })
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

impl PartialOrd for DayOffset {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DayOffset {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.local_minus_utc().cmp(&other.0.local_minus_utc())
    }
}

impl Serialize for DayOffset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i32(self.minutes())
        }
    }
}

impl<'de> Deserialize<'de> for DayOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Self::parse(&s).map_err(serde::de::Error::custom)
        } else {
            let m = i32::deserialize(d)?;
            Self::from_minutes(m).ok_or_else(|| serde::de::Error::custom(format!("invalid utc offset {m} min")))
        }
    }
}

impl utoipa::PartialSchema for DayOffset {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("UTC offset, +HH:MM or -HH:MM"))
            .into()
    }
}
impl utoipa::ToSchema for DayOffset {}

/// A timestamp as a camera sent it: the instant, and the UTC offset its clock gave, if any.
///
/// `2026-12-01T07:30:00+08:00` carries +08:00. `Z` (and RFC 3339's "unknown local offset"
/// `-00:00`) carries none: such a time's day is taken in the device's configured zone, else
/// the deployment's `--day-offset` ([`ZoneRule`]). In answers it is written at its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    /// The instant.
    pub at: Timestamp,
    /// The offset the camera sent; `None` for `Z`.
    pub offset: Option<DayOffset>,
}

impl LocalTime {
    /// At a known offset.
    pub fn at(at: Timestamp, offset: DayOffset) -> Self {
        Self { at, offset: Some(offset) }
    }

    /// Parses RFC 3339, keeping the offset (truncating below the millisecond).
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let t = DateTime::parse_from_rfc3339(s).map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))?;
        let unknown = s.ends_with('Z') || s.ends_with('z') || s.ends_with("-00:00");
        Ok(Self { at: Timestamp(t.timestamp_millis()), offset: (!unknown).then(|| DayOffset(*t.offset())) })
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.at.to_rfc3339_at(self.offset.unwrap_or_default()))
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for LocalTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Timestamp::schema()
    }
}
impl utoipa::ToSchema for LocalTime {}

/// A device's configured time zone: an IANA name (`America/Los_Angeles`) set by the operator
/// in the device's token (`daybook token device CID --tz ZONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceZone(chrono_tz::Tz);

impl DeviceZone {
    /// Parses an IANA zone name.
    pub fn parse(name: &str) -> Result<Self, String> {
        name.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| format!("unknown time zone {name:?} (want an IANA name like Europe/Paris)"))
    }

    /// The zone's name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The zone's UTC offset at instant `t` (daylight saving included).
    pub fn offset_at(self, t: Timestamp) -> DayOffset {
        use chrono::Offset;
        match t.to_datetime() {
            Some(d) => DayOffset(d.with_timezone(&self.0).offset().fix()),
            None => DayOffset::default(),
        }
    }
}

/// Which offset decides the day of a camera's timestamp: the offset it sent; for `Z`, its
/// configured zone at that instant; else the deployment's `--day-offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneRule {
    /// The device's configured zone, if the operator set one.
    pub zone: Option<DeviceZone>,
    /// `--day-offset`.
    pub fallback: DayOffset,
}

impl ZoneRule {
    /// The offset of `t`.
    pub fn offset_of(&self, t: LocalTime) -> DayOffset {
        t.offset.unwrap_or_else(|| self.offset_at(t.at))
    }

    /// The offset at instant `t` for a time that came without one.
    pub fn offset_at(&self, t: Timestamp) -> DayOffset {
        self.zone.map_or(self.fallback, |z| z.offset_at(t))
    }
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
    fn local_times_keep_their_offset() {
        let t = LocalTime::parse_rfc3339("2026-12-01T07:30:00+08:00").unwrap();
        assert_eq!(t.offset.unwrap().compact(), "+0800");
        assert_eq!(t.offset.unwrap().day_of(t.at).unwrap().to_string(), "2026-12-01");
        assert_eq!(t.to_string(), "2026-12-01T07:30:00.000+08:00");
        assert_eq!(LocalTime::parse_rfc3339("2026-12-01T07:30:00Z").unwrap().offset, None);
        assert_eq!(LocalTime::parse_rfc3339("2026-12-01T07:30:00-00:00").unwrap().offset, None);
        let utc = LocalTime::parse_rfc3339("2026-12-01T07:30:00+00:00").unwrap();
        assert_eq!(utc.offset, Some(DayOffset::default()));
    }

    #[test]
    fn compact_offsets_have_one_spelling() {
        for (m, s) in [(480, "+0800"), (-480, "-0800"), (345, "+0545"), (0, "+0000"), (-570, "-0930")] {
            let o = DayOffset::from_minutes(m).unwrap();
            assert_eq!(o.compact(), s);
            assert_eq!(DayOffset::parse_compact(s), Some(o));
        }
        for bad in ["-0000", "+08:00", "+800", "+08000", "0800", "+2400", "+0060", "Z", "+08a0"] {
            assert_eq!(DayOffset::parse_compact(bad), None, "{bad}");
        }
    }

    #[test]
    fn zones_follow_daylight_saving() {
        let la = DeviceZone::parse("America/Los_Angeles").unwrap();
        let summer = Timestamp::parse_rfc3339("2026-07-01T12:00:00Z").unwrap();
        let winter = Timestamp::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        assert_eq!(la.offset_at(summer).to_string(), "-07:00");
        assert_eq!(la.offset_at(winter).to_string(), "-08:00");
        assert!(DeviceZone::parse("Mars/Olympus").is_err());
        let rule = ZoneRule { zone: Some(la), fallback: DayOffset::default() };
        let sent = LocalTime::parse_rfc3339("2026-12-01T07:30:00+08:00").unwrap();
        assert_eq!(rule.offset_of(sent).to_string(), "+08:00", "a sent offset wins over the zone");
        assert_eq!(rule.offset_of(LocalTime { at: winter, offset: None }).to_string(), "-08:00");
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
