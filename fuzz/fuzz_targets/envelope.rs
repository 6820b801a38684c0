//! `Envelope::decode` — the topic decoder analytics consumers use — on arbitrary bytes: it never
//! panics, and whatever it decodes re-encodes (as the current version) to bytes that decode to
//! the same envelope. What consumes a decoded envelope (the projector's row plan, `daybook
//! tail`'s JSON) takes it without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::Envelope;

fuzz_target!(|data: &[u8]| {
    let version = Envelope::version_of(data);
    match Envelope::decode(data) {
        Ok(envelope) => {
            assert!(
                version.is_some_and(|v| (1..=schemas::SCHEMA_VERSION).contains(&v)),
                "decoded an envelope of version {version:?}"
            );
            let bytes = envelope.encode();
            let again =
                Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{envelope:?} re-encoded does not decode: {e}"));
            assert_eq!(again.encode(), bytes, "{envelope:?}");
            if !format!("{envelope:?}").contains("NaN") {
                assert_eq!(again, envelope);
            }
            for policy in daybook_fuzz::policies() {
                let _ = schemas::rows::plan(&envelope, &policy);
                let _ = envelope.report.validate(&policy, daybook_fuzz::now());
            }
            let _ = schemas::rows::write_stamp(&envelope);
            let json = schemas::json::decode_json(data).expect("decode_json agrees with decode");
            let _ = serde_json::to_string(&json).expect("json prints");
        }
        Err(_) => assert!(schemas::json::decode_json(data).is_err()),
    }
});
