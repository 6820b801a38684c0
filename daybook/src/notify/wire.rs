//! The wire: Standard Webhooks (standardwebhooks.com, as Svix and others send them).
//!
//! * `webhook-id`: `msg_` + 32 hex digits of SHA-256 over the subscription and the report's
//!   own identity — event id and kind for an event report, segment id for a segment, device
//!   and date for a digest — never the log offset: a device's retried POST can put one report
//!   at two offsets, and the receiver de-duplicates by this id.
//! * `webhook-timestamp`: seconds since the epoch, of this attempt.
//! * `webhook-signature`: `v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one per
//!   secret, space-separated (two during a rotation: receivers accept any that verifies).
//! * The body: `{"type", "timestamp", "data", "links"}` — `data` is the report exactly as
//!   `daybook tail` prints it (without `partition`/`offset`), `links` what a receiver needs to
//!   fetch more through the viewer API (no presigned URL: it would expire in a queue). It never
//!   holds a token or a secret.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use schemas::{Envelope, Report, SubscriptionId, Timestamp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The report's identity, stable across a device's retries (see the module docs).
pub fn identity(report: &Report) -> String {
    match report {
        Report::EventStarted(r) => format!("event_started/{}", r.event_id),
        Report::EventEnded(r) => format!("event_ended/{}", r.event_id),
        Report::SegmentReported(r) => format!("segment_reported/{}/{}", r.cid, r.segment_id),
        Report::DigestReported(r) => format!("digest_reported/{}/{}", r.cid, r.date),
        Report::EventDeleted(r) => format!("event_deleted/{}", r.event_id),
        // A device's changes to different plans are different messages.
        Report::PlanSet(r) => format!("plan_set/{}/{}", r.cid, r.retention_days),
        other => format!("{}/{}", other.kind().as_str(), other.key()),
    }
}

/// `webhook-id` of `report` for subscription `sub`.
pub fn webhook_id(sub: &SubscriptionId, report: &Report) -> String {
    let digest = Sha256::digest(format!("{sub}\n{}", identity(report)).as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// The viewer API paths about the report.
fn links(report: &Report) -> Value {
    let event = |id: &schemas::EventId| {
        json!({
            "event_id": id,
            "device": id.device(),
            "day": id.day(),
            "event": format!("/v1/events/{id}"),
            "day_events": format!("/v1/devices/{}/events?date={}", id.device(), id.day()),
        })
    };
    match report {
        Report::EventStarted(r) => event(&r.event_id),
        Report::EventEnded(r) => event(&r.event_id),
        Report::SegmentReported(r) => json!({
            "device": r.cid,
            "events": r.events.iter().map(|m| event(&m.event_id)).collect::<Vec<_>>(),
        }),
        Report::DigestReported(r) => json!({
            "device": r.cid,
            "day": r.date,
            "digest": format!("/v1/devices/{}/digests/{}", r.cid, r.date),
        }),
        _ => Value::Null,
    }
}

/// The body of one delivery. `schema`: the version the record was written with.
pub fn body(schema: u16, env: &Envelope, now: Timestamp) -> Vec<u8> {
    let data = schemas::json::envelope_json(schema, env);
    serde_json::to_vec(&json!({
        "type": env.report.kind().as_str(),
        "timestamp": now,
        "data": data,
        "links": links(&env.report),
    }))
    .expect("json serializes")
}

/// `webhook-signature` over `id`, `timestamp` (epoch s) and `body` with each secret.
pub fn signature(secrets: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (its reference libraries' test
    /// vector): this signature must come out byte for byte.
    #[test]
    fn the_specifications_example_signs_the_same() {
        let secret = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
