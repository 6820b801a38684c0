//! The owner's copy, end to end on the embedded default (its own S3 endpoint): a managing viewer
//! asks for an export, the worker writes the archive into the object store, the viewer downloads
//! it through a presigned URL and finds every event of the days with its snapshot and segments,
//! byte for byte; other tokens are refused, the rate limit answers 429 with `Retry-After`; a
//! rebuild from the log lists the same exports; an export left pending by a stopped worker (a
//! multipart upload half done) is done at the next start. And the upload's memory bound, on a
//! real S3 endpoint.

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::spawn_app_with;
use tests::client::{download, Http};
use tests::flow;

/// Waits until export `id` of `cid` is no longer pending; its answer.
async fn wait_done(manager: &Http, cid: &str, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (s, body) = manager.get(&format!("/v1/devices/{cid}/exports/{id}")).await;
        if s == StatusCode::OK && body["state"] != "pending" {
            return body;
        }
        assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND, "{s}: {body}");
        assert!(Instant::now() < deadline, "export {id} still pending after {timeout:?}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The archive's entries: path → bytes.
fn untar(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = HashMap::new();
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("its bytes");
        out.insert(path, data);
    }
    out
}

/// POSTs an export request with the raw response (its headers).
async fn request(base: &str, token: &str, cid: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/devices/{cid}/exports"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managing_viewer_exports_a_cameras_days_and_downloads_the_archive() {
    let server = spawn_app_with(|c| c.max_exports_per_camera_per_day = 2).await;
    let cid = "cam-export";
    let clients = server.owner_clients(cid);
    let expect = flow::act_as_device(&clients.device, cid).await;
    flow::wait_projected(&clients.reader, &expect, Duration::from_secs(30)).await;
    let day = json!({"from": today(), "to": today()});

    // Only a token that may manage the camera: on every route.
    let routes = [format!("/v1/devices/{cid}/exports"), format!("/v1/devices/{cid}/exports/exp-0")];
    for (who, client) in [("reader", &clients.reader), ("stranger", &clients.stranger), ("device", &clients.device)] {
        let (s, body) = client.post(&routes[0], &day).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who} POST: {body}");
        for route in &routes {
            let (s, body) = client.get(route).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{who} GET {route}: {body}");
        }
    }
    // A range that is reversed, too long or past retention.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let old = (chrono::Utc::now() - chrono::Duration::days(40)).format("%Y-%m-%d").to_string();
    for bad in [json!({"from": today(), "to": yesterday}), json!({"from": old, "to": today()})] {
        let (s, body) = clients.manager.post(&routes[0], &bad).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_range")),
            "{body}"
        );
    }
    let (s, body) = clients.manager.post(&routes[0], &json!({"from": today()})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a body without `to`: {body}");

    let (s, accepted) = clients.manager.post(&routes[0], &day).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["state"], "pending");
    let id = accepted["export_id"].as_str().unwrap().to_owned();
    let done = wait_done(&clients.manager, cid, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "ready", "{done}");
    assert_eq!((done["from"].as_str(), done["to"].as_str()), (Some(today().as_str()), Some(today().as_str())));
    assert_eq!(done["events"], expect.today.len(), "every event of the day: {done}");

    let (s, archive) = download(done["download_url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(done["bytes"], archive.len(), "the size listed is the archive's");
    let entries = untar(&archive);
    let index: Value = serde_json::from_slice(&entries["index.json"]).expect("the index is JSON");
    assert_eq!((index["export_id"].as_str(), index["cid"].as_str()), (Some(id.as_str()), Some(cid)));
    let listed: Vec<&str> =
        index["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(listed, expect.today.iter().map(String::as_str).collect::<Vec<_>>(), "in trigger order");
    assert!(!listed.contains(&expect.late.as_str()), "another day's event is not exported");
    let event = |id: &str| index["events"].as_array().unwrap().iter().find(|e| e["event_id"] == id).unwrap().clone();
    // A's snapshot and both its segments, byte for byte as uploaded; B's shared segment too.
    let a = event(&expect.a);
    let path = a["snapshot"]["path"].as_str().expect("A's snapshot is in the archive");
    assert_eq!(entries[path], expect.snapshot);
    let segments = a["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2, "{a}");
    for s in segments {
        let (_, want) = expect.segments.iter().find(|(sid, _)| s["segment_id"] == sid.as_str()).unwrap();
        assert_eq!(&entries[s["object"]["path"].as_str().unwrap()], want, "{s}");
        assert_eq!(s["size"], want.len());
    }
    assert_eq!(event(&expect.b)["segments"][0]["segment_id"], expect.segments[1].0.as_str());
    // An event without a snapshot: listed as missing, not an error.
    let c = event(&expect.c);
    assert_eq!(c["snapshot"]["missing"], true, "{c}");
    let objects = entries.keys().filter(|k| k.starts_with("objects/")).count();
    assert_eq!(objects, 3, "one snapshot and two segments, each once: {:?}", entries.keys());

    // The limit: the second export of the day is accepted, the third refused with Retry-After.
    let token = server.managing_viewer_token(&[cid]);
    let second = request(&server.http, &token, cid, &day).await;
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    let third = request(&server.http, &token, cid, &day).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = third.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 23 * 3600 && retry <= 24 * 3600, "until the first leaves the 24 hours: {retry}");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "export_limit", "{body}");
    let second: Value = second.json().await.unwrap();
    wait_done(&clients.manager, cid, second["export_id"].as_str().unwrap(), Duration::from_secs(60)).await;

    // Listed newest first; a rebuild from the log lists the same.
    let list = |v: Value| -> Vec<Value> {
        v["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| json!([e["export_id"], e["state"], e["bytes"], e["events"]]))
            .collect()
    };
    let (s, before) = clients.manager.get(&routes[0]).await;
    assert_eq!(s, StatusCode::OK, "{before}");
    let before = list(before);
    assert_eq!(before.len(), 2);
    assert_eq!(before[1][0], id.as_str(), "newest first");
    let (s, page) = clients.manager.get(&format!("{}?limit=1", routes[0])).await;
    assert_eq!((s, page["exports"].as_array().unwrap().len()), (StatusCode::OK, 1));
    let (s, rest) =
        clients.manager.get(&format!("{}?limit=1&cursor={}", routes[0], page["next_cursor"].as_str().unwrap())).await;
    assert_eq!((s, rest["exports"][0]["export_id"].as_str()), (StatusCode::OK, Some(id.as_str())));
    let server = server.rebuilt().await;
    let manager = clients.manager.at(&server.http);
    let (s, after) = manager.get(&routes[0]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list(after), before, "a rebuild from the log lists the same exports");
    // And the archive is still there.
    let (_, again) = manager.get(&format!("{}/{id}", routes[0])).await;
    assert_eq!(download(again["download_url"].as_str().unwrap()).await.1, archive);
    server.stop().await;
}

/// An export asked for while no worker ran (a stopped process), whose archive upload a stopped
/// worker left half done: the next start completes the export, and the janitor deletes what
/// the abandoned upload left once it is old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_left_pending_is_done_at_the_next_start() {
    use seams::ReportLog;
    let server = spawn_app_with(|_| {}).await;
    let cid = "cam-redo";
    let clients = server.owner_clients(cid);
    let expect = flow::act_as_device(&clients.device, cid).await;
    flow::wait_projected(&clients.reader, &expect, Duration::from_secs(30)).await;
    let (config, dir) = server.stop().await;

    // Asked for, as the api appends it, while nothing runs.
    let now = schemas::Timestamp::now();
    let export_id = schemas::ExportId::generate(now, 42);
    let today = schemas::DayOffset::default().today();
    let report = schemas::Report::ExportRequested(schemas::ExportRequested {
        cid: schemas::DeviceId::parse(cid).unwrap(),
        export_id: export_id.clone(),
        from: today,
        to: today,
    });
    let log = infra::embedded_log::EmbeddedLog::open(&dir.path().join("log"), Default::default()).unwrap();
    log.append(vec![seams::LogRecord::of(&schemas::Envelope::new(report, now))]).await.unwrap();
    log.shutdown().await.unwrap();

    let server = tests::app::start(config, dir).await;
    // A worker that stopped mid-upload left a multipart upload of the archive with one part.
    let (access, secret) = daybook::secrets::embedded_s3_credentials(server.data_dir()).unwrap();
    let s3 = infra::s3::bucket_client(&infra::s3::S3Config {
        endpoint: server.s3.clone(),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some((access, secret)),
        path_style: true,
    })
    .await;
    let key = format!("exports/{cid}/{export_id}.tar");
    let stale = s3.create_multipart_upload().bucket("daybook").key(&key).send().await.unwrap();
    let stale_id = stale.upload_id().unwrap().to_owned();
    let part = aws_sdk_s3::primitives::ByteStream::from(vec![7u8; 1000]);
    s3.upload_part().bucket("daybook").key(&key).upload_id(&stale_id).part_number(1).body(part).send().await.unwrap();

    let manager = clients.manager.at(&server.http);
    let done = wait_done(&manager, cid, export_id.as_str(), Duration::from_secs(60)).await;
    assert_eq!(done["state"], "ready", "{done}");
    let (_, archive) = download(done["download_url"].as_str().unwrap()).await;
    let entries = untar(&archive);
    let index: Value = serde_json::from_slice(&entries["index.json"]).unwrap();
    assert_eq!(index["events"].as_array().unwrap().len(), expect.today.len());
    assert!(!archive.starts_with(&[7u8; 16]), "the stale part is not the archive's");
    // The endpoint lists no uploads: its janitor deletes the abandoned one's files once old.
    let root = server.data_dir().join("objects");
    assert_eq!(infra::s3_server::expire_stale_uploads(&root, Duration::from_secs(3600)).unwrap(), 0, "not old yet");
    let deleted = infra::s3_server::expire_stale_uploads(&root, Duration::ZERO).unwrap();
    assert!(deleted >= 2, "the stale upload's part and bookkeeping: {deleted}");
    let left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let (_, still) = download(done["download_url"].as_str().unwrap()).await;
    assert_eq!(still, archive, "the completed archive stays");
    server.stop().await;
}

/// The worker's upload holds one part at a time: an archive of several parts is uploaded with
/// a buffer never larger than a part, in as many parts as its size needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_upload_holds_one_part_at_a_time() {
    let endpoint = tests::s3::TestS3::start("exportak", "exportsecretkey").await;
    let s3 = infra::s3::bucket_client(&infra::s3::S3Config {
        endpoint: Some(endpoint.endpoint.clone()),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some(("exportak".into(), "exportsecretkey".into())),
        path_style: true,
    })
    .await;
    let part = daybook::export::MIN_PART_SIZE;
    let key = "exports/cam-big/exp-big.tar";
    let mut upload = daybook::export::Upload::start(&s3, "daybook", key, part).await.unwrap();
    // 3.5 parts, written in 64 KiB chunks, as object bodies stream in.
    let total = part * 7 / 2;
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 253) as u8).collect();
    let mut written = 0;
    while written < total {
        let n = chunk.len().min(total - written);
        upload.write(&chunk[..n]).await.unwrap();
        written += n;
    }
    assert_eq!(upload.parts(), 3, "three whole parts sent while writing");
    assert!(upload.peak() <= part, "the buffer never held more than a part: {}", upload.peak());
    assert_eq!(upload.finish().await.unwrap(), total as u64);
    let got = s3.get_object().bucket("daybook").key(key).send().await.unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.len(), total);
    assert!(body.chunks(65_536).all(|c| c == &chunk[..c.len()]), "the bytes, in order");
    endpoint.stop().await.unwrap();
}

