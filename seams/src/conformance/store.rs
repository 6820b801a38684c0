//! The projection-store suite. Every store is opened with the default
//! [`TimePolicy`](schemas::TimePolicy) (30-day retention, days at UTC), except where a case
//! opens it with its own ([`StoreHarness::open_with`]: a deployment's `--day-offset`).

use std::sync::Arc;

use async_trait::async_trait;
use schemas::{
    Blob, Day, DayOffset, DeadLettersReleased, DeviceId, DigestReported, EndStatus, Envelope, EventEnded, EventId,
    EventMapping, EventStarted, EventType, Media, ReplayedLetter, Report, ReportKind, Sealed, SegmentId,
    SegmentReported, SubscriptionDeadLettered, SubscriptionDeleted, SubscriptionId, SubscriptionSet, TimePolicy,
    Timestamp,
};

use crate::log::Position;
use crate::store::{EventStatus, ProjectionStore, Quarantined, StoreError};

/// Opens a fresh, empty store (new directory, new keyspace).
#[async_trait]
pub trait StoreHarness: Send {
    /// Opens the store with the default [`TimePolicy`].
    async fn open(&mut self) -> Arc<dyn ProjectionStore> {
        self.open_with(TimePolicy::default()).await
    }

    /// Opens the store with `policy`: a deployment's `--day-offset`, retention and future
    /// tolerance.
    async fn open_with(&mut self, policy: TimePolicy) -> Arc<dyn ProjectionStore>;

    /// Opens another handle on the store `open` opened last (the same file, the same
    /// keyspace, the same policy), as a second projector process would: its own
    /// connections, nothing shared in memory.
    async fn open_again(&mut self) -> Arc<dyn ProjectionStore>;

    /// Opens a second, empty store beside the one `open` opened last (another file, another
    /// keyspace), with the same policy: what a rebuild fills. `open_again` still opens the
    /// first.
    async fn open_empty(&mut self) -> Arc<dyn ProjectionStore>;
}

const DAY_MS: i64 = 86_400_000;

/// Noon UTC `days_ago` days before today, plus `ms`: safely inside one day.
pub fn noon(days_ago: i64, ms: i64) -> Timestamp {
    let today = DayOffset::default().today();
    DayOffset::default().start_of(today.add_days(-days_ago)).plus_millis(DAY_MS / 2 + ms)
}

fn cid(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

/// Reports made one after another are received one after another (a millisecond apart at
/// least): the later one is the newer, in log order and by write stamp alike.
fn env(report: Report) -> Envelope {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = Timestamp::now().millis();
    let prev = LAST.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    let at = if prev >= now { LAST.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 } else { now };
    Envelope::new(report, Timestamp(at))
}

/// An `EventStarted` and its id.
pub fn start(device: &str, event_type: &str, at: Timestamp) -> (EventId, Envelope) {
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

/// An `EventEnded`.
pub fn end(id: &EventId, after_ms: i64, status: EndStatus) -> Envelope {
    env(Report::EventEnded(EventEnded {
        cid: id.device().clone(),
        event_id: id.clone(),
        ended_at: id.triggered_at().plus_millis(after_ms),
        utc_offset: DayOffset::default(),
        status,
    }))
}

/// A `SegmentReported` of `size` bytes mapped into `events` as (event, index, start, end).
pub fn segment(device: &str, seg: &str, at: Timestamp, size: u64, events: &[(&EventId, u32, u64, u64)]) -> Envelope {
    env(Report::SegmentReported(SegmentReported {
        cid: cid(device),
        segment_id: SegmentId::parse(seg).unwrap(),
        size,
        started_at: at,
        utc_offset: DayOffset::default(),
        duration_ms: 10_000,
        media: Media { codec: "h264".into(), width: 1920, height: 1080, fps: 25.0, audio_sample_rate: Some(16_000) },
        keyframes: vec![0, size / 2],
        events: events
            .iter()
            .map(|(id, index, s, e)| EventMapping {
                event_id: (*id).clone(),
                index: *index,
                start_offset: *s,
                end_offset: *e,
            })
            .collect(),
    }))
}

fn day(days_ago: i64) -> Day {
    DayOffset::default().today().add_days(-days_ago)
}

/// Start then end: the event is complete, with its end time.
pub async fn start_then_end(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-1", "motion", noon(0, 0));
    s.apply(&[st]).await.unwrap();
    let open = s.event(&id).await.unwrap().expect("event after start");
    assert_eq!(open.event.status, EventStatus::Open);
    assert_eq!(open.event.ended_at, None);
    s.apply(&[end(&id, 12_000, EndStatus::Complete)]).await.unwrap();
    let done = s.event(&id).await.unwrap().unwrap();
    assert_eq!(done.event.status, EventStatus::Complete);
    assert_eq!(done.event.duration_ms(), Some(12_000));
    assert_eq!(done.event.event_type.as_str(), "motion");
}

/// An end that arrives before its start is kept; the result equals the in-order one.
pub async fn end_before_start_merges(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-1", "person", noon(1, 0));
    s.apply(&[end(&id, 5_000, EndStatus::Aborted)]).await.unwrap();
    let early = s.event(&id).await.unwrap().expect("an end alone is kept");
    assert_eq!(early.event.status, EventStatus::Aborted);
    s.apply(&[st]).await.unwrap();
    let merged = s.event(&id).await.unwrap().unwrap();
    assert_eq!(merged.event.status, EventStatus::Aborted, "a late start must not reopen the event");
    assert_eq!(merged.event.duration_ms(), Some(5_000));
    assert_eq!(s.calendar(id.device(), day(1), day(1)).await.unwrap(), vec![(day(1), 1)]);
}

/// A start at `offset` (a camera's local time), filed as ingest files it at `now`.
pub fn start_at(device: &str, at: Timestamp, offset: DayOffset, now: Timestamp) -> (EventId, Envelope) {
    let cid = cid(device);
    let event_type = EventType::parse("motion").unwrap();
    let policy = schemas::TimePolicy::default();
    let (event_id, clock_skew_ms) = policy.start_id(&cid, &event_type, at, offset, false, now).unwrap();
    let report = Report::EventStarted(EventStarted {
        cid,
        event_id: event_id.clone(),
        event_type,
        triggered_at: at,
        utc_offset: offset,
        clock_skew_ms,
        snapshot_size: None,
    });
    (event_id, Envelope::new(report, now))
}

/// Cameras at +08:00, −08:00 and +05:45, minutes either side of their local midnight: each
/// event lives on its local day, whatever offset its end and segments carry; its view states
/// the offset.
pub async fn events_live_on_the_cameras_local_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    let now = Timestamp::now();
    for (device, minutes) in [("cam-sh", 480), ("cam-la", -480), ("cam-np", 345)] {
        let offset = DayOffset::from_minutes(minutes).unwrap();
        let today = offset.day_of(now).unwrap();
        let midnight = offset.start_of(today.add_days(-1));
        let (before, st1) = start_at(device, midnight.plus_millis(-120_000), offset, now);
        let (after, st2) = start_at(device, midnight.plus_millis(120_000), offset, now);
        // The end comes from a clock at another offset; a segment spanning midnight holds both.
        let mut end_after = end(&after, 5_000, EndStatus::Complete);
        if let Report::EventEnded(r) = &mut end_after.report {
            r.utc_offset = DayOffset::from_minutes(-minutes).unwrap();
        }
        let seg = segment(
            device,
            "seg-mid",
            midnight.plus_millis(-180_000),
            1000,
            &[(&before, 0, 0, 400), (&after, 0, 400, 1000)],
        );
        s.apply(&[st1, st2, end_after, seg]).await.unwrap();
        assert_eq!(before.day(), today.add_days(-2), "{before}");
        assert_eq!(after.day(), today.add_days(-1), "{after}");
        let cal = s.calendar(&cid(device), today.add_days(-2), today).await.unwrap();
        assert_eq!(cal, vec![(today.add_days(-1), 1), (today.add_days(-2), 1)], "{device}");
        let page = s.day_page(&cid(device), today.add_days(-1), None, 10, None).await.unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].event_id, after);
        assert_eq!(page.events[0].status, EventStatus::Complete);
        assert_eq!(page.events[0].utc_offset, offset);
        for id in [&before, &after] {
            let detail = s.event(id).await.unwrap().unwrap();
            assert_eq!(detail.segments.len(), 1, "the segment spanning midnight maps into {id}");
        }
    }
}

