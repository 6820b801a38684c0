//! Failure on purpose, through the fault-injecting wrappers of `seams::faults`: a hung or
//! failing log is answered 503 within the deadline and then at once, and ingest recovers by
//! itself; the projector loop loses nothing and applies nothing twice in effect when the store
//! or the commit fails, when it is stopped mid-batch, and stops at a newer schema version.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::EmbeddedStore;
use projector::{ProjectorConfig, ProjectorError};
use schemas::{DayOffset, DeviceId, TimePolicy, Timestamp};
use seams::conformance::log::record_of;
use seams::conformance::store::start;
use seams::conformance::wait_for;
use seams::faults::{Fault, Faults, FaultyLog, FaultyStore};
use seams::{LogRecord, ProjectionStore, ReportLog};
use serde_json::{json, Value};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_millis(600);

async fn post_start(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    cid: &str,
) -> (reqwest::StatusCode, Duration, Option<String>, Value) {
    let started = Instant::now();
    let resp = http
        .post(format!("{base}/v1/devices/{cid}/events"))
        .bearer_auth(token)
        .json(&json!({"type": "motion", "triggered_at": Timestamp::now().to_string()}))
        .send()
        .await
        .expect("an answer");
    let took = started.elapsed();
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, took, retry_after, body)
}

/// The log hangs: the first request is answered 503 `log_unavailable` with a Retry-After at
/// the deadline, the next ones at once, `/readyz` names the log; once it is back, the next
/// probe succeeds and reports are accepted again, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_log_is_answered_within_the_deadline_then_at_once_and_recovers() {
    let faults = Faults::new();
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let log: Arc<dyn ReportLog> = FaultyLog::new(log, faults.clone());
    let app = tests::app::start_with(dir, Some(log), None, |c| c.ingest.request_timeout = DEADLINE).await;
    let token = app.device_token("cam-f");
    let http = reqwest::Client::new();

    let (status, _, _, _) = post_start(&http, &app.http, &token, "cam-f").await;
    assert_eq!(status, 201);

    faults.set("append", Fault { hang: true, ..Fault::default() });
    let (status, took, retry_after, body) = post_start(&http, &app.http, &token, "cam-f").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "log_unavailable", "{body}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    assert!(took >= DEADLINE && took < DEADLINE + Duration::from_secs(2), "answered after {took:?}");

    // Known down: refused at once, not after another deadline.
    for _ in 0..5 {
        let (status, took, retry_after, body) = post_start(&http, &app.http, &token, "cam-f").await;
        assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (503, Some("log_unavailable")), "{body}");
        assert!(retry_after.is_some());
        assert!(took < DEADLINE / 2, "a known-down log must fail fast, took {took:?}");
    }
    let ready = http.get(format!("{}/readyz", app.http)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["checks"]["log"].as_str().unwrap().contains("failing"), "{ready}");

    // Back: within a probe interval (1 s) and a deadline, reports are accepted again.
    faults.heal();
    let healed = Instant::now();
    loop {
        let (status, ..) = post_start(&http, &app.http, &token, "cam-f").await;
        if status == 201 {
            break;
        }
        assert!(healed.elapsed() < Duration::from_secs(5), "ingest did not recover by itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, ..) = post_start(&http, &app.http, &token, "cam-f").await;
    assert_eq!(status, 201);
    let ready = http.get(format!("{}/readyz", app.http)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

/// A failing log (errors, not hangs) trips the same way, and a store that hangs is answered
/// 503 `store_unavailable` at the deadline on the viewer side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_and_a_hung_store_are_answered_503() {
    let faults = Faults::new();
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let log: Arc<dyn ReportLog> = FaultyLog::new(log, faults.clone());
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let store: Arc<dyn ProjectionStore> = FaultyStore::new(store, faults.clone());
    let app = tests::app::start_with(dir, Some(log), Some(store), |c| c.ingest.request_timeout = DEADLINE).await;
    let token = app.device_token("cam-g");
    let viewer = app.viewer_token(&["cam-g"]);
    let http = reqwest::Client::new();

    faults.set("append", Fault { fail_first: 1, ..Fault::default() });
    let (status, took, retry_after, body) = post_start(&http, &app.http, &token, "cam-g").await;
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (503, Some("log_unavailable")), "{body}");
    assert!(retry_after.is_some() && took < DEADLINE, "an error is answered at once: {took:?}");

    faults.set("read", Fault { hang: true, ..Fault::default() });
    let started = Instant::now();
    let resp = http.get(format!("{}/v1/devices/cam-g/calendar", app.http)).bearer_auth(&viewer).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    assert!(took >= DEADLINE && took < DEADLINE + Duration::from_secs(2), "answered after {took:?}");
    app.stop().await;
}

struct Bench {
    _dir: tempfile::TempDir,
    log: Arc<EmbeddedLog>,
    store: Arc<EmbeddedStore>,
    faults: Arc<Faults>,
    cid: DeviceId,
    today: schemas::Day,
    n: i64,
}

/// An embedded log holding `n` event starts of one device today, and a store.
async fn bench(n: usize) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let now = Timestamp::now().plus_millis(-600_000);
    let records: Vec<LogRecord> =
        (0..n).map(|i| record_of(&start("cam-p", "motion", now.plus_millis(i as i64)).1)).collect();
    log.append(records).await.unwrap();
    let today = DayOffset::default().day_of(now).unwrap();
    Bench { _dir: dir, log, store, faults: Faults::new(), cid: DeviceId::parse("cam-p").unwrap(), today, n: n as i64 }
}

