//! Inputs the fuzz targets (`fuzz/`, docs/testing.md, "Fuzzing") found wrong, kept as tests so the
//! bugs stay fixed without a nightly toolchain. Each test names its target.

use schemas::{EventId, Timestamp};

/// Target `ids`: `EventId::parse` took a filing day before year 1000 (`00261201…`), an id the
/// server can never build (`EventId::filed` and `new_v1` want a four-digit year), so the id
/// did not survive being rebuilt from its parts.
#[test]
fn fuzz_ids_event_id_with_a_day_before_year_1000_is_refused() {
    for id in ["00261201.cam11.177000+0800.motionc", "09991231.cam-1.0+0000.motion", "00000101.c.0+0000.a"] {
        let e = EventId::parse(id).expect_err(id);
        assert!(e.reason.contains("four-digit year"), "{id}: {e}");
    }
    // The earliest filing day an id can carry, and the rebuilt id is the parsed one.
    let id = EventId::parse("10000101.cam11.177000+0800.motionc").expect("year 1000 is fine");
    let rebuilt = EventId::filed(id.device(), id.event_type(), id.triggered_at(), id.offset().unwrap(), id.day());
    assert_eq!(rebuilt.unwrap(), id);
    assert_eq!(id.triggered_at(), Timestamp(177_000));
}
