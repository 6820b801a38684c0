//! Contract points schemathesis' stock checks found in the batch endpoint and the OpenAPI
//! document: a batch body in which nothing is JSON is refused whole; the document states the
//! batch's item bounds; event-id patterns require a plausible date.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::spawn_app;
use tests::client::Http;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A body that is neither a JSON array nor NDJSON with one line of JSON — `\x00`, bytes that
/// are not UTF-8, every line garbage — holds no report: 400 `malformed_json` in the project's
/// error shape, not 200 with one per-item 400 as before. Nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_body_in_which_nothing_is_json_is_refused_whole() {
    let s = spawn_app().await;
    let dev = Http::new(&s.http, &s.device_token("cam-g"));
    let bodies: [&[u8]; 6] = [
        b"\x00",
        b"\xff\xfe\xfd",
        b"garbage",
        b"not json\nnor this\n{\"kind\":\n",
        b"<html>\n</html>\n",
        b"\x00\n\x00\n",
    ];
    for body in bodies {
        let (status, answer) = dev.post_raw("/v1/devices/cam-g/reports", body.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
        let error = answer["error"].as_object().unwrap_or_else(|| panic!("{body:?}: the error shape: {answer}"));
        assert_eq!(error["code"], "malformed_json", "{body:?}: {answer}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
        assert_eq!(answer.as_object().unwrap().len(), 1, "only `error`: {answer}");
    }
}

/// Once one item is a JSON value, every item keeps its own result: garbage lines are 400
/// items, a report is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_json_item_keeps_per_item_results() {
    let s = spawn_app().await;
    let dev = Http::new(&s.http, &s.device_token("cam-h"));
    let item = json!({"kind": "event_start", "type": "motion", "triggered_at": now()});
    let body = format!("\x00\n{item}\nnot json\n");
    let (status, answer) = dev.post_raw("/v1/devices/cam-h/reports", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"].as_u64()), (Some(1), Some(2)), "{answer}");
    let statuses: Vec<_> = answer["results"].as_array().unwrap().iter().map(|r| r["status"].clone()).collect();
    assert_eq!(statuses, [json!(400), json!(201), json!(400)], "{answer}");
    assert_eq!(answer["results"][0]["error"]["code"], "malformed_json");
    // A well-formed value that is no report is an item too (422), not a reason to refuse all.
    let (status, answer) = dev.post_raw("/v1/devices/cam-h/reports", "\x00\n{}\n").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][1]["status"], 422, "{answer}");
}

/// The served document states what the server enforces: a batch holds 1 to 1000 items (the
/// server refuses `[]` with 400 and item 1001 with 413), and says a body with nothing of
/// JSON in it is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_states_the_batch_item_bounds() {
    let s = spawn_app().await;
    let (status, doc) = Http::new(&s.http, "").get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let post = &doc["paths"]["/v1/devices/{cid}/reports"]["post"];
    let content = post["requestBody"]["content"].as_object().expect("a request body");
    assert!(!content.is_empty());
    for (media, body) in content {
        let schema = resolve(&doc, &body["schema"]);
        assert_eq!(schema["type"], "array", "{media}: {schema}");
        assert_eq!(schema["minItems"], 1, "{media}: {schema}");
        assert_eq!(schema["maxItems"], 1000, "{media}: {schema}");
    }
    let description = post["description"].as_str().unwrap_or_default();
    assert!(description.contains("refused whole"), "{description}");
    // What the document states is what the server does at the bounds.
    let dev = Http::new(&s.http, &s.device_token("cam-b"));
    let (status, _) = dev.post_raw("/v1/devices/cam-b/reports", "[]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = dev.post_raw("/v1/devices/cam-b/reports", format!("[{}1]", "1,".repeat(1000))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// Every event-id path parameter's pattern requires `YYYYMMDD` with month 01–12, day 01–31
/// and a year from 1000 (and a `±HHMM` offset the server can read): `00000000…` no longer
/// matches, a real id does, and so does every id the server builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_id_path_patterns_require_a_plausible_date() {
    let s = spawn_app().await;
    let (_, doc) = Http::new(&s.http, "").get("/openapi.json").await;
    let mut patterns = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (_, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "event_id" {
                    let schema = resolve(&doc, &param["schema"]);
                    let pattern = schema["pattern"].as_str().unwrap_or_else(|| panic!("{path}: {schema}"));
                    patterns.push((path.clone(), pattern.to_owned()));
                }
            }
        }
    }
    let paths: Vec<_> = patterns.iter().map(|(p, _)| p.as_str()).collect();
    // The event's detail (GET) and its deletion (DELETE) share the path; its keep and un-keep
    // (PUT, DELETE) another.
    assert_eq!(
        paths,
        [
            "/v1/devices/{cid}/events/{event_id}/end",
            "/v1/events/{event_id}",
            "/v1/events/{event_id}",
            "/v1/events/{event_id}/keep",
            "/v1/events/{event_id}/keep"
        ]
    );
    // Ids the server builds, at the offsets cameras use and the extremes a timestamp may carry.
    let cid = schemas::DeviceId::parse("cam-1").unwrap();
    let motion = schemas::EventType::parse("motion").unwrap();
    let mut built = Vec::new();
    for minutes in [-(23 * 60 + 59), -12 * 60, -570, -1, 0, 345, 14 * 60, 23 * 60 + 59] {
        let offset = schemas::DayOffset::from_minutes(minutes).unwrap();
        for ms in [0, 1, 1_795_362_627_000, 253_402_214_399_999] {
            let at = schemas::Timestamp(ms);
            if let Ok(id) = schemas::EventId::new(&cid, &motion, at, offset) {
                built.push(id.to_string());
            }
            if let Ok(id) = schemas::EventId::new_v1(&cid, &motion, at, offset) {
                built.push(id.to_string());
            }
        }
    }
    assert!(built.len() > 40, "{built:?}");
    for (path, pattern) in &patterns {
        // The document's patterns are ECMA-262; these use only syntax the `regex` crate reads
        // the same way (anchors, classes, groups, bounded repeats).
        let re = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{path}: {pattern}: {e}"));
        for id in [
            "20261122.cam-1.1795362627000+0100.motion",
            "20261122.cam-1.1795362627000.motion",
            "10000101.c.0-0001.m",
            "99991231.c.0+2359.m",
            "20260229.cam-1.1795362627000-0930.person",
        ] {
            assert!(re.is_match(id), "{path}: {pattern} refuses the real id {id}");
        }
        for id in &built {
            assert!(re.is_match(id), "{path}: {pattern} refuses {id}, which the server built");
            assert!(schemas::EventId::parse(id).is_ok());
        }
        for id in [
            "00000000.cam-1.1795362627000+0800.motion",
            "00000000.c.0.m",
            "20261301.cam-1.1795362627000+0800.motion",
            "20260001.cam-1.1795362627000+0800.motion",
            "20261200.cam-1.1795362627000+0800.motion",
            "20261232.cam-1.1795362627000+0800.motion",
            "09991201.cam-1.1795362627000+0800.motion",
            "20261122.cam-1.1795362627000+2400.motion",
            "20261122.cam-1.1795362627000+0860.motion",
            "20261122.cam-1.1795362627000-0000.motion",
            "20261122.cam-1.01795362627000.motion",
            "2026112.cam-1.1795362627000.motion",
        ] {
            assert!(!re.is_match(id), "{path}: {pattern} allows {id}");
            assert!(schemas::EventId::parse(id).is_err(), "the server refuses {id} too");
        }
    }
}

/// `schema`, or the component it refers to.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or_else(|| panic!("dangling {pointer}")),
        None => schema,
    }
}
