//! The direct baseline: no log, each append writes its reports to the store before it
//! returns, one request at a time — the design without a log that the pipeline replaced
//! (bench/RESULTS.md). It exists only for the burst benchmark to compare against.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemas::Envelope;
use seams::{Consumed, LogConsumer, LogError, LogRecord, Position, ProjectionStore, ReportLog};

/// Writes through to the store on every append.
#[derive(Debug)]
pub(crate) struct DirectLog {
    store: Arc<dyn ProjectionStore>,
}

impl DirectLog {
    pub(crate) fn new(store: Arc<dyn ProjectionStore>) -> Arc<Self> {
        Arc::new(Self { store })
    }
}

#[async_trait]
impl ReportLog for DirectLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        let envelopes = records
            .iter()
            .map(|r| Envelope::decode(&r.value).map_err(|e| LogError::Other(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        self.store.apply(&envelopes).await.map_err(|e| LogError::Unavailable(e.to_string()))?;
        Ok(records.iter().map(|_| Position { partition: 0, offset: 0 }).collect())
    }

    /// Nothing is retained, so a consumer never sees a record: the all-in-one's projector
    /// idles beside the baseline.
    async fn consumer(&self, _group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        Ok(Box::new(Empty))
    }

    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        self.consumer(group).await
    }

    async fn health(&self) -> Result<(), LogError> {
        self.store.health().await.map_err(|e| LogError::Unavailable(e.to_string()))
    }

    async fn shutdown(&self) -> Result<(), LogError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "direct"
    }
}

#[derive(Debug)]
struct Empty;

#[async_trait]
impl LogConsumer for Empty {
    async fn poll(&mut self, _max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        tokio::time::sleep(max_wait).await;
        Ok(Vec::new())
    }

    async fn commit(&mut self, _positions: &[Position]) -> Result<(), LogError> {
        Ok(())
    }

    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        Ok(Vec::new())
    }

    fn owns(&self, _partition: i32) -> bool {
        true
    }
}
