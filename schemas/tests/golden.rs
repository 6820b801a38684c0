//! Golden vectors of the topic value (docs/topic.md): for every report variant and every
//! schema version ever written, the envelope's bytes (`NAME.bin`) beside the JSON `daybook
//! tail` prints for them without partition and offset (`NAME.json`), plus invalid values with
//! the error a decoder must report (`invalid/`). Decoders in other languages are tested
//! against the same files (`clients/python/tests`).
//!
//! The current version's vectors are regenerated from the cases below and compared byte for
//! byte, so the wire format cannot change unseen. After an intended change, rewrite them with
//! `DAYBOOK_BLESS=1 cargo test -p schemas --test golden` and review the diff. The bytes of an
//! older version are never rewritten (they stand for records already on topics); their JSON
//! is, when blessing, since a newer build may print old records with more keys.
//!
//! When a new schema version is introduced, its cases move here and `testdata/v{old}/` stays
//! as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use schemas::json::{decode_json, envelope_json};
use schemas::*;
use serde::Serialize;
use serde_json::{json, Value};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn blessing() -> bool {
    std::env::var("DAYBOOK_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `path` with `want`, or rewrites it when blessing. Returns a mismatch description.
fn check_file(path: &Path, want: &[u8]) -> Option<String> {
    let have = fs::read(path).ok();
    if have.as_deref() == Some(want) {
        return None;
    }
    if blessing() {
        fs::create_dir_all(path.parent().expect("vector files live in a directory")).expect("create testdata dir");
        fs::write(path, want).expect("write golden vector");
        return None;
    }
    Some(match have {
        None => format!("{} is missing", path.display()),
        Some(have) => format!("{} differs:\n  have {have:?}\n  want {want:?}", path.display()),
    })
}

fn pretty(v: &impl Serialize) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(v).expect("json");
    s.push(b'\n');
    s
}

fn assert_clean(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{}\n\nif the change is intended: DAYBOOK_BLESS=1 cargo test -p schemas --test golden, then review the diff",
        problems.join("\n")
    );
}

/// Names (without extension) of the files in `dir` with extension `ext`.
fn stems(dir: &Path, ext: &str) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == ext).then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect()
}

