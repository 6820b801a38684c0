//! Overload answers of the device API: per-device rate limit (429), in-flight budget (503),
//! digests outside their slot without headroom (429 into the slot) — always with
//! Retry-After, and nothing written.

use chrono::{Timelike, Utc};
use reqwest::StatusCode;
use serde_json::json;
use tests::app::spawn_app_with;

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn post(base: &str, token: &str, path: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap()
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_device_over_its_rate_gets_429_with_retry_after() {
    let s = spawn_app_with(|c| {
        c.ingest.device_rate_per_s = 1;
        c.ingest.device_burst = 3;
    })
    .await;
    let dev = s.device_token("cam-r");
    let other = s.device_token("cam-q");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = post(
            &s.http,
            &dev,
            "/v1/devices/cam-r/events",
            json!({"type": "motion", "triggered_at": ts(Utc::now() - chrono::Duration::seconds(60 + i))}),
        )
        .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(&r) >= 1);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    // Another device is not starved by the first.
    let r =
        post(&s.http, &other, "/v1/devices/cam-q/events", json!({"type": "motion", "triggered_at": ts(Utc::now())}))
            .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn no_inflight_budget_means_503_with_jittered_retry_after_and_nothing_written() {
    let s = spawn_app_with(|c| c.ingest.max_inflight = 0).await;
    let dev = s.device_token("cam-b");
    let viewer = s.viewer_token(&["cam-b"]);
    let mut waits = std::collections::BTreeSet::new();
    for i in 0..20 {
        let r = post(
            &s.http,
            &dev,
            "/v1/devices/cam-b/events",
            json!({"type": "motion", "triggered_at": ts(Utc::now() - chrono::Duration::seconds(i))}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        waits.insert(retry_after(&r));
    }
    assert!(waits.len() > 1, "Retry-After is jittered: {waits:?}");
    let cal: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/devices/cam-b/calendar?days=1", s.http))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cal["days"][0]["events"], 0, "a refused report is not written: {cal}");
}

#[tokio::test]
async fn digests_outside_their_slot_wait_for_it_when_there_is_no_headroom() {
    // A one-hour window that starts six hours from now: "now" is outside every slot.
    let s = spawn_app_with(|c| {
        c.ingest.max_inflight = 1;
        c.ingest.digest_window.start_s = (Utc::now().hour() + 6) % 24 * 3600;
        c.ingest.digest_window.length_s = 3600;
    })
    .await;
    let dev = s.device_token("cam-d");
    let up = post(
        &s.http,
        &dev,
        "/v1/devices/cam-d/digests/uploads",
        json!({"content_length": 10, "content_type": "video/mp4"}),
    )
    .await;
    assert_eq!(up.status(), StatusCode::CREATED);
    let up: serde_json::Value = up.json().await.unwrap();
    let slot_start = chrono::DateTime::parse_from_rfc3339(up["window"]["start"].as_str().unwrap()).unwrap();
    let until_slot = (slot_start.with_timezone(&Utc) - Utc::now()).num_seconds();
    assert!(until_slot > 0, "the slot is ahead: {up}");
    let date = (Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let r = post(
        &s.http,
        &dev,
        "/v1/devices/cam-d/digests",
        json!({"date": date, "segment_id": up["segment_id"], "size": 10, "duration_ms": 1000}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r) as i64;
    // Retry-After points into the device's next slot (tonight's, or the one given above).
    assert!((60..=26 * 3600).contains(&wait), "retry after {wait}s");
}
