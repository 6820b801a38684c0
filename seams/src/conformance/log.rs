//! The report-log suite.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::log::{commit_positions, Consumed, LogConsumer, LogError, LogRecord, ReportLog};

/// Opens the log under test. The first `open` creates a fresh log (new directory, new
/// topic); later calls reopen the same one, as a restarted process would.
#[async_trait]
pub trait LogHarness: Send {
    /// Opens (or reopens) the log.
    async fn open(&mut self) -> Arc<dyn ReportLog>;
}

const PATIENCE: Duration = Duration::from_secs(60);

fn record(key: &str, i: usize) -> LogRecord {
    LogRecord {
        key: key.to_owned(),
        report_kind: "event_started".into(),
        schema: 1,
        value: format!("{key}/{i}").into_bytes(),
    }
}

/// Reads until `n` records arrived.
async fn read(consumer: &mut Box<dyn LogConsumer>, n: usize) -> Vec<Consumed> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.len() < n {
        assert!(tokio::time::Instant::now() < deadline, "read {} of {n} records", got.len());
        got.extend(consumer.poll(n - got.len(), Duration::from_millis(200)).await.expect("poll"));
    }
    got
}

/// Positions of one key's records increase in append order.
pub async fn append_returns_positions_in_key_order(mut h: impl LogHarness) {
    let log = h.open().await;
    let pos = log.append((0..5).map(|i| record("dev-a", i)).collect()).await.unwrap();
    assert_eq!(pos.len(), 5);
    assert!(pos.windows(2).all(|w| w[0].partition == w[1].partition && w[0].offset < w[1].offset), "{pos:?}");
    let more = log.append(vec![record("dev-a", 5)]).await.unwrap();
    assert!(more[0].offset > pos[4].offset);
}

/// A new group starts at the beginning and sees every record.
pub async fn new_group_reads_everything(mut h: impl LogHarness) {
    let log = h.open().await;
    for k in ["a", "b", "c"] {
        log.append((0..4).map(|i| record(k, i)).collect()).await.unwrap();
    }
    let mut c = log.consumer("g1").await.unwrap();
    let got = read(&mut c, 12).await;
    let mut values: Vec<_> = got.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
    values.sort();
    let mut want: Vec<_> = ["a", "b", "c"].iter().flat_map(|k| (0..4).map(move |i| format!("{k}/{i}"))).collect();
    want.sort();
    assert_eq!(values, want);
}

/// A member owns the partitions of every record it handed out (while no rebalance revoked
/// them), so a projector keeps them.
pub async fn a_member_owns_what_it_polled(mut h: impl LogHarness) {
    let log = h.open().await;
    for k in ["a", "b", "c"] {
        log.append((0..2).map(|i| record(k, i)).collect()).await.unwrap();
    }
    let mut c = log.consumer("g-own").await.unwrap();
    let mut got = read(&mut c, 6).await;
    assert!(got.iter().all(|r| c.owns(r.position.partition)), "{got:?}");
    assert_eq!(crate::log::retain_owned(c.as_ref(), &mut got), 0);
    assert_eq!(got.len(), 6);
}

/// After a commit, the next member of the group resumes there.
pub async fn commit_resumes_the_group(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append((0..10).map(|i| record("k", i)).collect()).await.unwrap();
    let mut c = log.consumer("g").await.unwrap();
    let first = read(&mut c, 4).await;
    let first = &first[..4];
    c.commit(&commit_positions(first)).await.unwrap();
    drop(c);
    let mut c = log.consumer("g").await.unwrap();
    let rest = read(&mut c, 6).await;
    let values: Vec<_> = rest.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
    assert_eq!(values, (4..10).map(|i| format!("k/{i}")).collect::<Vec<_>>());
}

/// What a member read but did not commit goes to the next member again.
pub async fn uncommitted_records_are_redelivered(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append((0..3).map(|i| record("k", i)).collect()).await.unwrap();
    let mut c = log.consumer("g").await.unwrap();
    let a = read(&mut c, 3).await;
    drop(c);
    let mut c = log.consumer("g").await.unwrap();
    let b = read(&mut c, 3).await;
    assert_eq!(a.iter().map(|r| &r.value).collect::<Vec<_>>(), b.iter().map(|r| &r.value).collect::<Vec<_>>());
}