/// A camera at UTC+14:00 on a deployment at UTC−11:00: 25 hours apart, so the camera's today
/// is one day after the deployment's, and two from 23:00 to midnight deployment time. Its
/// calendar counts its today's events (and yesterday's) at any time of day: the days a store
/// reads are the camera's, whatever the deployment's `--day-offset` (the ScyllaDB store used
/// to cut them to the deployment's today + 1, and showed 0 for that hour).
pub async fn calendar_counts_todays_events_of_a_camera_far_east_of_the_deployment(mut h: impl StoreHarness) {
    let policy = TimePolicy { offset: DayOffset::parse("-11:00").unwrap(), ..TimePolicy::default() };
    let s = h.open_with(policy).await;
    let now = Timestamp::now();
    let east = DayOffset::parse("+14:00").unwrap();
    let today = east.day_of(now).unwrap();
    let midnight = east.start_of(today);
    let device = "cam-kiritimati";
    // Today's first instant and now; yesterday's last instant.
    let (first, st1) = start_at(device, midnight, east, now);
    let (latest, st2) = start_at(device, now.max(midnight.plus_millis(1)), east, now);
    let (last_night, st3) = start_at(device, midnight.plus_millis(-1), east, now);
    for id in [&first, &latest] {
        assert_eq!(id.day(), today, "{id} is filed under the camera's today");
    }
    assert_eq!(last_night.day(), today.add_days(-1));
    s.apply(&[st1, st2, end(&first, 1_000, EndStatus::Complete), st3]).await.unwrap();
    // What the API asks for the camera's 30-day calendar.
    let cal = s.calendar(&cid(device), today.add_days(-29), today).await.unwrap();
    assert_eq!(cal, vec![(today, 2), (today.add_days(-1), 1)], "today is {today} at {east}, {now}");
    assert_eq!(s.calendar(&cid(device), today, today).await.unwrap(), vec![(today, 2)]);
    let page = s.day_page(&cid(device), today, None, 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), vec![first, latest]);
    assert!(page.events.iter().all(|e| e.utc_offset == east));
}

/// The device's offset is the one of its latest start by filing time, in any apply order.
pub async fn the_devices_offset_is_its_latest_starts(mut h: impl StoreHarness) {
    let s = h.open().await;
    let now = Timestamp::now();
    let (pdt, pst) = (DayOffset::from_minutes(-420).unwrap(), DayOffset::from_minutes(-480).unwrap());
    let (_, older) = start_at("cam-dst", noon(3, 0), pdt, now);
    let (_, newer) = start_at("cam-dst", noon(1, 0), pst, now);
    assert_eq!(s.utc_offset(&cid("cam-dst")).await.unwrap(), None);
    s.apply(std::slice::from_ref(&newer)).await.unwrap();
    s.apply(std::slice::from_ref(&older)).await.unwrap();
    assert_eq!(s.utc_offset(&cid("cam-dst")).await.unwrap(), Some(pst), "a late report does not win");
    s.apply(&[older, newer]).await.unwrap();
    assert_eq!(s.utc_offset(&cid("cam-dst")).await.unwrap(), Some(pst));
}

/// A start from a clock two days fast is filed on the server's day, listed there, and keeps
/// its claim and skew.
pub async fn fast_clocks_are_filed_early_and_marked(mut h: impl StoreHarness) {
    let s = h.open().await;
    let now = Timestamp::now();
    let claim = now.plus_millis(2 * DAY_MS);
    let (id, st) = start_at("cam-fast", claim, DayOffset::default(), now);
    assert!(id.filed_early());
    s.apply(&[st, end(&id, 1_000, EndStatus::Complete)]).await.unwrap();
    let page = s.day_page(&cid("cam-fast"), day(0), None, 10, None).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].triggered_at, claim);
    assert_eq!(page.events[0].clock_skew_ms, Some(2 * DAY_MS));
    assert_eq!(page.events[0].status, EventStatus::Complete);
    assert_eq!(s.calendar(&cid("cam-fast"), day(0), day(0)).await.unwrap(), vec![(day(0), 1)]);
}

/// Applying everything twice (a replay) changes nothing.
pub async fn replay_is_idempotent(mut h: impl StoreHarness) {
    let s = h.open().await;
    let mut batch = Vec::new();
    let mut ids = Vec::new();
    for i in 0..12 {
        let (id, st) = start("cam-r", "motion", noon(2, i * 1000));
        batch.push(st);
        batch.push(end(&id, 500, EndStatus::Complete));
        ids.push(id);
    }
    batch.push(segment("cam-r", "seg-r", noon(2, 0), 1000, &[(&ids[0], 0, 0, 400), (&ids[1], 0, 400, 1000)]));
    batch.push(env(Report::DigestReported(DigestReported {
        cid: cid("cam-r"),
        date: day(2),
        utc_offset: DayOffset::default(),
        segment_id: SegmentId::parse("dg").unwrap(),
        size: 9,
        duration_ms: 60_000,
    })));
    s.apply(&batch).await.unwrap();
    let snapshot = |s: Arc<dyn ProjectionStore>, ids: Vec<EventId>| async move {
        let cal = s.calendar(&cid("cam-r"), day(29), day(0)).await.unwrap();
        let page = s.day_page(&cid("cam-r"), day(2), None, 100, None).await.unwrap();
        let mut details = Vec::new();
        for id in &ids {
            details.push(s.event(id).await.unwrap());
        }
        let dg = s.digest(&cid("cam-r"), day(2)).await.unwrap();
        (cal, page.events, details, dg)
    };
    let before = snapshot(s.clone(), ids.clone()).await;
    s.apply(&batch).await.unwrap();
    s.apply(&batch[5..]).await.unwrap();
    let after = snapshot(s.clone(), ids.clone()).await;
    assert_eq!(before, after);
    assert_eq!(before.0, vec![(day(2), 12)]);
}

/// Counts per day, per device, in the window asked; empty days omitted.
pub async fn calendar_counts_per_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    let mut batch = Vec::new();
    for (days_ago, n) in [(0, 3), (1, 1), (5, 2), (29, 4)] {
        for i in 0..n {
            batch.push(start("cam-c", "motion", noon(days_ago, i * 10)).1);
        }
    }
    batch.push(start("cam-other", "motion", noon(0, 0)).1);
    s.apply(&batch).await.unwrap();
    let cal = s.calendar(&cid("cam-c"), day(29), day(0)).await.unwrap();
    let mut cal = cal;
    cal.sort();
    assert_eq!(cal, vec![(day(29), 4), (day(5), 2), (day(1), 1), (day(0), 3)]);
    let window = s.calendar(&cid("cam-c"), day(5), day(1)).await.unwrap();
    assert_eq!(window.iter().map(|d| d.1).sum::<u64>(), 3);
    assert!(s.calendar(&cid("cam-none"), day(29), day(0)).await.unwrap().is_empty());
}

/// Pages come in trigger order; events arriving mid-paging do not shift served pages.
pub async fn day_page_cursor_is_stable(mut h: impl StoreHarness) {
    let s = h.open().await;
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for i in 0..25 {
        let (id, st) = start("cam-p", "motion", noon(3, i * 60_000));
        ids.push(id);
        batch.push(st);
    }
    s.apply(&batch).await.unwrap();
    let c = cid("cam-p");
    let p1 = s.day_page(&c, day(3), None, 10, None).await.unwrap();
    assert_eq!(p1.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), ids[..10]);
    // An event earlier than the cursor, and one later, arrive between page requests.
    let (early, st_early) = start("cam-p", "motion", noon(3, 30_000));
    let (late, st_late) = start("cam-p", "motion", noon(3, 100 * 60_000));
    s.apply(&[st_early, st_late]).await.unwrap();
    let p2 = s.day_page(&c, day(3), None, 10, p1.next.as_deref()).await.unwrap();
    assert_eq!(p2.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), ids[10..20]);
    let p3 = s.day_page(&c, day(3), None, 10, p2.next.as_deref()).await.unwrap();
    let mut want: Vec<_> = ids[20..].to_vec();
    want.push(late);
    assert_eq!(p3.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), want);
    if let Some(next) = p3.next.as_deref() {
        assert!(s.day_page(&c, day(3), None, 10, Some(next)).await.unwrap().events.is_empty());
    }
    let all = s.day_page(&c, day(3), None, 100, None).await.unwrap();
    assert_eq!(all.events.len(), 27);
    assert!(all.events.iter().any(|e| e.event_id == early));
    assert!(all.next.is_none());
    assert!(s.day_page(&c, day(4), None, 10, None).await.unwrap().events.is_empty());
}

/// `type=` keeps only that type, across pages.
pub async fn day_page_filters_by_type(mut h: impl StoreHarness) {
    let s = h.open().await;
    let mut batch = Vec::new();
    for i in 0..30 {
        let event_type = if i % 3 == 0 { "sound" } else { "motion" };
        batch.push(start("cam-t", event_type, noon(0, i * 1000)).1);
    }
    s.apply(&batch).await.unwrap();
    let sound = EventType::parse("sound").unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    for _ in 0..20 {
        let page = s.day_page(&cid("cam-t"), day(0), Some(&sound), 4, cursor.as_deref()).await.unwrap();
        assert!(page.events.len() <= 4);
        seen.extend(page.events.iter().map(|e| e.event_type.as_str().to_owned()));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|k| k == "sound"));
}

