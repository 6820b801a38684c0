//! The report mix shared by the store benchmarks (`embedded.rs`'s `store_apply`, and
//! `store_live.rs`, which applies the same mix to the embedded store and to ScyllaDB side by
//! side). Each bench uses a part of it.
#![allow(dead_code)]

use schemas::{
    Day, DayOffset, DeviceId, DigestReported, EndStatus, Envelope, EventEnded, EventId, EventMapping, EventStarted,
    EventType, Media, Report, SegmentId, SegmentReported, TimePolicy, Timestamp,
};

pub(crate) const DAY_MS: i64 = 86_400_000;
pub(crate) const KINDS: [&str; 3] = ["motion", "sound", "person"];

pub(crate) fn cid(i: usize) -> DeviceId {
    DeviceId::parse(&format!("acme-cam-{i:06}")).expect("device id")
}

pub(crate) fn env(report: Report) -> Envelope {
    Envelope::new(report, Timestamp::now())
}

pub(crate) fn started(cid: &DeviceId, event_type: &str, at: Timestamp) -> (EventId, Envelope) {
    let event_type = EventType::parse(event_type).expect("event type");
    let event_id = EventId::new(cid, &event_type, at, DayOffset::default()).expect("event id");
    let e = env(Report::EventStarted(EventStarted {
        cid: cid.clone(),
        event_id: event_id.clone(),
        event_type,
        triggered_at: at,
        utc_offset: DayOffset::default(),
        clock_skew_ms: None,
        snapshot_size: None,
    }));
    (event_id, e)
}

pub(crate) fn ended(id: &EventId, after_ms: i64) -> Envelope {
    env(Report::EventEnded(EventEnded {
        cid: id.device().clone(),
        event_id: id.clone(),
        ended_at: id.triggered_at().plus_millis(after_ms),
        utc_offset: DayOffset::default(),
        status: if after_ms % 16 == 0 { EndStatus::Aborted } else { EndStatus::Complete },
    }))
}

pub(crate) fn segment(id: &EventId, n: u64) -> Envelope {
    let size = 1_843_200u64;
    env(Report::SegmentReported(SegmentReported {
        cid: id.device().clone(),
        segment_id: SegmentId::parse(&format!("seg-{n:016x}")).expect("segment id"),
        size,
        started_at: id.triggered_at().plus_millis(2_000),
        utc_offset: DayOffset::default(),
        duration_ms: 10_000,
        media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: None },
        keyframes: (0..10).map(|k| k * (size / 10)).collect(),
        events: vec![EventMapping { event_id: id.clone(), index: 0, start_offset: 0, end_offset: size }],
    }))
}

pub(crate) fn digest(cid: &DeviceId, date: Day, n: u64) -> Envelope {
    env(Report::DigestReported(DigestReported {
        cid: cid.clone(),
        date,
        utc_offset: DayOffset::default(),
        segment_id: SegmentId::parse(&format!("dig-{n:016x}")).expect("segment id"),
        size: 48_234_112,
        duration_ms: 312_000,
    }))
}

/// Endless batches in the projector's mix: of every 20 reports 12 starts, 4 ends, 3 segments
/// (one mapping each: 2 rows), 1 digest — 35 rows per 20 reports (a start writes its event and
/// its device's offset).
pub(crate) struct ApplyMix {
    rng: fastrand::Rng,
    devices: Vec<DeviceId>,
    recent: Vec<EventId>,
    n: u64,
    now: Timestamp,
    today: Day,
}

impl ApplyMix {
    pub(crate) fn new() -> Self {
        let now = Timestamp::now();
        Self {
            rng: fastrand::Rng::with_seed(7),
            devices: (0..1000).map(cid).collect(),
            recent: Vec::new(),
            n: 0,
            now,
            today: DayOffset::default().day_of(now).expect("today"),
        }
    }

    fn recent_event(&mut self) -> EventId {
        let i = self.rng.usize(self.recent.len().saturating_sub(20_000)..self.recent.len());
        self.recent[i].clone()
    }

    pub(crate) fn batch(&mut self, len: usize) -> Vec<Envelope> {
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            self.n += 1;
            let slot = self.n % 20;
            if slot < 12 || self.recent.is_empty() {
                let device = self.rng.usize(..self.devices.len());
                let at = self.now.plus_millis(-self.rng.i64(0..2 * DAY_MS));
                let (id, e) = started(&self.devices[device], KINDS[self.rng.usize(..KINDS.len())], at);
                self.recent.push(id);
                out.push(e);
            } else if slot < 16 {
                let id = self.recent_event();
                out.push(ended(&id, self.rng.i64(1_000..120_000)));
            } else if slot < 19 {
                let id = self.recent_event();
                out.push(segment(&id, self.n));
            } else {
                let device = self.rng.usize(..self.devices.len());
                let date = self.today.add_days(-self.rng.i64(0..2));
                out.push(digest(&self.devices[device], date, self.n));
            }
        }
        if self.recent.len() > 100_000 {
            self.recent.drain(..50_000);
        }
        out
    }
}

/// The rows `batch` writes, as the stores plan them (a segment that starts on the day after its
/// event's, near midnight, writes a copy in the event's day too).
pub(crate) fn rows_of(batch: &[Envelope]) -> u64 {
    batch.iter().map(|e| schemas::rows::plan(e, &TimePolicy::default()).len() as u64).sum()
}
