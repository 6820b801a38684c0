//! Day page cursors of the embedded store: `0xE1 | filed-at ms (i64 BE) | event id`. The
//! bytes come back from viewers (inside the API's cursor), so decoding takes any input.
//! (Its own file so `fuzz/` can compile the decoder without the rest of the store.)

use seams::{EventView, StoreError};

const CURSOR_MAGIC: u8 = 0xE1;

pub(super) fn encode_cursor(e: &EventView) -> Vec<u8> {
    let mut out = vec![CURSOR_MAGIC];
    out.extend_from_slice(&e.event_id.filed_at(e.utc_offset).millis().to_be_bytes());
    out.extend_from_slice(e.event_id.as_str().as_bytes());
    out
}

pub(super) fn decode_cursor(b: &[u8]) -> Result<(i64, String), StoreError> {
    if b.len() < 10 || b[0] != CURSOR_MAGIC {
        return Err(StoreError::BadCursor);
    }
    let trig = i64::from_be_bytes(b[1..9].try_into().expect("8 bytes"));
    let id = std::str::from_utf8(&b[9..]).map_err(|_| StoreError::BadCursor)?;
    Ok((trig, id.to_owned()))
}