/// An export is gone at its expiry (`--export-ttl-hours`, here seconds): no longer listed, and
/// the embedded endpoint's janitor deletes its archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_export_and_its_archive_are_gone() {
    let server = spawn_app_with(|c| c.export_ttl = Duration::from_secs(3)).await;
    let cid = "cam-expire";
    let clients = server.owner_clients(cid);
    let expect = flow::act_as_device(&clients.device, cid).await;
    flow::wait_projected(&clients.reader, &expect, Duration::from_secs(30)).await;
    let route = format!("/v1/devices/{cid}/exports");
    let (s, accepted) = clients.manager.post(&route, &json!({"from": today(), "to": today()})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["export_id"].as_str().unwrap().to_owned();
    let done = wait_done(&clients.manager, cid, &id, Duration::from_secs(60)).await;
    assert_eq!(done["state"], "ready", "{done}");
    let archive = server.data_dir().join("objects/daybook").join(format!("exports/{cid}/{id}.tar"));
    assert!(archive.exists());
    let (config, dir) = server.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Written over an hour ago, as far as the janitor can tell.
    let file = std::fs::File::options().write(true).open(&archive).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200)).unwrap();
    drop(file);
    // The janitor's first round runs at start.
    let server = tests::app::start(config, dir).await;
    let manager = clients.manager.at(&server.http);
    let (s, body) = manager.get(&format!("{route}/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "expired: {body}");
    let (_, list) = manager.get(&route).await;
    assert_eq!(list["exports"], json!([]), "{list}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while archive.exists() {
        assert!(Instant::now() < deadline, "the archive outlived its export");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
