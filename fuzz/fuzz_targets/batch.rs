//! `POST /v1/devices/{cid}/reports` bodies — a JSON array or NDJSON — through what the route
//! runs: the capped streaming split, then each item built and validated on its own. Input: a
//! context byte (deployment offset, device zone), then the body. One result per item; every
//! accepted report survives the log and the projector.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Small, so the fuzzer also reaches the over-the-cap path (the route's default is 1000).
const MAX_ITEMS: usize = 8;

fuzz_target!(|data: &[u8]| {
    let [selector, body @ ..] = data else { return };
    let (ingest, policy, device) = daybook_fuzz::context(*selector);
    match ingest::fuzzing::batch(ingest, device, body, MAX_ITEMS, daybook_fuzz::now()) {
        Ok((reports, results)) => {
            assert!(!results.is_empty() && results.len() <= MAX_ITEMS, "{} results", results.len());
            assert_eq!(results.iter().filter(|r| r.error.is_none()).count(), reports.len());
            for (i, r) in results.iter().enumerate() {
                assert_eq!(r.index, i);
            }
            for report in &reports {
                daybook_fuzz::check_accepted(report, &policy);
            }
        }
        Err(e) => assert!(e.status.is_client_error(), "{} {:?}", e.status, e.message),
    }
});