fn cid(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn ms(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap()
}

fn event_id(device: &str, event_type: &str, at: Timestamp) -> EventId {
    EventId::new(&cid(device), &EventType::parse(event_type).unwrap(), at, DayOffset::default()).unwrap()
}

/// Built from a JSON array (serde fills struct fields by position), so this file does not
/// depend on the Rust name of the event type field.
fn event_started(device: &str, event_type: &str, at: Timestamp) -> Report {
    event_started_at(device, event_type, at, "+00:00", None)
}

/// An event start at `offset` (as `+HH:MM`), with a clock skew when the camera ran fast.
fn event_started_at(device: &str, event_type: &str, at: Timestamp, offset: &str, skew: Option<i64>) -> Report {
    let id = EventId::new(&cid(device), &EventType::parse(event_type).unwrap(), at, DayOffset::parse(offset).unwrap())
        .unwrap();
    let fields = json!([device, id.as_str(), event_type, at.to_string(), offset, skew, null]);
    Report::EventStarted(serde_json::from_value(fields).expect("event started from positional fields"))
}

/// `report` (a start) with its snapshot's stated size.
fn with_snapshot(mut report: Report, bytes: u64) -> Report {
    let Report::EventStarted(r) = &mut report else { panic!("a start") };
    r.snapshot_size = Some(bytes);
    report
}

fn event_ended(device: &str, id: EventId, ended_at: Timestamp, status: EndStatus) -> Report {
    Report::EventEnded(EventEnded { cid: cid(device), event_id: id, ended_at, utc_offset: off("-08:00"), status })
}

fn off(s: &str) -> DayOffset {
    DayOffset::parse(s).unwrap()
}

/// Instant of midnight UTC on the first of January of `year` (proleptic Gregorian).
fn new_year(year: i32) -> Timestamp {
    Timestamp(NaiveDate::from_ymd_opt(year, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
}

/// The first and last millisecond chrono (and so `daybook tail`) prints as RFC 3339.
fn printable_range() -> (Timestamp, Timestamp) {
    let first = Timestamp(chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis());
    let last = Timestamp(chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis());
    (first, last)
}

/// Every envelope the current schema version's vectors hold: each variant, and the edges of
/// the encoding (option absent and present, empty and long sequences, integers on each side
/// of every varint width, negative and out-of-range instants).
fn cases() -> Vec<(&'static str, Envelope)> {
    let t = ms("2026-11-22T08:30:00.123Z");
    let received = t.plus_millis(250);
    let motion = event_id("cam-1", "motion", t);
    let (first, last) = printable_range();
    let media =
        |audio_sample_rate| Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate };
    let segment = |segment_id: &str, size, keyframes, events, media| {
        Report::SegmentReported(SegmentReported {
            cid: cid("cam-1"),
            segment_id: SegmentId::parse(segment_id).unwrap(),
            size,
            started_at: t,
            utc_offset: off("+05:45"),
            duration_ms: 10_000,
            media,
            keyframes,
            events,
        })
    };
    let digest = |date: NaiveDate, size, duration_ms| {
        Report::DigestReported(DigestReported {
            cid: cid("cam-1"),
            date: Day::from_date(date),
            utc_offset: off("+14:00"),
            segment_id: SegmentId::parse("20261123-0123456789abcdef0123456789abcdef").unwrap(),
            size,
            duration_ms,
        })
    };
    let env = |report, received_at| Envelope::new(report, received_at);
    let export_completed = |outcome| {
        let completed = ExportCompleted {
            cid: cid("cam-1"),
            export_id: export_id(),
            requested_at: t,
            from: export_requested().from,
            to: export_requested().to,
            outcome,
            expires_at: received.plus_millis(7 * 86_400_000),
        };
        env(Report::ExportCompleted(completed), received)
    };
    vec![
        ("event_started", env(event_started("cam-1", "motion", t), received)),
        // A camera at +08:00, and one whose clock ran two days fast.
        ("event_started_plus_eight", env(event_started_at("cam-1", "motion", t, "+08:00", None), received)),
        (
            "event_started_fast_clock",
            env(event_started_at("cam-1", "person", t, "-08:00", Some(172_800_000)), t.plus_millis(-172_800_000)),
        ),
        // A start stating its snapshot's size: the largest object, and a one-byte varint.
        (
            "event_started_snapshot_size",
            env(with_snapshot(event_started("cam-1", "motion", t), 5_368_709_120), received),
        ),
        ("event_started_snapshot_one_byte", env(with_snapshot(event_started("cam-1", "motion", t), 1), received)),
        // Single-byte varints throughout, and a received_at before the epoch (zigzag 1).
        ("event_started_epoch", env(event_started("c", "a", Timestamp(0)), Timestamp(-1))),
        (
            "event_started_longest_ids",
            env(event_started(&format!("{}xy-_", "Cam9".repeat(15)), &"person_9".repeat(4), t), received),
        ),
        (
            "event_ended_complete",
            env(event_ended("cam-1", motion.clone(), t.plus_millis(42_000), EndStatus::Complete), received),
        ),
        (
            "event_ended_aborted_before_epoch",
            env(
                event_ended("cam-1", motion.clone(), Timestamp(-86_400_001), EndStatus::Aborted),
                Timestamp(-62_135_596_800_000),
            ),
        ),
        // Years outside 0000..=9999 print with a sign.
        (
            "event_ended_five_digit_years",
            env(event_ended("cam-1", motion.clone(), new_year(10_000), EndStatus::Complete), new_year(-1)),
        ),
        (
            "event_ended_year_zero",
            env(event_ended("cam-1", motion.clone(), new_year(0), EndStatus::Complete), new_year(9999)),
        ),
        // The last instants that print as RFC 3339, and the first ones that do not.
        ("event_ended_printable_bounds", env(event_ended("cam-1", motion.clone(), last, EndStatus::Complete), first)),
        (
            "event_ended_beyond_printable",
            env(event_ended("cam-1", motion.clone(), last.plus_millis(1), EndStatus::Complete), first.plus_millis(-1)),
        ),
        (
            "event_ended_extreme_instants",
            env(event_ended("cam-1", motion.clone(), Timestamp(i64::MIN), EndStatus::Aborted), Timestamp(i64::MAX)),
        ),
        (
            "segment_reported_minimal",
            env(
                segment(
                    "s",
                    1,
                    vec![],
                    vec![],
                    Media { codec: "h".into(), width: 1, height: 1, fps: 0.5, audio_sample_rate: None },
                ),
                received,
            ),
        ),
        (
            "segment_reported_varint_widths",
            env(
                segment(
                    "20261122-00000000000000000000000000000001",
                    5 * 1024 * 1024 * 1024,
                    vec![0, 250, 251, 65_535, 65_536, u64::from(u32::MAX), 1 << 32, u64::MAX],
                    vec![
                        EventMapping { event_id: motion.clone(), index: 0, start_offset: 0, end_offset: 250 },
                        EventMapping {
                            event_id: event_id("cam-1", "sound", t.plus_millis(1)),
                            index: 70_000,
                            start_offset: 65_536,
                            end_offset: 5 * 1024 * 1024 * 1024,
                        },
                    ],
                    Media {
                        codec: "h265.main-10".into(),
                        width: 65_535,
                        height: 65_536,
                        fps: 29.97,
                        audio_sample_rate: Some(96_000),
                    },
                ),
                received,
            ),
        ),
        (
            "segment_reported_300_keyframes",
            env(
                segment("seg-300", 1_000_000, (0..300).map(|i| i * 3000).collect(), vec![], media(Some(250))),
                received,
            ),
        ),
        (
            "digest_reported",
            env(digest(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), 123_456_789, 86_400_000), received),
        ),
        ("digest_reported_year_one", env(digest(NaiveDate::from_ymd_opt(1, 1, 1).unwrap(), 0, 0), Timestamp(0))),
        (
            "digest_reported_last_day",
            env(digest(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(), 251, 251), Timestamp(251)),
        ),
        ("subscription_set", env(subscription(false), received)),
        ("subscription_set_minimal", env(minimal_subscription(), Timestamp(0))),
        (
            "subscription_deleted",
            env(
                Report::SubscriptionDeleted(SubscriptionDeleted {
                    subscription_id: SubscriptionId::parse("sub-00000000000000ff").unwrap(),
                }),
                received,
            ),
        ),
        (
            "subscription_dead_lettered",
            env(
                Report::SubscriptionDeadLettered(SubscriptionDeadLettered {
                    subscription_id: SubscriptionId::parse("sub-00000000000000ff").unwrap(),
                    webhook_id: "msg_0123456789abcdef0123456789abcdef".into(),
                    reason: "status 404".into(),
                    attempts: 1,
                    record_schema: 3,
                    record: Blob(env(event_started("cam-1", "person", t), received).encode()),
                }),
                received,
            ),
        ),
        (
            "dead_letters_released",
            env(
                Report::DeadLettersReleased(DeadLettersReleased {
                    subscription_id: SubscriptionId::parse("sub-00000000000000ff").unwrap(),
                    purged: vec!["msg_00".into(), "msg_01".into()],
                    replayed: vec![ReplayedLetter {
                        webhook_id: "msg_02".into(),
                        record_schema: 2,
                        record: Blob(vec![2, 0, 1, 2, 3]),
                    }],
                }),
                received,
            ),
        ),
        (
            "event_deleted",
            env(Report::EventDeleted(EventDeleted { cid: cid("cam-1"), event_id: motion.clone() }), received),
        ),
        ("event_kept", env(Report::EventKept(EventKept { cid: cid("cam-1"), event_id: motion.clone() }), received)),
        (
            "event_unkept",
            env(Report::EventUnkept(EventUnkept { cid: cid("cam-1"), event_id: motion.clone() }), received),
        ),
        ("device_erased", env(Report::DeviceErased(DeviceErased { cid: cid("cam-1") }), received)),
        ("plan_set", env(Report::PlanSet(PlanSet { cid: cid("cam-1"), retention_days: 365 }), received)),
        // Version 5: a report carrying its device's retention, at both ends of the plans.
        ("event_started_retention_60", env(event_started("cam-1", "motion", t), received).with_retention(Some(60))),
        (
            "segment_reported_retention_365",
            env(segment("s", 1, vec![], vec![], media(None)), received).with_retention(Some(owner::MAX_PLAN_DAYS)),
        ),
        (
            "event_ended_retention_7",
            env(event_ended("cam-1", motion.clone(), t, EndStatus::Complete), received)
                .with_retention(Some(owner::MIN_PLAN_DAYS)),
        ),
        ("export_requested", env(Report::ExportRequested(export_requested()), received)),
        (
            "export_completed_ready",
            export_completed(ExportOutcome::Ready {
                key: schemas::export::archive_key(&cid("cam-1"), &export_id()),
                bytes: 5_368_709_120,
                events: 1234,
            }),
        ),
        (
            "export_completed_failed",
            export_completed(ExportOutcome::Failed { reason: "object store unavailable".into() }),
        ),
    ]
}

fn export_id() -> ExportId {
    ExportId::parse("exp-01a202605fbb-0123456789abcdef").unwrap()
}

/// An export of the last week of November 2026.
fn export_requested() -> ExportRequested {
    let day = |d| Day::from_date(NaiveDate::from_ymd_opt(2026, 11, d).unwrap());
    ExportRequested { cid: cid("cam-1"), export_id: export_id(), from: day(16), to: day(22) }
}

/// A subscription with every filter and option set, two secrets (a rotation).
fn subscription(paused: bool) -> Report {
    Report::SubscriptionSet(SubscriptionSet {
        subscription_id: SubscriptionId::parse("sub-00000000000000ff").unwrap(),
        url: "https://hooks.example.com/daybook?x=1".into(),
        secrets: vec![Sealed(vec![1; 44]), Sealed((0..=255u8).take(60).collect())],
        devices: vec![cid("cam-1"), cid("door")],
        device_prefixes: vec![cid("garden-")],
        kinds: vec![ReportKind::EventStarted, ReportKind::DigestReported],
        event_types: vec![EventType::parse("person").unwrap()],
        cooldown_ms: 60_000,
        max_age_ms: Some(3_600_000),
        paused,
        created_at: ms("2026-11-22T08:00:00.000Z"),
    })
}

/// Every list empty, no option, paused.
fn minimal_subscription() -> Report {
    Report::SubscriptionSet(SubscriptionSet {
        subscription_id: SubscriptionId::parse("s").unwrap(),
        url: "http://h".into(),
        secrets: vec![Sealed(vec![])],
        devices: vec![],
        device_prefixes: vec![],
        kinds: vec![],
        event_types: vec![],
        cooldown_ms: 0,
        max_age_ms: None,
        paused: true,
        created_at: Timestamp(-1),
    })
}

#[test]
fn current_version_vectors_match() {
    let dir = testdata().join(format!("v{SCHEMA_VERSION}"));
    let mut problems = vec![];
    let cases = cases();
    for (name, env) in &cases {
        let bytes = env.encode();
        assert_eq!(&Envelope::decode(&bytes).unwrap(), env, "{name} round-trips");
        let json = envelope_json(SCHEMA_VERSION, env);
        assert_eq!(decode_json(&bytes).unwrap(), json, "{name}: decode_json agrees with envelope_json");
        problems.extend(check_file(&dir.join(format!("{name}.bin")), &bytes));
        problems.extend(check_file(&dir.join(format!("{name}.json")), &pretty(&json)));
    }
    let names: BTreeSet<String> = cases.iter().map(|(n, _)| (*n).to_owned()).collect();
    for ext in ["bin", "json"] {
        for stale in stems(&dir, ext).difference(&names) {
            let path = dir.join(format!("{stale}.{ext}"));
            if blessing() {
                fs::remove_file(&path).expect("remove stale vector");
            } else {
                problems.push(format!("{} has no case in schemas/tests/golden.rs", path.display()));
            }
        }
    }
    assert_clean(problems);
}

#[test]
fn every_version_ever_written_still_decodes() {
    let mut problems = vec![];
    for version in 1..=SCHEMA_VERSION {
        let dir = testdata().join(format!("v{version}"));
        let names = stems(&dir, "bin");
        assert!(!names.is_empty(), "no vectors for schema version {version} in {}", dir.display());
        for name in names {
            let bytes = fs::read(dir.join(format!("{name}.bin"))).unwrap();
            assert_eq!(Envelope::version_of(&bytes), Some(version), "{name}.bin's prefix");
            let json = decode_json(&bytes).unwrap_or_else(|e| panic!("v{version}/{name}.bin no longer decodes: {e}"));
            problems.extend(check_file(&dir.join(format!("{name}.json")), &pretty(&json)));
        }
    }
    assert_clean(problems);
}

/// How a decoder must refuse a value (`testdata/invalid/errors.json`). In Rust,
/// `unknown_schema_version` is [`DecodeError::UnknownVersion`] and every other kind is
/// [`DecodeError::Malformed`].
fn invalid_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    fn enc(v: impl Serialize) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }
    let t = ms("2026-11-22T08:30:00.123Z");
    // A version 4 record (these vectors predate version 5 and stay as they were).
    let started = v4(Envelope::new(event_started("cam-1", "motion", t), t));
    let v1_body = &started[1..];
    let with_prefix = |prefix: &[u8]| [prefix, v1_body].concat();
    let id = event_id("cam-1", "motion", t);
    // An EventEnded body with a chosen status index, field by field.
    let ended = |status: u32| enc((1u16, 1u32, "cam-1", id.as_str(), t.millis(), status, t.millis()));
    let digest = |date: u32, duration_ms: &[u8]| {
        [enc((1u16, 3u32, "cam-1", date, "seg-1", 10u64)), duration_ms.to_vec(), enc(t.millis())].concat()
    };
    let segment_with_audio_tag = |tag: u8| {
        [
            enc((1u16, 2u32, "cam-1", "seg-1", 10u64, t.millis(), 1000u32)),
            enc(("h264", 640u32, 480u32, 25.0f64)),
            vec![tag],
            enc((Vec::<u64>::new(), 0u64, t.millis())),
        ]
        .concat()
    };
    let with_retention = |days| Envelope::new(event_started("cam-1", "motion", t), t).with_retention(days).encode();
    let mut huge_string = enc((1u16, 0u32));
    huge_string.extend([253, 0, 0, 0, 0, 1, 0, 0, 0]); // a cid of 2^32 bytes
    let mut utf8 = enc((1u16, 0u32));
    utf8.extend([2, 0xc3, 0x28]);
    vec![
        ("empty", vec![], "truncated"),
        ("truncated_body", started[..started.len() - 3].to_vec(), "truncated"),
        ("truncated_version", vec![251, 1], "truncated"),
        ("string_beyond_end", huge_string, "truncated"),
        ("trailing_byte", [started.as_slice(), &[0]].concat(), "trailing_bytes"),
        ("version_200", with_prefix(&[200]), "unknown_schema_version"),
        ("version_300", with_prefix(&[251, 0x2c, 0x01]), "unknown_schema_version"),
        ("version_0", with_prefix(&[0]), "unknown_schema_version"),
        ("report_variant_4", with_prefix(&[1, 4]), "unknown_variant"),
        // Version 2 knew four variants; variants 4 and 5 came with version 3.
        ("v2_report_variant_4", [&[2u8][..], &started_v3_body(4)].concat(), "unknown_variant"),
        // Version 3 knew eight variants; variants 8 to 12 came with version 4.
        ("v3_report_variant_8", [&[3u8][..], &started_v3_body(8)].concat(), "unknown_variant"),
        ("v4_report_variant_13", [&[4u8][..], &started_v3_body(13)].concat(), "unknown_variant"),
        // Version 5's retention is an option: tag 0 or 1.
        (
            "v5_retention_tag_2",
            [&with_retention(None)[..with_retention(None).len() - 1], &[2, 60]].concat(),
            "invalid_value",
        ),
        ("v5_retention_missing", with_retention(None)[..with_retention(None).len() - 1].to_vec(), "truncated"),
        // Version 4 knew thirteen variants; variants 13 and 14 came with version 5.
        ("v4_report_variant_14", [&[4u8][..], &started_v3_body(14)].concat(), "unknown_variant"),
        ("v5_report_variant_15", [&[5u8][..], &started_v3_body(15)].concat(), "unknown_variant"),
        ("end_status_2", ended(2), "unknown_variant"),
        ("option_tag_2", segment_with_audio_tag(2), "invalid_value"),
        ("u32_with_u64_marker", digest(20261122, &[253, 1, 0, 0, 0, 0, 0, 0, 0]), "invalid_value"),
        ("reserved_marker_255", with_prefix(&[255]), "invalid_value"),
        ("invalid_day", digest(20261340, &[10]), "invalid_value"),
        ("day_of_year_zero", digest(101, &[10]), "invalid_value"),
        ("invalid_utf8", utf8, "invalid_value"),
        ("invalid_device_id", enc((1u16, 1u32, "cam.1", id.as_str(), t.millis(), 0u32, t.millis())), "invalid_value"),
        (
            "invalid_event_id",
            enc((1u16, 1u32, "cam-1", "20261122.cam-1.motion", t.millis(), 0u32, t.millis())),
            "invalid_value",
        ),
    ]
}

