//! The report-log conformance suite against the embedded segment log, and what only it does.

use std::sync::Arc;

use async_trait::async_trait;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use seams::conformance::log::LogHarness;
use seams::ReportLog;

struct Harness {
    dir: tempfile::TempDir,
}

#[async_trait]
impl LogHarness for Harness {
    async fn open(&mut self) -> Arc<dyn ReportLog> {
        EmbeddedLog::open(&self.dir.path().join("log"), EmbeddedLogConfig::default()).unwrap()
    }
}

seams::log_suite!(async { Harness { dir: tempfile::tempdir().unwrap() } });

/// A commit that fails (the disk is full) burns its offsets: the next records never carry
/// them, in this writer or in the next one to open the log (the burn is kept in `HEAD`), and
/// readers see every acknowledged record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_never_gives_its_offsets_to_other_records() {
    use seams::LogRecord;
    use std::time::Duration;
    use tests::tmpfs::{fill, Tmpfs};

    let mount = match Tmpfs::mount("4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let path = mount.path().join("log");
    let record = |name: &str, len: usize| LogRecord {
        key: "cam-1".into(),
        report_kind: "event_started".into(),
        schema: 2,
        value: [name.as_bytes(), &vec![0; len]].concat(),
    };
    let offsets = |p: Vec<seams::Position>| p.iter().map(|p| p.offset).collect::<Vec<_>>();
    let log = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
    assert_eq!(offsets(log.append(vec![record("a", 10)]).await.unwrap()), [1]);
    let filler = mount.path().join("filler");
    fill(&filler);
    log.append(vec![record("b", 256 << 10), record("b2", 10)]).await.expect_err("the disk is full");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(offsets(log.append(vec![record("c", 10)]).await.unwrap()), [4], "2 and 3 are burned");
    // Once more, and the writer restarts before the next append.
    fill(&filler);
    log.append(vec![record("d", 256 << 10)]).await.expect_err("the disk is full");
    log.shutdown().await.unwrap();
    drop(log);
    std::fs::remove_file(&filler).unwrap();
    let log = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).unwrap();
    assert_eq!(offsets(log.append(vec![record("e", 10)]).await.unwrap()), [6], "5 stays burned across a restart");
    let mut c = log.consumer("g").await.unwrap();
    let got = c.poll(100, Duration::from_millis(200)).await.unwrap();
    let seen: Vec<(i64, u8)> = got.iter().map(|c| (c.position.offset, c.value[0])).collect();
    assert_eq!(seen, [(1, b'a'), (4, b'c'), (6, b'e')]);
    log.shutdown().await.unwrap();
}
