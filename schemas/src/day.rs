//! The calendar day: what a report's partition, a calendar entry and an event id's prefix are.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::id_error::{err, IdError};

/// A calendar day (in the service's configured UTC offset).
///
/// Text form `YYYY-MM-DD`; compact form `YYYYMMDD` (used inside event ids and as the
/// partition number `20261122`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

impl Day {
    /// Wraps a date.
    pub fn from_date(d: NaiveDate) -> Self {
        Self(d)
    }

    /// The date.
    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// Parses `YYYY-MM-DD`: exactly that shape (chrono alone also takes `+2026-01-1`).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let shape = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !shape {
            return Err(err("date", format!("{s:?} is not YYYY-MM-DD")));
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Self)
            .map_err(|e| err("date", format!("{s:?} is not YYYY-MM-DD: {e}")))
    }

    /// Parses `YYYYMMDD`.
    pub fn parse_compact(s: &str) -> Result<Self, IdError> {
        naive_from_compact(s).map(Self).ok_or_else(|| err("date", format!("{s:?} is not YYYYMMDD")))
    }

    /// `YYYYMMDD`.
    pub fn compact(self) -> String {
        self.0.format("%Y%m%d").to_string()
    }

    /// The day as the number `YYYYMMDD` (a sortable partition key).
    pub fn number(self) -> u32 {
        // Year is validated to 4 digits by every constructor that matters; clamp anyway.
        let y = self.0.year().clamp(0, 9999) as u32;
        y * 10_000 + self.0.month() * 100 + self.0.day()
    }

    /// Inverse of [`Day::number`].
    pub fn from_number(n: u32) -> Option<Self> {
        NaiveDate::from_ymd_opt((n / 10_000) as i32, (n / 100) % 100, n % 100).map(Self)
    }

    /// `days` days later (negative: earlier).
    pub fn add_days(self, days: i64) -> Self {
        Self(self.0 + chrono::Duration::days(days))
    }

    /// Whole days from `other` to `self`.
    pub fn days_since(self, other: Day) -> i64 {
        (self.0 - other.0).num_days()
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u32(self.number())
        }
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Self::parse(&s).map_err(serde::de::Error::custom)
        } else {
            let n = u32::deserialize(d)?;
            Self::from_number(n)
                .filter(|d| (1..=9999).contains(&d.0.year()))
                .ok_or_else(|| serde::de::Error::custom(format!("invalid day number {n}")))
        }
    }
}

impl utoipa::PartialSchema for Day {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date)))
            .pattern(Some(DAY_PATTERN))
            .into()
    }
}
impl utoipa::ToSchema for Day {}

/// The text form of a [`Day`], as a regular expression (ECMA-262 and Python alike).
pub const DAY_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";

/// The date of a compact `YYYYMMDD`, if it is one.
pub(crate) fn naive_from_compact(s: &str) -> Option<NaiveDate> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}
