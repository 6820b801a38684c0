//! The identifier and time parsers, on arbitrary text (as it arrives in paths, query strings
//! and JSON strings): event, segment and device ids, event types, days (`YYYY-MM-DD` and
//! `YYYYMMDD`), RFC 3339 timestamps (with and without the camera's offset), UTC offsets and
//! zone names. None panics; what parses has one spelling and survives its own round trip.
#![no_main]

use chrono::Datelike;
use libfuzzer_sys::fuzz_target;
use schemas::{Day, DayOffset, DeviceId, DeviceZone, EventId, EventType, LocalTime, SegmentId, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };

    if let Ok(id) = EventId::parse(s) {
        assert_eq!(id.as_str(), s);
        assert_eq!(EventId::parse(&id.to_string()).as_ref(), Ok(&id));
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(serde_json::from_str::<EventId>(&json).expect("deserializes"), id);
        let _ = (id.day().number(), id.day().compact(), id.filed_early(), id.filed_at(DayOffset::default()));
        let _ = (id.day().add_days(1), id.day().add_days(-29));
        // The canonical spelling is the one the server builds from the id's parts.
        if let Some(offset) = id.offset() {
            let built = EventId::filed(id.device(), id.event_type(), id.triggered_at(), offset, id.day());
            assert_eq!(built.as_ref().map(EventId::as_str), Ok(s), "rebuilt {s}");
        }
    }
    for parsed in [DeviceId::parse(s).map(|v| v.to_string()), SegmentId::parse(s).map(|v| v.to_string())] {
        if let Ok(v) = parsed {
            assert_eq!(v, s);
        }
    }
    if let Ok(t) = EventType::parse(s) {
        assert_eq!(t.as_str(), s);
    }

    for day in [Day::parse(s), Day::parse_compact(s)].into_iter().flatten() {
        let _ = (day.number(), day.compact(), day.add_days(1), day.add_days(-29), DayOffset::default().start_of(day));
        if (0..=9999).contains(&day.date().year()) {
            assert_eq!(Day::parse(&day.to_string()), Ok(day), "{s}");
            assert_eq!(Day::parse_compact(&day.compact()), Ok(day), "{s}");
            assert_eq!(Day::from_number(day.number()), Some(day), "{s}");
        }
    }

    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        let text = t.to_string();
        if !text.starts_with(['+', '-']) && !text.ends_with("ms") {
            assert_eq!(Timestamp::parse_rfc3339(&text), Ok(t), "{s} printed as {text}");
        }
        let _ = DayOffset::default().day_of(t);
    }
    if let Ok(t) = LocalTime::parse_rfc3339(s) {
        let text = t.to_string();
        let again = LocalTime::parse_rfc3339(&text).unwrap_or_else(|e| panic!("{s} printed as {text}: {e}"));
        assert_eq!(again.at, t.at, "{s} printed as {text}");
        if let Some(offset) = t.offset {
            let _ = (offset.day_of(t.at), offset.compact());
        }
    }

    if let Ok(o) = DayOffset::parse(s) {
        assert_eq!(DayOffset::parse_compact(&o.compact()), Some(o), "{s}");
    }
    if let Some(o) = DayOffset::parse_compact(s) {
        assert_eq!(o.compact(), s);
    }
    if let Ok(zone) = DeviceZone::parse(s) {
        let _ = zone.offset_at(Timestamp(i64::MAX));
        let _ = zone.offset_at(Timestamp(0));
    }
});
