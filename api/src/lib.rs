//! api: the viewer API (docs/viewer-api.md). It reads projections only — never the log — and signs
//! GET URLs so video is downloaded straight from object storage. The owner's changes (a deletion)
//! it appends to the log, as ingest does a device's reports, and answers once they are durable.

mod cursor;
mod dto;
mod export;
mod keep;
mod routes;
mod shared;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use dto::*;
pub use routes::{router, ApiDoc};
use schemas::TimePolicy;
use seams::auth::Auth;
use seams::{BlobSigner, LogError, LogRecord, ProjectionStore, ReportLog};

mod web;

/// Entry points for the fuzz targets in `fuzz/` (cargo-fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use schemas::{Day, DeviceId, EventType};
    use seams::web::ApiError;

    /// A day page cursor from the `cursor` query parameter, decoded exactly as
    /// `GET /v1/devices/{cid}/events` decodes it: the store's position, or 400.
    pub fn decode_cursor(
        text: &str,
        cid: &DeviceId,
        day: Day,
        event_type: Option<&EventType>,
    ) -> Result<Vec<u8>, ApiError> {
        crate::cursor::decode_cursor(text, cid, day, event_type)
    }

    /// The cursor the day page answers for the store's position `store`.
    pub fn encode_cursor(cid: &DeviceId, day: Day, event_type: Option<&EventType>, store: &[u8]) -> String {
        crate::cursor::encode_cursor(cid, day, event_type, store)
    }
}

/// Settings of the viewer API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Day boundary and retention (the calendar never reaches past retention).
    pub policy: TimePolicy,
    /// Default page size of the day page.
    pub default_limit: u32,
    /// Largest page size a viewer may ask for.
    pub max_limit: u32,
    /// Lifetime of presigned GET URLs (at most 15 minutes).
    pub url_ttl: Duration,
    /// Most events a device may keep at once (`--max-kept-per-device`; 409 past it).
    pub max_kept_per_device: u32,
    /// Objects live on an external bucket, whose lifecycle rule expires them by age: a kept
    /// event past retention is served from its objects' kept copies (`kept/…`,
    /// docs/data-model.md, Keeping events). False on the embedded S3 endpoint, whose janitor
    /// spares the originals.
    pub kept_copies: bool,
    /// Most exports one camera may be sent in 24 hours (`--max-exports-per-camera-per-day`; 429
    /// past it).
    pub max_exports_per_camera_per_day: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            policy: TimePolicy::default(),
            default_limit: 10,
            max_limit: 100,
            url_ttl: Duration::from_secs(10 * 60),
            max_kept_per_device: 100,
            kept_copies: false,
            max_exports_per_camera_per_day: 5,
        }
    }
}

/// The viewer API's state.
#[derive(Debug, Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ProjectionStore>,
    signer: Arc<dyn BlobSigner>,
    auth: Auth,
    config: ApiConfig,
    /// Where the owner's reports go (a deletion): `None` in a process that cannot append to
    /// the log, which then answers them 503.
    log: Option<AppendTo>,
    /// Keeps and un-keeps appended but perhaps not projected yet (the cap counts them).
    pending: keep::Pending,
    /// Exports appended but perhaps not projected yet (the rate limit counts them).
    exports: export::Appended,
}

/// Puts one of the owner's reports, as its log record, on the log; resolves once it is durable.
/// The log itself ([`Api::with_log`]), or a way to hand the record to the process that appends
/// to it ([`Api::with_appender`]).
pub type Appender = Arc<dyn Fn(LogRecord) -> BoxFuture<'static, Result<(), LogError>> + Send + Sync>;

/// The [`Appender`] that appends to `log` itself.
pub fn log_appender(log: Arc<dyn ReportLog>) -> Appender {
    Arc::new(move |record| {
        let log = log.clone();
        Box::pin(async move { log.append(vec![record]).await.map(drop) })
    })
}

struct AppendTo(Appender);

impl std::fmt::Debug for AppendTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Appender")
    }
}

impl Api {
    /// Builds the service.
    pub fn new(store: Arc<dyn ProjectionStore>, signer: Arc<dyn BlobSigner>, auth: Auth, config: ApiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                signer,
                auth,
                config,
                log: None,
                pending: keep::Pending::default(),
                exports: export::Appended::default(),
            }),
        }
    }

    /// The service, appending the owner's reports to `log`.
    pub fn with_log(self, log: Arc<dyn ReportLog>) -> Self {
        self.with_appender(log_appender(log))
    }

    /// The service, putting the owner's reports on the log through `appender`.
    pub fn with_appender(self, appender: Appender) -> Self {
        let Inner { store, signer, auth, config, pending, exports, .. } =
            Arc::try_unwrap(self.inner).expect("not shared yet");
        let log = Some(AppendTo(appender));
        Self { inner: Arc::new(Inner { store, signer, auth, config, log, pending, exports }) }
    }
}
