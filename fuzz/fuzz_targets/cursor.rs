//! Day page cursors as viewers send them back (`GET /v1/devices/{cid}/events?cursor=…`):
//! the API's decoder — base64, JSON, bound to its query — and then the store's own decoder
//! of the position inside (embedded and ScyllaDB), which a viewer can forge freely. Input: a
//! query byte (device, day, type filter), then the cursor text. Also fed straight to the store
//! decoders, and every cursor the API or a store encodes decodes to what it carries.
#![no_main]

use daybook_fuzz::store_cursors;
use libfuzzer_sys::fuzz_target;
use schemas::{Day, DeviceId, EventType};

fuzz_target!(|data: &[u8]| {
    let [query, rest @ ..] = data else { return };
    let cid = DeviceId::parse(if query & 1 == 0 { "cam-1" } else { "c" }).expect("cid");
    let day = Day::parse("2026-11-22").expect("day").add_days(-i64::from((query >> 1) & 1));
    let motion = EventType::parse("motion").expect("type");
    let event_type = (query & 4 != 0).then_some(&motion);
    let binding = store_cursors::scylla_binding(&cid, day, event_type);

    let text = String::from_utf8_lossy(rest);
    match api::fuzzing::decode_cursor(&text, &cid, day, event_type) {
        Ok(store) => {
            let _ = store_cursors::embedded_decode(&store);
            let _ = store_cursors::scylla_decode(&store, binding);
        }
        Err(e) => assert_eq!(e.status.as_u16(), 400),
    }

    // The store decoders on raw bytes; and every encoder's output decodes to its input.
    if let Ok((filed_at, id)) = store_cursors::embedded_decode(rest) {
        assert_eq!(rest[9..], *id.as_bytes());
        assert_eq!(filed_at.to_be_bytes(), rest[1..9]);
    }
    if let Ok(state) = store_cursors::scylla_decode(rest, binding) {
        assert_eq!(store_cursors::scylla_encode(binding, &state), rest);
    }
    let cursor = api::fuzzing::encode_cursor(&cid, day, event_type, rest);
    assert_eq!(api::fuzzing::decode_cursor(&cursor, &cid, day, event_type).ok().as_deref(), Some(rest));
    if !rest.is_empty() {
        let scylla = store_cursors::scylla_encode(binding, rest);
        assert_eq!(store_cursors::scylla_decode(&scylla, binding).ok().as_deref(), Some(rest));
    }
});
