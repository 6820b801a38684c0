//! The report-log conformance suite against the embedded SQLite log.

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