/// A segment holding the end of one event and the start of another is stored once and
/// listed under both, each event's segments ascending by index.
pub async fn segments_map_into_events_in_index_order(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-s", "motion", noon(0, 0));
    let (b, sb) = start("cam-s", "person", noon(0, 15_000));
    s.apply(&[sa, sb]).await.unwrap();
    s.apply(&[
        segment("cam-s", "seg-2", noon(0, 10_000), 2000, &[(&a, 1, 0, 800), (&b, 0, 900, 2000)]),
        segment("cam-s", "seg-1", noon(0, 0), 1500, &[(&a, 0, 100, 1500)]),
        segment("cam-s", "seg-3", noon(0, 20_000), 1000, &[(&b, 1, 0, 1000)]),
    ])
    .await
    .unwrap();
    let da = s.event(&a).await.unwrap().unwrap();
    let got: Vec<_> = da
        .segments
        .iter()
        .map(|x| (x.segment_id.as_str().to_owned(), x.index, x.start_offset, x.end_offset, x.size))
        .collect();
    assert_eq!(got, vec![("seg-1".into(), 0, 100, 1500, 1500), ("seg-2".into(), 1, 0, 800, 2000)]);
    let db = s.event(&b).await.unwrap().unwrap();
    let got: Vec<_> = db.segments.iter().map(|x| (x.segment_id.as_str().to_owned(), x.index)).collect();
    assert_eq!(got, vec![("seg-2".into(), 0), ("seg-3".into(), 1)]);
    let seg = &db.segments[0];
    assert_eq!(seg.media.codec, "h264");
    assert_eq!(seg.keyframes, vec![0, 1000]);
    assert_eq!(seg.duration_ms, 10_000);
}

/// Offline devices send a segment before the event's start: nothing is dropped.
pub async fn segment_before_event_start_is_kept(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-o", "motion", noon(1, 0));
    s.apply(&[segment("cam-o", "seg-o", noon(1, 0), 100, &[(&a, 0, 0, 100)])]).await.unwrap();
    s.apply(&[sa]).await.unwrap();
    let d = s.event(&a).await.unwrap().unwrap();
    assert_eq!(d.segments.len(), 1);
    assert_eq!(d.event.status, EventStatus::Open);
}

/// A report arriving days late is filed under its trigger day.
pub async fn late_report_lands_in_trigger_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-l", "motion", noon(3, 0));
    s.apply(&[st]).await.unwrap();
    assert_eq!(s.calendar(&cid("cam-l"), day(29), day(0)).await.unwrap(), vec![(day(3), 1)]);
    let page = s.day_page(&cid("cam-l"), day(3), None, 10, None).await.unwrap();
    assert_eq!(page.events[0].event_id, id);
}

/// One digest per device and day; a re-upload replaces it.
pub async fn digests_by_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    let dg = |seg: &str, size| {
        env(Report::DigestReported(DigestReported {
            cid: cid("cam-d"),
            date: day(1),
            utc_offset: DayOffset::default(),
            segment_id: SegmentId::parse(seg).unwrap(),
            size,
            duration_ms: 30_000,
        }))
    };
    s.apply(&[dg("d1", 10)]).await.unwrap();
    s.apply(&[dg("d2", 20)]).await.unwrap();
    let got = s.digest(&cid("cam-d"), day(1)).await.unwrap().unwrap();
    assert_eq!((got.segment_id.as_str(), got.size, got.date), ("d2", 20, day(1)));
    assert!(s.digest(&cid("cam-d"), day(2)).await.unwrap().is_none());
}

/// Data past retention is gone after `drop_expired` (TTL engines never show it).
pub async fn expired_days_are_dropped_whole(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (old, st_old) = start("cam-x", "motion", noon(40, 0));
    let (kept, st_kept) = start("cam-x", "motion", noon(10, 0));
    s.apply(&[st_old, segment("cam-x", "seg-x", noon(40, 0), 10, &[(&old, 0, 0, 10)]), st_kept]).await.unwrap();
    let oldest_kept = day(30);
    s.drop_expired(oldest_kept).await.unwrap();
    assert!(s.event(&old).await.unwrap().is_none());
    assert!(s.event(&kept).await.unwrap().is_some());
    assert_eq!(s.calendar(&cid("cam-x"), day(60), day(0)).await.unwrap(), vec![(day(10), 1)]);
}

/// A cursor that is not this store's is refused, not misread.
pub async fn foreign_cursor_is_refused(mut h: impl StoreHarness) {
    let s = h.open().await;
    s.apply(&[start("cam-f", "motion", noon(0, 0)).1]).await.unwrap();
    let r = s.day_page(&cid("cam-f"), day(0), None, 10, Some(b"\xffnot a cursor")).await;
    assert!(r.is_err(), "{r:?}");
}

/// A pre-roll segment that started the day before its event stays listed with the event
/// after the segment's own start day has been dropped: a segment lives as long as any event
/// that maps it.
pub async fn pre_roll_segment_lives_as_long_as_its_event(mut h: impl StoreHarness) {
    let s = h.open().await;
    let today = DayOffset::default().today();
    // Event at 00:00:05 yesterday; its segment started ten seconds earlier, the day before.
    let trigger = DayOffset::default().start_of(today.add_days(-1)).plus_millis(5_000);
    let (id, st) = start("cam-pre", "motion", trigger);
    let seg = segment("cam-pre", "seg-pre", trigger.plus_millis(-10_000), 1000, &[(&id, 0, 500, 1000)]);
    s.apply(&[seg, st]).await.unwrap();
    assert_eq!(s.event(&id).await.unwrap().unwrap().segments.len(), 1);
    // Drop the segment's start day (two days ago), keep the event's day (yesterday).
    s.drop_expired(day(1)).await.unwrap();
    let d = s.event(&id).await.unwrap().expect("the event is kept");
    let got: Vec<_> = d.segments.iter().map(|x| (x.segment_id.as_str().to_owned(), x.index, x.size)).collect();
    assert_eq!(got, vec![("seg-pre".to_owned(), 0, 1000)], "the segment must live as long as its event");
}

/// A record with a value no column holds is refused as permanent, naming it, and nothing of
/// its batch is written (the projector quarantines it and applies the rest).
pub async fn unstorable_record_is_rejected_by_its_index(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-u", "motion", noon(0, 0));
    let poison = segment("cam-u", "seg-u", noon(0, 0), 100, &[(&id, 1 << 31, 0, 100)]);
    let err = s.apply(&[st.clone(), poison]).await.expect_err("index 2^31 fits no int column");
    assert!(err.is_permanent(), "{err}");
    assert!(matches!(err, StoreError::Rejected { index: Some(1), .. }), "{err}");
    assert!(s.event(&id).await.unwrap().is_none(), "nothing of the batch is written");
    s.apply(&[st]).await.unwrap();
    assert!(s.event(&id).await.unwrap().is_some());
}

/// A plan change on the log (`plan_set`) is applied beside the reports around it and writes no
/// row: the device's plan is that of its reports (`schemas::rows`).
pub async fn a_plan_change_is_applied_and_writes_no_row(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-np", "motion", noon(0, 0));
    let cam = cid("cam-np");
    let report = Report::PlanSet(schemas::PlanSet { cid: cam.clone(), retention_days: 60 });
    s.apply(&[env(report), st]).await.unwrap();
    assert!(s.event(&id).await.unwrap().is_some());
    assert_eq!(s.plan(&cam).await.unwrap(), None, "the start beside it carried no plan");
}

fn quarantined(partition: i32, offset: i64, reason: &str) -> Quarantined {
    Quarantined {
        position: Position { partition, offset },
        key: "cam-q".into(),
        value: vec![1, 2, 3, offset as u8],
        reason: reason.into(),
        quarantined_at: Timestamp::now(),
    }
}

/// Quarantined records are kept with their reason, listed by position, idempotent per
/// position, until released.
pub async fn quarantine_keeps_records_until_released(mut h: impl StoreHarness) {
    let s = h.open().await;
    assert!(s.quarantined(10).await.unwrap().is_empty());
    let (a, b, c) = (quarantined(1, 7, "bad index"), quarantined(0, 9, "undecodable"), quarantined(1, 3, "x"));
    s.quarantine(&[a.clone(), b.clone()]).await.unwrap();
    s.quarantine(&[c.clone(), a.clone()]).await.unwrap();
    let got = s.quarantined(10).await.unwrap();
    let positions: Vec<_> = got.iter().map(|q| (q.position.partition, q.position.offset)).collect();
    assert_eq!(positions, vec![(0, 9), (1, 3), (1, 7)]);
    assert_eq!(got[2].value, a.value);
    assert_eq!(got[2].reason, "bad index");
    assert_eq!(got[2].key, "cam-q");
    assert_eq!(s.quarantined(2).await.unwrap().len(), 2);
    s.release(&got[..1]).await.unwrap();
    let left: Vec<_> = s.quarantined(10).await.unwrap().iter().map(|q| q.position.offset).collect();
    assert_eq!(left, vec![3, 7]);
}

/// An event's segments come in pages by index; the pages add up to the whole detail.
pub async fn event_detail_pages_by_index(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-pg", "motion", noon(0, 0));
    let mut batch = vec![st];
    for i in 0..5u32 {
        let seg = format!("seg-{i}");
        batch.push(segment("cam-pg", &seg, noon(0, i64::from(i) * 10_000), 100, &[(&id, i * 2, 0, 100)]));
    }
    s.apply(&batch).await.unwrap();
    let indexes = |d: &crate::store::EventDetail| d.segments.iter().map(|x| x.index).collect::<Vec<_>>();
    let p1 = s.event_page(&id, None, 2).await.unwrap().unwrap();
    assert_eq!((indexes(&p1), p1.next_index), (vec![0, 2], Some(2)));
    let p2 = s.event_page(&id, p1.next_index, 2).await.unwrap().unwrap();
    assert_eq!((indexes(&p2), p2.next_index), (vec![4, 6], Some(6)));
    let p3 = s.event_page(&id, p2.next_index, 2).await.unwrap().unwrap();
    assert_eq!((indexes(&p3), p3.next_index), (vec![8], None));
    let all = s.event(&id).await.unwrap().unwrap();
    assert_eq!((indexes(&all), all.next_index), (vec![0, 2, 4, 6, 8], None));
}

