//! The projector against the embedded engines: permanent failures are quarantined instead of
//! halting the partition, records of revoked partitions are never written, and records read
//! before a failed poll are not dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::EmbeddedStore;
use projector::{Progress, ProjectorConfig};
use schemas::{
    DayOffset, DeviceId, Envelope, EventId, EventMapping, EventStarted, EventType, Media, Report, SegmentId,
    SegmentReported, TimePolicy, Timestamp,
};
use seams::conformance::log::record_of;
use seams::conformance::wait_for;
use seams::{
    Consumed, DayPage, DigestView, EventDetail, LogConsumer, LogError, LogRecord, Position, ProjectionStore,
    Quarantined, ReportLog, StoreError,
};
use tokio::sync::watch;

fn started(cid: &str, at: Timestamp) -> (EventId, Envelope) {
    let cid = DeviceId::parse(cid).unwrap();
    let event_type = EventType::parse("motion").unwrap();
    let event_id = EventId::new(&cid, &event_type, at, DayOffset::default()).unwrap();
    let report = Report::EventStarted(EventStarted {
        cid,
        event_id: event_id.clone(),
        event_type,
        triggered_at: at,
        utc_offset: DayOffset::default(),
        clock_skew_ms: None,
        snapshot_size: None,
    });
    (event_id, Envelope::new(report, Timestamp::now()))
}

fn segment(id: &EventId, seg: &str, index: u32) -> Envelope {
    let report = Report::SegmentReported(SegmentReported {
        cid: id.device().clone(),
        segment_id: SegmentId::parse(seg).unwrap(),
        size: 100,
        started_at: id.triggered_at(),
        duration_ms: 1000,
        media: Media { codec: "h264".into(), width: 640, height: 480, fps: 25.0, audio_sample_rate: None },
        keyframes: vec![0],
        utc_offset: DayOffset::default(),
        events: vec![EventMapping { event_id: id.clone(), index, start_offset: 0, end_offset: 100 }],
    });
    Envelope::new(report, Timestamp::now())
}

async fn run_until<F, Fut>(log: Arc<dyn ReportLog>, store: Arc<dyn ProjectionStore>, what: &str, done: F) -> Progress
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let (stop, stopped) = watch::channel(false);
    let config = ProjectorConfig { linger: Duration::from_millis(20), ..ProjectorConfig::default() };
    let running = tokio::spawn(projector::run(log, store, config, stopped));
    wait_for(what, Duration::from_secs(20), done).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running).await.expect("stops").expect("task").expect("no error")
}

/// One record no store can hold (a mapping index of 2^31, as an older build let through) and
/// one that does not decode: both are quarantined with their reasons, and everything after
/// them is projected (this used to stop the partition for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_store_accepts_is_quarantined_and_projection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let now = Timestamp::now().plus_millis(-60_000);
    let (a, start_a) = started("cam-q", now);
    let (b, start_b) = started("cam-q", now.plus_millis(1000));
    let poison = segment(&a, "seg-poison", 1 << 31);
    let garbage = LogRecord { key: "cam-q".into(), report_kind: "x".into(), schema: 1, value: vec![1, 0, 0xff, 0xff] };
    log.append(vec![
        record_of(&start_a),
        record_of(&poison),
        garbage,
        record_of(&start_b),
        record_of(&segment(&b, "seg-ok", 0)),
    ])
    .await
    .unwrap();
    let s = store.clone();
    let b2 = b.clone();
    let progress = run_until(log.clone(), store.clone(), "event b and its segment", move || {
        let (s, b) = (s.clone(), b2.clone());
        async move { s.event(&b).await.unwrap().filter(|d| d.segments.len() == 1).map(drop) }
    })
    .await;
    assert!(store.event(&a).await.unwrap().is_some(), "the poison's batch neighbours are written");
    assert_eq!(progress.quarantined, 2, "{progress:?}");
    let q = store.quarantined(10).await.unwrap();
    let got: Vec<_> = q.iter().map(|q| (q.position.offset, q.key.as_str())).collect();
    assert_eq!(got.len(), 2, "{q:?}");
    assert!(q[0].reason.contains("index"), "{q:?}");
    assert!(q[1].reason.starts_with("undecodable"), "{q:?}");
    assert_eq!(q[0].value, poison.encode(), "the record is kept as it was in the log, for replay");
}

/// A store that refuses a record without naming it: the projector halves the batch until the
/// record is alone.
#[derive(Debug)]
struct Unnamed(Arc<EmbeddedStore>);

