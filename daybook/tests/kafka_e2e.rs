//! The Kafka path end to end: the all-in-one over `kafka://…` (in-process) serves the device →
//! viewer flow; every report is then read back with the `daybook tail` command and with a
//! consumer in another language (Python confluent-kafka), which sees the device id as key and
//! both headers.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use schemas::Envelope;
use tests::client::Http;
use tests::process::Bin;
use tests::{flow, kafka};

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_to_viewer_over_kafka_then_tail_and_python() {
    let (server, topic, url) = kafka::spawn_app_on_new_topic(DAYBOOK, "e2e").await;

    let cid = "cam-kafka";
    let dev = Http::new(&server.http, &server.device_token(cid));
    let viewer = Http::new(&server.http, &server.viewer_token(&[cid]));
    let other = server.device_token("cam-other");
    flow::refuse_bad_input(&dev, cid, &other).await;
    let expect = flow::act_as_device(&dev, cid).await;
    flow::wait_projected(&viewer, &expect, Duration::from_secs(60)).await;
    flow::check_as_viewer(&viewer, &expect).await;

    let metrics = reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap();
    for name in ["daybook_kafka_produce_seconds", "daybook_projector_batch_reports"] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let (config, dir) = server.stop().await;

    // Everything the device was acknowledged for is on the topic: 2 starts of A (same id),
    // B, 2 segments, 2 ends, C's end and start, the late start and end, 12 more starts, 1 digest.
    let reports = 2 + 1 + 2 + 2 + 2 + 2 + 12 + 1;
    let tailed = DAYBOOK.output(&["tail", "--log", &url, "--from-beginning", "--limit", &reports.to_string()], &[]);
    let lines: Vec<serde_json::Value> = tailed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), reports);
    assert!(lines.iter().all(|l| l["cid"] == cid && l["schema"] == schemas::SCHEMA_VERSION));
    let kinds: BTreeSet<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["digest_reported", "event_ended", "event_started", "segment_reported"]));
    let started =
        lines.iter().find(|l| l["type"] == "event_started" && l["event_id"] == expect.a.as_str()).expect("A's start");
    assert_eq!(started["event_type"], "motion");
    assert!(started["triggered_at"].as_str().unwrap().ends_with('Z'), "{started}");
    let seg = lines.iter().find(|l| l["type"] == "segment_reported").unwrap();
    assert!(seg["media"]["codec"].is_string() && seg["events"].is_array(), "{seg}");

    // A consumer in another language.
    let python = std::env::var("DAYBOOK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/consume.py");
    let out = Command::new(&python)
        .args([script, &kafka::brokers(), &topic, &reports.to_string(), "60"])
        .output()
        .expect("run python");
    assert!(out.status.success(), "python consumer: {}", String::from_utf8_lossy(&out.stderr));
    let records: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), reports);
    let mut py_kinds = BTreeSet::new();
    for r in &records {
        assert_eq!(r["key"], cid, "key is the device id");
        assert_eq!(r["headers"]["daybook.schema"], schemas::SCHEMA_VERSION.to_string());
        let kind = r["headers"]["daybook.type"].as_str().expect("daybook.type header").to_owned();
        let hex = r["value_hex"].as_str().unwrap();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let env = Envelope::decode(&bytes).expect("the value is a daybook envelope");
        assert_eq!(env.report.kind().as_str(), kind, "header matches the value");
        assert_eq!(env.report.cid().unwrap().as_str(), cid);
        py_kinds.insert(kind);
    }
    assert_eq!(py_kinds.len(), 4);

    // A restart on the same topic and data directory resumes without losing or redoing anything visible.
    let server = tests::app::start(config, dir).await;
    flow::check_as_viewer(&viewer.at(&server.http), &expect).await;
    server.stop().await;
}
