//! Limits that keep one client, one file or one abandoned reader from exhausting the service:
//! the batch item cap enforced while parsing, snapshot sizes pinned in the upload signature,
//! embedded objects expiring with their day, connection limits and header timeouts, and
//! consumer groups that cannot pin the embedded log.

use std::time::{Duration, Instant};

use chrono::Utc;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use reqwest::StatusCode;
use seams::log::commit_positions;
use seams::{LogRecord, ReportLog};
use serde_json::json;
use tests::app::spawn_app_with;
use tests::client::{presigned, Http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// 1001 items, then something that is not JSON: a parser that stops at the cap answers 413;
/// one that reads the whole body first finds the garbage and answers 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_batch_past_the_item_cap_is_refused_at_item_cap_plus_one() {
    let s = spawn_app_with(|_| {}).await;
    let dev = Http::new(&s.http, &s.device_token("cam-b"));
    let mut body = String::from("[");
    for _ in 0..1001 {
        body.push_str("1,");
    }
    body.push_str("this is not json");
    let (status, answer) = dev.post_raw("/v1/devices/cam-b/reports", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_items");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndjson_batch_past_the_item_cap_is_refused_at_item_cap_plus_one() {
    let s = spawn_app_with(|_| {}).await;
    let dev = Http::new(&s.http, &s.device_token("cam-n"));
    let mut body = "1\n".repeat(1001).into_bytes();
    // Past the cap: a line that is not even UTF-8, never looked at.
    body.extend_from_slice(b"\xff\xfe\n");
    let (status, answer) = dev.post_raw("/v1/devices/cam-n/reports", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "too_many_items");
    // At the cap exactly, every item gets its own result.
    let (status, answer) = dev.post_raw("/v1/devices/cam-n/reports", "1\n".repeat(1000)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rejected"], 1000);
}

/// A declared snapshot size is signed into the upload URL: the S3 endpoint refuses any other
/// length; a size above the limit is refused up front.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_upload_of_another_length_than_declared_is_refused() {
    let s = spawn_app_with(|c| c.ingest.max_snapshot_bytes = 64 * 1024).await;
    let dev = Http::new(&s.http, &s.device_token("cam-s"));
    let (status, answer) = dev
        .post("/v1/devices/cam-s/events", &json!({"type": "motion", "triggered_at": now(), "snapshot_size": 1000}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let upload = &answer["snapshot_upload"];
    assert_eq!(upload["headers"]["content-length"], "1000", "{upload}");
    // The body's real length on the wire (a client that sent the signed header with a longer
    // body would only ever store the declared 1000 bytes).
    let mut real_length = upload.clone();
    real_length["headers"].as_object_mut().unwrap().remove("content-length");
    let bigger = presigned(&real_length, vec![7u8; 64 * 1024]).await;
    assert!(bigger.status().is_client_error(), "a larger PUT must be refused: {}", bigger.status());
    let exact = presigned(upload, vec![7u8; 1000]).await;
    assert_eq!(exact.status(), StatusCode::OK);

    let (status, answer) = dev
        .post(
            "/v1/devices/cam-s/events",
            &json!({"type": "motion", "triggered_at": now(), "snapshot_size": 64 * 1024 + 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
}

/// Without a declared size (older devices) the embedded endpoint still caps snapshot uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_endpoint_refuses_snapshots_above_the_limit() {
    let s = spawn_app_with(|c| c.ingest.max_snapshot_bytes = 1024).await;
    let dev = Http::new(&s.http, &s.device_token("cam-t"));
    let (status, answer) =
        dev.post("/v1/devices/cam-t/events", &json!({"type": "motion", "triggered_at": now()})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let big = presigned(&answer["snapshot_upload"], vec![7u8; 4096]).await;
    assert!(big.status().is_client_error(), "an oversized snapshot must be refused: {}", big.status());
    let small = presigned(&answer["snapshot_upload"], vec![7u8; 1000]).await;
    assert_eq!(small.status(), StatusCode::OK);
}

/// Objects on the embedded endpoint go with their day: a snapshot, segment and digest from a
/// day past retention are deleted by the janitor; today's stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_objects_past_retention_are_deleted() {
    let old = [
        "devices/cam-o/snapshots/20200101.cam-o.1577836800000.motion.jpg",
        "devices/cam-o/segments/20200101-0123456789abcdef0123456789abcdef",
        "devices/cam-o/digests/20200101-fedcba9876543210fedcba9876543210",
    ];
    let today = Utc::now().format("%Y%m%d").to_string();
    let fresh = format!("devices/cam-o/segments/{today}-0123456789abcdef0123456789abcdef");
    let mut objects = None;
    let s = spawn_app_with(|c| {
        let bucket = c.data_dir.join("objects").join(&c.s3.bucket);
        for key in old.iter().copied().chain([fresh.as_str()]) {
            let path = bucket.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"bytes").unwrap();
        }
        objects = Some(bucket);
    })
    .await;
    let bucket = objects.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.iter().any(|k| bucket.join(k).exists()) {
        assert!(Instant::now() < deadline, "objects past retention still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bucket.join(&fresh).exists(), "today's object was deleted");
    drop(s);
}

/// More half-open connections (a partial request line, then nothing) than the limit: a device
/// still gets through, and every half-open connection is closed — evicted, or after the header
/// timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_past_the_limit_neither_block_devices_nor_stay_open() {
    let s = spawn_app_with(|c| {
        c.http.max_connections = 4;
        c.http.header_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = s.http.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..12 {
        let mut conn = TcpStream::connect(&addr).await.unwrap();
        conn.write_all(b"POST /v1/devices/cam-h/events HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        held.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dev = Http::new(&s.http, &s.device_token("cam-h"));
    let (status, answer) =
        dev.post("/v1/devices/cam-h/events", &json!({"type": "motion", "triggered_at": now()})).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    for (i, mut conn) in held.into_iter().enumerate() {
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "half-open connection {i} still open after 10 s");
    }
}

fn record(i: usize) -> LogRecord {
    LogRecord { key: format!("cam-{i}"), report_kind: "event_started".into(), schema: 1, value: vec![i as u8; 16] }
}

/// `tail --group x --limit 1`: a group that read one record and went away. Records past
/// retention are truncated anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_group_pins_nothing_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    log.append((0..10).map(record).collect()).await.unwrap();
    let mut consumer = log.consumer("x").await.unwrap();
    let batch = consumer.poll(1, Duration::from_secs(1)).await.unwrap();
    consumer.commit(&commit_positions(&batch[..1])).await.unwrap();
    drop(consumer);
    // Every record is past retention (truncate before a time in the future).
    let far = Utc::now().timestamp_millis() + 60_000;
    let mut deleted = 0;
    loop {
        let n = log.truncate(far).await.unwrap();
        deleted += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(deleted, 10, "the abandoned group kept records past retention");
    log.shutdown().await.unwrap();
}

/// Groups are listed, deleted by name, and forgotten once idle past the group retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_deleted_and_expire_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    log.append((0..3).map(record).collect()).await.unwrap();
    for group in ["a", "b", "daybook-notify-sub-1"] {
        let mut consumer = log.consumer(group).await.unwrap();
        let batch = consumer.poll(1, Duration::from_secs(1)).await.unwrap();
        consumer.commit(&commit_positions(&batch)).await.unwrap();
    }
    let groups = log.groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|g| (g.group.as_str(), g.next, g.lag)).collect::<Vec<_>>(),
        [("a", 2, 2), ("b", 2, 2), ("daybook-notify-sub-1", 2, 2)]
    );
    assert!(log.delete_group("a").await.unwrap());
    assert!(!log.delete_group("a").await.unwrap());
    // Idle since before now: nothing expires yet with a week's retention…
    let week_ago = Utc::now().timestamp_millis() - 7 * 86_400_000;
    assert!(log.expire_groups(week_ago).await.unwrap().is_empty());
    // …and "b" does once its last commit is older than the cut-off.
    let later = Utc::now().timestamp_millis() + 1;
    // A subscription's group (a paused one commits nothing) is spared while it exists.
    let spared = ["daybook-notify-sub-1".to_owned()];
    assert_eq!(log.expire_groups_except(later, &spared).await.unwrap(), ["b"]);
    assert_eq!(log.groups().await.unwrap().len(), 1);
    assert_eq!(log.expire_groups(later).await.unwrap(), ["daybook-notify-sub-1"]);
    assert!(log.groups().await.unwrap().is_empty());
    log.shutdown().await.unwrap();
}
