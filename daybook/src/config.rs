//! Command-line flags shared by the subcommands. Every flag can also be set from a
//! `DAYBOOK_*` environment variable (shown in `--help`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use infra::{LogUrl, StoreUrl};
use schemas::{DayOffset, TimePolicy};

/// Where state lives.
#[derive(Debug, Clone, Args)]
pub(crate) struct DataArgs {
    /// Data directory: embedded log and store, generated secrets, embedded S3 objects.
    #[arg(long, env = "DAYBOOK_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
}

/// The report log.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogArgs {
    /// Report log: `embedded` or `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    #[arg(long = "log", env = "DAYBOOK_LOG", default_value = "embedded")]
    pub(crate) log: LogUrl,
    /// File of extra librdkafka properties (`key=value` lines: SASL, TLS, …); variables
    /// `DAYBOOK_KAFKA_<PROPERTY>` (e.g. `DAYBOOK_KAFKA_SECURITY_PROTOCOL`) are applied after it.
    #[arg(long, env = "DAYBOOK_KAFKA_CONFIG")]
    pub(crate) kafka_config: Option<PathBuf>,
}

/// The projection store.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreArgs {
    /// Projection store: `embedded` or `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
    #[arg(long = "store", env = "DAYBOOK_STORE", default_value = "embedded")]
    pub(crate) store: StoreUrl,
    /// ScyllaDB consistency level of reads and writes.
    #[arg(long, env = "DAYBOOK_SCYLLA_CONSISTENCY", default_value = "LOCAL_QUORUM")]
    pub(crate) scylla_consistency: String,
    /// ScyllaDB client-side timeout of one request, retries included, in milliseconds.
    #[arg(long, env = "DAYBOOK_SCYLLA_TIMEOUT_MS", default_value_t = 10_000)]
    pub(crate) scylla_timeout_ms: u64,
    /// Most ScyllaDB requests one process has in flight.
    #[arg(long, env = "DAYBOOK_SCYLLA_MAX_CONCURRENCY", default_value_t = 256)]
    pub(crate) scylla_max_concurrency: usize,
}

/// Object storage.
#[derive(Debug, Clone, Args)]
pub(crate) struct S3Args {
    /// S3 endpoint daybook talks to (e.g. `http://minio:9000`). Unset with `run`: the
    /// embedded S3 endpoint on `--s3-addr`. Unset elsewhere: AWS S3.
    #[arg(long, env = "DAYBOOK_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Endpoint written into presigned URLs, as devices and viewers reach it (default: the endpoint).
    #[arg(long, env = "DAYBOOK_S3_PUBLIC_URL")]
    pub s3_public_url: Option<String>,
    /// Bucket.
    #[arg(long, env = "DAYBOOK_S3_BUCKET", default_value = "daybook")]
    pub s3_bucket: String,
    /// Region.
    #[arg(long, env = "DAYBOOK_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Use virtual-hosted-style URLs (AWS) instead of path-style (MinIO, embedded).
    #[arg(long, env = "DAYBOOK_S3_VIRTUAL_HOSTED")]
    pub s3_virtual_hosted: bool,
    /// Lifetime of presigned URLs in seconds (at most 900).
    #[arg(long, env = "DAYBOOK_URL_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub(crate) url_ttl_secs: u64,
}

impl S3Args {
    pub(crate) fn url_ttl(&self) -> Duration {
        Duration::from_secs(self.url_ttl_secs)
    }
}

/// Day boundary and retention.
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyArgs {
    /// UTC offset that decides which day an event belongs to (`+00:00`, `-05:00`, …).
    #[arg(long, env = "DAYBOOK_DAY_OFFSET", default_value = "+00:00", value_parser = DayOffset::parse)]
    pub(crate) day_offset: DayOffset,
    /// Days data is kept, counted from its trigger time.
    #[arg(long, env = "DAYBOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub(crate) retention_days: u32,
    /// How far ahead of the server's clock a device's timestamps may be, in seconds.
    #[arg(long, env = "DAYBOOK_FUTURE_TOLERANCE_SECS", default_value_t = 300)]
    pub(crate) future_tolerance_secs: u32,
}

impl PolicyArgs {
    pub(crate) fn policy(&self) -> TimePolicy {
        TimePolicy {
            offset: self.day_offset,
            retention_days: self.retention_days,
            future_tolerance_ms: i64::from(self.future_tolerance_secs) * 1000,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// Address of the HTTP listener (device and viewer routes, health, metrics).
    #[arg(long, env = "DAYBOOK_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) http_addr: SocketAddr,
}

/// Device API limits.
#[derive(Debug, Clone, Args)]
pub(crate) struct IngestArgs {
    /// Largest request body in bytes (413 above).
    #[arg(long, env = "DAYBOOK_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub(crate) max_body_bytes: usize,
    /// Reports that may wait on the log at once (503 above).
    #[arg(long, env = "DAYBOOK_MAX_INFLIGHT", default_value_t = 150_000)]
    pub(crate) max_inflight: usize,
    /// Sustained requests per second per device (429 above).
    #[arg(long, env = "DAYBOOK_DEVICE_RATE", default_value_t = 20)]
    pub(crate) device_rate: u32,
    /// Burst of requests per device.
    #[arg(long, env = "DAYBOOK_DEVICE_BURST", default_value_t = 60)]
    pub(crate) device_burst: u32,
    /// Start of the nightly digest window, minutes after local midnight.
    #[arg(long, env = "DAYBOOK_DIGEST_WINDOW_START_MIN", default_value_t = 0)]
    pub(crate) digest_window_start_min: u32,
    /// Length of the nightly digest window in minutes.
    #[arg(long, env = "DAYBOOK_DIGEST_WINDOW_MIN", default_value_t = 300)]
    pub(crate) digest_window_min: u32,
}

/// Projector pacing.
#[derive(Debug, Clone, Args)]
pub(crate) struct ProjectorArgs {
    /// Consumer group.
    #[arg(long, env = "DAYBOOK_PROJECTOR_GROUP", default_value = "daybook-projector")]
    pub(crate) group: String,
    /// Most reports per store batch.
    #[arg(long, env = "DAYBOOK_PROJECTOR_MAX_BATCH", default_value_t = 16_384)]
    pub(crate) max_batch: usize,
    /// Milliseconds to gather a batch once its first report arrived.
    #[arg(long, env = "DAYBOOK_PROJECTOR_LINGER_MS", default_value_t = 50)]
    pub(crate) linger_ms: u64,
    /// Ceiling on store rows written per second by this projector (0: none). The store sees
    /// at most this rate however bursty the devices are; the log holds the rest.
    #[arg(long, env = "DAYBOOK_PROJECTOR_MAX_ROWS_PER_S", default_value_t = 25_000)]
    pub(crate) max_rows_per_s: u64,
}
