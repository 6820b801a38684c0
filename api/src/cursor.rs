//! Day page cursors as viewers see them: the store's position, bound to its query.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use schemas::{Day, DeviceId, EventType};
use seams::web::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// What a cursor carries: the store's position, bound to the query it came from so it cannot
/// be replayed against another device, day or filter.
/// One-letter names keep the opaque cursor short: `c` the device, `d` the day, `k` the event
/// type filter, `s` the store's own cursor.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    c: String,
    d: String,
    k: Option<String>,
    s: String,
}

pub(crate) fn encode_cursor(cid: &DeviceId, day: Day, event_type: Option<&EventType>, store: &[u8]) -> String {
    let c = Cursor {
        c: cid.to_string(),
        d: day.to_string(),
        k: event_type.map(ToString::to_string),
        s: URL_SAFE_NO_PAD.encode(store),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("cursor serializes"))
}

pub(crate) fn decode_cursor(
    text: &str,
    cid: &DeviceId,
    day: Day,
    event_type: Option<&EventType>,
) -> Result<Vec<u8>, ApiError> {
    let invalid = || ApiError::bad_request(ErrorCode::InvalidCursor, "the cursor is not valid for this query");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if c.c != cid.as_str() || c.d != day.to_string() || c.k.as_deref() != event_type.map(EventType::as_str) {
        return Err(invalid());
    }
    URL_SAFE_NO_PAD.decode(c.s).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_query() {
        let a = DeviceId::parse("a").unwrap();
        let b = DeviceId::parse("b").unwrap();
        let day = Day::parse("2026-11-22").unwrap();
        let c = encode_cursor(&a, day, None, b"pos");
        assert_eq!(decode_cursor(&c, &a, day, None).unwrap(), b"pos");
        assert!(decode_cursor(&c, &b, day, None).is_err());
        assert!(decode_cursor(&c, &a, day.add_days(1), None).is_err());
        assert!(decode_cursor(&c, &a, day, Some(&EventType::parse("motion").unwrap())).is_err());
        assert!(decode_cursor("garbage!", &a, day, None).is_err());
    }
}