/// A second segment at the same (event, index): the same segment again changes nothing; a
/// different one replaces it when its report is newer, and a replay of the log gives the same.
pub async fn a_newer_segment_at_the_same_index_replaces_the_older(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (id, st) = start("cam-ix", "motion", noon(0, 0));
    let first = segment("cam-ix", "seg-first", noon(0, 0), 100, &[(&id, 0, 0, 100)]);
    let second = segment("cam-ix", "seg-second", noon(0, 1000), 200, &[(&id, 0, 0, 200)]);
    s.apply(&[st.clone(), first.clone()]).await.unwrap();
    s.apply(std::slice::from_ref(&first)).await.unwrap();
    let segments = |d: crate::store::EventDetail| {
        d.segments.iter().map(|x| (x.segment_id.as_str().to_owned(), x.index)).collect::<Vec<_>>()
    };
    assert_eq!(segments(s.event(&id).await.unwrap().unwrap()), vec![("seg-first".to_owned(), 0)]);
    s.apply(std::slice::from_ref(&second)).await.unwrap();
    assert_eq!(segments(s.event(&id).await.unwrap().unwrap()), vec![("seg-second".to_owned(), 0)]);
    s.apply(&[st, first, second]).await.unwrap();
    assert_eq!(segments(s.event(&id).await.unwrap().unwrap()), vec![("seg-second".to_owned(), 0)]);
}

/// Each day's calendar count equals the events its day page lists (the count is kept beside
/// the rows, never recomputed from them: this is what keeps the two in step).
async fn assert_calendar_matches_pages(s: &dyn ProjectionStore, device: &str, want: &[(Day, u64)]) {
    let c = cid(device);
    let mut cal = s.calendar(&c, day(29), day(0)).await.unwrap();
    cal.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(cal, want, "{device}: calendar");
    for (d, n) in want {
        let mut listed = 0u64;
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = s.day_page(&c, d, None, 100, cursor.as_deref()).await.unwrap();
            listed += page.events.len() as u64;
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(listed, n, "{device}: the calendar's count for {d} is the events the day lists");
    }
}

/// The log replayed — whole, in overlapping pieces, after the projector lost its commit —
/// leaves every day's count exact: an event counts once, however often its reports are applied.
pub async fn calendar_count_survives_replayed_batches(mut h: impl StoreHarness) {
    let s = h.open().await;
    let mut log = Vec::new();
    let mut ids = Vec::new();
    for i in 0..40 {
        let (id, st) = start("cam-rp", if i % 2 == 0 { "motion" } else { "sound" }, noon(1 + (i % 3), i * 1000));
        if i % 5 == 0 {
            // An end that reaches the store before its start.
            log.push(end(&id, 900, EndStatus::Aborted));
            log.push(st);
        } else {
            log.push(st);
            log.push(end(&id, 1_500, EndStatus::Complete));
        }
        ids.push(id);
    }
    log.push(segment("cam-rp", "seg-rp", noon(1, 0), 1000, &[(&ids[0], 0, 0, 500), (&ids[3], 0, 500, 1000)]));
    let want = [(day(1), 14), (day(2), 13), (day(3), 13)];
    for chunk in log.chunks(7) {
        s.apply(chunk).await.unwrap();
    }
    assert_calendar_matches_pages(&*s, "cam-rp", &want).await;
    // The projector crashed before committing: everything again, then overlapping windows,
    // then the log in one batch.
    for chunk in log.chunks(7) {
        s.apply(chunk).await.unwrap();
    }
    for w in (0..log.len()).step_by(5) {
        s.apply(&log[w..(w + 11).min(log.len())]).await.unwrap();
    }
    s.apply(&log).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-rp", &want).await;
}

/// A report stored twice (a retried append), sent twice by the device (a retry after a 503:
/// same event id, later receipt), repeated inside one batch, or an event's start and end
/// arriving in either order: each event counts once.
pub async fn duplicate_reports_count_once(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-dup", "motion", noon(0, 0));
    let (b, sb) = start("cam-dup", "motion", noon(0, 60_000));
    let (c, sc) = start("cam-dup", "person", noon(2, 0));
    // The device retries `a`'s start: same id, received later (a different envelope).
    let (a_again_id, a_again) = start("cam-dup", "motion", noon(0, 0));
    assert_eq!(a_again_id, a);
    assert_ne!(a_again.received_at, sa.received_at);
    s.apply(&[sa.clone(), sa.clone(), a_again.clone(), end(&b, 10, EndStatus::Complete), sb.clone()]).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-dup", &[(day(0), 2)]).await;
    // An end alone makes `c` known to its day; its start, twice, later adds nothing.
    s.apply(&[end(&c, 10, EndStatus::Aborted)]).await.unwrap();
    s.apply(&[end(&c, 20, EndStatus::Aborted)]).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-dup", &[(day(0), 2), (day(2), 1)]).await;
    s.apply(std::slice::from_ref(&sc)).await.unwrap();
    s.apply(&[sc, a_again, sa, sb, end(&a, 5, EndStatus::Complete)]).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-dup", &[(day(0), 2), (day(2), 1)]).await;
}

