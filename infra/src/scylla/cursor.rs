//! Day page cursors: the driver's paging state, bound to the query it resumes.

use schemas::{Day, DeviceId, EventType};
use seams::StoreError;

const CURSOR_MAGIC: &[u8; 4] = b"DBsc";
const CURSOR_VERSION: u8 = 1;
const CURSOR_HEADER: usize = CURSOR_MAGIC.len() + 1 + 8;

/// FNV-1a over what a page query is bound to, so a cursor only resumes its own query.
pub(super) fn cursor_binding(cid: &DeviceId, day: Day, event_type: Option<&EventType>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(cid.as_str().as_bytes());
    eat(&[0]);
    eat(&day.number().to_be_bytes());
    match event_type {
        Some(t) => {
            eat(&[1]);
            eat(t.as_str().as_bytes());
        }
        None => eat(&[0]),
    }
    h
}

pub(super) fn encode_cursor(binding: u64, paging_state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CURSOR_HEADER + paging_state.len());
    out.extend_from_slice(CURSOR_MAGIC);
    out.push(CURSOR_VERSION);
    out.extend_from_slice(&binding.to_be_bytes());
    out.extend_from_slice(paging_state);
    out
}

/// The driver paging state inside a cursor this store made for the same query.
pub(super) fn decode_cursor(cursor: &[u8], binding: u64) -> Result<Vec<u8>, StoreError> {
    if cursor.len() <= CURSOR_HEADER
        || &cursor[..4] != CURSOR_MAGIC
        || cursor[4] != CURSOR_VERSION
        || cursor[5..CURSOR_HEADER] != binding.to_be_bytes()
    {
        return Err(StoreError::BadCursor);
    }
    Ok(cursor[CURSOR_HEADER..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::cid;
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_query() {
        let day = Day::parse("2026-11-22").unwrap();
        let motion = EventType::parse("motion").unwrap();
        let b = cursor_binding(&cid("cam-1"), day, None);
        let c = encode_cursor(b, b"\x00\x01paging");
        assert_eq!(decode_cursor(&c, b).unwrap(), b"\x00\x01paging");
        for other_query in [
            cursor_binding(&cid("cam-2"), day, None),
            cursor_binding(&cid("cam-1"), day.add_days(1), None),
            cursor_binding(&cid("cam-1"), day, Some(&motion)),
        ] {
            assert_ne!(other_query, b);
            assert!(matches!(decode_cursor(&c, other_query), Err(StoreError::BadCursor)));
        }
        // Prefix ambiguity: ("cam-1", day, None) vs an event type that starts with the separator.
        assert_ne!(cursor_binding(&cid("cam"), day, None), cursor_binding(&cid("cam-"), day, None));
    }

    #[test]
    fn foreign_cursors_are_refused() {
        let b = cursor_binding(&cid("cam-f"), Day::parse("2026-11-22").unwrap(), None);
        let good = encode_cursor(b, b"state");
        let mut wrong_version = good.clone();
        wrong_version[4] = 2;
        let mut flipped = good.clone();
        flipped[7] ^= 1;
        for bad in [
            b"\xffnot a cursor".to_vec(),
            Vec::new(),
            b"DBsc".to_vec(),
            good[..CURSOR_HEADER].to_vec(), // no paging state
            wrong_version,
            flipped,
        ] {
            assert!(matches!(decode_cursor(&bad, b), Err(StoreError::BadCursor)), "{bad:?}");
        }
    }
}
