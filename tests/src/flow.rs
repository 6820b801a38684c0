//! The device → viewer flow of the contracts (docs/device-api.md, docs/viewer-api.md), reusable against any deployment
//! (embedded, Kafka, ScyllaDB): act as a device, then check everything as a viewer.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::client::{download, presigned, Http};

/// What the device side did, to check as a viewer (again after a restart).
#[derive(Debug, Clone)]
pub struct Expect {
    /// The device.
    pub cid: String,
    /// Event ids of today, in trigger order.
    pub today: Vec<String>,
    /// The late event (3 days ago).
    pub late: String,
    /// Event A: two segments (its index 0 and 1), the second shared with B.
    pub a: String,
    /// Event B: the shared segment is its index 0.
    pub b: String,
    /// Event C: its end arrived before its start.
    pub c: String,
    /// Segment bodies by id.
    pub segments: Vec<(String, Vec<u8>)>,
    /// Snapshot of A.
    pub snapshot: Vec<u8>,
    /// The digest's date and body.
    pub digest: (String, Vec<u8>),
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A time of today at least a minute in the past.
pub fn today_noonish() -> chrono::DateTime<Utc> {
    // Events "today" at least a minute in the past and never across midnight: stay within
    // today whatever time the test runs.
    let now = Utc::now();
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    (now - chrono::Duration::minutes(30)).max(midnight + chrono::Duration::seconds(1))
}

/// Starts an event as device `cid` (201); the answer.
pub async fn start_event(dev: &Http, cid: &str, kind: &str, at: chrono::DateTime<Utc>) -> Value {
    let (status, body) =
        dev.post(&format!("/v1/devices/{cid}/events"), &json!({"type": kind, "triggered_at": ts(at)})).await;
    assert_eq!(status, StatusCode::CREATED, "start event: {body}");
    body
}

async fn end_event(dev: &Http, cid: &str, id: &str, at: chrono::DateTime<Utc>, status: &str) {
    let (s, body) =
        dev.post(&format!("/v1/devices/{cid}/events/{id}/end"), &json!({"ended_at": ts(at), "status": status})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "end event: {body}");
}

/// Uploads a segment the way a device does (an upload URL, then a PUT); its id.
pub async fn upload_segment(dev: &Http, cid: &str, bytes: &[u8]) -> String {
    let (status, up) = dev
        .post(
            &format!("/v1/devices/{cid}/segments/uploads"),
            &json!({"content_length": bytes.len(), "content_type": "video/mp4"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "segment upload url: {up}");
    let resp = presigned(&up["upload"], bytes.to_vec()).await;
    assert!(resp.status().is_success(), "segment PUT: {}", resp.status());
    up["segment_id"].as_str().unwrap().to_owned()
}

fn media() -> Value {
    json!({"codec": "h264", "width": 1280, "height": 720, "fps": 15.0, "audio_sample_rate": 8000})
}

/// Acts as device `cid`: events (one late, one ended before started), snapshot, segments
/// whose mapping spans two events, a digest, and a dozen more events to page through.
pub async fn act_as_device(dev: &Http, cid: &str) -> Expect {
    let t0 = today_noonish();
    let again = start_event(dev, cid, "motion", t0).await;
    // Stating the snapshot's size, as devices should: its upload is signed for that length, and
    // it counts in storage used.
    let snapshot = b"\xff\xd8\xff\xe0 jpeg snapshot".to_vec();
    let body = json!({"type": "motion", "triggered_at": ts(t0), "snapshot_size": snapshot.len()});
    let (status, a) = dev.post(&format!("/v1/devices/{cid}/events"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "start event: {a}");
    let a_id = a["event_id"].as_str().unwrap().to_owned();
    assert!(a_id.starts_with(&t0.format("%Y%m%d").to_string()), "event id starts with the day: {a_id}");
    assert_eq!(again["event_id"], a["event_id"], "same (cid, type, triggered_at) → same id");

    let resp = presigned(&a["snapshot_upload"], snapshot.clone()).await;
    assert!(resp.status().is_success(), "snapshot PUT: {}", resp.status());

    let b = start_event(dev, cid, "person", t0 + chrono::Duration::seconds(8)).await;
    let b_id = b["event_id"].as_str().unwrap().to_owned();

    let seg1: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let seg2: Vec<u8> = (0..4000u32).map(|i| (i % 241) as u8).collect();
    let s1 = upload_segment(dev, cid, &seg1).await;
    let s2 = upload_segment(dev, cid, &seg2).await;
    // Segment 2 holds the end of A and the start of B.
    let (st, body) = dev
        .post(
            &format!("/v1/devices/{cid}/segments"),
            &json!({"segment_id": s2, "size": seg2.len(), "started_at": ts(t0 + chrono::Duration::seconds(5)), "duration_ms": 10000,
                    "media": media(), "keyframes": [0, 2000],
                    "events": [{"event_id": a_id, "index": 1, "start_offset": 0, "end_offset": 1500},
                               {"event_id": b_id, "index": 0, "start_offset": 1200, "end_offset": 4000}]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "segment report: {body}");
    let (st, body) = dev
        .post(
            &format!("/v1/devices/{cid}/segments"),
            &json!({"segment_id": s1, "size": seg1.len(), "started_at": ts(t0 - chrono::Duration::seconds(5)), "duration_ms": 10000,
                    "media": media(), "events": [{"event_id": a_id, "index": 0, "start_offset": 500, "end_offset": 3000}]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "segment report: {body}");
    end_event(dev, cid, &a_id, t0 + chrono::Duration::seconds(12), "complete").await;
    end_event(dev, cid, &b_id, t0 + chrono::Duration::seconds(20), "aborted").await;

    // An offline device: the end of C arrives before its start, in one backlog batch (NDJSON).
    let tc = t0 + chrono::Duration::seconds(30);
    let c_id = format!("{}.{cid}.{}.sound", tc.format("%Y%m%d"), tc.timestamp_millis());
    let ndjson = format!(
        "{}\n{}\n",
        json!({"kind": "event_end", "event_id": c_id, "ended_at": ts(tc + chrono::Duration::seconds(3)), "status": "complete"}),
        json!({"kind": "event_start", "type": "sound", "triggered_at": ts(tc)})
    );
    let (st, body) = dev.post_raw(&format!("/v1/devices/{cid}/reports"), ndjson).await;
    assert_eq!(st, StatusCode::OK, "batch: {body}");
    assert_eq!(body["accepted"], 2, "batch: {body}");
    assert_eq!(body["results"][1]["event_id"], c_id.as_str(), "batch start gives the id: {body}");

    // A late event: triggered three days ago, reported now.
    let late_at = Utc::now() - chrono::Duration::days(3);
    let late = start_event(dev, cid, "motion", late_at).await;
    let late_id = late["event_id"].as_str().unwrap().to_owned();
    end_event(dev, cid, &late_id, late_at + chrono::Duration::seconds(4), "complete").await;

    // Enough events today to page past 10.
    let mut today = vec![(t0, a_id.clone()), (t0 + chrono::Duration::seconds(8), b_id.clone()), (tc, c_id.clone())];
    for i in 0..12 {
        let at = t0 + chrono::Duration::seconds(40 + i);
        let e = start_event(dev, cid, "motion", at).await;
        today.push((at, e["event_id"].as_str().unwrap().to_owned()));
    }
    today.sort();

    // Yesterday's digest.
    let digest: Vec<u8> = b"digest video".repeat(50);
    let (st, up) = dev
        .post(
            &format!("/v1/devices/{cid}/digests/uploads"),
            &json!({"content_length": digest.len(), "content_type": "video/mp4"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "digest upload url: {up}");
    assert!(up["window"]["start"].is_string() && up["window"]["end"].is_string(), "slot: {up}");
    assert!(presigned(&up["upload"], digest.clone()).await.status().is_success());
    let date = (Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let (st, body) = dev
        .post(
            &format!("/v1/devices/{cid}/digests"),
            &json!({"date": date, "segment_id": up["segment_id"], "size": digest.len(), "duration_ms": 60000}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "digest report: {body}");

    Expect {
        cid: cid.to_owned(),
        today: today.into_iter().map(|t| t.1).collect(),
        late: late_id,
        a: a_id,
        b: b_id,
        c: c_id,
        segments: vec![(s1, seg1), (s2, seg2)],
        snapshot,
        digest: (date, digest),
    }
}

/// Checks the bad-input contract: the right status, a JSON error, and nothing written.
pub async fn refuse_bad_input(dev: &Http, cid: &str, other_device_token: &str) {
    let events = format!("/v1/devices/{cid}/events");
    let now = ts(Utc::now());
    let code = |v: &Value| v["error"]["code"].as_str().map(str::to_owned);
    let (s, v) = dev.post_raw(&events, "{\"type\": ").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(code(&v).is_some());
    let (s, v) = dev.with_token("not-a-jwt").post(&events, &json!({"type": "motion", "triggered_at": now})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) =
        dev.with_token(other_device_token).post(&events, &json!({"type": "motion", "triggered_at": now})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = dev.post_raw(&events, vec![b' '; 300 * 1024]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let old = ts(Utc::now() - chrono::Duration::days(31));
    let (s, v) = dev.post(&events, &json!({"type": "motion", "triggered_at": old})).await;
    assert_eq!((s, code(&v).as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("past_retention")), "{v}");
    // A fast clock's event is kept (tests/tests/time_zones.rs); a digest of a day that has
    // not begun is not.
    let future = (Utc::now() + chrono::Duration::days(3)).format("%Y-%m-%d").to_string();
    let (s, v) = dev
        .post(
            &format!("/v1/devices/{cid}/digests"),
            &json!({"date": future, "segment_id": "dg-x", "size": 10, "duration_ms": 1000}),
        )
        .await;
    assert_eq!((s, code(&v).as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("in_future")), "{v}");
    let (s, v) = dev
        .post(&format!("/v1/devices/{cid}/events/not-an-id/end"), &json!({"ended_at": now, "status": "complete"}))
        .await;
    assert_eq!((s, code(&v).as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_event_id")), "{v}");
    let t = Utc::now() - chrono::Duration::minutes(1);
    let id = format!("{}.{cid}.{}.motion", t.format("%Y%m%d"), t.timestamp_millis());
    let (s, v) = dev
        .post(
            &format!("/v1/devices/{cid}/segments"),
            &json!({"segment_id": "x1", "size": 100, "started_at": ts(t), "duration_ms": 1000, "media": media(),
                    "events": [{"event_id": id, "index": 0, "start_offset": 50, "end_offset": 101}]}),
        )
        .await;
    assert_eq!((s, code(&v).as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_offsets")), "{v}");
    // An index past the per-event cap (2^31 once halted the ScyllaDB projector for good).
    for index in [2048_u64, 1 << 31] {
        let (s, v) = dev
            .post(
                &format!("/v1/devices/{cid}/segments"),
                &json!({"segment_id": "x1", "size": 100, "started_at": ts(t), "duration_ms": 1000, "media": media(),
                        "events": [{"event_id": id, "index": index, "start_offset": 0, "end_offset": 100}]}),
            )
            .await;
        assert_eq!((s, code(&v).as_deref()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_mapping")), "{v}");
    }
}

/// Waits until the projections show everything the device did (the projector is asynchronous).
pub async fn wait_projected(viewer: &Http, e: &Expect, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (s, cal) = viewer.get(&format!("/v1/devices/{}/calendar?days=30", e.cid)).await;
        assert_eq!(s, StatusCode::OK, "{cal}");
        let today = cal["days"][0]["events"].as_u64().unwrap_or(0);
        let (_, detail) = viewer.get(&format!("/v1/events/{}", e.a)).await;
        let (ds, _) = viewer.get(&format!("/v1/devices/{}/digests/{}", e.cid, e.digest.0)).await;
        if today as usize == e.today.len()
            && detail["segments"].as_array().is_some_and(|s| s.len() == 2)
            && ds == StatusCode::OK
        {
            return;
        }
        assert!(Instant::now() < deadline, "projections incomplete after {timeout:?}: calendar {cal}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks every viewer endpoint against what the device did.
pub async fn check_as_viewer(viewer: &Http, e: &Expect) {
    let cid = &e.cid;
    let (s, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar?days=30")).await;
    assert_eq!(s, StatusCode::OK);
    let days = cal["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "one entry per day");
    let dates: Vec<&str> = days.iter().map(|d| d["date"].as_str().unwrap()).collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert_eq!(days[0]["events"].as_u64().unwrap() as usize, e.today.len());
    assert_eq!(days[3]["events"], 1, "the late event lands 3 days back: {cal}");
    assert_eq!(days.iter().map(|d| d["events"].as_u64().unwrap()).sum::<u64>() as usize, e.today.len() + 1);
    // Storage used: each segment once (the shared one too), on the day it started, and A's
    // snapshot by the size its start stated.
    let stored: u64 = e.segments.iter().map(|(_, body)| body.len() as u64).sum::<u64>() + e.snapshot.len() as u64;
    assert_eq!(days.iter().map(|d| d["bytes"].as_u64().unwrap()).sum::<u64>(), stored, "{cal}");
    check_usage(viewer, cid, stored).await;

    // Page through today 10 at a time.
    let date = &dates[0];
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let (s, page) = viewer.get(&format!("/v1/devices/{cid}/events?date={date}&cursor={cursor}")).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 10);
        seen.extend(events.iter().map(|ev| ev["event_id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, e.today, "pages in trigger order, nothing lost or repeated");
    assert!(pages >= 2);
    let (s, _) = viewer.get(&format!("/v1/devices/{cid}/events?date={date}&limit=100000")).await;
    assert_eq!(s, StatusCode::OK, "limit is capped, not refused");

    // Event A: its two segments in index order, with working presigned URLs.
    let (s, a) = viewer.get(&format!("/v1/events/{}", e.a)).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["status"], "complete");
    assert_eq!(a["duration_ms"], 12_000);
    let segs = a["segments"].as_array().unwrap();
    assert_eq!(segs.iter().map(|s| s["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(segs[0]["segment_id"].as_str().unwrap(), e.segments[0].0);
    assert_eq!(segs[1]["segment_id"].as_str().unwrap(), e.segments[1].0);
    assert_eq!((segs[1]["start_offset"].as_u64(), segs[1]["end_offset"].as_u64()), (Some(0), Some(1500)));
    for (seg, (_, body)) in segs.iter().zip(&e.segments) {
        let (s, got) = download(seg["url"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&got, body, "segment bytes come back");
    }
    // The same detail one segment per page.
    let (s, p1) = viewer.get(&format!("/v1/events/{}?limit=1", e.a)).await;
    assert_eq!(s, StatusCode::OK, "{p1}");
    assert_eq!(p1["segments"].as_array().map(Vec::len), Some(1), "{p1}");
    let cursor = p1["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, p2) = viewer.get(&format!("/v1/events/{}?limit=1&cursor={cursor}", e.a)).await;
    assert_eq!(p2["segments"][0]["index"], 1, "{p2}");
    assert!(p2["next_cursor"].is_null(), "{p2}");
    assert!(a["next_cursor"].is_null(), "one page holds both: {a}");
    let (s, _) = viewer.get(&format!("/v1/events/{}?cursor=nope", e.a)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, snap) = download(a["snapshot_url"].as_str().unwrap()).await;
    assert_eq!((s, snap), (StatusCode::OK, e.snapshot.clone()));

    // Event B shares segment 2 as its index 0.
    let (_, b) = viewer.get(&format!("/v1/events/{}", e.b)).await;
    assert_eq!(b["status"], "aborted");
    assert_eq!(b["segments"][0]["segment_id"].as_str().unwrap(), e.segments[1].0);
    assert_eq!(b["segments"][0]["start_offset"], 1200);

    // C's end came first and is merged with its start.
    let (_, c) = viewer.get(&format!("/v1/events/{}", e.c)).await;
    assert_eq!(
        (c["status"].as_str(), c["type"].as_str(), c["duration_ms"].as_i64()),
        (Some("complete"), Some("sound"), Some(3000)),
        "{c}"
    );

    let (s, late) = viewer.get(&format!("/v1/events/{}", e.late)).await;
    assert_eq!((s, late["status"].as_str()), (StatusCode::OK, Some("complete")));

    let (s, d) = viewer.get(&format!("/v1/devices/{cid}/digests/{}", e.digest.0)).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let (s, body) = download(d["url"].as_str().unwrap()).await;
    assert_eq!((s, body), (StatusCode::OK, e.digest.1.clone()));
}

/// `GET /v1/devices/{cid}/usage`: `stored` bytes in all, one entry per day of the window, the
/// days' figures the calendar's.
pub async fn check_usage(viewer: &Http, cid: &str, stored: u64) {
    let (s, usage) = viewer.get(&format!("/v1/devices/{cid}/usage")).await;
    assert_eq!(s, StatusCode::OK, "{usage}");
    assert_eq!(usage["bytes"].as_u64(), Some(stored), "{usage}");
    let days = usage["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "the default window: {usage}");
    assert_eq!(days.iter().map(|d| d["bytes"].as_u64().unwrap()).sum::<u64>(), stored, "{usage}");
    let (_, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar")).await;
    for (u, c) in days.iter().zip(cal["days"].as_array().unwrap()) {
        assert_eq!((&u["date"], &u["bytes"]), (&c["date"], &c["bytes"]), "usage and calendar agree");
    }
    let (s, one) = viewer.get(&format!("/v1/devices/{cid}/usage?days=1")).await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["days"].as_array().map(Vec::len), Some(1), "{one}");
    let (s, body) = viewer.get(&format!("/v1/devices/{cid}/usage?days=0")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
}

/// Viewer-side refusals: other devices' data, malformed ids and cursors, missing things.
pub async fn refuse_bad_viewer_input(viewer: &Http, e: &Expect, other_device: &str) {
    let (s, _) = viewer.get(&format!("/v1/devices/{other_device}/calendar")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = viewer.get(&format!("/v1/devices/{other_device}/usage")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another device's usage");
    let (s, _) = viewer.with_token("forged").get(&format!("/v1/devices/{}/usage", e.cid)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = viewer.with_token("forged").get(&format!("/v1/devices/{}/calendar", e.cid)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = viewer.get("/v1/events/garbage").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let foreign = e.a.replacen(&format!(".{}.", e.cid), &format!(".{other_device}."), 1);
    let (s, _) = viewer.get(&format!("/v1/events/{foreign}")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another device's event");
    let (s, _) = viewer.get(&format!("/v1/devices/{}/events?date=2026-13-01", e.cid)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = viewer.get(&format!("/v1/devices/{}/events?date=2026-01-01&cursor=bogus", e.cid)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = viewer.get(&format!("/v1/devices/{}/digests/2020-01-01", e.cid)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The clients of [`Owners`], owned.
#[derive(Debug)]
pub struct OwnerClients {
    /// May read the device, not manage it.
    pub reader: Http,
    /// May manage another device only.
    pub stranger: Http,
    /// May manage the device.
    pub manager: Http,
    /// The device's own token.
    pub device: Http,
}

impl OwnerClients {
    /// Borrowed, as the owner's flows take them.
    pub fn owners(&self) -> Owners<'_> {
        Owners { reader: &self.reader, stranger: &self.stranger, manager: &self.manager, device: &self.device }
    }
}

/// What [`delete_as_owner`] needs besides the device's [`Expect`]: a read-only viewer of the
/// device, a viewer of another device, a managing viewer of the device, the device itself.
#[derive(Debug)]
pub struct Owners<'a> {
    /// May read the device, not manage it.
    pub reader: &'a Http,
    /// May manage another device only.
    pub stranger: &'a Http,
    /// May manage the device (scope `manage`).
    pub manager: &'a Http,
    /// The device's own token.
    pub device: &'a Http,
}

/// The owner deletes event A (docs/viewer-api.md, Deleting an event): 403 for every token
/// that may not manage the device, 202 for one that may; once projected, A leaves the day page,
/// its detail and the calendar's count (by exactly one), its snapshot and the segment only it
/// mapped are deleted from the object store (their presigned URLs answer 404) while the segment
/// B shares stays; a segment of A reported after the deletion does not bring it back; a second
/// deletion of it is 404. Returns `e` without A.
pub async fn delete_as_owner(o: &Owners<'_>, e: &Expect, timeout: Duration) -> Expect {
    let path = format!("/v1/events/{}", e.a);
    let (s, detail) = o.manager.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{detail}");
    let snapshot_url = detail["snapshot_url"].as_str().unwrap().to_owned();
    let urls: Vec<(String, String)> = detail["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["segment_id"].as_str().unwrap().to_owned(), s["url"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(download(&snapshot_url).await.0, StatusCode::OK);
    let only_a = &e.segments[0].0;
    let shared = &e.segments[1].0;

    for (who, http) in
        [("a read-only viewer", o.reader), ("another camera's viewer", o.stranger), ("the device", o.device)]
    {
        let (s, body) = http.delete(&path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
        assert_eq!(body["error"]["code"], "forbidden", "{who}: {body}");
    }
    let (s, body) = o.manager.delete("/v1/events/not-an-id").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, body) = o.manager.delete(&path).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": true, "event_id": e.a}));

    // Projected: gone from every read, the count one lower.
    let day = &e.a[..8];
    let date = format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]);
    let deadline = Instant::now() + timeout;
    loop {
        let (s, _) = o.manager.get(&path).await;
        if s == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "the deletion of {} is not projected after {timeout:?}", e.a);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut rest = e.clone();
    rest.today.retain(|id| id != &e.a);
    let (_, cal) = o.reader.get(&format!("/v1/devices/{}/calendar?days=30", e.cid)).await;
    assert_eq!(cal["days"][0]["date"], date.as_str(), "{cal}");
    assert_eq!(cal["days"][0]["events"].as_u64(), Some(rest.today.len() as u64), "{cal}");
    let listed = list_day(o.reader, &e.cid, &date).await;
    assert_eq!(listed, rest.today, "the day page lists every event but the deleted one");
    let (s, b) = o.reader.get(&format!("/v1/events/{}", e.b)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["segments"].as_array().map(Vec::len), Some(1), "B keeps the segment it shares: {b}");

    // The objects only A had go; the shared one stays.
    loop {
        let gone = download(&snapshot_url).await.0 == StatusCode::NOT_FOUND;
        let only = urls.iter().find(|(id, _)| id == only_a).unwrap();
        if gone && download(&only.1).await.0 == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "A's objects are still there after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = urls.iter().find(|(id, _)| id == shared).unwrap();
    assert_eq!(download(&kept.1).await.0, StatusCode::OK, "the segment B maps is kept");

    // A segment of A reported after its deletion: A stays deleted.
    let late = upload_segment(o.device, &e.cid, b"late bytes").await;
    let (st, body) = o
        .device
        .post(
            &format!("/v1/devices/{}/segments", e.cid),
            &json!({"segment_id": late, "size": 10, "started_at": ts(Utc::now() - chrono::Duration::seconds(1)),
                    "duration_ms": 1000, "media": media(),
                    "events": [{"event_id": e.a, "index": 2, "start_offset": 0, "end_offset": 10}]}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    // Projected in log order after it: an event of B's reported after it shows once it is.
    let (st, body) = o
        .device
        .post(
            &format!("/v1/devices/{}/events/{}/end", e.cid, e.b),
            &json!({"ended_at": ts(Utc::now()), "status": "complete"}),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    loop {
        let (_, b) = o.reader.get(&format!("/v1/events/{}", e.b)).await;
        if b["status"] == "complete" {
            break;
        }
        assert!(Instant::now() < deadline, "B's new end is not projected after {timeout:?}: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(o.manager.get(&path).await.0, StatusCode::NOT_FOUND, "a late segment does not resurrect A");
    // Storage used: A's snapshot, its own segment and the late one (it maps only A) are purged
    // and no longer counted; the shared one is.
    check_usage(o.reader, &e.cid, e.segments[1].1.len() as u64).await;
    for (who, http) in [("another camera's viewer", o.stranger), ("the device", o.device)] {
        let (s, body) = http.get(&format!("/v1/devices/{}/usage", e.cid)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
    }
    assert_eq!(list_day(o.reader, &e.cid, &date).await, rest.today);
    let (s, body) = o.manager.delete(&path).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "deleted already: {body}");
    rest
}

/// Every event id the day page lists for `date`, page after page.
pub async fn list_day(viewer: &Http, cid: &str, date: &str) -> Vec<String> {
    list_ids(viewer, &format!("/v1/devices/{cid}/events?date={date}&limit=100")).await
}

/// Every event id a paged listing (`path`, without its cursor) answers, page after page.
async fn list_ids(viewer: &Http, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let (s, page) = viewer.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        out.extend(page["events"].as_array().unwrap().iter().map(|e| e["event_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Removes what differs between two servers answering the same thing: presigned URLs.
pub fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "url" | "snapshot_url"))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// Everything a viewer can read about `e`'s device: calendar, every day page, every event's
/// detail (URLs removed).
pub async fn answers(viewer: &Http, e: &Expect) -> Value {
    let cid = &e.cid;
    let (s, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar?days=30")).await;
    assert_eq!(s, StatusCode::OK, "{cal}");
    let (s, usage) = viewer.get(&format!("/v1/devices/{cid}/usage?days=30")).await;
    assert_eq!(s, StatusCode::OK, "{usage}");
    let mut out = json!({"calendar": strip(&cal), "usage": usage});
    for day in cal["days"].as_array().unwrap().iter().filter(|d| d["events"].as_u64() > Some(0)) {
        let date = day["date"].as_str().unwrap();
        let (s, page) = viewer.get(&format!("/v1/devices/{cid}/events?date={date}&limit=100")).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for ev in page["events"].as_array().unwrap() {
            let id = ev["event_id"].as_str().unwrap();
            let (s, detail) = viewer.get(&format!("/v1/events/{id}?limit=200")).await;
            assert_eq!(s, StatusCode::OK, "{detail}");
            out["events"][id] = strip(&detail);
        }
        out["days"][date] = strip(&page);
    }
    let (s, digest) = viewer.get(&format!("/v1/devices/{cid}/digests/{}", e.digest.0)).await;
    assert_eq!(s, StatusCode::OK, "{digest}");
    out["digest"] = strip(&digest);
    out
}

/// The ids `GET /v1/devices/{cid}/kept` lists, page after page (pages of 1, to walk the
/// cursor).
pub async fn list_kept(viewer: &Http, cid: &str) -> Vec<String> {
    list_ids(viewer, &format!("/v1/devices/{cid}/kept?limit=1")).await
}

/// Waits until the kept list of `cid` is `want`.
pub async fn wait_kept(viewer: &Http, cid: &str, want: &[&str], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let kept = list_kept(viewer, cid).await;
        if kept == want {
            return;
        }
        assert!(Instant::now() < deadline, "kept {kept:?}, not {want:?}, after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The owner keeps events (docs/viewer-api.md, Keeping an event), on a deployment whose cap is
/// two kept events per device: 403 for every token that may not manage the device (and the
/// kept list for one that may not read it), 202 for one that may; once projected, A is listed
/// as kept and marked on its day page and detail; a third keep is 409 `kept_limit` while
/// re-keeping one is not; an un-keep frees its place. Leaves A and C kept.
pub async fn keep_as_owner(o: &Owners<'_>, e: &Expect, timeout: Duration) {
    let keep = |id: &str| format!("/v1/events/{id}/keep");
    for (who, http) in
        [("a read-only viewer", o.reader), ("another camera's viewer", o.stranger), ("the device", o.device)]
    {
        for (s, body) in [http.put(&keep(&e.a)).await, http.delete(&keep(&e.a)).await] {
            assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
            assert_eq!(body["error"]["code"], "forbidden", "{who}: {body}");
        }
    }
    for (who, http) in [("another camera's viewer", o.stranger), ("the device", o.device)] {
        let (s, body) = http.get(&format!("/v1/devices/{}/kept", e.cid)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{who}: {body}");
    }
    assert_eq!(o.manager.put("/v1/events/not-an-id/keep").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = e.a.replacen(".motion", ".doorbell", 1);
    assert_eq!(o.manager.put(&keep(&unknown)).await.0, StatusCode::NOT_FOUND);
    let (s, body) = o.manager.get(&format!("/v1/devices/{}/kept?cursor=nonsense", e.cid)).await;
    assert_eq!((s, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_cursor")), "{body}");

    let (s, body) = o.manager.put(&keep(&e.a)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": true, "event_id": e.a, "kept": true}));
    wait_kept(o.reader, &e.cid, &[&e.a], timeout).await;
    let (_, detail) = o.reader.get(&format!("/v1/events/{}", e.a)).await;
    assert_eq!(detail["kept"], true, "{detail}");
    let date = format!("{}-{}-{}", &e.a[..4], &e.a[4..6], &e.a[6..8]);
    let (_, page) = o.reader.get(&format!("/v1/devices/{}/events?date={date}&limit=100", e.cid)).await;
    for ev in page["events"].as_array().unwrap() {
        assert_eq!(ev["kept"], ev["event_id"] == e.a.as_str(), "{ev}");
    }

    // The cap (two): B is kept, C is one too many, A again is no new one.
    assert_eq!(o.manager.put(&keep(&e.b)).await.0, StatusCode::ACCEPTED);
    let (s, body) = o.manager.put(&keep(&e.c)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "kept_limit", "{body}");
    assert_eq!(o.manager.put(&keep(&e.a)).await.0, StatusCode::ACCEPTED, "re-keeping a kept event");
    let mut both = [e.a.as_str(), e.b.as_str()];
    both.sort();
    wait_kept(o.reader, &e.cid, &both, timeout).await;
    // Un-keeping B frees its place, at once for this process.
    let (s, body) = o.manager.delete(&keep(&e.b)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"accepted": true, "event_id": e.b, "kept": false}));
    assert_eq!(o.manager.put(&keep(&e.c)).await.0, StatusCode::ACCEPTED);
    let mut want = [e.a.as_str(), e.c.as_str()];
    want.sort();
    wait_kept(o.reader, &e.cid, &want, timeout).await;
    let (_, b) = o.reader.get(&format!("/v1/events/{}", e.b)).await;
    assert_eq!(b["kept"], false, "un-kept inside retention: still served, not kept: {b}");
}
