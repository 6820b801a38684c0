//! The owner erases a device, end to end on the embedded default: the erasure goes through the
//! log like a device's report, the projector removes everything of the device and the purger
//! deletes its objects from the embedded S3 endpoint, its device tokens are refused; what it
//! reports after the erasure (with a new token) is served; the store rebuilt from the log
//! (`daybook rebuild`) answers the same.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::spawn_app;
use tests::client::{download, Http};
use tests::flow;

const TIMEOUT: Duration = Duration::from_secs(30);

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not after {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The days of the calendar that count events.
async fn counted_days(viewer: &Http, cid: &str) -> Vec<Value> {
    let (s, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar?days=30")).await;
    assert_eq!(s, StatusCode::OK, "{cal}");
    cal["days"].as_array().unwrap().iter().filter(|d| d["events"].as_u64() > Some(0)).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managing_viewer_erases_a_device() {
    let server = spawn_app().await;
    let (cid, other) = ("cam-erase", "cam-stays");
    let device = Http::new(&server.http, &server.device_token(cid));
    let other_device = Http::new(&server.http, &server.device_token(other));
    let reader = Http::new(&server.http, &server.viewer_token(&[cid, other]));
    let stranger = Http::new(&server.http, &server.managing_viewer_token(&[other]));
    let manager = Http::new(&server.http, &server.managing_viewer_token(&[cid]));

    let expect = flow::act_as_device(&device, cid).await;
    let expect_other = flow::act_as_device(&other_device, other).await;
    flow::wait_projected(&reader, &expect, TIMEOUT).await;
    flow::wait_projected(&reader, &expect_other, TIMEOUT).await;
    let other_before = flow::answers(&reader, &expect_other).await;
    // Every object of the device a viewer can reach: A's snapshot and segments, the digest.
    let (_, detail) = reader.get(&format!("/v1/events/{}", expect.a)).await;
    let mut urls: Vec<String> = vec![detail["snapshot_url"].as_str().unwrap().to_owned()];
    urls.extend(detail["segments"].as_array().unwrap().iter().map(|s| s["url"].as_str().unwrap().to_owned()));
    let (_, digest) = reader.get(&format!("/v1/devices/{cid}/digests/{}", expect.digest.0)).await;
    urls.push(digest["url"].as_str().unwrap().to_owned());
    for url in &urls {
        assert_eq!(download(url).await.0, StatusCode::OK, "{url}");
    }

    let path = format!("/v1/devices/{cid}");
    for (who, http) in
        [("a read-only viewer", &reader), ("another camera's manager", &stranger), ("the device", &device)]
    {
        let (s, body) = http.delete(&path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{who}: {body}");
    }
    let (s, body) = manager.delete(&path).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": true, "cid": cid}));

    // Projected: nothing of the device is served.
    until("the erasure projected", async || counted_days(&reader, cid).await.is_empty()).await;
    let mut ids = expect.today.clone();
    ids.extend([expect.late.clone(), expect.c.clone()]);
    for id in &ids {
        assert_eq!(reader.get(&format!("/v1/events/{id}")).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    let date = &expect.digest.0;
    assert_eq!(reader.get(&format!("/v1/devices/{cid}/digests/{date}")).await.0, StatusCode::NOT_FOUND);
    // Its objects are deleted; the other device is untouched.
    until("the device's objects deleted", async || {
        for url in &urls {
            if download(url).await.0 != StatusCode::NOT_FOUND {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(flow::answers(&reader, &expect_other).await, other_before);
    // Its tokens are refused (running processes read the revocations every 5 s).
    until("the device's token refused", async || {
        let (s, _) = device.post(&format!("/v1/devices/{cid}/segments/uploads"), &json!({"content_length": 1})).await;
        s == StatusCode::UNAUTHORIZED
    })
    .await;

    // A token issued after the erasure: the device reports again, and that is served.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let device = device.with_token(&server.device_token(cid));
    let again = flow::start_event(&device, cid, "motion", flow::today_noonish() + chrono::Duration::minutes(1)).await;
    let again = again["event_id"].as_str().unwrap().to_owned();
    until("the report after the erasure served", async || {
        reader.get(&format!("/v1/events/{again}")).await.0 == StatusCode::OK
    })
    .await;
    let days = counted_days(&reader, cid).await;
    assert_eq!(days.len(), 1, "{days:?}");
    assert_eq!(days[0]["events"], 1, "only the event reported after the erasure: {days:?}");
    let live = json!({"days": days, "listed": flow::list_day(&reader, cid, days[0]["date"].as_str().unwrap()).await});

    // The store rebuilt from the log answers the same: the erasure is replayed in its place.
    let server = server.rebuilt().await;
    let reader = reader.at(&server.http);
    let days = counted_days(&reader, cid).await;
    let rebuilt =
        json!({"days": days, "listed": flow::list_day(&reader, cid, days[0]["date"].as_str().unwrap()).await});
    assert_eq!(rebuilt, live, "the rebuilt store answers as the live one did");
    for id in &ids {
        assert_eq!(reader.get(&format!("/v1/events/{id}")).await.0, StatusCode::NOT_FOUND, "rebuilt: {id}");
    }
    assert_eq!(flow::answers(&reader, &expect_other).await, other_before);
    server.stop().await;
}
