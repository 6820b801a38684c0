//! A fleet across time zones and wrong clocks, over HTTP against the in-process all-in-one:
//! each camera's events are filed under its own local day (docs/data-model.md), the
//! viewer's calendar and pages count in the camera's days and state its offset, a camera whose
//! clock runs fast loses nothing, and an event id has one spelling.

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::app::{spawn_app, spawn_app_with, TestApp};
use tests::client::Http;

fn at(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn media() -> Value {
    json!({"codec": "h264", "width": 1280, "height": 720, "fps": 15.0})
}

struct Camera {
    cid: String,
    dev: Http,
    viewer: Http,
}

impl Camera {
    fn new(app: &TestApp, cid: &str) -> Self {
        Self::with_token(app, cid, &app.device_token(cid))
    }

    fn with_token(app: &TestApp, cid: &str, token: &str) -> Self {
        Self {
            cid: cid.to_owned(),
            dev: Http::new(&app.http, token),
            viewer: Http::new(&app.http, &app.viewer_token(&[cid])),
        }
    }

    async fn start(&self, triggered_at: &str) -> Value {
        let (s, v) = self
            .dev
            .post(&format!("/v1/devices/{}/events", self.cid), &json!({"type": "motion", "triggered_at": triggered_at}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "start at {triggered_at}: {v}");
        v
    }

    async fn end(&self, id: &str, ended_at: &str) -> (StatusCode, Value) {
        self.dev
            .post(
                &format!("/v1/devices/{}/events/{id}/end", self.cid),
                &json!({"ended_at": ended_at, "status": "complete"}),
            )
            .await
    }

    async fn segment(&self, started_at: &str, events: Value) -> (StatusCode, Value) {
        let (s, up) = self
            .dev
            .post(
                &format!("/v1/devices/{}/segments/uploads", self.cid),
                &json!({"content_length": 1000, "content_type": "video/mp4"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{up}");
        self.dev
            .post(
                &format!("/v1/devices/{}/segments", self.cid),
                &json!({"segment_id": up["segment_id"], "size": 1000, "started_at": started_at, "duration_ms": 240000,
                        "media": media(), "events": events}),
            )
            .await
    }

    async fn page(&self, date: NaiveDate) -> Value {
        let (s, v) = self.viewer.get(&format!("/v1/devices/{}/events?date={date}&limit=100", self.cid)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Polls the day page until it lists `n` events (the projector is asynchronous).
    async fn wait_page(&self, date: NaiveDate, n: usize, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = self.page(date).await;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            if events.len() == n && done(&page) {
                return page;
            }
            assert!(Instant::now() < deadline, "{} on {date}: want {n} events, have {page}", self.cid);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn calendar(&self, days: u32) -> Value {
        let (s, v) = self.viewer.get(&format!("/v1/devices/{}/calendar?days={days}", self.cid)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

fn count_on(calendar: &Value, date: NaiveDate) -> u64 {
    calendar["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date.to_string())
        .map_or(0, |d| d["events"].as_u64().unwrap())
}

fn offset(minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(minutes * 60).unwrap()
}

/// The camera's local midnight starting `today - days_back`.
fn local_midnight(off: FixedOffset, days_back: i64) -> DateTime<FixedOffset> {
    let today = Utc::now().with_timezone(&off).date_naive();
    off.from_local_datetime(&(today - chrono::Duration::days(days_back)).and_hms_opt(0, 0, 0).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_either_side_of_local_midnight_land_on_their_local_days() {
    let app = spawn_app().await;
    for (cid, minutes, suffix) in
        [("cam-shanghai", 480, "+08:00"), ("cam-la", -480, "-08:00"), ("cam-nepal", 345, "+05:45")]
    {
        let cam = Camera::new(&app, cid);
        let off = offset(minutes);
        let midnight = local_midnight(off, 1);
        let before = cam.start(&at(midnight - chrono::Duration::minutes(4))).await;
        let after = cam.start(&at(midnight + chrono::Duration::minutes(4))).await;
        let (yesterday, day_before) = (midnight.date_naive(), midnight.date_naive() - chrono::Duration::days(1));
        let compact = |d: NaiveDate| d.format("%Y%m%d").to_string();
        let id_before = before["event_id"].as_str().unwrap();
        let id_after = after["event_id"].as_str().unwrap();
        assert!(id_before.starts_with(&compact(day_before)), "{cid}: {id_before}");
        assert!(id_after.starts_with(&compact(yesterday)), "{cid}: {id_after}");
        let compact_offset = suffix.replace(':', "");
        assert!(id_after.contains(&format!("{compact_offset}.motion")), "{cid}: the id carries the offset: {id_after}");

        // A late report for yesterday, after local midnight: filed under yesterday.
        let today_midnight = local_midnight(off, 0);
        let late = cam.start(&at(today_midnight - chrono::Duration::minutes(10))).await;
        assert!(late["event_id"].as_str().unwrap().starts_with(&compact(yesterday)), "{late}");

        let page = cam.wait_page(yesterday, 2, |_| true).await;
        assert_eq!(page["utc_offset"], suffix, "{page}");
        for e in page["events"].as_array().unwrap() {
            assert!(e["triggered_at"].as_str().unwrap().ends_with(suffix), "times are labelled: {e}");
            assert_eq!(e["utc_offset"], suffix);
        }
        cam.wait_page(day_before, 1, |_| true).await;
        let cal = cam.calendar(30).await;
        assert_eq!(cal["utc_offset"], suffix, "{cal}");
        assert_eq!(cal["today"], today_midnight.date_naive().to_string(), "the camera's today: {cal}");
        assert_eq!(cal["days"][0]["date"], cal["today"]);
        assert_eq!(count_on(&cal, yesterday), 2, "{cal}");
        assert_eq!(count_on(&cal, day_before), 1, "{cal}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_and_a_segment_at_other_offsets_stay_with_their_event() {
    let app = spawn_app().await;
    let cam = Camera::new(&app, "cam-traveller");
    let midnight = local_midnight(offset(480), 1);
    let start = cam.start(&at(midnight + chrono::Duration::minutes(2))).await;
    let id = start["event_id"].as_str().unwrap().to_owned();
    let earlier = cam.start(&at(midnight - chrono::Duration::minutes(2))).await;
    let earlier_id = earlier["event_id"].as_str().unwrap().to_owned();
    // The end comes from a clock set to −08:00 (its local date is the day before), the
    // segment in UTC; the segment starts before local midnight and spans it.
    let end_at = (midnight + chrono::Duration::minutes(3)).with_timezone(&offset(-480));
    let (s, v) = cam.end(&id, &at(end_at)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let seg_at = (midnight - chrono::Duration::minutes(3)).with_timezone(&Utc);
    let (s, v) = cam
        .segment(
            &utc(seg_at),
            json!([{"event_id": earlier_id, "index": 0, "start_offset": 0, "end_offset": 500},
                   {"event_id": id, "index": 0, "start_offset": 500, "end_offset": 1000}]),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");

    let day = midnight.date_naive();
    let page = cam.wait_page(day, 1, |p| p["events"][0]["status"] == "complete").await;
    assert_eq!(page["events"][0]["event_id"], id.as_str(), "one event, on the start's day: {page}");
    assert_eq!(page["events"][0]["triggered_at"], at(midnight + chrono::Duration::minutes(2)));
    assert_eq!(page["events"][0]["ended_at"], at(midnight + chrono::Duration::minutes(3)), "at the event's offset");
    cam.wait_page(day - chrono::Duration::days(1), 1, |_| true).await;
    for event in [&id, &earlier_id] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, detail) = cam.viewer.get(&format!("/v1/events/{event}")).await;
            if s == StatusCode::OK && detail["segments"].as_array().is_some_and(|s| s.len() == 1) {
                assert!(detail["segments"][0]["started_at"].as_str().unwrap().ends_with("+08:00"), "{detail}");
                break;
            }
            assert!(Instant::now() < deadline, "the segment spanning midnight maps into {event}: {detail}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_los_angeles_camera_across_daylight_saving_changes() {
    // A longer retention keeps 2026's two changes in reach whatever day the test runs on.
    let app = spawn_app_with(|c| c.policy.retention_days = 1000).await;
    let token = app.device_token_in("cam-pacific", "America/Los_Angeles");
    let cam = Camera::with_token(&app, "cam-pacific", &token);
    let z = |s: &str| utc(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
    // 1 Nov 2026 has 25 hours (PDT −07:00 until 02:00, then PST −08:00); 8 Mar 2026 has 23.
    // Every time is sent as `Z`: the token's zone decides the day, daylight saving included.
    let cases = [
        ("2026-11-01T06:30:00Z", "20261031", "-0700"),
        ("2026-11-01T07:30:00Z", "20261101", "-0700"),
        ("2026-11-02T07:30:00Z", "20261101", "-0800"),
        ("2026-11-02T08:30:00Z", "20261102", "-0800"),
        ("2026-03-08T07:30:00Z", "20260307", "-0800"),
        ("2026-03-08T08:30:00Z", "20260308", "-0800"),
        ("2026-03-09T06:30:00Z", "20260308", "-0700"),
        ("2026-03-09T07:30:00Z", "20260309", "-0700"),
    ];
    for (t, day, off) in cases {
        let v = cam.start(&z(t)).await;
        let id = v["event_id"].as_str().unwrap();
        assert!(id.starts_with(day) && id.contains(&format!("{off}.motion")), "{t}: {id}");
    }
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let long = cam.wait_page(date("2026-11-01"), 2, |_| true).await;
    let offsets: Vec<&str> =
        long["events"].as_array().unwrap().iter().map(|e| e["utc_offset"].as_str().unwrap()).collect();
    assert_eq!(offsets, ["-07:00", "-08:00"], "{long}");
    let short = cam.wait_page(date("2026-03-08"), 2, |_| true).await;
    let offsets: Vec<&str> =
        short["events"].as_array().unwrap().iter().map(|e| e["utc_offset"].as_str().unwrap()).collect();
    assert_eq!(offsets, ["-08:00", "-07:00"], "{short}");
    for d in ["2026-10-31", "2026-11-02", "2026-03-07", "2026-03-09"] {
        cam.wait_page(date(d), 1, |_| true).await;
    }
    let cal = cam.calendar(366).await;
    assert_eq!(count_on(&cal, date("2026-11-01")), 2, "{cal}");
    assert_eq!(count_on(&cal, date("2026-03-08")), 2, "{cal}");
    assert_eq!(cal["utc_offset"], "-08:00", "the offset of its latest event: {}", cal["utc_offset"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_clocks_lose_nothing() {
    let app = spawn_app().await;
    for (cid, ahead) in [("cam-10min", chrono::Duration::minutes(10)), ("cam-2days", chrono::Duration::days(2))] {
        let cam = Camera::new(&app, cid);
        let claim = Utc::now() + ahead;
        let v = cam.start(&utc(claim)).await;
        let skew = v["clock_skew_ms"].as_i64().unwrap_or_else(|| panic!("{cid}: the answer states the skew: {v}"));
        assert!((skew - ahead.num_milliseconds()).abs() < 10_000, "{cid}: {skew}");
        let id = v["event_id"].as_str().unwrap().to_owned();
        let today = Utc::now().date_naive();
        assert!(id.starts_with(&today.format("%Y%m%d").to_string()), "{cid}: filed on the server's day: {id}");
        let (s, end) = cam.end(&id, &utc(claim + chrono::Duration::seconds(5))).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{end}");
        assert!(end["clock_skew_ms"].as_i64().is_some(), "{end}");
        let (s, seg) = cam
            .segment(&utc(claim), json!([{"event_id": id, "index": 0, "start_offset": 0, "end_offset": 1000}]))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{seg}");
        assert!(seg["clock_skew_ms"].as_i64().is_some(), "{seg}");

        let page = cam.wait_page(today, 1, |p| p["events"][0]["status"] == "complete").await;
        let e = &page["events"][0];
        assert_eq!(e["event_id"], id.as_str());
        assert_eq!(e["clock_skew_ms"].as_i64(), Some(skew), "the event is marked: {e}");
        assert_eq!(e["triggered_at"], utc(claim).as_str(), "the claimed time is kept: {e}");
        let (_, detail) = cam.viewer.get(&format!("/v1/events/{id}")).await;
        assert_eq!(detail["clock_skew_ms"].as_i64(), Some(skew), "{detail}");
    }
    // Only a time older than retention is still refused.
    let cam = Camera::new(&app, "cam-old");
    let (s, v) = cam
        .dev
        .post(
            "/v1/devices/cam-old/events",
            &json!({"type": "motion", "triggered_at": utc(Utc::now() - chrono::Duration::days(31))}),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_spelling_of_an_event_id_is_refused_and_creates_no_phantom() {
    let app = spawn_app().await;
    let cam = Camera::new(&app, "cam-1");
    let t = Utc::now() - chrono::Duration::minutes(5);
    let v = cam.start(&utc(t)).await;
    let id = v["event_id"].as_str().unwrap().to_owned();
    let ms = t.timestamp_millis();
    let day = t.format("%Y%m%d");
    assert_eq!(id, format!("{day}.cam-1.{ms}.motion"), "a `Z` start keeps the version 1 form");
    let code = |v: &Value| v["error"]["code"].as_str().map(str::to_owned);
    for other in [
        "20261122.cam-1.01795362627000.motion".to_owned(),
        format!("{day}.cam-1.0{ms}.motion"),
        format!("{day}.cam-1.00{ms}.motion"),
        format!("{day}.cam-1.{ms}-0000.motion"),
        format!("{day}.cam-1.{ms}+00:00.motion"),
    ] {
        let (s, v) = cam.end(&other, &utc(t + chrono::Duration::seconds(3))).await;
        assert_eq!(
            (s, code(&v).as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_event_id")),
            "{other}: {v}"
        );
        let (s, v) =
            cam.segment(&utc(t), json!([{"event_id": other, "index": 0, "start_offset": 0, "end_offset": 10}])).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY, "segment naming {other}: {s} {v}");
    }
    // The batch path refuses it too, item by item.
    let (s, v) = cam
        .dev
        .post(
            "/v1/devices/cam-1/reports",
            &json!([{"kind": "event_end", "event_id": format!("{day}.cam-1.0{ms}.motion"), "ended_at": utc(t), "status": "complete"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    let (s, v) = cam.end(&id, &utc(t + chrono::Duration::seconds(3))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let page = cam.wait_page(t.date_naive(), 1, |p| p["events"][0]["status"] == "complete").await;
    assert_eq!(page["events"][0]["event_id"], id.as_str(), "one event, ended: {page}");
    let cal = cam.calendar(30).await;
    assert_eq!(count_on(&cal, t.date_naive()), 1, "{cal}");
}