#[async_trait]
impl ProjectionStore for Unnamed {
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        let poisoned = batch
            .iter()
            .any(|e| matches!(&e.report, Report::SegmentReported(s) if s.segment_id.as_str().starts_with("poison")));
        if poisoned {
            return Err(StoreError::Rejected { index: None, reason: "poisoned".into() });
        }
        self.0.apply(batch).await
    }
    async fn quarantine(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        self.0.quarantine(records).await
    }
    async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>, StoreError> {
        self.0.quarantined(limit).await
    }
    async fn release(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        self.0.release(records).await
    }
    async fn subscriptions(&self) -> Result<Vec<seams::SubscriptionView>, StoreError> {
        self.0.subscriptions().await
    }
    async fn dead_letters(
        &self,
        subscription: &schemas::SubscriptionId,
        limit: u32,
    ) -> Result<Vec<seams::DeadLetterView>, StoreError> {
        self.0.dead_letters(subscription, limit).await
    }
    async fn purges(&self, limit: u32) -> Result<Vec<seams::Purge>, StoreError> {
        self.0.purges(limit).await
    }
    async fn purged(&self, done: &[seams::Purge]) -> Result<(), StoreError> {
        self.0.purged(done).await
    }
    async fn exports(
        &self,
        cid: &DeviceId,
        before: Option<&schemas::ExportId>,
        limit: u32,
    ) -> Result<Vec<seams::ExportView>, StoreError> {
        self.0.exports(cid, before, limit).await
    }
    async fn export(&self, cid: &DeviceId, id: &schemas::ExportId) -> Result<Option<seams::ExportView>, StoreError> {
        self.0.export(cid, id).await
    }
    async fn pending_exports(&self, limit: u32) -> Result<Vec<seams::ExportView>, StoreError> {
        self.0.pending_exports(limit).await
    }
    async fn kept(
        &self,
        cid: &DeviceId,
        after: Option<&EventId>,
        limit: u32,
    ) -> Result<Vec<seams::EventView>, StoreError> {
        self.0.kept(cid, after, limit).await
    }
    async fn kept_reports(&self, cursor: Option<&[u8]>) -> Result<seams::KeptPage, StoreError> {
        self.0.kept_reports(cursor).await
    }
    async fn calendar(
        &self,
        cid: &DeviceId,
        from: schemas::Day,
        to: schemas::Day,
    ) -> Result<Vec<(schemas::Day, u64)>, StoreError> {
        self.0.calendar(cid, from, to).await
    }
    async fn usage(
        &self,
        cid: &DeviceId,
        from: schemas::Day,
        to: schemas::Day,
    ) -> Result<Vec<(schemas::Day, u64)>, StoreError> {
        self.0.usage(cid, from, to).await
    }
    async fn usage_total(&self) -> Result<u64, StoreError> {
        self.0.usage_total().await
    }
    async fn day_page(
        &self,
        cid: &DeviceId,
        day: schemas::Day,
        event_type: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError> {
        self.0.day_page(cid, day, event_type, limit, cursor).await
    }
    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError> {
        self.0.utc_offset(cid).await
    }
    async fn event_page(
        &self,
        id: &EventId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Option<EventDetail>, StoreError> {
        self.0.event_page(id, after, limit).await
    }
    async fn digest(&self, cid: &DeviceId, day: schemas::Day) -> Result<Option<DigestView>, StoreError> {
        self.0.digest(cid, day).await
    }
    async fn plan(&self, cid: &schemas::DeviceId) -> Result<Option<u32>, StoreError> {
        self.0.plan(cid).await
    }

    async fn drop_expired(&self, oldest_kept: schemas::Day) -> Result<u64, StoreError> {
        self.0.drop_expired(oldest_kept).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.0.health().await
    }
    fn backend(&self) -> &'static str {
        "unnamed"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_the_store_cannot_name_is_found_by_halving() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let inner = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let store: Arc<dyn ProjectionStore> = Arc::new(Unnamed(inner.clone()));
    let now = Timestamp::now().plus_millis(-60_000);
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for i in 0..9 {
        let (id, st) = started("cam-h", now.plus_millis(i * 1000));
        records.push(record_of(&st));
        if i == 5 {
            records.push(record_of(&segment(&id, "poison-1", 0)));
        }
        ids.push(id);
    }
    let positions = log.append(records).await.unwrap();
    let s = store.clone();
    let last = ids[8].clone();
    let progress = run_until(log, store.clone(), "the last event", move || {
        let (s, id) = (s.clone(), last.clone());
        async move { s.event(&id).await.unwrap().map(drop) }
    })
    .await;
    for id in &ids {
        assert!(store.event(id).await.unwrap().is_some(), "{id}");
    }
    let q = store.quarantined(10).await.unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].position, positions[6], "the poison alone");
    assert_eq!(progress.quarantined, 1);
}

/// What a scripted consumer's next poll does.
#[derive(Debug)]
enum Step {
    /// Hands these records out.
    Records(Vec<Consumed>),
    /// Hands these records out, then a rebalance revokes partition 1 before they are written.
    RecordsThenRevoke(Vec<Consumed>),
    /// Fails as a broker going away does.
    Fail,
}

