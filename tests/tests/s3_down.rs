//! The object store is down: the all-in-one is configured with an external S3 endpoint on a
//! port nobody listens on. Presigning is local computation (an HMAC over the request, with the
//! credentials in hand), so devices still get their event ids and upload URLs and reports are
//! still accepted; viewers still get the calendar, a day's events with snapshot URLs and an
//! event's segments with GET URLs (the uploads themselves fail at S3, which the page tells
//! apart); `/readyz` names the object store.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::spawn_app_with;
use tests::client::Http;

const DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn an_object_store_outage_leaves_devices_and_viewers_answered() {
    // The external endpoint's credentials come from the AWS chain: static ones in the
    // environment, set before any thread that could read the environment exists.
    std::env::set_var("AWS_ACCESS_KEY_ID", "daybook-test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "daybook-test-secret");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run());
}

async fn timed<T>(
    took: &mut Vec<(&'static str, Duration)>,
    label: &'static str,
    call: impl std::future::Future<Output = T>,
) -> T {
    let t = Instant::now();
    let out = call.await;
    took.push((label, t.elapsed()));
    out
}

async fn run() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{closed}");
    let began = Instant::now();
    let app = spawn_app_with(|c| {
        c.s3.endpoint = Some(endpoint.clone());
        c.ingest.request_timeout = DEADLINE;
    })
    .await;
    let started_in = began.elapsed();
    assert!(app.s3.is_none(), "no embedded S3 endpoint beside an external one");
    let cid = "cam-s3";
    let dev = Http::new(&app.http, &app.device_token(cid));
    let viewer = Http::new(&app.http, &app.viewer_token(&[cid]));
    let mut took = Vec::new();
    let at = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let path = format!("/v1/devices/{cid}/events");
    let body = json!({"type": "motion", "triggered_at": at, "snapshot_size": 1000});
    let (status, started) = timed(&mut took, "event start", dev.post(&path, &body)).await;
    assert_eq!(status, StatusCode::CREATED, "event start with S3 down: {started}");
    let event_id = started["event_id"].as_str().unwrap().to_owned();
    let snapshot = started["snapshot_upload"]["url"].as_str().unwrap();
    assert!(snapshot.starts_with(&endpoint), "the snapshot PUT is signed for the endpoint: {snapshot}");
    assert!(snapshot.contains("X-Amz-Signature="), "{snapshot}");
    // The upload itself fails at the object store, not at daybook.
    assert!(reqwest::Client::new().put(snapshot).body(vec![0u8; 1000]).send().await.is_err());

    let body = json!({"content_length": 4096, "content_type": "video/mp4"});
    let (status, upload) =
        timed(&mut took, "segment upload", dev.post(&format!("/v1/devices/{cid}/segments/uploads"), &body)).await;
    assert_eq!(status, StatusCode::CREATED, "segment upload URL with S3 down: {upload}");
    let segment_id = upload["segment_id"].as_str().unwrap().to_owned();
    let segment = json!({
        "segment_id": segment_id, "size": 4096, "started_at": at, "duration_ms": 10_000,
        "media": {"codec": "h264", "width": 640, "height": 480, "fps": 25},
        "events": [{"event_id": event_id, "index": 0, "start_offset": 0, "end_offset": 4096}],
    });
    let (status, body) =
        timed(&mut took, "segment report", dev.post(&format!("/v1/devices/{cid}/segments"), &segment)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "segment report with S3 down: {body}");

    // The viewer's pages.
    let day = &event_id[..8];
    let date = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..8]);
    let detail_path = format!("/v1/events/{event_id}");
    let projected = Instant::now();
    let detail = loop {
        let (status, detail) = timed(&mut took, "event detail", viewer.get(&detail_path)).await;
        if status == StatusCode::OK && detail["segments"].as_array().is_some_and(|s| !s.is_empty()) {
            break detail;
        }
        assert!(
            matches!(status, StatusCode::OK | StatusCode::NOT_FOUND),
            "event detail with S3 down: {status} {detail}"
        );
        assert!(projected.elapsed() < Duration::from_secs(30), "event never projected: {detail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let url = detail["segments"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&endpoint) && url.contains("X-Amz-Signature="), "a presigned GET: {url}");
    let (status, cal) = timed(&mut took, "calendar", viewer.get(&format!("/v1/devices/{cid}/calendar?days=30"))).await;
    assert_eq!(status, StatusCode::OK, "{cal}");
    assert_eq!(cal["days"].as_array().unwrap().iter().filter_map(|d| d["events"].as_u64()).sum::<u64>(), 1, "{cal}");
    let (status, page) =
        timed(&mut took, "day page", viewer.get(&format!("/v1/devices/{cid}/events?date={date}"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page["events"][0]["snapshot_url"].as_str().unwrap().starts_with(&endpoint), "{page}");
    let web = reqwest::get(format!("{}/", app.http)).await.unwrap();
    assert_eq!(web.status(), StatusCode::OK, "the viewer page");

    let t = Instant::now();
    let ready = reqwest::get(format!("{}/readyz", app.http)).await.unwrap();
    let ready_in = t.elapsed();
    let ready_status = ready.status();
    let ready: Value = ready.json().await.unwrap();
    eprintln!(
        "s3-down figures: started in {started_in:?}; answers {took:?}; /readyz {ready_status} in {ready_in:?}: {ready}"
    );
    assert_eq!(ready_status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_ne!(ready["checks"]["object_store"], "ok", "{ready}");
    assert_eq!(ready["checks"]["log"], "ok", "{ready}");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");
    for (label, t) in &took {
        assert!(*t < DEADLINE, "{label} took {t:?}");
    }
    assert!(!app.has_exited());
    app.stop().await;
}