impl Bench {
    fn spawn(&self) -> (watch::Sender<bool>, tokio::task::JoinHandle<Result<projector::Progress, ProjectorError>>) {
        let log: Arc<dyn ReportLog> = FaultyLog::new(self.log.clone(), self.faults.clone());
        let store: Arc<dyn ProjectionStore> = FaultyStore::new(self.store.clone(), self.faults.clone());
        let config = ProjectorConfig { linger: Duration::from_millis(20), max_batch: 50, ..ProjectorConfig::default() };
        let (stop, stopped) = watch::channel(false);
        (stop, tokio::spawn(projector::run(log, store, config, stopped)))
    }

    async fn count(&self) -> u64 {
        self.store.calendar(&self.cid, self.today, self.today).await.unwrap().iter().map(|d| d.1).sum()
    }

    /// The projectors' group: the next offset it reads, and how many records it has not
    /// committed (`None`: it never committed).
    async fn group(&self) -> Option<(i64, i64)> {
        self.log.groups().await.unwrap().iter().find(|g| g.group == "daybook-projector").map(|g| (g.next, g.lag))
    }

    /// Records the projectors' group has not committed.
    async fn uncommitted(&self) -> i64 {
        match self.group().await {
            Some((_, lag)) => lag,
            None => self.n,
        }
    }

    async fn wait_count(&self, n: u64) {
        wait_for("every report projected", Duration::from_secs(30), || async {
            (self.count().await == n).then_some(())
        })
        .await;
    }
}

/// The store fails its first writes, then succeeds: nothing is committed before the write,
/// nothing is lost, and nothing counts twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_write_failures_are_retried_without_committing_or_counting_twice() {
    let b = bench(120).await;
    b.faults.set("apply", Fault { hang: true, ..Fault::default() });
    let (stop, running) = b.spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.uncommitted().await, 120, "nothing is committed while the write has not succeeded");
    b.faults.set("apply", Fault { fail_first: 3, ..Fault::default() });
    // The hung call never returns: restart the projector on the now-failing-then-healing store.
    running.abort();
    let (stop2, running2) = b.spawn();
    b.wait_count(120).await;
    assert_eq!(b.faults.injected(), 4, "one hang and three failures were injected");
    stop2.send(true).unwrap();
    let progress = running2.await.unwrap().unwrap();
    assert_eq!(progress.reports, 120);
    assert_eq!(b.uncommitted().await, 0);
    assert_eq!(b.count().await, 120, "counted once");
    drop(stop);
}

/// Commits fail: the batches are still written once each in effect, and a restart replays
/// the uncommitted ones harmlessly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commits_replay_harmlessly() {
    let b = bench(120).await;
    b.faults.set("commit", Fault { fail_fraction: 1.0, ..Fault::default() });
    let (stop, running) = b.spawn();
    b.wait_count(120).await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(b.uncommitted().await, 120, "every commit failed");
    // Restart with commits working: everything is replayed, and counted once.
    b.faults.heal();
    let (stop, running) = b.spawn();
    wait_for("the replay committed", Duration::from_secs(30), || async { (b.uncommitted().await == 0).then_some(()) })
        .await;
    stop.send(true).unwrap();
    let progress = running.await.unwrap().unwrap();
    assert_eq!(progress.reports, 120, "the whole log was replayed");
    assert_eq!(b.count().await, 120, "and applied once in effect");
}

/// Stopped in the middle of a slow write, the projector finishes the batch in hand, commits
/// it and stops (as on SIGTERM); stopped while the store is failing, it stops at once and
/// commits nothing. Either way the next run writes the rest: nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_batch_commits_only_what_was_written_and_the_next_run_finishes() {
    let b = bench(60).await;
    b.faults.set("apply", Fault { latency: Duration::from_secs(1), ..Fault::default() });
    let (stop, running) = b.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(10), running).await.unwrap().unwrap().unwrap();
    assert_eq!(progress.reports, 50, "the batch in hand (max_batch 50) is finished: {progress:?}");
    assert_eq!(b.uncommitted().await, 10, "and committed; the rest is not");

    b.faults.set("apply", Fault { fail_fraction: 1.0, ..Fault::default() });
    let (stop, running) = b.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap().unwrap();
    assert_eq!(progress.reports, 0, "a failing write is abandoned at shutdown: {progress:?}");
    assert_eq!(b.uncommitted().await, 10, "and nothing of it committed");

    b.faults.heal();
    let (stop, running) = b.spawn();
    b.wait_count(60).await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(b.uncommitted().await, 0);
    assert_eq!(b.count().await, 60);
}

/// A record of a newer schema version stops the projector with an error naming it, and its
/// position is not committed past: an upgraded projector reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_version_stops_the_projector_without_committing_it() {
    let b = bench(10).await;
    let (_, future) = start("cam-p", "motion", Timestamp::now().plus_millis(-1000));
    let mut value = future.encode();
    value[0] = 0xfa; // a version varint beyond any this build knows
    let rec = LogRecord { key: "cam-p".into(), report_kind: "event_started".into(), schema: 99, value };
    let at = b.log.append(vec![rec]).await.unwrap()[0];
    let (_stop, running) = b.spawn();
    let err = tokio::time::timeout(Duration::from_secs(20), running).await.unwrap().unwrap().unwrap_err();
    match err {
        ProjectorError::NewerSchema { offset, .. } => assert_eq!(offset, at.offset),
        other => panic!("expected NewerSchema, got {other}"),
    }
    let next = b.group().await.map_or(0, |g| g.0);
    assert!(next <= at.offset, "the newer record is not committed past (next {next}, record {})", at.offset);
}
