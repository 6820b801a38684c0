//! The owner keeps events, end to end on the embedded default: keeps and un-keeps go through
//! the log like a device's reports, with the cap per device; then, once the log has lost every
//! report (as it does after its retention), `daybook rebuild` still serves the kept events
//! whole — carried over from the old store — and nothing else.

use std::time::Duration;

use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use seams::ReportLog;
use tests::app::spawn_app_with;
use tests::flow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managing_viewer_keeps_events_that_outlive_the_log() {
    let server = spawn_app_with(|c| c.max_kept_per_device = 2).await;
    let cid = "cam-keep";
    let clients = server.owner_clients(cid);
    let reader = clients.reader.clone();
    let expect = flow::act_as_device(&clients.device, cid).await;
    flow::wait_projected(&reader, &expect, Duration::from_secs(30)).await;
    flow::keep_as_owner(&clients.owners(), &expect, Duration::from_secs(30)).await;
    let mut kept = vec![expect.a.clone(), expect.c.clone()];
    kept.sort();
    let details: Vec<_> = {
        let mut out = Vec::new();
        for id in &kept {
            let (s, d) = reader.get(&format!("/v1/events/{id}?limit=200")).await;
            assert_eq!(s, 200, "{d}");
            out.push(flow::strip(&d));
        }
        out
    };

    let live = flow::answers(&reader, &expect).await;

    // Rebuilt from the whole log: the same answers, kept marks included.
    let (config, dir) = server.stop().await;
    tests::app::rebuild_in_place(&config, &dir).await;
    let server = tests::app::start(config, dir).await;
    let reader = reader.at(&server.http);
    assert_eq!(flow::answers(&reader, &expect).await, live, "the rebuilt store answers as the live one did");
    assert_eq!(flow::list_kept(&reader, cid).await, kept);

    // The log loses every report, as past its retention; the store is rebuilt from it.
    let (config, dir) = server.stop().await;
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    // (An append makes this the appending process, whose truncation closes the newest segment.)
    let nothing = schemas::Report::SubscriptionDeleted(schemas::SubscriptionDeleted {
        subscription_id: schemas::SubscriptionId::parse("none").unwrap(),
    });
    let envelope = schemas::Envelope::new(nothing, schemas::Timestamp::now());
    log.append(vec![seams::LogRecord::of(&envelope)]).await.unwrap();
    let lost = log.truncate(schemas::Timestamp::now().millis() + 1).await.unwrap();
    assert!(lost > 0, "the log held the reports");
    log.shutdown().await.unwrap();
    let rebuilt = tests::app::rebuild_in_place(&config, &dir).await;
    assert_eq!((rebuilt.kept, rebuilt.quarantined), (2, 0), "{rebuilt:?}");
    let server = tests::app::start(config, dir).await;
    let reader = reader.at(&server.http);
    assert_eq!(flow::list_kept(&reader, cid).await, kept, "the kept events outlive the log");
    for (id, want) in kept.iter().zip(&details) {
        let (s, d) = reader.get(&format!("/v1/events/{id}?limit=200")).await;
        assert_eq!(s, 200, "{d}");
        assert_eq!(&flow::strip(&d), want, "{id} whole, its segments included");
    }
    let date = format!("{}-{}-{}", &expect.a[..4], &expect.a[4..6], &expect.a[6..8]);
    assert_eq!(flow::list_day(&reader, cid, &date).await, kept, "nothing else survives the log");
    assert_eq!(reader.get(&format!("/v1/events/{}", expect.b)).await.0, 404);
    server.stop().await;
}

/// The object janitor of the embedded S3 endpoint spares what kept events need: of two events
/// past retention sharing a segment, the kept one keeps its snapshot and both its segments
/// (the shared one too), the other loses its snapshot and the segment only it mapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_janitor_spares_kept_events() {
    use schemas::{DayOffset, EndStatus, Timestamp};
    use seams::conformance::store::{end, keep, segment, start};
    use seams::{ObjectKey, ProjectionStore};

    let dir = tempfile::tempdir().unwrap();
    let policy = schemas::TimePolicy::default();
    let store = infra::embedded_store::EmbeddedStore::open(&dir.path().join("store.db"), policy).unwrap();
    let old = Timestamp::now().plus_millis(60_000 - policy.retention_ms());
    // Segment ids start with the day their upload URL was issued, as ingest makes them.
    let day = DayOffset::default().day_of(old).unwrap().compact();
    let (shared, own, only_gone) = (format!("{day}-shared"), format!("{day}-own"), format!("{day}-gone"));
    let (kept, sk) = start("cam-j", "motion", old);
    let (gone, sg) = start("cam-j", "motion", old.plus_millis(1000));
    let history = vec![
        sk,
        sg,
        segment("cam-j", &shared, old, 200, &[(&kept, 1, 0, 100), (&gone, 0, 100, 200)]),
        segment("cam-j", &own, old, 100, &[(&kept, 0, 0, 100)]),
        segment("cam-j", &only_gone, old, 100, &[(&gone, 1, 0, 100)]),
        end(&kept, 500, EndStatus::Complete),
        keep(&kept),
    ];
    store.apply(&history).await.unwrap();

    let cid = schemas::DeviceId::parse("cam-j").unwrap();
    let seg = |s: &str| ObjectKey::segment(&cid, &schemas::SegmentId::parse(s).unwrap()).as_str().to_owned();
    let snap = |e: &schemas::EventId| ObjectKey::snapshot(e).as_str().to_owned();
    let spared = seams::kept_objects(store.as_ref()).await.unwrap();
    let mut want = vec![snap(&kept), seg(&shared), seg(&own)];
    want.sort();
    let mut got: Vec<String> = spared.iter().cloned().collect();
    got.sort();
    assert_eq!(got, want, "the kept event's objects");

    let root = dir.path().join("objects");
    let bucket = root.join("daybook");
    let objects = [snap(&kept), snap(&gone), seg(&shared), seg(&own), seg(&only_gone)];
    for key in &objects {
        let path = bucket.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"bytes").unwrap();
    }
    // Every one of them past retention (segments have a day of grace).
    let oldest_kept = DayOffset::default().today().add_days(3);
    let deleted = infra::s3_server::expire_objects(&root, "daybook", &|_| Some(oldest_kept), &spared).unwrap();
    let mut left: Vec<String> = objects.iter().filter(|k| bucket.join(k).exists()).cloned().collect();
    left.sort();
    assert_eq!(left, want, "only the kept event's objects are left");
    assert_eq!(deleted, 2, "the other event's snapshot and the segment only it mapped");
}
