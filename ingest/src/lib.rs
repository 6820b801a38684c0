//! ingest: the device API (docs/device-api.md).
//!
//! A report is validated, encoded into the versioned envelope and appended to the report log;
//! the device gets 201/202 only once the log says the report is durable. Overload is answered
//! early and cheaply: a bounded number of reports may wait on the log (beyond it 503 with a
//! jittered Retry-After), each device has a rate limit (429), and midnight digests outside the
//! device's assigned slot are admitted only while there is headroom (429 pointing into the slot).

mod admission;
mod breaker;
mod dto;
#[doc(hidden)]
pub mod fuzzing;
mod routes;

use std::sync::Arc;
use std::time::Duration;

pub use admission::DigestWindow;
pub use dto::*;
pub use routes::{router, ApiDoc};
use schemas::TimePolicy;
use seams::auth::Auth;
use seams::{BlobSigner, ReportLog};

/// The metrics this crate emits (see [`seams::metric`]).
pub const METRICS: &[seams::metric::Metric] = &[
    routes::INGEST_REPORTS_ACCEPTED_TOTAL,
    admission::INGEST_REJECTED_TOTAL,
    admission::INGEST_INFLIGHT_REPORTS,
    routes::INGEST_APPEND_SECONDS,
    routes::INGEST_CLOCK_SKEW_REPORTS_TOTAL,
    breaker::INGEST_LOG_AVAILABLE,
    routes::INGEST_REFUSED_LOG_DOWN_TOTAL,
];

/// Most items one `POST /v1/devices/{cid}/reports` batch may hold (item `MAX + 1` is 413
/// `too_many_items`; an empty batch is 400): the default of [`IngestConfig::max_batch_items`],
/// and the `maxItems` the OpenAPI document states for the batch body.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// Settings of the device API.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Day boundary, retention and clock tolerance.
    pub policy: TimePolicy,
    /// Largest request body (413 above it).
    pub max_body_bytes: usize,
    /// Most items in one `/reports` batch.
    pub max_batch_items: usize,
    /// Lifetime of presigned upload URLs (at most 15 minutes).
    pub url_ttl: Duration,
    /// Reports that may wait on the log at once; beyond, 503.
    pub max_inflight: usize,
    /// Requests per second one device may make (sustained).
    pub device_rate_per_s: u32,
    /// Requests one device may make in a burst.
    pub device_burst: u32,
    /// The nightly digest upload window.
    pub digest_window: DigestWindow,
    /// Fraction of `max_inflight` below which digests outside their slot are still admitted.
    pub digest_headroom: f64,
    /// Largest snapshot image a device may declare (`snapshot_size`, signed into the upload).
    pub max_snapshot_bytes: u64,
    /// Longest a request waits for the log to confirm its reports: past it, 503
    /// `log_unavailable` with a Retry-After (the reports may still be stored: ids are
    /// deterministic and projection idempotent, so the device's retry is harmless).
    pub request_timeout: Duration,
    /// While the log is failing, requests are refused at once, and one request per interval
    /// probes whether it is back.
    pub log_probe_interval: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            policy: TimePolicy::default(),
            max_body_bytes: 256 * 1024,
            max_batch_items: MAX_BATCH_ITEMS,
            url_ttl: Duration::from_secs(10 * 60),
            max_inflight: 150_000,
            device_rate_per_s: 20,
            device_burst: 60,
            digest_window: DigestWindow::default(),
            digest_headroom: 0.5,
            max_snapshot_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(5),
            log_probe_interval: Duration::from_secs(1),
        }
    }
}

/// The device API's state.
#[derive(Debug, Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Arc<dyn ReportLog>,
    signer: Arc<dyn BlobSigner>,
    auth: Auth,
    config: IngestConfig,
    admission: admission::Admission,
    breaker: Arc<breaker::LogBreaker>,
    /// The plan ingest last put on the log per device (`schemas::PlanSet`), bounded.
    plans: quick_cache::sync::Cache<schemas::DeviceId, Option<u32>>,
}

/// Devices whose last plan ingest remembers (about 100 bytes each): past it, the least used are
/// forgotten, and a forgotten device whose token carries a plan gets one more `plan_set`.
pub const REMEMBERED_PLANS: usize = 100_000;

impl Ingest {
    /// Builds the service.
    pub fn new(log: Arc<dyn ReportLog>, signer: Arc<dyn BlobSigner>, auth: Auth, config: IngestConfig) -> Self {
        let admission = admission::Admission::new(&config);
        let breaker = breaker::LogBreaker::new(config.request_timeout, config.log_probe_interval);
        metrics::gauge!(breaker::INGEST_LOG_AVAILABLE.name).set(1.0);
        let plans = quick_cache::sync::Cache::new(REMEMBERED_PLANS);
        Self { inner: Arc::new(Inner { log, signer, auth, config, admission, breaker, plans }) }
    }

    /// `Err(why)` while ingest's appends are failing and it refuses reports (for `/readyz`).
    pub fn log_health(&self) -> Result<(), String> {
        self.inner.breaker.health()
    }

    /// Drops rate-limiter state of devices that went quiet (call periodically; bounds memory).
    pub fn forget_idle_devices(&self) {
        self.inner.admission.forget_idle();
    }
}
