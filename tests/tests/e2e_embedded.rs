//! End to end on the embedded default: the all-in-one in-process on port 0 in a temp dir,
//! driven over real HTTP as a device and a viewer, objects through presigned URLs and a stock
//! S3 client; then a clean stop and a restart on the same data directory find everything
//! acknowledged. (The same through SIGTERM and kill -9 of the real binary: daybook/tests/process.rs.)

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use tests::app::spawn_app;
use tests::client::Http;
use tests::flow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_to_viewer_then_restart() {
    let server = spawn_app().await;

    let cid = "cam-e2e";
    let dev = Http::new(&server.http, &server.device_token(cid));
    let other_dev = server.device_token("cam-other");
    let viewer = Http::new(&server.http, &server.viewer_token(&[cid]));

    flow::refuse_bad_input(&dev, cid, &other_dev).await;
    let expect = flow::act_as_device(&dev, cid).await;
    flow::wait_projected(&viewer, &expect, Duration::from_secs(30)).await;
    flow::check_as_viewer(&viewer, &expect).await;
    flow::refuse_bad_viewer_input(&viewer, &expect, "cam-other").await;

    // A stock S3 client with the embedded endpoint's credentials sees the uploaded objects.
    let creds = std::fs::read_to_string(server.data_dir().join("s3-credentials")).unwrap();
    let (ak, sk) = creds.trim().split_once(':').unwrap();
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(server.s3.clone().unwrap())
        .force_path_style(true)
        .credentials_provider(Credentials::from_keys(ak, sk, None))
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    let listed = s3.list_objects_v2().bucket("daybook").prefix(format!("devices/{cid}/")).send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(keys.iter().any(|k| k.contains("/snapshots/")), "{keys:?}");
    assert_eq!(keys.iter().filter(|k| k.contains("/segments/")).count(), 2, "{keys:?}");
    let got = s3
        .get_object()
        .bucket("daybook")
        .key(format!("devices/{cid}/segments/{}", expect.segments[0].0))
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), expect.segments[0].1);

    // Operations endpoints.
    let (s, ready) = viewer.get("/readyz").await;
    assert_eq!(s, 200, "{ready}");
    let (s, doc) = viewer.get("/openapi.json").await;
    assert_eq!(s, 200);
    for path in [
        "/v1/devices/{cid}/events",
        "/v1/devices/{cid}/reports",
        "/v1/events/{event_id}",
        "/v1/devices/{cid}/calendar",
        "/v1/devices/{cid}/usage",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lists {path}");
    }
    let metrics = reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("daybook_http_requests_total"), "{metrics}");
    assert!(metrics.contains("daybook_log_group_commit_records"));
    // The deployment's storage used (read from the store every 10 s): both segments, once, and
    // the snapshot whose size its start stated.
    let stored: usize = expect.segments.iter().map(|(_, body)| body.len()).sum::<usize>() + expect.snapshot.len();
    let want = format!("daybook_storage_bytes {stored}\n");
    wait_for_metric(&server.http, &want).await;

    // Clean stop, then a restart on the same directory: everything acknowledged is there, and
    // the new process reports the same storage used (read from the store, not counted anew).
    let server = server.restart().await;
    // Same token (the secret lives in the data directory), new port.
    let viewer = viewer.at(&server.http);
    flow::check_as_viewer(&viewer, &expect).await;
    wait_for_metric(&server.http, &want).await;
    server.stop().await;
}

/// Waits (30 s at most) until the scrape of the server at `http` holds the line `want`.
async fn wait_for_metric(http: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{http}/metrics")).await.unwrap().text().await.unwrap();
        if metrics.contains(want) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no {want:?} in {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