/// Many concurrent appenders: every acknowledged record is read back once per position, and
/// each key's records in its append order.
pub async fn concurrent_appends_keep_per_key_order(mut h: impl LogHarness) {
    let log = h.open().await;
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let key = format!("dev-{t}");
                for i in 0..25 {
                    log.append(vec![record(&key, i)]).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = log.consumer("g").await.unwrap();
    let got = read(&mut c, 400).await;
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &got {
        let v = String::from_utf8(r.value.clone()).unwrap();
        let (k, i) = v.split_once('/').unwrap();
        per_key.entry(k.to_owned()).or_default().push(i.parse().unwrap());
    }
    assert_eq!(per_key.len(), 16);
    for (k, seq) in per_key {
        assert_eq!(seq, (0..25).collect::<Vec<_>>(), "order of {k}");
    }
}

/// Key, headers and value come back byte for byte.
pub async fn headers_and_bytes_survive(mut h: impl LogHarness) {
    let log = h.open().await;
    let value: Vec<u8> = (0..=255).collect();
    let rec = LogRecord { key: "cam-9".into(), report_kind: "segment_reported".into(), schema: 7, value };
    let pos = log.append(vec![rec.clone()]).await.unwrap();
    let mut c = log.consumer("g").await.unwrap();
    let got = read(&mut c, 1).await.remove(0);
    assert_eq!(got.position, pos[0]);
    assert_eq!((got.key, got.report_kind, got.schema, got.value), (rec.key, rec.report_kind, rec.schema, rec.value));
    assert!(got.timestamp_ms > 0);
}

/// Acknowledged appends and commits outlive the process.
pub async fn acknowledged_appends_survive_reopen(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append((0..6).map(|i| record("k", i)).collect()).await.unwrap();
    let mut c = log.consumer("g").await.unwrap();
    let got = read(&mut c, 2).await;
    c.commit(&commit_positions(&got[..2])).await.unwrap();
    drop(c);
    log.shutdown().await.unwrap();
    drop(log);
    let log = h.open().await;
    let mut c = log.consumer("g").await.unwrap();
    let rest = read(&mut c, 4).await;
    let values: Vec<_> = rest.iter().map(|r| String::from_utf8(r.value.clone()).unwrap()).collect();
    assert_eq!(values, (2..6).map(|i| format!("k/{i}")).collect::<Vec<_>>());
    let mut fresh = log.consumer("other").await.unwrap();
    assert_eq!(read(&mut fresh, 6).await.len(), 6);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let lag = loop {
        let lag = c.lag().await.unwrap();
        if lag.iter().map(|l| l.1).sum::<i64>() == 0 {
            break lag;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag stayed at {lag:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!lag.is_empty());
}

/// After `shutdown`, appends fail instead of being silently dropped.
pub async fn appends_after_shutdown_are_refused(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append(vec![record("k", 0)]).await.unwrap();
    log.shutdown().await.unwrap();
    let err = log.append(vec![record("k", 1)]).await.unwrap_err();
    assert!(matches!(err, LogError::Closed), "{err:?}");
}

/// The log record ingest appends for `envelope`: keyed by its device, with its report kind and
/// the current schema version in the headers.
pub fn record_of(envelope: &schemas::Envelope) -> LogRecord {
    LogRecord {
        key: envelope.report.key(),
        report_kind: envelope.report.kind().as_str().into(),
        schema: schemas::SCHEMA_VERSION,
        value: envelope.encode(),
    }
}

/// A group opened at the end and dropped before it read anything (a subscription added while
/// no notifier runs) starts there when it is next opened: it gets every record appended in
/// between, and none from before.
pub async fn a_new_groups_start_is_recorded_before_it_reads(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append((0..3).map(|i| record("before", i)).collect()).await.unwrap();
    drop(log.consumer_resuming_or_at_end("g-created").await.unwrap());
    log.append((0..4).map(|i| record("between", i)).collect()).await.unwrap();
    let mut c = log.consumer_resuming_or_at_end("g-created").await.unwrap();
    let value = |r: &Consumed| String::from_utf8(r.value.clone()).unwrap();
    let values: Vec<String> = read(&mut c, 4).await.iter().map(value).collect();
    assert_eq!(values, (0..4).map(|i| format!("between/{i}")).collect::<Vec<_>>());
}

/// A group that never committed starts at the end of the log (what a new notification
/// subscription does) and, once it committed, resumes from its commit like any group.
pub async fn a_new_group_can_start_at_the_end(mut h: impl LogHarness) {
    let log = h.open().await;
    log.append((0..3).map(|i| record("old", i)).collect()).await.unwrap();
    let mut c = log.consumer_resuming_or_at_end("g-end").await.unwrap();
    // A Kafka member finds the end once it has joined: new records are appended until one
    // arrives; none from before may.
    let mut got: Vec<Consumed> = Vec::new();
    let mut appended = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing read within {PATIENCE:?}");
        log.append(vec![record("new", appended)]).await.unwrap();
        appended += 1;
        got.extend(c.poll(10, Duration::from_millis(300)).await.expect("poll"));
    }
    let value = |r: &Consumed| String::from_utf8(r.value.clone()).unwrap();
    assert!(got.iter().all(|r| value(r).starts_with("new/")), "read from before the group began: {got:?}");
    let first: usize = value(&got[0])["new/".len()..].parse().unwrap();
    c.commit(&commit_positions(&got[..1])).await.unwrap();
    drop(c);
    log.append(vec![record("new", appended)]).await.unwrap();
    // Resumed from the commit: every later record of the key, in order.
    let mut again = log.consumer_resuming_or_at_end("g-end").await.unwrap();
    let want: Vec<String> = (first + 1..=appended).map(|i| format!("new/{i}")).collect();
    let values: Vec<String> = read(&mut again, want.len()).await.iter().map(value).collect();
    assert_eq!(values, want, "resumed from the commit");
}
