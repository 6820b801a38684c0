//! Test reports shared by the plan tests and the CQL checker.

use schemas::{
    Day, DayOffset, DeviceId, DigestReported, EndStatus, Envelope, EventEnded, EventId, EventMapping, EventStarted,
    EventType, Media, Report, SegmentId, SegmentReported, TimePolicy, Timestamp,
};

pub(super) const DAY_MS: i64 = 86_400_000;

pub(super) fn policy() -> TimePolicy {
    TimePolicy::default()
}

/// Reports made one after another are received one after another (a millisecond apart at
/// least), so the later one is the newer, as on a device.
pub(super) fn env(report: Report) -> Envelope {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = Timestamp::now().millis();
    let prev = LAST.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    let at = if prev >= now { LAST.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 } else { now };
    Envelope::new(report, Timestamp(at))
}

pub(super) fn cid(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

pub(super) fn start(device: &str, event_type: &str, at: Timestamp) -> (EventId, Envelope) {
    let cid = cid(device);
    let event_type = EventType::parse(event_type).unwrap();
    let event_id = EventId::new(&cid, &event_type, at, DayOffset::default()).unwrap();
    (
        event_id.clone(),
        env(Report::EventStarted(EventStarted {
            cid,
            event_id,
            event_type,
            triggered_at: at,
            utc_offset: DayOffset::default(),
            clock_skew_ms: None,
            snapshot_size: None,
        })),
    )
}

pub(super) fn end(id: &EventId, after_ms: i64, status: EndStatus) -> Envelope {
    env(Report::EventEnded(EventEnded {
        cid: id.device().clone(),
        event_id: id.clone(),
        ended_at: id.triggered_at().plus_millis(after_ms),
        utc_offset: DayOffset::default(),
        status,
    }))
}

pub(super) fn segment(device: &str, seg: &str, at: Timestamp, events: &[(&EventId, u32)]) -> Envelope {
    env(Report::SegmentReported(SegmentReported {
        cid: cid(device),
        segment_id: SegmentId::parse(seg).unwrap(),
        size: 1000,
        started_at: at,
        utc_offset: DayOffset::default(),
        duration_ms: 10_000,
        media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: None },
        keyframes: vec![0, 500],
        events: events
            .iter()
            .map(|(id, index)| EventMapping {
                event_id: (*id).clone(),
                index: *index,
                start_offset: 0,
                end_offset: 1000,
            })
            .collect(),
    }))
}

pub(super) fn digest(device: &str, date: Day, seg: &str) -> Envelope {
    env(Report::DigestReported(DigestReported {
        cid: cid(device),
        date,
        utc_offset: DayOffset::default(),
        segment_id: SegmentId::parse(seg).unwrap(),
        size: 99,
        duration_ms: 60_000,
    }))
}

pub(super) fn subscription_set(id: &str) -> Envelope {
    env(Report::SubscriptionSet(schemas::SubscriptionSet {
        subscription_id: schemas::SubscriptionId::parse(id).unwrap(),
        url: "https://example.com/hook".into(),
        secrets: vec![schemas::Sealed(vec![7; 40])],
        devices: vec![cid("cam-1")],
        device_prefixes: vec![],
        kinds: vec![],
        event_types: vec![EventType::parse("person").unwrap()],
        cooldown_ms: 60_000,
        max_age_ms: None,
        paused: false,
        created_at: Timestamp::now(),
    }))
}

pub(super) fn subscription_deleted(id: &str) -> Envelope {
    env(Report::SubscriptionDeleted(schemas::SubscriptionDeleted {
        subscription_id: schemas::SubscriptionId::parse(id).unwrap(),
    }))
}

pub(super) fn dead_lettered(id: &str, webhook_id: &str) -> Envelope {
    env(Report::SubscriptionDeadLettered(schemas::SubscriptionDeadLettered {
        subscription_id: schemas::SubscriptionId::parse(id).unwrap(),
        webhook_id: webhook_id.into(),
        reason: "status 404".into(),
        attempts: 1,
        record_schema: 3,
        record: schemas::Blob(vec![3, 0]),
    }))
}

pub(super) fn released(id: &str, webhook_id: &str) -> Envelope {
    env(Report::DeadLettersReleased(schemas::DeadLettersReleased {
        subscription_id: schemas::SubscriptionId::parse(id).unwrap(),
        purged: vec![webhook_id.into()],
        replayed: vec![],
    }))
}

/// The owner's deletion of `id`.
pub(super) fn deleted(id: &EventId) -> Envelope {
    env(Report::EventDeleted(schemas::EventDeleted { cid: id.device().clone(), event_id: id.clone() }))
}

/// A keep of `id`.
pub(super) fn kept_report(id: &EventId) -> Envelope {
    Envelope::new(
        Report::EventKept(schemas::EventKept { cid: id.device().clone(), event_id: id.clone() }),
        Timestamp::now(),
    )
}
