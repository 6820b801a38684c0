//! Hot-path micro-benchmarks of the schemas crate: what every accepted report costs in
//! ingest (JSON parse → validate → envelope encode) and in the projector (envelope decode).
//!
//! `cargo bench -p schemas --bench envelope`

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use schemas::{
    Day, DayOffset, DeviceId, DigestReported, Envelope, EventId, EventMapping, EventStarted, EventType, Media, Report,
    SegmentId, SegmentReported, TimePolicy, Timestamp,
};
use serde::Deserialize;

const MINUTE_MS: i64 = 60_000;

fn cid() -> DeviceId {
    // A realistic device id: a vendor prefix and a serial.
    DeviceId::parse("acme-cam-00a1b2c3d4e5").unwrap()
}

fn event_id(at: Timestamp, event_type: &str) -> EventId {
    EventId::new(&cid(), &EventType::parse(event_type).unwrap(), at, DayOffset::default()).unwrap()
}

fn event_started(now: Timestamp) -> Report {
    let event_type = EventType::parse("motion").unwrap();
    let triggered_at = now.plus_millis(-2 * MINUTE_MS);
    Report::EventStarted(EventStarted {
        cid: cid(),
        event_id: event_id(triggered_at, "motion"),
        event_type,
        triggered_at,
        utc_offset: DayOffset::default(),
        clock_skew_ms: None,
        snapshot_size: None,
    })
}

fn segment_reported(now: Timestamp) -> Report {
    let started_at = now.plus_millis(-MINUTE_MS);
    let size = 1_843_200u64;
    Report::SegmentReported(SegmentReported {
        cid: cid(),
        segment_id: SegmentId::parse("20261122-5f3c9a0e1b7d4c2a8e6f0b1d3c5a7e9f").unwrap(),
        size,
        started_at,
        utc_offset: DayOffset::default(),
        duration_ms: 10_000,
        media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: Some(16_000) },
        keyframes: (0..10).map(|i| i * (size / 10)).collect(),
        events: vec![
            EventMapping {
                event_id: event_id(now.plus_millis(-2 * MINUTE_MS), "motion"),
                index: 6,
                start_offset: 0,
                end_offset: 912_000,
            },
            EventMapping {
                event_id: event_id(now.plus_millis(-MINUTE_MS + 4_000), "person"),
                index: 0,
                start_offset: 737_280,
                end_offset: size,
            },
        ],
    })
}

fn digest_reported(now: Timestamp) -> Report {
    let yesterday = DayOffset::default().day_of(now).unwrap().add_days(-1);
    Report::DigestReported(DigestReported {
        cid: cid(),
        date: yesterday,
        utc_offset: DayOffset::default(),
        segment_id: SegmentId::parse("20261122-0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a").unwrap(),
        size: 48_234_112,
        duration_ms: 312_000,
    })
}

fn reports(now: Timestamp) -> [(&'static str, Report); 3] {
    [
        ("event_started", event_started(now)),
        ("segment_reported", segment_reported(now)),
        ("digest_reported", digest_reported(now)),
    ]
}

fn group_timing<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50);
    g.throughput(Throughput::Elements(1));
    g
}

fn envelope_encode(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut g = group_timing(c, "envelope_encode");
    for (name, report) in reports(now) {
        let env = Envelope::new(report, now);
        eprintln!("envelope {name}: {} bytes", env.encode().len());
        g.bench_with_input(BenchmarkId::from_parameter(name), &env, |b, env| b.iter(|| black_box(env).encode()));
    }
    g.finish();
}

fn envelope_decode(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut g = group_timing(c, "envelope_decode");
    for (name, report) in reports(now) {
        let bytes = Envelope::new(report, now).encode();
        g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
            b.iter(|| Envelope::decode(black_box(bytes)).unwrap())
        });
    }
    g.finish();
}

fn validate(c: &mut Criterion) {
    let now = Timestamp::now();
    let policy = TimePolicy::default();
    let mut g = group_timing(c, "report_validate");
    for (name, report) in reports(now) {
        report.validate(&policy, now).expect("bench reports are valid");
        g.bench_with_input(BenchmarkId::from_parameter(name), &report, |b, report| {
            b.iter(|| black_box(report).validate(&policy, black_box(now)).unwrap())
        });
    }
    g.finish();
}

// The ingest request bodies, field for field as `ingest::dto` declares them (the schemas crate
// cannot depend on ingest): the JSON parse ingest runs on every request.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct EventStartRequest {
    #[serde(rename = "type")]
    event_type: EventType,
    triggered_at: Timestamp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SegmentRequest {
    segment_id: SegmentId,
    size: u64,
    started_at: Timestamp,
    duration_ms: u32,
    media: Media,
    #[serde(default)]
    keyframes: Option<Vec<u64>>,
    #[serde(default)]
    events: Vec<EventMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DigestRequest {
    date: Day,
    segment_id: SegmentId,
    size: u64,
    duration_ms: u32,
}

fn request_bodies(now: Timestamp) -> [(&'static str, String); 3] {
    let Report::SegmentReported(seg) = segment_reported(now) else { unreachable!() };
    let Report::DigestReported(dig) = digest_reported(now) else { unreachable!() };
    let start = serde_json::json!({ "type": "motion", "triggered_at": now.plus_millis(-2 * MINUTE_MS) });
    let segment = serde_json::json!({
        "segment_id": seg.segment_id,
        "size": seg.size,
        "started_at": seg.started_at,
        "duration_ms": seg.duration_ms,
        "media": seg.media,
        "keyframes": seg.keyframes,
        "events": seg.events,
    });
    let digest = serde_json::json!({
        "date": dig.date, "segment_id": dig.segment_id, "size": dig.size, "duration_ms": dig.duration_ms,
    });
    [("event_start", start.to_string()), ("segment", segment.to_string()), ("digest", digest.to_string())]
}

fn json_parse(c: &mut Criterion) {
    let now = Timestamp::now();
    let mut g = group_timing(c, "ingest_json_parse");
    for (name, body) in request_bodies(now) {
        eprintln!("request body {name}: {} bytes", body.len());
        let bytes = body.into_bytes();
        match name {
            "event_start" => g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
                b.iter(|| serde_json::from_slice::<EventStartRequest>(black_box(bytes)).unwrap())
            }),
            "segment" => g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
                b.iter(|| serde_json::from_slice::<SegmentRequest>(black_box(bytes)).unwrap())
            }),
            _ => g.bench_with_input(BenchmarkId::from_parameter(name), &bytes, |b, bytes| {
                b.iter(|| serde_json::from_slice::<DigestRequest>(black_box(bytes)).unwrap())
            }),
        };
    }
    g.finish();
}

criterion_group!(benches, envelope_encode, envelope_decode, validate, json_parse);
criterion_main!(benches);