/// A subscription deletion's body with its variant index replaced by `variant`.
fn started_v3_body(variant: u8) -> Vec<u8> {
    let deleted = Envelope::new(
        Report::SubscriptionDeleted(SubscriptionDeleted { subscription_id: SubscriptionId::parse("s").unwrap() }),
        Timestamp(0),
    )
    .encode();
    [&[variant][..], &v4_body(&deleted)[1..]].concat()
}

/// `env` as version 4 wrote it: version 5's bytes without the retention (`None`: one byte).
fn v4(env: Envelope) -> Vec<u8> {
    assert_eq!(env.retention_days, None);
    match &env.report {
        // Version 4's start has no `snapshot_size`: its fields one by one.
        Report::EventStarted(r) => {
            assert_eq!(r.snapshot_size, None);
            let fields = (&r.cid, &r.event_id, &r.event_type, r.triggered_at, r.utc_offset, r.clock_skew_ms);
            bincode::serde::encode_to_vec((4u16, 0u32, fields, env.received_at), bincode::config::standard()).unwrap()
        }
        _ => [&[4u8][..], v4_body(&env.encode())].concat(),
    }
}

/// The body of a version 5 `encoded` without the retention (`None`).
fn v4_body(encoded: &[u8]) -> &[u8] {
    assert_eq!((encoded[0], encoded.last()), (5, Some(&0)), "a version 5 record without a retention");
    &encoded[1..encoded.len() - 1]
}

