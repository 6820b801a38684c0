//! What the fuzz targets share: a device API instance with no log or object store behind it
//! (the targets exercise parsing, report building and validation — nothing is appended or
//! signed), the devices and clock they run as, and the store cursor decoders.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use ingest::{Ingest, IngestConfig};
use schemas::{DayOffset, DeviceId, DeviceZone, Envelope, Report, TimePolicy, Timestamp};
use seams::auth::{Auth, Device};
use seams::{
    BlobError, BlobSigner, LogConsumer, LogError, LogRecord, ObjectKey, Position, PresignedRequest, ReportLog,
};

/// The real cursor codecs of the two stores, compiled from their sources (depending on `infra`
/// would build the AWS SDK, SQLite, Kafka and Scylla drivers into the fuzzer for two functions).
pub mod store_cursors {
    use schemas::{Day, DeviceId, EventType};
    use seams::{EventView, StoreError};

    use crate::{embedded_cursor as embedded, scylla_cursor as scylla};

    /// The embedded store's cursor after `e`.
    pub fn embedded_encode(e: &EventView) -> Vec<u8> {
        embedded::encode_cursor(e)
    }
    /// The embedded store's decoder: (filed-at ms, event id).
    pub fn embedded_decode(b: &[u8]) -> Result<(i64, String), StoreError> {
        embedded::decode_cursor(b)
    }
    /// What a Scylla cursor is bound to.
    pub fn scylla_binding(cid: &DeviceId, day: Day, event_type: Option<&EventType>) -> u64 {
        scylla::cursor_binding(cid, day, event_type)
    }
    /// The Scylla store's cursor for a driver paging state.
    pub fn scylla_encode(binding: u64, paging_state: &[u8]) -> Vec<u8> {
        scylla::encode_cursor(binding, paging_state)
    }
    /// The Scylla store's decoder: the paging state.
    pub fn scylla_decode(cursor: &[u8], binding: u64) -> Result<Vec<u8>, StoreError> {
        scylla::decode_cursor(cursor, binding)
    }
}

#[path = "../../infra/src/embedded_store/cursor.rs"]
mod embedded_cursor;
#[path = "../../infra/src/scylla/cursor.rs"]
mod scylla_cursor;

/// The fixed "now" of every run (reproducible): 2026-11-22T12:00:00Z, the seeds' day.
pub fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").expect("valid")
}

/// Two deployments' policies: `--day-offset` +00:00 and +05:45 (a version 1 event id's day
/// depends on it).
pub fn policies() -> [TimePolicy; 2] {
    let at = |offset: &str| TimePolicy { offset: DayOffset::parse(offset).expect("offset"), ..TimePolicy::default() };
    [at("+00:00"), at("+05:45")]
}

/// The device API under each of [`policies`].
pub fn ingests() -> &'static [Ingest; 2] {
    static INGESTS: OnceLock<[Ingest; 2]> = OnceLock::new();
    INGESTS.get_or_init(|| {
        policies().map(|policy| {
            let config = IngestConfig { policy, ..IngestConfig::default() };
            Ingest::new(Arc::new(NoLog), Arc::new(NoSigner), Auth::new(&[7; 32]), config)
        })
    })
}

/// Devices as tokens name them: without a zone, in a daylight-saving zone, at +05:45.
pub fn devices() -> &'static [Device; 3] {
    static DEVICES: OnceLock<[Device; 3]> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let cid = DeviceId::parse("cam-1").expect("cid");
        let zone = |name| Some(DeviceZone::parse(name).expect("zone"));
        [
            Device { cid: cid.clone(), zone: None, retention_days: None },
            Device { cid: cid.clone(), zone: zone("America/Los_Angeles"), retention_days: Some(60) },
            Device { cid, zone: zone("Asia/Kathmandu"), retention_days: None },
        ]
    })
}

/// Picks the deployment (its service and policy) and the device from a selector byte.
pub fn context(selector: u8) -> (&'static Ingest, TimePolicy, &'static Device) {
    let deployment = usize::from(selector & 1);
    (&ingests()[deployment], policies()[deployment], &devices()[usize::from(selector >> 1) % 3])
}

/// What happens to a report ingest accepted: its envelope goes on the log and must decode to
/// itself (byte for byte once re-encoded: floats compared bit-exactly, so a NaN cannot hide a
/// difference); the projector plans its rows; `daybook tail` prints it as JSON.
pub fn check_accepted(report: &Report, policy: &TimePolicy) {
    let envelope = Envelope::new(report.clone(), now());
    let bytes = envelope.encode();
    let decoded = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{envelope:?} does not decode: {e}"));
    assert_eq!(decoded.encode(), bytes, "{envelope:?}");
    let _ = schemas::rows::plan(&decoded, policy);
    let _ = schemas::rows::write_stamp(&decoded);
    let _ = schemas::json::decode_json(&bytes).expect("decodes");
}

#[derive(Debug)]
struct NoLog;

#[async_trait]
impl ReportLog for NoLog {
    async fn append(&self, _records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        Err(LogError::Unavailable("fuzzing: no log".into()))
    }
    async fn consumer(&self, _group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        Err(LogError::Unavailable("fuzzing: no log".into()))
    }
    async fn consumer_at_end(&self, _group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        Err(LogError::Unavailable("fuzzing: no log".into()))
    }
    async fn health(&self) -> Result<(), LogError> {
        Ok(())
    }
    async fn shutdown(&self) -> Result<(), LogError> {
        Ok(())
    }
    fn backend(&self) -> &'static str {
        "none"
    }
}

#[derive(Debug)]
struct NoSigner;

#[async_trait]
impl BlobSigner for NoSigner {
    async fn presign_put(
        &self,
        _key: &ObjectKey,
        _content_type: &str,
        _content_length: Option<u64>,
        _ttl: Duration,
    ) -> Result<PresignedRequest, BlobError> {
        Err(BlobError::Unavailable("fuzzing: no object store".into()))
    }
    async fn presign_get(&self, _key: &ObjectKey, _ttl: Duration) -> Result<PresignedRequest, BlobError> {
        Err(BlobError::Unavailable("fuzzing: no object store".into()))
    }
    async fn health(&self) -> Result<(), BlobError> {
        Ok(())
    }
}
