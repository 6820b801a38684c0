//! `daybook rebuild --log kafka://… --store embedded`: the all-in-one over Kafka (in-process)
//! takes a device's reports and projects them, an owner's deletion of one of its events, and
//! the operator's erasure of another device (`daybook erase device`, appending to the topic);
//! the store is then rebuilt from the topic into a fresh data directory with the binary, and
//! must hold the same calendar and events (the deleted one deleted, the kept one kept, nothing
//! of the erased device), the same export, ready, and a 60-day device's event older than the
//! deployment's 30 days (its reports carry their plan; the topic holds its `plan_set`). A
//! rebuild with `--kept-from` carries the old store's kept events over;
//! a second rebuild into a directory that is no longer empty is refused.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use infra::embedded_store::EmbeddedStore;
use schemas::{Day, DeviceId, EventId};
use seams::ProjectionStore;
use serde_json::Value;
use tests::client::Http;
use tests::process::Bin;
use tests::{flow, kafka};

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_from_kafka_into_a_fresh_embedded_store() {
    let (server, _, url) = kafka::spawn_app_on_new_topic(DAYBOOK, "rebuild").await;
    let mut expected = Vec::new();
    for cid in ["cam-r1", "cam-r2"] {
        let dev = Http::new(&server.http, &server.device_token(cid));
        let viewer = Http::new(&server.http, &server.viewer_token(&[cid]));
        let e = flow::act_as_device(&dev, cid).await;
        flow::wait_projected(&viewer, &e, Duration::from_secs(60)).await;
        expected.push(e);
    }
    // The owner of cam-r1 deletes its event A: a report on the topic like the device's.
    let deleted = expected[0].a.clone();
    let manager = Http::new(&server.http, &server.managing_viewer_token(&["cam-r1"]));
    let (status, body) = manager.delete(&format!("/v1/events/{deleted}")).await;
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while manager.get(&format!("/v1/events/{deleted}")).await.0 != 404 {
        assert!(std::time::Instant::now() < deadline, "the deletion is not projected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The owner of cam-r2 keeps its event B.
    let kept = expected[1].b.clone();
    let keeper = Http::new(&server.http, &server.managing_viewer_token(&["cam-r2"]));
    let (status, body) = keeper.put(&format!("/v1/events/{kept}/keep")).await;
    assert_eq!(status, 202, "{body}");
    flow::wait_kept(&keeper, "cam-r2", &[kept.as_str()], Duration::from_secs(60)).await;
    // And exports its day: the request and the worker's completion, both on the topic.
    let today = Utc::now().format("%Y-%m-%d").to_string();
    let (status, body) =
        keeper.post("/v1/devices/cam-r2/exports", &serde_json::json!({"from": today, "to": today})).await;
    assert_eq!(status, 202, "{body}");
    let export = body["export_id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while keeper.get(&format!("/v1/devices/cam-r2/exports/{export}")).await.1["state"] != "ready" {
        assert!(std::time::Instant::now() < deadline, "the export is not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The operator erases cam-r3 with the command, which appends to the topic itself.
    let dev = Http::new(&server.http, &server.device_token("cam-r3"));
    let viewer = Http::new(&server.http, &server.viewer_token(&["cam-r3"]));
    let erased = flow::act_as_device(&dev, "cam-r3").await;
    flow::wait_projected(&viewer, &erased, Duration::from_secs(60)).await;
    let data_dir = server.data_dir().to_str().unwrap().to_owned();
    let out = Command::new(DAYBOOK.0)
        .args(["erase", "device", "cam-r3", "--log", &url, "--data-dir", &data_dir])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "erase failed: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while viewer.get(&format!("/v1/events/{}", erased.a)).await.0 != 404 {
        assert!(std::time::Instant::now() < deadline, "the erasure is not projected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A device on a 60-day plan (the deployment keeps 30): an event 40 days back, then today's.
    let planned = Http::new(&server.http, &server.device_token_planned("cam-r4", 60));
    let old_start =
        flow::start_event(&planned, "cam-r4", "motion", flow::today_noonish() - chrono::Duration::days(40)).await;
    let old_id = EventId::parse(old_start["event_id"].as_str().unwrap()).unwrap();
    flow::start_event(&planned, "cam-r4", "person", flow::today_noonish()).await;
    let planned_viewer = Http::new(&server.http, &server.viewer_token(&["cam-r4"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while planned_viewer.get(&format!("/v1/events/{old_id}")).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "the 60-day device's old event is not projected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (config, dir) = server.stop().await;

    // The topic holds the plan change, before the device's first report, with its retention.
    let plans = topic_plan_changes(&url, "cam-r4").await;
    assert_eq!(plans, vec![(true, 60), (false, 60), (false, 60)], "plan_set first, then two starts under 60 days");

    let fresh = tempfile::tempdir().unwrap();
    let fresh_dir = fresh.path().join("data");
    let fresh_s = fresh_dir.to_str().unwrap();
    let out = Command::new(DAYBOOK.0)
        .args(["rebuild", "--log", &url, "--store", "embedded", "--data-dir", fresh_s])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rebuild failed: {stderr}{stdout}");
    println!("{stdout}{stderr}");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let group = last["rebuilt"]["group"].as_str().unwrap();
    assert!(group.starts_with("daybook-rebuild-"), "{last}");
    assert!(last["rebuilt"]["rows"].as_u64().unwrap() > 0, "{last}");
    assert_eq!(last["rebuilt"]["quarantined"], 0, "{last}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    assert!(stderr.contains(&format!("--group {group}")), "{stderr}");

    // Same answers from the original store and the rebuilt one.
    let original = EmbeddedStore::open(&dir.path().join("store.db"), config.policy).unwrap();
    let rebuilt = EmbeddedStore::open(&fresh_dir.join("store.db"), config.policy).unwrap();
    let today = Utc::now().date_naive();
    let (from, to) = (Day::from_date(today - chrono::Days::new(30)), Day::from_date(today + chrono::Days::new(2)));
    // Nothing of the erased device in either.
    let cid = DeviceId::parse("cam-r3").unwrap();
    for store in [&original, &rebuilt] {
        assert_eq!(store.calendar(&cid, from, to).await.unwrap(), vec![], "cam-r3 is erased");
        for id in erased.today.iter().chain([&erased.late, &erased.c]) {
            assert!(store.event(&EventId::parse(id).unwrap()).await.unwrap().is_none(), "{id}");
        }
    }
    for e in &expected {
        let cid = DeviceId::parse(&e.cid).unwrap();
        let cal = original.calendar(&cid, from, to).await.unwrap();
        let live_today = e.today.iter().filter(|id| **id != deleted).count();
        assert!(cal.iter().map(|d| d.1).sum::<u64>() > live_today as u64, "{} {cal:?}", e.cid);
        assert_eq!(rebuilt.calendar(&cid, from, to).await.unwrap(), cal, "{} calendar", e.cid);
        for id in e.today.iter().chain([&e.late, &e.a, &e.b, &e.c]) {
            let id = EventId::parse(id).unwrap();
            let detail = original.event(&id).await.unwrap();
            assert_eq!(detail.is_some(), id.as_str() != deleted, "{id:?}");
            assert_eq!(detail.as_ref().is_some_and(|d| d.event.kept), id.as_str() == kept, "{id:?}");
            assert_eq!(rebuilt.event(&id).await.unwrap(), detail, "event {id:?}");
        }
    }
    // The export, ready, in both.
    let cid = DeviceId::parse("cam-r2").unwrap();
    let exports = original.exports(&cid, None, 10).await.unwrap();
    assert_eq!(exports.iter().map(|x| x.export_id.as_str()).collect::<Vec<_>>(), [export.as_str()]);
    assert!(matches!(exports[0].outcome, Some(schemas::ExportOutcome::Ready { .. })), "{exports:?}");
    assert_eq!(rebuilt.exports(&cid, None, 10).await.unwrap(), exports, "the rebuilt store lists the export");
    // The 60-day device's old event, rebuilt from the topic under a 30-day deployment: its
    // reports carry their plan.
    let planned_cid = DeviceId::parse("cam-r4").unwrap();
    assert!(rebuilt.event(&old_id).await.unwrap().is_some(), "kept for its plan after the rebuild");
    assert_eq!(rebuilt.plan(&planned_cid).await.unwrap(), Some(60));
    assert_eq!(rebuilt.event(&old_id).await.unwrap(), original.event(&old_id).await.unwrap());
    drop(rebuilt);
    drop(original);

    // Into another fresh directory, carrying the kept events of the original store over first.
    let carried = fresh.path().join("carried");
    let out = Command::new(DAYBOOK.0)
        .args(["rebuild", "--log", &url, "--store", "embedded", "--data-dir", carried.to_str().unwrap()])
        .args(["--kept-from", "embedded", "--kept-from-dir", dir.path().to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rebuild --kept-from failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["rebuilt"]["kept"], 1, "{last}");
    let with_kept = EmbeddedStore::open(&carried.join("store.db"), config.policy).unwrap();
    let kept_id = EventId::parse(&kept).unwrap();
    assert!(with_kept.event(&kept_id).await.unwrap().is_some_and(|d| d.event.kept), "{kept}");

    // The target must be empty.
    let again = Command::new(DAYBOOK.0)
        .args(["rebuild", "--log", &url, "--data-dir", fresh_s])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("fresh --data-dir"), "{again:?}");
}

/// The reports of `device` on the topic at `url`, in order: (is a `plan_set`, retention days).
async fn topic_plan_changes(url: &str, device: &str) -> Vec<(bool, u32)> {
    use seams::ReportLog;
    let config = infra::kafka::KafkaConfig::from_url(url).unwrap();
    let log = infra::kafka::KafkaLog::connect(config).unwrap();
    let mut consumer = log.consumer(&format!("plans-check-{}", std::process::id())).await.unwrap();
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 3 {
        let batch = consumer.poll(1000, Duration::from_millis(500)).await.unwrap();
        quiet = if batch.is_empty() { quiet + 1 } else { 0 };
        for record in batch.into_iter().filter(|r| r.key == device) {
            let env = schemas::Envelope::decode(&record.value).unwrap();
            let plan = matches!(env.report, schemas::Report::PlanSet(_));
            if let schemas::Report::PlanSet(p) = &env.report {
                assert_eq!(record.report_kind, "plan_set");
                assert_eq!(env.retention_days, Some(p.retention_days));
            }
            out.push((plan, env.retention_days.unwrap_or(0)));
        }
    }
    out
}