/// Version 4 bytes decode as they did, with no retention; the same report under version 5
/// carries its retention, and its bytes are version 4's body with the option after it.
#[test]
fn version_four_bytes_decode_without_a_retention() {
    let t = ms("2026-11-22T08:30:00.123Z");
    let env = Envelope::new(event_started("cam-1", "motion", t), t);
    let old = v4(env.clone());
    assert_eq!(Envelope::decode(&old).unwrap(), env);
    let bytes = fs::read(testdata().join("v4/event_started.bin")).unwrap();
    assert_eq!(Envelope::decode(&bytes).unwrap().retention_days, None);
    let planned = env.with_retention(Some(60));
    let new = planned.encode();
    // Version 5: the start gains its (absent) snapshot size before `received_at` (the last 9
    // bytes here), and the retention follows.
    let (report, received_at) = old[1..].split_at(old.len() - 10);
    assert_eq!(new, [&[5u8][..], report, &[0], received_at, &[1, 60]].concat());
    assert_eq!(Envelope::decode(&new).unwrap().retention_days, Some(60));
    assert_eq!(decode_json(&new).unwrap()["retention_days"], 60);
    assert_eq!(decode_json(&old).unwrap()["retention_days"], Value::Null);
}

#[test]
fn invalid_values_fail_as_documented() {
    let dir = testdata().join("invalid");
    let mut problems = vec![];
    let mut kinds = BTreeMap::new();
    for (name, bytes, kind) in invalid_cases() {
        match (Envelope::decode(&bytes), kind) {
            (Err(DecodeError::UnknownVersion(_)), "unknown_schema_version") => {}
            (Err(DecodeError::Malformed(_)), k) if k != "unknown_schema_version" => {}
            (other, _) => panic!("invalid/{name} should be {kind}, decoded as {other:?}"),
        }
        problems.extend(check_file(&dir.join(format!("{name}.bin")), &bytes));
        kinds.insert(name, kind);
    }
    problems.extend(check_file(&dir.join("errors.json"), &pretty(&kinds)));
    assert_clean(problems);
}