/// A log with one member that plays `script`, then waits with nothing to hand out.
#[derive(Debug)]
struct Scripted {
    script: Mutex<Option<Vec<Step>>>,
}

impl Scripted {
    fn new(script: Vec<Step>) -> Arc<Self> {
        Arc::new(Self { script: Mutex::new(Some(script)) })
    }
}

#[derive(Debug)]
struct ScriptedConsumer {
    script: std::vec::IntoIter<Step>,
    revoked: bool,
}

#[async_trait]
impl ReportLog for Scripted {
    async fn append(&self, _records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        Err(LogError::Other("read-only".into()))
    }
    async fn consumer(&self, _group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let script = self.script.lock().unwrap().take().unwrap_or_default();
        Ok(Box::new(ScriptedConsumer { script: script.into_iter(), revoked: false }))
    }
    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.consumer(group).await
    }
    async fn health(&self) -> Result<(), LogError> {
        Ok(())
    }
    async fn shutdown(&self) -> Result<(), LogError> {
        Ok(())
    }
    fn backend(&self) -> &'static str {
        "scripted"
    }
}

#[async_trait]
impl LogConsumer for ScriptedConsumer {
    async fn poll(&mut self, _max: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        match self.script.next() {
            Some(Step::Records(r)) => Ok(r),
            Some(Step::RecordsThenRevoke(r)) => {
                self.revoked = true;
                Ok(r)
            }
            Some(Step::Fail) => Err(LogError::Unavailable("broker transport failure".into())),
            None => {
                tokio::time::sleep(max_wait).await;
                Ok(Vec::new())
            }
        }
    }
    async fn commit(&mut self, _positions: &[Position]) -> Result<(), LogError> {
        Ok(())
    }
    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        Ok(Vec::new())
    }
    fn owns(&self, partition: i32) -> bool {
        !(self.revoked && partition == 1)
    }
}

fn consumed(partition: i32, offset: i64, e: &Envelope) -> Consumed {
    Consumed {
        position: Position { partition, offset },
        key: e.report.key(),
        report_kind: "x".into(),
        schema: 1,
        value: e.encode(),
        timestamp_ms: 0,
    }
}

type Check = std::pin::Pin<Box<dyn std::future::Future<Output = Option<()>> + Send>>;