/// Two projectors (two handles on one store, as two processes after a rebalance that both
/// still hold a partition) applying the same reports at the same time, in different orders
/// and batchings, count each event once.
pub async fn two_projectors_count_each_event_once(mut h: impl StoreHarness) {
    let first = h.open().await;
    let second = h.open_again().await;
    let mut log = Vec::new();
    for i in 0..150 {
        let (id, st) = start("cam-2p", "motion", noon(i % 3, i * 10_000));
        log.push(st);
        if i % 4 == 0 {
            log.push(end(&id, 2_000, EndStatus::Complete));
        }
    }
    let (one, two) = (first.clone(), second.clone());
    let forward = log.clone();
    let mut backward = log.clone();
    backward.reverse();
    let a = tokio::spawn(async move {
        for chunk in forward.chunks(16) {
            one.apply(chunk).await.unwrap();
        }
    });
    let b = tokio::spawn(async move {
        for chunk in backward.chunks(23) {
            two.apply(chunk).await.unwrap();
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    let want = [(day(0), 50), (day(1), 50), (day(2), 50)];
    assert_calendar_matches_pages(&*first, "cam-2p", &want).await;
    assert_calendar_matches_pages(&*second, "cam-2p", &want).await;
    // And both at once with the same batches.
    let (one, two) = (first.clone(), second.clone());
    let (x, y) = (log.clone(), log);
    let (ra, rb) = tokio::join!(
        tokio::spawn(async move { one.apply(&x).await.map(drop) }),
        tokio::spawn(async move { two.apply(&y).await.map(drop) })
    );
    ra.unwrap().unwrap();
    rb.unwrap().unwrap();
    assert_calendar_matches_pages(&*first, "cam-2p", &want).await;
}

/// A start of `device` with four seconds of retention left: its trigger, its day, its id and
/// report.
fn nearly_expired(device: &str) -> (Timestamp, Day, (EventId, Envelope)) {
    let trigger = Timestamp::now().plus_millis(4_000 - schemas::TimePolicy::default().retention_ms());
    (trigger, DayOffset::default().day_of(trigger).unwrap(), start(device, "motion", trigger))
}

/// Waits until what was triggered at `trigger` is past retention (TTLs are whole seconds,
/// rounded up), then has the janitor drop `day`.
async fn expire(s: &dyn ProjectionStore, trigger: Timestamp, day: Day) {
    let left = schemas::TimePolicy::default().expires_at(trigger).millis() - Timestamp::now().millis();
    tokio::time::sleep(std::time::Duration::from_millis(left.max(0) as u64 + 1_500)).await;
    s.drop_expired(day.add_days(1)).await.unwrap();
}

/// A day's count goes with the day: once its events are past retention (a TTL engine's rows
/// expire; the embedded store's janitor drops the day once its last instant is past), the
/// calendar no longer counts it, while the days still inside retention keep theirs.
pub async fn counts_expire_with_their_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    // An event with four seconds of retention left, and one with ten days.
    let (trigger, old_day, (old, st_old)) = nearly_expired("cam-exp");
    let (_, st_kept) = start("cam-exp", "motion", noon(10, 0));
    s.apply(&[st_old, end(&old, 100, EndStatus::Complete), st_kept]).await.unwrap();
    let mut cal = s.calendar(&cid("cam-exp"), old_day, day(0)).await.unwrap();
    cal.sort();
    assert_eq!(cal, vec![(old_day, 1), (day(10), 1)], "counted while inside retention");
    // Past the old event's expiry, the janitor drops its day.
    expire(&*s, trigger, old_day).await;
    assert_eq!(s.calendar(&cid("cam-exp"), old_day, day(0)).await.unwrap(), vec![(day(10), 1)]);
    assert!(s.day_page(&cid("cam-exp"), old_day, None, 10, None).await.unwrap().events.is_empty());
    assert!(s.event(&old).await.unwrap().is_none());
    // A replay of the expired event writes nothing and counts nothing.
    let (_, again) = start("cam-exp", "motion", trigger);
    s.apply(&[again]).await.unwrap();
    assert_eq!(s.calendar(&cid("cam-exp"), old_day, day(0)).await.unwrap(), vec![(day(10), 1)]);
}

/// A subscription change: `id` with `url`, paused or not.
pub fn subscription(id: &str, url: &str, paused: bool) -> Envelope {
    env(Report::SubscriptionSet(SubscriptionSet {
        subscription_id: SubscriptionId::parse(id).unwrap(),
        url: url.into(),
        secrets: vec![Sealed(vec![1; 40]), Sealed(vec![2; 40])],
        devices: vec![cid("cam-1")],
        device_prefixes: vec![cid("door-")],
        kinds: vec![ReportKind::EventStarted],
        event_types: vec![EventType::parse("person").unwrap()],
        cooldown_ms: 60_000,
        max_age_ms: Some(3_600_000),
        paused,
        created_at: noon(1, 0),
    }))
}

/// A subscription's deletion.
pub fn subscription_deleted(id: &str) -> Envelope {
    env(Report::SubscriptionDeleted(SubscriptionDeleted { subscription_id: SubscriptionId::parse(id).unwrap() }))
}

/// Subscriptions: the newest change wins (in one batch or across batches, whatever the order
/// of application), a deletion ends one for good (an older change replayed after it does not
/// bring it back), and they outlive every day partition.
pub async fn subscriptions_keep_their_newest_change(mut h: impl StoreHarness) {
    let s = h.open().await;
    assert!(s.subscriptions().await.unwrap().is_empty());
    let a1 = subscription("sub-a", "https://a.example/1", false);
    let b1 = subscription("sub-b", "https://b.example/1", false);
    let a2 = subscription("sub-a", "https://a.example/2", true);
    let c1 = subscription("sub-c", "https://c.example/1", false);
    let c_gone = subscription_deleted("sub-c");
    // One batch holding a change and a newer one of the same subscription, and a deletion.
    s.apply(&[a1.clone(), b1.clone(), a2.clone(), c1.clone(), c_gone.clone()]).await.unwrap();
    let have = s.subscriptions().await.unwrap();
    let ids: Vec<&str> = have.iter().map(|v| v.subscription.subscription_id.as_str()).collect();
    assert_eq!(ids, ["sub-a", "sub-b"]);
    let Report::SubscriptionSet(want_a) = &a2.report else { unreachable!() };
    assert_eq!(&have[0].subscription, want_a, "the newer change wins, whole");
    assert_eq!(have[0].changed_at, a2.received_at);
    // Replays, in any order: nothing changes.
    s.apply(&[a2.clone(), a1.clone(), c1.clone()]).await.unwrap();
    s.apply(&[c_gone.clone(), c1, b1, a1]).await.unwrap();
    assert_eq!(s.subscriptions().await.unwrap(), have);
    // Another handle (a second process) reads the same; retention never drops them.
    let again = h.open_again().await;
    again.drop_expired(DayOffset::default().today().add_days(1)).await.unwrap();
    assert_eq!(again.subscriptions().await.unwrap(), have);
    s.apply(&[subscription_deleted("sub-a")]).await.unwrap();
    let left: Vec<String> =
        s.subscriptions().await.unwrap().iter().map(|v| v.subscription.subscription_id.to_string()).collect();
    assert_eq!(left, ["sub-b"]);
}

/// A dead letter of `sub` under `webhook_id`.
pub fn dead_lettered(sub: &str, webhook_id: &str) -> Envelope {
    let (_, record) = start("cam-1", "person", noon(0, 0));
    env(Report::SubscriptionDeadLettered(SubscriptionDeadLettered {
        subscription_id: SubscriptionId::parse(sub).unwrap(),
        webhook_id: webhook_id.into(),
        reason: "status 404".into(),
        attempts: 1,
        record_schema: schemas::SCHEMA_VERSION,
        record: Blob(record.encode()),
    }))
}

/// Dead letters: kept per subscription, oldest first, until a release (a replay or a purge)
/// names them; one dead again after its release is kept again; replays change nothing.
pub async fn dead_letters_are_kept_until_released(mut h: impl StoreHarness) {
    let s = h.open().await;
    let sub = SubscriptionId::parse("sub-d").unwrap();
    let (a, b, c) = (dead_lettered("sub-d", "msg_a"), dead_lettered("sub-d", "msg_b"), dead_lettered("sub-d", "msg_c"));
    let other = dead_lettered("sub-e", "msg_a");
    s.apply(&[a.clone(), b.clone(), other.clone()]).await.unwrap();
    s.apply(std::slice::from_ref(&c)).await.unwrap();
    let ids = |v: Vec<crate::store::DeadLetterView>| v.into_iter().map(|d| d.letter.webhook_id).collect::<Vec<_>>();
    assert_eq!(ids(s.dead_letters(&sub, 10).await.unwrap()), ["msg_a", "msg_b", "msg_c"]);
    assert_eq!(ids(s.dead_letters(&sub, 2).await.unwrap()), ["msg_a", "msg_b"]);
    let Report::SubscriptionDeadLettered(want) = &a.report else { unreachable!() };
    let first = s.dead_letters(&sub, 1).await.unwrap().remove(0);
    assert_eq!((&first.letter, first.dead_at), (want, a.received_at), "kept whole");
    let Report::SubscriptionDeadLettered(letter_b) = &b.report else { unreachable!() };
    let release = env(Report::DeadLettersReleased(DeadLettersReleased {
        subscription_id: sub.clone(),
        purged: vec!["msg_a".into()],
        replayed: vec![ReplayedLetter {
            webhook_id: "msg_b".into(),
            record_schema: letter_b.record_schema,
            record: letter_b.record.clone(),
        }],
    }));
    s.apply(std::slice::from_ref(&release)).await.unwrap();
    assert_eq!(ids(s.dead_letters(&sub, 10).await.unwrap()), ["msg_c"]);
    // Replayed in any order, the older dead letters stay released.
    s.apply(&[a, b.clone(), release, c]).await.unwrap();
    assert_eq!(ids(s.dead_letters(&sub, 10).await.unwrap()), ["msg_c"]);
    // A replayed delivery that fails again is a new dead letter, kept again.
    s.apply(&[dead_lettered("sub-d", "msg_b")]).await.unwrap();
    assert_eq!(ids(s.dead_letters(&sub, 10).await.unwrap()), ["msg_c", "msg_b"]);
    assert_eq!(
        ids(h.open_again().await.dead_letters(&SubscriptionId::parse("sub-e").unwrap(), 10).await.unwrap()),
        ["msg_a"]
    );
}

/// Two projectors at once: each store handle applies its log in pieces of its size.
async fn apply_at_once(projectors: [(&Arc<dyn ProjectionStore>, &Vec<Envelope>, usize); 2]) {
    let tasks = projectors.map(|(store, log, size)| {
        let (store, log) = (store.clone(), log.clone());
        tokio::spawn(async move {
            for piece in log.chunks(size) {
                store.apply(piece).await.unwrap();
            }
        })
    });
    for task in tasks {
        task.await.unwrap();
    }
}

/// The owner's deletion of `id`.
pub fn deletion(id: &EventId) -> Envelope {
    env(Report::EventDeleted(schemas::EventDeleted { cid: id.device().clone(), event_id: id.clone() }))
}

fn purged_keys(mut purges: Vec<crate::store::Purge>) -> Vec<String> {
    purges.sort_by(|a, b| a.key.cmp(&b.key));
    purges.into_iter().map(|p| p.key).collect()
}

/// Applies `history` with `deletion` twice (the same report and a second one) again: in one
/// batch, then in pieces.
async fn apply_again(s: &dyn ProjectionStore, history: &[Envelope], deletion: &Envelope) {
    let mut again = history.to_vec();
    again.push(deletion.clone());
    let Report::EventDeleted(d) = &deletion.report else { panic!("a deletion") };
    again.push(self::deletion(&d.event_id));
    s.apply(&again).await.unwrap();
    for piece in again.chunks(3) {
        s.apply(piece).await.unwrap();
    }
}

/// A deleted event leaves the day page, the event detail and the calendar's count (by exactly
/// one, however often the deletion and the event's reports are applied again, in one batch or
/// many), and its snapshot and the segments no other live event maps are listed to purge; a
/// segment shared with a live event is not, until that one is deleted too.
pub async fn a_deleted_event_leaves_every_read(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-del", "motion", noon(0, 0));
    let (b, sb) = start("cam-del", "person", noon(0, 30_000));
    let (c, sc) = start("cam-del", "motion", noon(1, 0));
    let (ea, eb) = (end(&a, 20_000, EndStatus::Complete), end(&b, 20_000, EndStatus::Complete));
    let own = segment("cam-del", "seg-own", noon(0, 0), 1000, &[(&a, 0, 0, 1000)]);
    let shared = segment("cam-del", "seg-shared", noon(0, 20_000), 2000, &[(&a, 1, 0, 900), (&b, 0, 900, 2000)]);
    let history = vec![sa, sb, sc, ea, eb, own, shared];
    s.apply(&history).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-del", &[(day(0), 2), (day(1), 1)]).await;
    assert!(s.purges(100).await.unwrap().is_empty(), "nothing deleted, nothing to purge");

    let del_a = deletion(&a);
    s.apply(std::slice::from_ref(&del_a)).await.unwrap();
    assert!(s.event(&a).await.unwrap().is_none(), "a deleted event has no detail");
    assert_calendar_matches_pages(&*s, "cam-del", &[(day(0), 1), (day(1), 1)]).await;
    let page = s.day_page(&cid("cam-del"), day(0), None, 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>(), vec![b.clone()]);
    assert_eq!(
        purged_keys(s.purges(100).await.unwrap()),
        vec!["devices/cam-del/segments/seg-own".to_owned(), format!("devices/cam-del/snapshots/{a}.jpg"),],
        "the snapshot and the segment only `a` mapped; not the one `b` still maps"
    );
    assert_eq!(s.event(&b).await.unwrap().unwrap().segments.len(), 1, "b keeps the shared segment");

    // Everything again — the history, the deletion twice, in one batch and in pieces: the
    // count drops once.
    apply_again(&*s, &history, &del_a).await;
    assert_calendar_matches_pages(&*s, "cam-del", &[(day(0), 1), (day(1), 1)]).await;
    assert!(s.event(&a).await.unwrap().is_none());

    // `b` deleted too: the shared segment has no live event left.
    s.apply(&[deletion(&b)]).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-del", &[(day(1), 1)]).await;
    let keys = purged_keys(s.purges(100).await.unwrap());
    assert!(keys.contains(&"devices/cam-del/segments/seg-shared".to_owned()), "{keys:?}");
    assert!(keys.contains(&format!("devices/cam-del/snapshots/{b}.jpg")), "{keys:?}");
    assert_eq!(s.event(&c).await.unwrap().unwrap().event.event_id, c, "another day's event is untouched");

    // Confirmed purges are forgotten.
    let all = s.purges(100).await.unwrap();
    s.purged(&all).await.unwrap();
    assert!(s.purges(100).await.unwrap().is_empty());
}

/// The order against the event's other reports is defined: a deletion applied before the
/// event's start (a replay cut short, two projectors) creates the event deleted, never counted;
/// a start, an end or a segment of a deleted event applied after the deletion — late, or
/// replayed — does not bring it back, and the count stays exact.
pub async fn a_late_report_does_not_resurrect_a_deleted_event(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-late", "motion", noon(0, 0));
    let (b, sb) = start("cam-late", "motion", noon(0, 60_000));
    s.apply(&[sa.clone(), sb]).await.unwrap();
    s.apply(&[deletion(&a)]).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-late", &[(day(0), 1)]).await;
    // A segment of `a` reported after its deletion, its end, its start again.
    s.apply(&[segment("cam-late", "seg-late", noon(0, 10_000), 500, &[(&a, 3, 0, 500)])]).await.unwrap();
    s.apply(&[end(&a, 30_000, EndStatus::Complete), sa]).await.unwrap();
    assert!(s.event(&a).await.unwrap().is_none(), "a late report does not resurrect a deleted event");
    assert_calendar_matches_pages(&*s, "cam-late", &[(day(0), 1)]).await;

    // The deletion first: `c` is never counted, whatever comes after.
    let (c, sc) = start("cam-late", "person", noon(2, 0));
    s.apply(&[deletion(&c)]).await.unwrap();
    s.apply(&[sc.clone(), end(&c, 1_000, EndStatus::Aborted)]).await.unwrap();
    s.apply(&[segment("cam-late", "seg-c", noon(2, 0), 100, &[(&c, 0, 0, 100)]), sc]).await.unwrap();
    assert!(s.event(&c).await.unwrap().is_none());
    assert_calendar_matches_pages(&*s, "cam-late", &[(day(0), 1)]).await;
    assert_eq!(s.calendar(&cid("cam-late"), day(2), day(2)).await.unwrap(), vec![]);
    let page = s.day_page(&cid("cam-late"), day(0), None, 10, None).await.unwrap();
    assert_eq!(page.events.iter().map(|e| &e.event_id).collect::<Vec<_>>(), vec![&b], "only `b` is left");
}

/// `first` applies `log` in pieces of 5 while `second` applies it reversed in pieces of 7, at
/// once: two projectors racing over the same reports.
async fn apply_at_once_in_opposite_orders(
    first: &Arc<dyn ProjectionStore>,
    second: &Arc<dyn ProjectionStore>,
    log: Vec<Envelope>,
) {
    let mut reversed = log.clone();
    reversed.reverse();
    apply_at_once([(first, &log, 5), (second, &reversed, 7)]).await;
}

/// Two projectors applying the same history with its deletions at once, in different orders
/// and batchings, leave the same exact counts.
pub async fn two_projectors_delete_once(mut h: impl StoreHarness) {
    let first = h.open().await;
    let second = h.open_again().await;
    let mut log = Vec::new();
    let mut ids = Vec::new();
    for i in 0..24 {
        let (id, st) = start("cam-2del", "motion", noon(i % 2, i * 1000));
        log.push(st);
        log.push(end(&id, 500, EndStatus::Complete));
        ids.push(id);
    }
    for id in ids.iter().step_by(3) {
        log.push(deletion(id));
    }
    apply_at_once_in_opposite_orders(&first, &second, log).await;
    // 24 events, 12 a day; every third deleted (ids 0, 3, …, 21: four of each day).
    assert_calendar_matches_pages(&*first, "cam-2del", &[(day(0), 8), (day(1), 8)]).await;
    assert_calendar_matches_pages(&*second, "cam-2del", &[(day(0), 8), (day(1), 8)]).await;
}

/// The erasure of `device`.
pub fn erasure(device: &str) -> Envelope {
    env(Report::DeviceErased(schemas::DeviceErased { cid: cid(device) }))
}

/// A device's digest of `days_ago`.
fn digest_of(device: &str, seg: &str, days_ago: i64) -> Envelope {
    env(Report::DigestReported(DigestReported {
        cid: cid(device),
        date: day(days_ago),
        utc_offset: DayOffset::default(),
        segment_id: SegmentId::parse(seg).unwrap(),
        size: 10,
        duration_ms: 30_000,
    }))
}

/// Nothing of `device` is served: no count, no event, no digest, no offset.
async fn assert_nothing_served(s: &dyn ProjectionStore, device: &str, ids: &[&EventId]) {
    assert_calendar_matches_pages(s, device, &[]).await;
    for id in ids {
        assert!(s.event(id).await.unwrap().is_none(), "{device}: {id} is erased");
    }
    for d in 0..3 {
        assert!(s.digest(&cid(device), day(d)).await.unwrap().is_none(), "{device}: digest erased");
    }
    assert_eq!(s.utc_offset(&cid(device)).await.unwrap(), None, "{device}: offset erased");
    assert_eq!(s.usage(&cid(device), day(29), day(0)).await.unwrap(), vec![], "{device}: storage used erased");
    assert!(s.kept(&cid(device), None, 10).await.unwrap().is_empty(), "{device}: keeps erased");
    let restated = s.kept_reports(None).await.unwrap();
    assert!(restated.devices.iter().all(|d| d.cid.as_str() != device), "{device}: no kept event to restate");
}

/// An erased device leaves every read: its events, counts, digests and offset, its quarantined
/// records and its dead letters go, and every object its rows named (snapshots, segments,
/// digests) is listed to purge; another device is untouched. The device's history applied
/// again — whole, in pieces, the erasure with it or not, through another handle — serves
/// nothing of it.
pub async fn an_erased_device_leaves_every_read(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-er", "motion", noon(0, 0));
    let (b, sb) = start("cam-er", "person", noon(1, 0));
    let (k, sk) = start("cam-er-keep", "motion", noon(0, 0));
    let history = vec![
        sa,
        sb,
        sk,
        end(&a, 5_000, EndStatus::Complete),
        segment("cam-er", "seg-a", noon(0, 0), 100, &[(&a, 0, 0, 100)]),
        segment("cam-er", "seg-b", noon(1, 0), 100, &[(&b, 0, 0, 100)]),
        segment("cam-er-keep", "seg-k", noon(0, 0), 100, &[(&k, 0, 0, 100)]),
        digest_of("cam-er", "dg-er", 1),
        digest_of("cam-er-keep", "dg-k", 1),
    ];
    s.apply(&history).await.unwrap();
    // A kept event goes with the rest: its keep does not outlive the erasure.
    s.apply(&[keep::keep(&a)]).await.unwrap();
    assert_eq!(s.kept(&cid("cam-er"), None, 10).await.unwrap().len(), 1);
    let quarantined_of = |device: &str, offset| Quarantined { key: device.into(), ..quarantined(0, offset, "x") };
    s.quarantine(&[quarantined_of("cam-er", 1), quarantined_of("cam-er-keep", 2)]).await.unwrap();
    let letter = |webhook_id: &str, record: &Envelope| {
        env(Report::SubscriptionDeadLettered(SubscriptionDeadLettered {
            subscription_id: SubscriptionId::parse("sub-er").unwrap(),
            webhook_id: webhook_id.into(),
            reason: "status 404".into(),
            attempts: 1,
            record_schema: schemas::SCHEMA_VERSION,
            record: Blob(record.encode()),
        }))
    };
    let letters = vec![letter("msg_er", &history[0]), letter("msg_keep", &history[2])];
    s.apply(&letters).await.unwrap();
    assert_calendar_matches_pages(&*s, "cam-er", &[(day(0), 1), (day(1), 1)]).await;

    let erased = erasure("cam-er");
    s.apply(std::slice::from_ref(&erased)).await.unwrap();
    assert_nothing_served(&*s, "cam-er", &[&a, &b]).await;
    let keys = purged_keys(s.purges(100).await.unwrap());
    for want in [
        format!("devices/cam-er/snapshots/{a}.jpg"),
        format!("devices/cam-er/snapshots/{b}.jpg"),
        "devices/cam-er/segments/seg-a".into(),
        "devices/cam-er/segments/seg-b".into(),
        "devices/cam-er/digests/dg-er".into(),
    ] {
        assert!(keys.contains(&want), "{want} listed to purge: {keys:?}");
    }
    assert!(keys.iter().all(|k| k.starts_with("devices/cam-er/")), "only the erased device's objects: {keys:?}");
    let quarantined: Vec<String> = s.quarantined(10).await.unwrap().into_iter().map(|q| q.key).collect();
    assert_eq!(quarantined, ["cam-er-keep"], "the device's quarantined records go");
    let sub = SubscriptionId::parse("sub-er").unwrap();
    let ids = |v: Vec<crate::store::DeadLetterView>| v.into_iter().map(|d| d.letter.webhook_id).collect::<Vec<_>>();
    assert_eq!(ids(s.dead_letters(&sub, 10).await.unwrap()), ["msg_keep"], "the device's dead letters go");
    assert_calendar_matches_pages(&*s, "cam-er-keep", &[(day(0), 1)]).await;
    assert_eq!(s.event(&k).await.unwrap().unwrap().segments.len(), 1, "another device is untouched");
    assert!(s.digest(&cid("cam-er-keep"), day(1)).await.unwrap().is_some());

    // Replayed: the history alone, with the erasure, in pieces, through a second handle.
    let mut again = history.clone();
    again.extend(letters.iter().cloned());
    s.apply(&again).await.unwrap();
    again.push(erased.clone());
    for piece in again.chunks(2) {
        s.apply(piece).await.unwrap();
    }
    let second = h.open_again().await;
    second.apply(&again).await.unwrap();
    for store in [&s, &second] {
        assert_nothing_served(&**store, "cam-er", &[&a, &b]).await;
        assert_eq!(ids(store.dead_letters(&sub, 10).await.unwrap()), ["msg_keep"]);
        assert_calendar_matches_pages(&**store, "cam-er-keep", &[(day(0), 1)]).await;
    }
    // A history and its erasure in one batch (a rebuild): nothing of it is written, and the
    // objects it names are listed to purge all the same.
    let (z, sz) = start("cam-er-batch", "motion", noon(0, 0));
    let seg_z = segment("cam-er-batch", "seg-z", noon(0, 0), 100, &[(&z, 0, 0, 100)]);
    s.apply(&[sz, seg_z, erasure("cam-er-batch")]).await.unwrap();
    assert_nothing_served(&*s, "cam-er-batch", &[&z]).await;
    let keys = purged_keys(s.purges(100).await.unwrap());
    for want in [format!("devices/cam-er-batch/snapshots/{z}.jpg"), "devices/cam-er-batch/segments/seg-z".into()] {
        assert!(keys.contains(&want), "{want} listed to purge: {keys:?}");
    }
}

/// Reports newer than the erasure (the device reporting again after it) are served as usual,
/// counted once, whether applied after it or in the same batch before it; the older history
/// replayed beside them stays erased, and so does an older erasure's replay.
pub async fn reports_newer_than_an_erasure_are_served(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (old, so) = start("cam-again", "motion", noon(0, 0));
    let old_end = end(&old, 1_000, EndStatus::Complete);
    s.apply(&[so.clone(), old_end.clone()]).await.unwrap();
    let erased = erasure("cam-again");
    let (new, sn) = start("cam-again", "motion", noon(0, 60_000));
    let new_seg = segment("cam-again", "seg-new", noon(0, 60_000), 100, &[(&new, 0, 0, 100)]);
    // In one batch, the newer reports ahead of the erasure and the older behind it.
    s.apply(&[sn.clone(), erased.clone(), so.clone(), new_seg.clone(), old_end.clone()]).await.unwrap();
    assert!(s.event(&old).await.unwrap().is_none());
    assert_eq!(s.event(&new).await.unwrap().unwrap().segments.len(), 1, "newer than the erasure: served");
    assert_calendar_matches_pages(&*s, "cam-again", &[(day(0), 1)]).await;
    // The whole log again, in order, then the erasure alone: nothing changes.
    s.apply(&[so, old_end, erased.clone(), sn, new_seg]).await.unwrap();
    s.apply(&[erased]).await.unwrap();
    assert!(s.event(&old).await.unwrap().is_none());
    assert!(s.event(&new).await.unwrap().is_some());
    assert_calendar_matches_pages(&*s, "cam-again", &[(day(0), 1)]).await;
    // A later report of the same event, and another event after, in later batches.
    let (newer, snewer) = start("cam-again", "person", noon(1, 0));
    s.apply(&[end(&new, 2_000, EndStatus::Complete)]).await.unwrap();
    s.apply(&[snewer]).await.unwrap();
    let got = s.event(&new).await.unwrap().unwrap().event;
    assert_eq!(got.status, EventStatus::Complete);
    assert!(s.event(&newer).await.unwrap().is_some());
    assert_calendar_matches_pages(&*s, "cam-again", &[(day(0), 1), (day(1), 1)]).await;
}

/// Two projectors applying a device's history and its erasure at once, in opposite orders and
/// different batchings: nothing of the device is left in either's view, and another device's
/// counts are exact.
pub async fn two_projectors_erase_alike(mut h: impl StoreHarness) {
    let first = h.open().await;
    let second = h.open_again().await;
    let mut log = Vec::new();
    let mut ids = Vec::new();
    for i in 0..16 {
        let device = if i % 4 < 2 { "cam-2er-keep" } else { "cam-2er" };
        let (id, st) = start(device, "motion", noon(i % 2, i * 1000));
        log.push(st);
        log.push(end(&id, 500, EndStatus::Complete));
        log.push(segment(device, &format!("seg-{i}"), noon(i % 2, i * 1000), 100, &[(&id, 0, 0, 100)]));
        ids.push(id);
    }
    log.push(erasure("cam-2er"));
    apply_at_once_in_opposite_orders(&first, &second, log).await;
    let erased: Vec<&EventId> = ids.iter().filter(|id| id.device().as_str() == "cam-2er").collect();
    for store in [&first, &second] {
        assert_nothing_served(&**store, "cam-2er", &erased).await;
        assert_calendar_matches_pages(&**store, "cam-2er-keep", &[(day(0), 4), (day(1), 4)]).await;
    }
}

/// `device`'s storage used per day over the 30 days, oldest first.
async fn usage_of(s: &dyn ProjectionStore, device: &str) -> Vec<(Day, u64)> {
    let mut usage = s.usage(&cid(device), day(29), day(0)).await.unwrap();
    usage.sort();
    usage
}

/// Storage used counts each segment's reported bytes once, on the day it started: not once per
/// event that maps it, not once per copy in another event's day, not again when its report is
/// applied again (a replay in pieces, a duplicate in one batch, the device re-sending it).
pub async fn usage_counts_each_segment_once(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-use", "motion", noon(0, 0));
    let (b, sb) = start("cam-use", "motion", noon(0, 60_000));
    let (c, sc) = start("cam-use", "person", noon(1, 0));
    let history = vec![
        sa,
        sb,
        sc,
        segment("cam-use", "seg-a", noon(0, 0), 1_000, &[(&a, 0, 0, 1_000)]),
        // Shared by two events.
        segment("cam-use", "seg-ab", noon(0, 30_000), 2_000, &[(&a, 1, 0, 900), (&b, 0, 900, 2_000)]),
        // Started on day 1, mapping an event of day 0 too: a copy lives in day 0, counted on day 1.
        segment("cam-use", "seg-ca", noon(1, 10_000), 4_000, &[(&c, 0, 0, 4_000), (&a, 2, 0, 10)]),
    ];
    s.apply(&history).await.unwrap();
    let want = vec![(day(1), 4_000), (day(0), 3_000)];
    assert_eq!(usage_of(&*s, "cam-use").await, want);
    assert_eq!(s.usage_total().await.unwrap(), 7_000, "the deployment's total");
    // Again: whole, in pieces, duplicated within a batch, re-sent by the device (new envelope).
    s.apply(&history).await.unwrap();
    for piece in history.chunks(2) {
        s.apply(piece).await.unwrap();
    }
    let mut doubled = history.clone();
    doubled.extend(history.clone());
    doubled.push(segment("cam-use", "seg-a", noon(0, 0), 1_000, &[(&a, 0, 0, 1_000)]));
    s.apply(&doubled).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-use").await, want);
    assert_eq!(s.usage_total().await.unwrap(), 7_000);
    assert_eq!(h.open_again().await.usage(&cid("cam-use"), day(0), day(0)).await.unwrap(), vec![(day(0), 3_000)]);
    assert_eq!(s.usage(&cid("cam-other"), day(29), day(0)).await.unwrap(), vec![], "another device uses nothing");
}

/// A segment leaves storage used when a deletion leaves its object to no live event (it is
/// purged), exactly once however often the deletion and the history are applied again; a
/// segment still mapped by a live event stays counted until that one is deleted too; one
/// reported after the deletion of every event it maps is purged and not counted, in any order.
pub async fn usage_drops_once_when_a_segment_is_deleted_whole(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (a, sa) = start("cam-ud", "motion", noon(0, 0));
    let (b, sb) = start("cam-ud", "motion", noon(0, 60_000));
    let own = segment("cam-ud", "seg-own", noon(0, 0), 1_000, &[(&a, 0, 0, 1_000)]);
    let shared = segment("cam-ud", "seg-shared", noon(0, 20_000), 2_000, &[(&a, 1, 0, 900), (&b, 0, 900, 2_000)]);
    let history = vec![sa, sb, own, shared];
    s.apply(&history).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-ud").await, vec![(day(0), 3_000)]);
    let del_a = deletion(&a);
    s.apply(std::slice::from_ref(&del_a)).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-ud").await, vec![(day(0), 2_000)], "seg-own is purged; seg-shared is b's too");
    apply_again(&*s, &history, &del_a).await;
    assert_eq!(usage_of(&*s, "cam-ud").await, vec![(day(0), 2_000)], "taken off once");
    s.apply(&[deletion(&b)]).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-ud").await, vec![], "nothing left stored");
    assert_eq!(s.usage_total().await.unwrap(), 0);
    // Reported after the deletion of the one event it maps: purged and taken off as if it had
    // come before, once, whatever the order a replay applies it in; one that also maps a live
    // event stays.
    let late = segment("cam-ud", "seg-late", noon(0, 40_000), 500, &[(&a, 3, 0, 500)]);
    let (c, sc) = start("cam-ud", "motion", noon(0, 90_000));
    let kept = segment("cam-ud", "seg-kept", noon(0, 50_000), 700, &[(&a, 4, 0, 10), (&c, 0, 10, 700)]);
    s.apply(&[sc]).await.unwrap();
    s.apply(&[late.clone(), kept.clone()]).await.unwrap();
    s.apply(&[late.clone(), deletion(&a), late, kept]).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-ud").await, vec![(day(0), 700)]);
    assert_eq!(s.usage_total().await.unwrap(), 700);
    let keys = purged_keys(s.purges(100).await.unwrap());
    assert!(keys.contains(&"devices/cam-ud/segments/seg-late".to_owned()), "{keys:?}");
    assert!(!keys.contains(&"devices/cam-ud/segments/seg-kept".to_owned()), "{keys:?}");
}

/// `start` of an event whose device stated its snapshot's size.
fn start_with_snapshot(device: &str, at: Timestamp, bytes: u64) -> (EventId, Envelope) {
    let (id, mut st) = start(device, "motion", at);
    let Report::EventStarted(r) = &mut st.report else { unreachable!("a start") };
    r.snapshot_size = Some(bytes);
    (id, st)
}

/// An event's snapshot counts in storage used by the size its start stated, once (a start
/// applied again, duplicated, or re-sent by the device counts nothing more; a start without a
/// size counts nothing), on the event's day; it leaves storage used once when the event is
/// deleted — also when the start is applied after the deletion, in any order or batching.
pub async fn usage_counts_each_snapshot_once(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (_, sa) = start_with_snapshot("cam-snap", noon(0, 0), 300);
    let (b, sb) = start_with_snapshot("cam-snap", noon(1, 0), 50);
    let (c, sc) = start("cam-snap", "motion", noon(1, 60_000));
    let seg = segment("cam-snap", "seg-b", noon(1, 0), 1_000, &[(&b, 0, 0, 1_000)]);
    let history = vec![sa, sb, sc, seg];
    s.apply(&history).await.unwrap();
    let want = vec![(day(1), 1_050), (day(0), 300)];
    assert_eq!(usage_of(&*s, "cam-snap").await, want, "snapshots and segments, each on its day");
    let mut again = history.clone();
    again.extend(history.clone());
    again.push(start_with_snapshot("cam-snap", noon(0, 0), 300).1);
    s.apply(&again).await.unwrap();
    for piece in history.chunks(1) {
        s.apply(piece).await.unwrap();
    }
    assert_eq!(usage_of(&*s, "cam-snap").await, want, "counted once");
    assert_eq!(s.usage_total().await.unwrap(), 1_350);
    // A deletion takes the snapshot off with the segment it leaves to no live event, once.
    let del_b = deletion(&b);
    s.apply(std::slice::from_ref(&del_b)).await.unwrap();
    apply_again(&*s, &history, &del_b).await;
    assert_eq!(usage_of(&*s, "cam-snap").await, vec![(day(0), 300)]);
    assert!(s.event(&c).await.unwrap().is_some(), "a start without a size: served, counting nothing");
    // A deletion applied before its event's start (a replay that batches them apart, or in one
    // batch in either order): the snapshot is never counted.
    let (d, sd) = start_with_snapshot("cam-snap", noon(2, 0), 70);
    let (e, se) = start_with_snapshot("cam-snap", noon(2, 60_000), 80);
    s.apply(&[deletion(&d)]).await.unwrap();
    s.apply(std::slice::from_ref(&sd)).await.unwrap();
    s.apply(&[deletion(&e), se.clone(), sd, se, deletion(&e)]).await.unwrap();
    assert_eq!(usage_of(&*s, "cam-snap").await, vec![(day(0), 300)], "deleted before or with its start");
    assert_eq!(s.usage_total().await.unwrap(), 300);
    let keys = purged_keys(s.purges(100).await.unwrap());
    for id in [&b, &d, &e] {
        assert!(keys.contains(&format!("devices/cam-snap/snapshots/{id}.jpg")), "{keys:?}");
    }
    // And the log whole again, in a fresh view of the same store.
    assert_eq!(h.open_again().await.usage(&cid("cam-snap"), day(0), day(0)).await.unwrap(), vec![(day(0), 300)]);
}

/// Two projectors applying the same history (segments, then deletions) at once, in different
/// batchings, leave each day's usage exact.
pub async fn two_projectors_count_usage_once(mut h: impl StoreHarness) {
    let first = h.open().await;
    let second = h.open_again().await;
    let mut log = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20i64 {
        let (id, st) = start("cam-2u", "motion", noon(i % 2, i * 60_000));
        log.push(st);
        let seg = format!("seg-{i}");
        log.push(segment("cam-2u", &seg, noon(i % 2, i * 60_000), 100 + i as u64, &[(&id, 0, 0, 100)]));
        ids.push(id);
    }
    for id in ids.iter().step_by(4) {
        log.push(deletion(id));
    }
    apply_at_once([(&first, &log, 5), (&second, &log, 7)]).await;
    // Day 0 holds the even i, day 1 the odd; i = 0, 4, 8, 12, 16 (all even) are deleted.
    let stored = |odd: i64| (0..20i64).filter(|i| i % 2 == odd && i % 4 != 0).map(|i| 100 + i as u64).sum::<u64>();
    let want = vec![(day(1), stored(1)), (day(0), stored(0))];
    assert_eq!(usage_of(&*first, "cam-2u").await, want);
    assert_eq!(usage_of(&*second, "cam-2u").await, want);
    assert_eq!(first.usage_total().await.unwrap(), stored(0) + stored(1));
}

/// Storage used goes with its day, as the counts do.
pub async fn usage_expires_with_its_day(mut h: impl StoreHarness) {
    let s = h.open().await;
    let (trigger, old_day, (old, st_old)) = nearly_expired("cam-uexp");
    let (kept, st_kept) = start("cam-uexp", "motion", noon(10, 0));
    s.apply(&[
        st_old,
        st_kept,
        segment("cam-uexp", "seg-old", trigger, 700, &[(&old, 0, 0, 700)]),
        segment("cam-uexp", "seg-kept", noon(10, 0), 300, &[(&kept, 0, 0, 300)]),
    ])
    .await
    .unwrap();
    let mut usage = s.usage(&cid("cam-uexp"), old_day, day(0)).await.unwrap();
    usage.sort();
    assert_eq!(usage, vec![(old_day, 700), (day(10), 300)], "counted while inside retention");
    expire(&*s, trigger, old_day).await;
    assert_eq!(s.usage(&cid("cam-uexp"), old_day, day(0)).await.unwrap(), vec![(day(10), 300)]);
    assert_eq!(s.usage_total().await.unwrap(), 300);
}

#[path = "store/keep.rs"]
mod keep;
pub use keep::*;
#[path = "store/plan.rs"]
mod plan;
pub use plan::*;

#[path = "store/export.rs"]
mod export;
pub use export::*;