/// docs/topic.md, "Schema evolution": a decoder meeting a version it does not know says so by
/// name (never "malformed", which consumers count and skip) and reads nothing past the prefix,
/// so the body may be anything.
#[test]
fn a_decoder_refuses_a_newer_version_by_name() {
    let t = ms("2026-11-22T08:30:00.123Z");
    let v1 = Envelope::new(event_started("cam-1", "motion", t), t).encode();
    assert_eq!(u16::from(v1[0]), SCHEMA_VERSION, "the version is the first byte while it is below 251");
    let next = SCHEMA_VERSION + 1;
    for body in [&v1[1..], &[][..], &[0xff, 0xff, 0xff][..]] {
        let bytes = [&bincode::serde::encode_to_vec(next, bincode::config::standard()).unwrap()[..], body].concat();
        assert_eq!(Envelope::version_of(&bytes), Some(next));
        match Envelope::decode(&bytes) {
            Err(DecodeError::UnknownVersion(v)) => assert_eq!(v, next),
            other => panic!("a v{next} record must be refused as an unknown version, got {other:?}"),
        }
    }
}

#[test]
fn report_fields_never_shadow_envelope_keys() {
    for (name, env) in cases() {
        let json = envelope_json(SCHEMA_VERSION, &env);
        for key in schemas::json::ENVELOPE_KEYS {
            assert!(json.contains_key(key), "{name} lacks {key}");
        }
        assert_eq!(json["type"], env.report.kind().as_str());
        assert_eq!(json["schema"], SCHEMA_VERSION);
        let tagged = serde_json::to_value(&env.report).unwrap();
        let fields = tagged.as_object().and_then(|o| o.values().next()).and_then(Value::as_object).unwrap();
        for key in schemas::json::ENVELOPE_KEYS {
            // `cid` is in every report and is the same value; the others would be lost.
            assert!(key == "cid" || !fields.contains_key(key), "{name} has a field named {key}");
        }
    }
}

