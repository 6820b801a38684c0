//! `daybook ingest`, `daybook projector` and `daybook api` as separate processes on one data
//! directory (the embedded log, which only the process that ingests appends to): the api hands
//! an owner's deletion over to that process through the data directory, answers 202 once it is
//! on the log, and the projector applies it.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use schemas::DeviceId;
use serde_json::json;
use tests::client::Http;
use tests::process::Bin;
use tests::s3::TestS3;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));
const S3_KEYS: (&str, &str) = ("delete-test", "delete-test-secret-0123456789abcdef");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_beside_ingest_hands_a_deletion_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // An S3 endpoint of the test's own for ingest and api to sign against.
    let s3_server = TestS3::start(S3_KEYS.0, S3_KEYS.1).await;
    let (s3, env) = (s3_server.endpoint.clone(), s3_server.env);

    let auth = daybook::secrets::auth(dir.path()).unwrap();
    let cid = DeviceId::parse("cam-sp").unwrap();
    let ttl = Duration::from_secs(3600);
    let http_flags = ["--data-dir", d, "--http-addr", "127.0.0.1:0", "--s3-endpoint", &s3];
    let ingest = DAYBOOK.start(&[&["ingest"][..], &http_flags].concat(), &env);
    let projector = DAYBOOK.start(&["projector", "--data-dir", d, "--metrics-addr", "127.0.0.1:0"], &[]);
    let api = DAYBOOK.start(&[&["api"][..], &http_flags].concat(), &env);

    let device = Http::new(ingest.http(), &auth.device_token(&cid, ttl));
    let manager = Http::new(api.http(), &auth.managing_viewer_token(std::slice::from_ref(&cid), ttl));
    let at = (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let (status, started) =
        device.post("/v1/devices/cam-sp/events", &json!({"type": "motion", "triggered_at": at})).await;
    assert_eq!(status, 201, "{started}");
    let path = format!("/v1/events/{}", started["event_id"].as_str().unwrap());
    let until = |want: u16| {
        let (manager, path) = (manager.clone(), path.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (status, body) = manager.get(&path).await;
                if status == want {
                    return;
                }
                assert!(Instant::now() < deadline, "{path}: still {status} {body}, waiting for {want}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    until(200).await;

    let (status, body) = manager.delete(&path).await;
    assert_eq!(status, 202, "{body}");
    until(404).await;
    let (_, cal) = manager.get("/v1/devices/cam-sp/calendar?days=2").await;
    assert_eq!(cal["days"][0]["events"], 0, "{cal}");
    assert!(
        std::fs::read_dir(dir.path().join("notify/inbox")).unwrap().next().is_none(),
        "the handed-over deletion left the inbox"
    );

    for p in [api, projector, ingest] {
        assert!(p.stop().success());
    }
    s3_server.stop().await.unwrap();
}