/// A `run_until` condition: the event is in the store.
fn event_is_stored(store: &Arc<EmbeddedStore>, id: &EventId) -> impl FnMut() -> Check {
    let (s, id) = (store.clone(), id.clone());
    move || {
        let (s, id) = (s.clone(), id.clone());
        Box::pin(async move { s.event(&id).await.unwrap().map(drop) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_revoked_partition_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let now = Timestamp::now().plus_millis(-60_000);
    let (kept, st_kept) = started("cam-k", now);
    let (lost, st_lost) = started("cam-l", now);
    let log = Scripted::new(vec![Step::RecordsThenRevoke(vec![consumed(0, 0, &st_kept), consumed(1, 0, &st_lost)])]);
    let progress = run_until(log, store.clone(), "the owned partition's event", event_is_stored(&store, &kept)).await;
    assert!(store.event(&lost).await.unwrap().is_none(), "a revoked partition's record was written");
    assert_eq!(progress.revoked, 1);
}

/// A broker dying while a batch is being gathered: the records already read are past the
/// member's read position, so they are written, not dropped (this used to skip them for good,
/// found by the Kafka outage test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_read_before_a_failed_poll_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let now = Timestamp::now().plus_millis(-60_000);
    let (first, st_first) = started("cam-f", now);
    let (later, st_later) = started("cam-f", now.plus_millis(1000));
    let log = Scripted::new(vec![
        Step::Records(vec![consumed(0, 0, &st_first)]),
        Step::Fail,
        Step::Fail,
        Step::Records(vec![consumed(0, 1, &st_later)]),
    ]);
    run_until(log, store.clone(), "the later event", event_is_stored(&store, &later)).await;
    assert!(store.event(&first).await.unwrap().is_some(), "the record read before the failure was dropped");
}

/// `daybook quarantine replay`: a record the store now takes is applied and released; one it
/// still refuses stays, with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_applies_what_the_store_takes_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let (id, st) = started("cam-r", Timestamp::now().plus_millis(-60_000));
    let poison = segment(&id, "seg-poison", 1 << 31);
    let q = |offset, e: &Envelope, reason: &str| Quarantined {
        position: Position { partition: 0, offset },
        key: "cam-r".into(),
        value: e.encode(),
        reason: reason.into(),
        quarantined_at: Timestamp::now(),
    };
    // As if an older build had refused the start (say, a bug since fixed).
    store.quarantine(&[q(1, &st, "refused by an older build"), q(2, &poison, "index")]).await.unwrap();
    let listed = store.quarantined(10).await.unwrap();
    let (replayed, kept) = daybook::cli::quarantine::replay_all(store.as_ref(), &listed).await.unwrap();
    assert_eq!((replayed, kept), (1, 1));
    assert!(store.event(&id).await.unwrap().is_some(), "the replayed start is applied");
    let left = store.quarantined(10).await.unwrap();
    assert_eq!(left.iter().map(|q| q.position.offset).collect::<Vec<_>>(), vec![2]);
}

/// `prefetch` (rebuilds): the next batch is read while one is written. Over many small batches,
/// with a record no store takes and one that does not decode among them and the lag read after
/// every batch, every record is projected or quarantined, the run ends only once all of them
/// are written, and the group's position is the log's head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetching_run_until_caught_up_writes_and_commits_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let policy = TimePolicy::default();
    let today = policy.offset.day_of(Timestamp::now()).unwrap();
    let noon = policy.offset.start_of(today.add_days(-1)).plus_millis(43_200_000);
    let mut records = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3000 {
        let (id, st) = started(&format!("cam-p{}", i % 7), noon.plus_millis(i * 1000));
        records.push(record_of(&st));
        if i == 1234 {
            records.push(record_of(&segment(&id, "seg-poison", 1 << 31)));
            records.push(LogRecord {
                key: "cam-p".into(),
                report_kind: "x".into(),
                schema: 1,
                value: vec![1, 0, 0xff],
            });
        }
        ids.push(id);
    }
    for chunk in records.chunks(1000) {
        log.append(chunk.to_vec()).await.unwrap();
    }
    let head = log.head().await.unwrap();
    let config = ProjectorConfig {
        group: "prefetching".into(),
        max_batch: 128,
        linger: Duration::from_millis(1),
        prefetch: true,
        lag_every: Duration::ZERO,
        ..ProjectorConfig::default()
    };
    let (_stop, stopped) = watch::channel(false);
    let mut checks = Vec::new();
    let progress = tokio::time::timeout(
        Duration::from_secs(60),
        projector::run_until_caught_up(log.clone(), store.clone(), config, stopped, |c| checks.push(c)),
    )
    .await
    .expect("catches up")
    .expect("no error");
    assert_eq!((progress.reports, progress.quarantined), (3000, 2), "{progress:?}");
    let last = checks.last().expect("checked");
    assert!(last.caught_up && last.lag == 0, "{last:?}");
    assert!(checks[..checks.len() - 1].iter().all(|c| !c.caught_up), "caught up once, at the end");
    let group = log.groups().await.unwrap().into_iter().find(|g| g.group == "prefetching").expect("committed");
    assert_eq!(group.next, head, "the last batch is committed");
    for cid in 0..7 {
        let cid = DeviceId::parse(&format!("cam-p{cid}")).unwrap();
        let days = store.calendar(&cid, today.add_days(-29), today).await.unwrap();
        let events: u64 = days.iter().map(|d| d.1).sum();
        assert_eq!(events, (0..3000).filter(|i| i % 7 == cid.as_str()[5..].parse::<i64>().unwrap()).count() as u64);
    }
    for id in [&ids[0], &ids[1234], &ids[2999]] {
        assert!(store.event(id).await.unwrap().is_some(), "{id}");
    }
    assert_eq!(store.quarantined(10).await.unwrap().len(), 2);
}

/// `prefetch` with `run`: a poll that fails while the next batch is read ahead loses nothing
/// (the records read before it are written), and stopping writes the batch in hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetching_run_writes_what_it_read_before_a_failed_poll() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let now = Timestamp::now().plus_millis(-60_000);
    let (a, st_a) = started("cam-pf", now);
    let (b, st_b) = started("cam-pf", now.plus_millis(1000));
    let (c, st_c) = started("cam-pf", now.plus_millis(2000));
    let log = Scripted::new(vec![
        Step::Records(vec![consumed(0, 0, &st_a)]),
        Step::Records(vec![consumed(0, 1, &st_b)]),
        Step::Fail,
        Step::Records(vec![consumed(0, 2, &st_c)]),
    ]);
    let (stop, stopped) = watch::channel(false);
    let config = ProjectorConfig { linger: Duration::ZERO, prefetch: true, ..ProjectorConfig::default() };
    let running = tokio::spawn(projector::run(log, store.clone(), config, stopped));
    wait_for("the last event", Duration::from_secs(20), event_is_stored(&store, &c)).await;
    stop.send(true).unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(20), running).await.unwrap().unwrap().unwrap();
    assert_eq!(progress.reports, 3, "{progress:?}");
    for id in [&a, &b] {
        assert!(store.event(id).await.unwrap().is_some(), "{id}");
    }
}