/// The notifier rules records out on their kind and key before decoding them: whatever the
/// filters, every report `matches` lets through is one `may_match` lets through too (and for
/// a device's report without an event-type filter, they agree).
#[test]
fn the_undecoded_prefilter_never_drops_what_the_filters_let_through() {
    let Report::SubscriptionSet(full) = subscription(false) else { unreachable!() };
    let Report::SubscriptionSet(none) = minimal_subscription() else { unreachable!() };
    let mut filters = vec![full.clone(), none.clone()];
    for kind in
        [ReportKind::EventStarted, ReportKind::EventEnded, ReportKind::SegmentReported, ReportKind::DigestReported]
    {
        filters.push(SubscriptionSet { kinds: vec![kind], ..none.clone() });
        filters.push(SubscriptionSet { kinds: vec![kind], event_types: vec![], ..full.clone() });
    }
    filters.push(SubscriptionSet { device_prefixes: vec![cid("cam-")], ..none.clone() });
    filters.push(SubscriptionSet { devices: vec![cid("cam-12")], ..none.clone() });
    let (mut passed, mut ruled_out) = (0, 0);
    for (name, envelope) in cases() {
        let report = &envelope.report;
        let kind = report.kind().as_str();
        let key = report.key();
        for f in &filters {
            let (may, does) = (f.may_match(kind, &key), f.matches(report));
            assert!(may || !does, "{name}: the prefilter drops what {f:?} lets through");
            if report.kind().is_device_report() && f.event_types.is_empty() {
                assert_eq!(may, does, "{name} with {f:?}");
            }
            passed += usize::from(does);
            ruled_out += usize::from(!may);
        }
    }
    assert!(passed > 0 && ruled_out > 0, "the cases exercise both ({passed} passed, {ruled_out} ruled out)");
}
