//! `--log direct`: the seed's design, kept only as the burst benchmark's baseline. There is
//! no log: each append writes its reports to the store before returning, one request at a
//! time, exactly what collapsed at midnight.

use std::sync::Arc;

use async_trait::async_trait;
use schemas::Envelope;
use seams::{LogConsumer, LogError, LogRecord, Position, ProjectionStore, ReportLog};

/// Writes through to the store on every append.
#[derive(Debug)]
pub struct DirectLog {
    store: Arc<dyn ProjectionStore>,
}

impl DirectLog {
    /// Writes through to `store`.
    pub fn new(store: Arc<dyn ProjectionStore>) -> Arc<Self> {
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

    async fn consumer(&self, _group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        Err(LogError::Other("the direct baseline has no log to consume".into()))
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
