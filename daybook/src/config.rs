//! What a daybook process runs and with which engines: plain data, filled from the command
//! line by [`crate::cli`] or directly by tests and the bench.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use infra::{LogUrl, StoreUrl};
use schemas::TimePolicy;

/// Which services one process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process (`daybook run`): device and viewer API on one listener, the
    /// projector, and (without an external S3 endpoint) an S3 endpoint serving the data
    /// directory.
    AllInOne,
    /// The device API only (`daybook ingest`).
    Ingest,
    /// One projector, a member of the consumer group (`daybook projector`).
    Projector,
    /// The viewer API only (`daybook api`).
    Api,
    /// The notifier only (`daybook notify`): webhook subscriptions fed from the log.
    Notify,
}

impl Role {
    pub(crate) fn ingest(self) -> bool {
        matches!(self, Self::AllInOne | Self::Ingest)
    }

    pub(crate) fn api(self) -> bool {
        matches!(self, Self::AllInOne | Self::Api)
    }

    pub(crate) fn projector(self) -> bool {
        matches!(self, Self::AllInOne | Self::Projector)
    }

    pub(crate) fn notify(self) -> bool {
        matches!(self, Self::AllInOne | Self::Notify)
    }

    pub(crate) fn log(self) -> bool {
        self.ingest() || self.projector() || self.notify()
    }

    pub(crate) fn store(self) -> bool {
        self.api() || self.projector() || self.notify()
    }

    pub(crate) fn signer(self) -> bool {
        self.ingest() || self.api()
    }
}

/// Everything [`crate::Application::build`] needs. [`Config::new`] holds the command line's
/// defaults; fields a role does not use are ignored.
#[derive(Debug, Clone)]
pub struct Config {
    /// The services this process runs.
    pub role: Role,
    /// Embedded log (`log/`) and store (`store.db`), generated secrets, embedded S3 objects.
    pub data_dir: PathBuf,
    /// Device and viewer routes, health and metrics (port 0: any free port).
    pub http_addr: SocketAddr,
    /// The embedded S3 endpoint of the all-in-one (unused with [`S3Settings::endpoint`]).
    pub s3_addr: SocketAddr,
    /// Health and metrics of a projector-only process, which has no HTTP listener otherwise.
    pub metrics_addr: Option<SocketAddr>,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub s3: S3Settings,
    /// Retention, the default day offset and the clock tolerance: the time rules every
    /// service of the process shares.
    pub policy: TimePolicy,
    pub ingest: IngestLimits,
    pub projector: projector::ProjectorConfig,
    /// Connection and timeout limits of the HTTP listener.
    pub http: HttpLimits,
    /// How often buffered histogram samples are folded into the Prometheus registry, so
    /// memory stays flat whether or not anyone scrapes `/metrics`.
    pub metrics_upkeep: Duration,
    /// Scheduled backups of the data directory (`run --backup-to`), one schedule per
    /// repository (see [`crate::backup::schedule::schedules`]); none by default.
    pub backups: Vec<crate::backup::schedule::Schedule>,
    /// Repositories the log, objects and secrets are shipped to continuously (`run
    /// --replicate-to`); none by default.
    pub replicas: Vec<crate::backup::ship::Replica>,
    /// The notifier (all-in-one and `daybook notify`).
    pub notify: NotifyConfig,
    /// Most events one device may keep past retention (the viewer API's cap).
    pub max_kept_per_device: u32,
    /// Most exports one camera may be sent in 24 hours (the viewer API's rate limit).
    pub max_exports_per_camera_per_day: u32,
    /// How long a completed export and its archive are kept (the export worker).
    pub export_ttl: Duration,
    /// Bytes per part of an export archive's upload: the export worker's buffer (at least
    /// 5 MiB, S3's smallest part).
    pub export_part_size: usize,
}

impl Config {
    /// The all-in-one on the embedded engines with its state in `data_dir`, listening where
    /// `daybook run` does by default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            role: Role::AllInOne,
            data_dir: data_dir.into(),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            s3_addr: SocketAddr::from(([127, 0, 0, 1], 9000)),
            metrics_addr: None,
            log: LogConfig {
                url: LogUrl::Embedded,
                kafka_config: None,
                group_retention: Duration::from_secs(7 * 86_400),
                commit_linger: infra::embedded_log::EmbeddedLogConfig::default().commit_linger,
            },
            store: StoreConfig {
                url: StoreUrl::Embedded,
                scylla_consistency: "LOCAL_QUORUM".into(),
                scylla_timeout: Duration::from_secs(10),
                scylla_max_concurrency: 256,
            },
            s3: S3Settings {
                endpoint: None,
                public_url: None,
                bucket: "daybook".into(),
                region: "us-east-1".into(),
                virtual_hosted: false,
                url_ttl: Duration::from_secs(600),
            },
            policy: TimePolicy::default(),
            ingest: IngestLimits {
                max_body_bytes: 256 * 1024,
                max_inflight: 150_000,
                device_rate_per_s: 20,
                device_burst: 60,
                digest_window: ingest::DigestWindow::default(),
                max_snapshot_bytes: 2 * 1024 * 1024,
                request_timeout: Duration::from_secs(5),
            },
            projector: projector::ProjectorConfig { max_rows_per_s: Some(25_000), ..Default::default() },
            http: HttpLimits {
                max_connections: 10_000,
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
            },
            metrics_upkeep: Duration::from_secs(5),
            backups: Vec::new(),
            replicas: Vec::new(),
            notify: NotifyConfig::default(),
            max_kept_per_device: 100,
            max_exports_per_camera_per_day: 5,
            export_ttl: Duration::from_secs(7 * 86_400),
            export_part_size: 8 * 1024 * 1024,
        }
    }
}

