//! Plans end to end on the embedded default (a deployment keeping 30 days): a device whose
//! token carries `retention_days` 60 has its reports 40 days old accepted and served, and its
//! calendar spans its 60 days, paged by month; a 7-day device's reports older than 7 days are
//! refused; the store rebuilt from the log — whose reports carry the plan they were accepted
//! under, a plan change included — answers byte for byte as the live one.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::spawn_app;
use tests::client::Http;
use tests::flow::{start_event, today_noonish};

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn days_ago(days: i64) -> DateTime<Utc> {
    today_noonish() - chrono::Duration::days(days)
}

/// The `YYYY-MM-DD` of an event id.
fn date_of(id: &str) -> String {
    format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8])
}

/// Polls `path` as `viewer` until `done` holds.
async fn eventually(viewer: &Http, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = viewer.get(path).await;
        if s == StatusCode::OK && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: {s} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the embedded log in `data_dir` holds about plans.
struct PlanChanges {
    /// Every `plan_set`, in log order per device: (device, days).
    plan_sets: Vec<(String, u32)>,
    /// The device of each report right after a `plan_set` (the same device's).
    first_after_plan_set: Vec<String>,
}

async fn plan_changes(data_dir: &std::path::Path) -> PlanChanges {
    use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
    use seams::ReportLog;
    let log = EmbeddedLog::open(&data_dir.join("log"), EmbeddedLogConfig::default()).unwrap();
    let mut consumer = log.consumer("plans-test").await.unwrap();
    let mut records = Vec::new();
    loop {
        let batch = consumer.poll(1000, Duration::from_millis(200)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    records.sort_by_key(|r| (r.position.partition, r.position.offset));
    let envelopes: Vec<schemas::Envelope> =
        records.iter().map(|r| schemas::Envelope::decode(&r.value).unwrap()).collect();
    let mut out = PlanChanges { plan_sets: Vec::new(), first_after_plan_set: Vec::new() };
    for (i, env) in envelopes.iter().enumerate() {
        match &env.report {
            schemas::Report::PlanSet(p) => {
                out.plan_sets.push((p.cid.to_string(), p.retention_days));
                assert_eq!(env.retention_days, Some(p.retention_days), "the envelope says the same");
                let next = envelopes[i + 1..].iter().find(|e| e.report.cid() == Some(&p.cid)).unwrap();
                out.first_after_plan_set.push(next.report.cid().unwrap().to_string());
            }
            r => {
                let want = match r.cid().map(|c| c.as_str()) {
                    Some("cam-p7") => 7,
                    Some("cam-p60") if env.retention_days == Some(30) => 30,
                    Some("cam-p60") => 60,
                    _ => 30,
                };
                assert_eq!(env.retention_days, Some(want), "{r:?}");
            }
        }
    }
    out.plan_sets.sort();
    out.first_after_plan_set.sort();
    log.shutdown().await.unwrap();
    out
}

/// The events a calendar answer counts, over its days.
fn counted(cal: &Value) -> u64 {
    cal["days"].as_array().unwrap().iter().map(|d| d["events"].as_u64().unwrap()).sum()
}

/// Every answer of the viewer API about `cid` the test compares: the calendar over the whole
/// plan, each month page, each day page with events, each event's detail.
async fn answers(viewer: &Http, cid: &str, plan_days: u32) -> Value {
    let (_, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar?days={plan_days}")).await;
    let mut out = json!({"calendar": cal});
    for month in cal["months"].as_array().unwrap() {
        let month = month.as_str().unwrap();
        let (s, page) = viewer.get(&format!("/v1/devices/{cid}/calendar?month={month}")).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        out[format!("month {month}")] = page;
    }
    for day in cal["days"].as_array().unwrap().iter().filter(|d| d["events"].as_u64() > Some(0)) {
        let date = day["date"].as_str().unwrap();
        let (_, page) = viewer.get(&format!("/v1/devices/{cid}/events?date={date}")).await;
        for event in page["events"].as_array().unwrap() {
            let id = event["event_id"].as_str().unwrap();
            let (_, mut detail) = viewer.get(&format!("/v1/events/{id}")).await;
            // Presigned URLs carry their signing time and endpoint; compare what they point at.
            strip_signatures(&mut detail);
            out[format!("event {id}")] = detail;
        }
        let mut page = page;
        strip_signatures(&mut page);
        out[format!("day {date}")] = page;
    }
    out
}

/// URLs without their signature and endpoint (the S3 endpoint's port changes with a restart):
/// the object they point at.
fn strip_signatures(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("http") => {
            let path = s.split('?').next().unwrap_or_default();
            *s = path.splitn(4, '/').nth(3).unwrap_or_default().to_owned();
        }
        Value::Array(items) => items.iter_mut().for_each(strip_signatures),
        Value::Object(map) => map.values_mut().for_each(strip_signatures),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixty_day_plan_is_served_past_the_deployments_thirty_days_and_rebuilt_alike() {
    let app = spawn_app().await;
    let long = Http::new(&app.http, &app.device_token_planned("cam-p60", 60));
    let before = Http::new(&app.http, &app.device_token("cam-p60"));
    let short = Http::new(&app.http, &app.device_token_planned("cam-p7", 7));
    let plain = Http::new(&app.http, &app.device_token("cam-p30"));
    let viewer = Http::new(&app.http, &app.viewer_token(&["cam-p60", "cam-p7", "cam-p30"]));

    // Before its plan, the device was on the deployment's 30 days: 40 days back is refused.
    let start = |at: DateTime<Utc>| json!({"type": "motion", "triggered_at": ts(at)});
    let (s, body) = before.post("/v1/devices/cam-p60/events", &start(days_ago(40))).await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")));
    let earlier = start_event(&before, "cam-p60", "person", days_ago(20)).await;
    // On 60 days: 40 days back is accepted, and the plan is that of its latest start.
    let old = start_event(&long, "cam-p60", "motion", days_ago(40)).await;
    let (s, body) = long.post("/v1/devices/cam-p60/events", &start(days_ago(61))).await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")));
    let recent = start_event(&long, "cam-p60", "motion", today_noonish()).await;
    let (old_id, recent_id) = (old["event_id"].as_str().unwrap(), recent["event_id"].as_str().unwrap());
    let (s, body) = long
        .post(
            &format!("/v1/devices/cam-p60/events/{old_id}/end"),
            &json!({"ended_at": ts(days_ago(40) + chrono::Duration::seconds(9)), "status": "complete"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    // A 7-day device: 10 days back is refused, 3 accepted.
    let (s, body) = short.post("/v1/devices/cam-p7/events", &start(days_ago(10))).await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")));
    start_event(&short, "cam-p7", "motion", days_ago(3)).await;
    start_event(&plain, "cam-p30", "motion", days_ago(3)).await;

    // The calendar spans the plan: 60 days, paged by month; more is refused.
    let cal = eventually(&viewer, "/v1/devices/cam-p60/calendar?days=60", |c| counted(c) == 3).await;
    assert_eq!(cal["plan_days"], 60);
    assert_eq!(cal["days"].as_array().unwrap().len(), 60);
    let old_date = date_of(old_id);
    let day = cal["days"].as_array().unwrap().iter().find(|d| d["date"] == old_date.as_str()).unwrap();
    assert_eq!(day["events"], 1, "{cal}");
    let (_, default) = viewer.get("/v1/devices/cam-p60/calendar").await;
    assert_eq!((default["plan_days"].as_u64(), default["days"].as_array().unwrap().len()), (Some(60), 30));
    let months: Vec<&str> = cal["months"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!((2..=3).contains(&months.len()), "{months:?}");
    assert_eq!(months[0], &date_of(recent_id)[..7], "newest first");
    let (s, page) = viewer.get(&format!("/v1/devices/cam-p60/calendar?month={}", &old_date[..7])).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let listed = page["days"].as_array().unwrap();
    assert!(listed.iter().any(|d| d["date"] == old_date.as_str() && d["events"] == 1), "{page}");
    assert!(listed.iter().all(|d| d["date"].as_str().unwrap().starts_with(&old_date[..7])), "{page}");
    let (s, body) = viewer.get("/v1/devices/cam-p60/calendar?days=61").await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")));
    let (s, body) = viewer.get("/v1/devices/cam-p60/calendar?month=2001-01").await;
    assert_eq!((s, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")));
    // A month is the window, whatever `days` says; a malformed one is 400.
    let (_, both) = viewer.get(&format!("/v1/devices/cam-p60/calendar?days=5&month={}", &old_date[..7])).await;
    assert_eq!(both, page);
    assert_eq!(viewer.get("/v1/devices/cam-p60/calendar?month=2026-13").await.0, StatusCode::BAD_REQUEST);
    // Its day page and detail serve it.
    let (_, page) = viewer.get(&format!("/v1/devices/cam-p60/events?date={old_date}")).await;
    assert_eq!(page["events"][0]["event_id"], old_id, "{page}");
    let (s, detail) = viewer.get(&format!("/v1/events/{old_id}")).await;
    assert_eq!((s, detail["status"].as_str()), (StatusCode::OK, Some("complete")), "{detail}");
    // The other plans.
    let short_cal = eventually(&viewer, "/v1/devices/cam-p7/calendar?days=7", |c| counted(c) == 1).await;
    assert_eq!(short_cal["plan_days"], 7);
    assert_eq!(viewer.get("/v1/devices/cam-p7/calendar?days=8").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let plain_cal = eventually(&viewer, "/v1/devices/cam-p30/calendar", |c| counted(c) == 1).await;
    assert_eq!(plain_cal["plan_days"], 30);
    assert!(earlier["event_id"].is_string());

    // Rebuilt from the log, the store answers byte for byte as the live one: every report
    // carries the plan it was accepted under, whatever the replaying deployment's.
    let live = json!({
        "cam-p60": answers(&viewer, "cam-p60", 60).await,
        "cam-p7": answers(&viewer, "cam-p7", 7).await,
        "cam-p30": answers(&viewer, "cam-p30", 30).await,
    });
    let (config, dir) = app.stop().await;
    // The log: a plan change before each planned device's first report, once (ingest remembers
    // it), none for a device without a plan; every device report carries its plan.
    let changes = plan_changes(dir.path()).await;
    assert_eq!(changes.plan_sets, vec![("cam-p60".to_owned(), 60), ("cam-p7".to_owned(), 7)]);
    assert_eq!(changes.first_after_plan_set, ["cam-p60", "cam-p7"].map(String::from));
    let rebuilt = tests::app::rebuild_in_place(&config, &dir).await;
    assert_eq!(rebuilt.quarantined, 0, "{rebuilt:?}");
    let app = tests::app::start(config, dir).await;
    let viewer = viewer.at(&app.http);
    let again = json!({
        "cam-p60": answers(&viewer, "cam-p60", 60).await,
        "cam-p7": answers(&viewer, "cam-p7", 7).await,
        "cam-p30": answers(&viewer, "cam-p30", 30).await,
    });
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&live).unwrap());
    app.stop().await;
}

/// The embedded object janitor keeps a device's objects for its plan when it is longer than
/// the deployment's retention: 40 days back, a 60-day device's snapshot stays, a 30-day one's
/// and a 7-day one's go (a plan shorter than the deployment's deletes nothing sooner: the
/// object store is the deployment's); an unreadable plan leaves the device alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_janitor_keeps_a_long_plans_objects() {
    use schemas::{DayOffset, Envelope, EventId, EventStarted, EventType, Report, TimePolicy, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let policy = TimePolicy::default();
    let store = infra::embedded_store::EmbeddedStore::open(&dir.path().join("store.db"), policy).unwrap();
    let utc = DayOffset::default();
    let forty_days_ago = Timestamp::now().plus_millis(-40 * 86_400_000);
    let motion = EventType::parse("motion").unwrap();
    let mut ids = Vec::new();
    for (device, plan) in [("cam-o60", Some(60)), ("cam-o30", None), ("cam-o7", Some(7))] {
        let cid = schemas::DeviceId::parse(device).unwrap();
        // The device's plan is that of its latest start (today's); its old event's snapshot.
        let now = Timestamp::now();
        let start = |at| {
            let event_id = EventId::new(&cid, &motion, at, utc).unwrap();
            let r = EventStarted {
                cid: cid.clone(),
                event_id: event_id.clone(),
                event_type: motion.clone(),
                triggered_at: at,
                utc_offset: utc,
                clock_skew_ms: None,
                snapshot_size: None,
            };
            (event_id, Envelope::new(Report::EventStarted(r), now).with_retention(plan))
        };
        let (old, _) = start(forty_days_ago);
        let (_, today) = start(now.plus_millis(-60_000));
        seams::ProjectionStore::apply(store.as_ref(), &[today]).await.unwrap();
        ids.push(old);
    }
    let root = dir.path().join("objects");
    let keys: Vec<String> = ids.iter().map(|id| seams::ObjectKey::snapshot(id).as_str().to_owned()).collect();
    for key in &keys {
        let path = root.join("daybook").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"jpeg").unwrap();
    }
    let now = Timestamp::now();
    let handle = tokio::runtime::Handle::current();
    let s = store.clone();
    let oldest_for = move |cid: &str| {
        let cid = schemas::DeviceId::parse(cid).unwrap();
        handle.block_on(seams::oldest_object_day(s.as_ref(), &cid, &policy, now)).ok()
    };
    let (r, spared) = (root.clone(), std::collections::HashSet::new());
    let deleted =
        tokio::task::spawn_blocking(move || infra::s3_server::expire_objects(&r, "daybook", &oldest_for, &spared))
            .await
            .unwrap()
            .unwrap();
    let left: Vec<&String> = keys.iter().filter(|k| root.join("daybook").join(k).exists()).collect();
    assert_eq!(left, vec![&keys[0]], "only the 60-day device's snapshot is left");
    assert_eq!(deleted, 2);
}
