//! Bearer tokens as anyone can send them, through daybook's own HS256 verifier
//! (`seams::auth`): it never panics, refuses with 401, and verifies nothing but a token it
//! issued. Input: first as a whole token; then XORed into a genuine token, which must verify
//! only if the mutation left it unchanged (a different string that verifies would be a
//! forgery: a changed claim, header or signature, or base64 leniency).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use http::{header::AUTHORIZATION, HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use schemas::DeviceId;
use seams::auth::Auth;

fn fixture() -> &'static (Auth, String) {
    static FIXTURE: OnceLock<(Auth, String)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let auth = Auth::with_token_cache(seams::auth::KeyRing::single(&[7u8; 32]), 0).expect("ring");
        let token = auth.device_token(&DeviceId::parse("cam-1").expect("cid"), Duration::from_secs(3600));
        (auth, token)
    })
}

/// Whether `token` verifies; `None` when it cannot travel in a header at all.
fn verifies(auth: &Auth, token: &[u8]) -> Option<bool> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_bytes(&value).ok()?);
    Some(match auth.verify(&headers) {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{}", e.message);
            false
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (auth, genuine) = fixture();
    if verifies(auth, data) == Some(true) {
        assert_eq!(String::from_utf8_lossy(data).trim(), genuine, "a token daybook did not issue verified");
    }
    let mut mutated = genuine.as_bytes().to_vec();
    for (i, b) in data.iter().enumerate() {
        let n = mutated.len();
        mutated[i % n] ^= b;
    }
    if verifies(auth, &mutated) == Some(true) {
        assert_eq!(String::from_utf8_lossy(&mutated).trim(), genuine, "a changed token verified");
    }
});