/// The report log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `embedded` (the data directory's `log/`) or `kafka://BROKERS/TOPIC`.
    pub url: LogUrl,
    /// Embedded log: the group commit window (see `EmbeddedLogConfig::commit_linger`).
    pub commit_linger: Duration,
    /// File of extra librdkafka properties (`key=value` lines); `DAYBOOK_KAFKA_<PROPERTY>`
    /// variables are applied after it.
    pub kafka_config: Option<PathBuf>,
    /// Embedded log: a consumer group that has not committed for this long is forgotten (as
    /// Kafka's `offsets.retention.minutes`), so an abandoned `tail --group` pins nothing.
    pub group_retention: Duration,
}

/// The projection store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `embedded` (the data directory's `store.db`) or `scylla://NODES/KEYSPACE`.
    pub url: StoreUrl,
    /// ScyllaDB consistency level of reads and writes (`LOCAL_QUORUM`, `ONE`, …).
    pub scylla_consistency: String,
    /// ScyllaDB client-side timeout of one request, retries included.
    pub scylla_timeout: Duration,
    /// Most ScyllaDB requests one process has in flight.
    pub scylla_max_concurrency: usize,
}

/// Where video, snapshots and digests live, and how their presigned URLs are made.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The S3 endpoint daybook talks to. `None`: the all-in-one serves its own, other roles
    /// use AWS S3.
    pub endpoint: Option<String>,
    /// Endpoint written into presigned URLs, as devices and viewers reach it (default: the endpoint).
    pub public_url: Option<String>,
    /// Bucket of every object (keys start `devices/{cid}/`).
    pub bucket: String,
    /// Region the URLs are signed for.
    pub region: String,
    /// Virtual-hosted-style URLs (AWS) instead of path-style (MinIO, embedded).
    pub virtual_hosted: bool,
    /// Lifetime of presigned URLs (at most 15 minutes).
    pub url_ttl: Duration,
}

/// Device API limits; the rest of [`ingest::IngestConfig`] follows from the policy and the
/// S3 settings.
#[derive(Debug, Clone)]
pub struct IngestLimits {
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// Reports that may wait on the log at once (503 above).
    pub max_inflight: usize,
    /// Sustained requests per second per device (429 above).
    pub device_rate_per_s: u32,
    /// Requests a device may send at once above its sustained rate.
    pub device_burst: u32,
    /// The nightly window over which devices' digest slots are spread.
    pub digest_window: ingest::DigestWindow,
    /// Largest snapshot image: a declared `snapshot_size` above it is refused (422), and the
    /// embedded S3 endpoint refuses larger snapshot uploads.
    pub max_snapshot_bytes: u64,
    /// Longest a device request waits for the log, and a viewer request for the store:
    /// past it, 503 with a Retry-After.
    pub request_timeout: Duration,
}

/// Limits of the HTTP listener, so slow or idle clients cannot hold the service's file
/// descriptors.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections served at once. At the limit a new connection evicts the oldest one that
    /// is not in the middle of a request; when every one is, it is answered 503 and closed.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also the idle keep-alive limit).
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body.
    pub body_timeout: Duration,
}

/// How the notifier delivers.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Whether the process runs the notifier (`run --no-notify`: another process does).
    pub enabled: bool,
    /// The key that opens the signing secrets (`None`: `DATA_DIR/notify-key`).
    pub key_file: Option<std::path::PathBuf>,
    /// First retry delay.
    pub retry_base: Duration,
    /// Longest delay between two attempts (and the cap on a receiver's Retry-After).
    pub retry_max: Duration,
    /// How long after its first failure a report is given up on (dead-lettered).
    pub retry_window: Duration,
    /// How long a receiver has to answer (headers and body).
    pub timeout: Duration,
    /// Deliveries in flight at once, per subscription.
    pub max_in_flight: usize,
    /// Records one subscription holds between its committed and its read position.
    pub window: usize,
    /// How often the subscriptions are read from the store.
    pub refresh: Duration,
    /// Deliver to loopback, private, link-local and other internal addresses.
    pub allow_private: bool,
    /// Deliver over plain http://.
    pub allow_http: bool,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key_file: None,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(10 * 3600),
            retry_window: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            max_in_flight: 64,
            window: 10_000,
            refresh: Duration::from_secs(1),
            allow_private: false,
            allow_http: false,
        }
    }
}
