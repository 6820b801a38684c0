//! Each device request body (`POST …/events`, `…/events/{id}/end`, `…/segments/uploads`,
//! `…/segments`, `…/digests/uploads`, `…/digests`) through what its route runs: `parse_json`
//! into the DTO, building the report, validating it. Input: a route byte, a context byte
//! (deployment offset, device zone), then the body — for `…/end`, the path's event id first,
//! up to a newline. Whatever is accepted must survive the log and the projector.
#![no_main]

use ingest::fuzzing::{device_body, Route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [route, selector, rest @ ..] = data else { return };
    let route = Route::ALL[usize::from(*route) % Route::ALL.len()];
    let (ingest, policy, device) = daybook_fuzz::context(*selector);
    let (path_event_id, body) = match (route, rest.iter().position(|b| *b == b'\n')) {
        (Route::EndEvent, Some(i)) => (String::from_utf8_lossy(&rest[..i]), &rest[i + 1..]),
        _ => (Default::default(), rest),
    };
    match device_body(ingest, device, route, &path_event_id, body, daybook_fuzz::now()) {
        Ok(Some(report)) => daybook_fuzz::check_accepted(&report, &policy),
        Ok(None) => {}
        Err(e) => assert!(e.status.is_client_error(), "{route:?}: {} {:?}", e.status, e.message),
    }
});
