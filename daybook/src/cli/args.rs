//! Command-line flags of the service subcommands and how they become a [`Config`]. Every flag
//! can also be set from a `DAYBOOK_*` environment variable (shown in `--help`). The defaults
//! here are [`Config::new`]'s (a test below keeps them equal).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use infra::{LogUrl, StoreUrl};
use schemas::{DayOffset, TimePolicy};

use crate::config::{Config, HttpLimits, IngestLimits, LogConfig, Role, S3Settings, StoreConfig};

/// `daybook run`: everything in one process.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    /// Address of the embedded S3 endpoint (unused with --s3-endpoint).
    #[arg(long, env = "DAYBOOK_S3_ADDR", default_value = "127.0.0.1:9000")]
    pub s3_addr: SocketAddr,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    #[command(flatten)]
    pub backup: Box<super::backup::ScheduleArgs>,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

impl From<RunArgs> for Config {
    fn from(a: RunArgs) -> Self {
        Self {
            role: Role::AllInOne,
            http_addr: a.http.http_addr,
            http: a.http.limits(),
            s3_addr: a.s3_addr,
            log: a.log.into(),
            store: a.store.into(),
            s3: a.s3.into(),
            policy: a.policy.policy(),
            ingest: a.ingest.into(),
            projector: a.projector.into(),
            backups: a.backup.schedules(),
            replicas: a.backup.replicas(),
            notify: a.notify.into(),
            ..a.owner.apply(Config::new(a.data.data_dir))
        }
    }
}

/// `daybook ingest`: the device API only.
#[derive(Debug, Clone, Args)]
pub struct IngestCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
}

impl From<IngestCmd> for Config {
    fn from(a: IngestCmd) -> Self {
        Self {
            role: Role::Ingest,
            http_addr: a.http.http_addr,
            http: a.http.limits(),
            log: a.log.into(),
            s3: a.s3.into(),
            policy: a.policy.policy(),
            ingest: a.ingest.into(),
            ..Config::new(a.data.data_dir)
        }
    }
}

/// `daybook projector`: one member of the projector consumer group.
#[derive(Debug, Clone, Args)]
pub struct ProjectorCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub projector: ProjectorArgs,
    /// Address for /healthz, /readyz and /metrics (none if unset).
    #[arg(long, env = "DAYBOOK_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl From<ProjectorCmd> for Config {
    fn from(a: ProjectorCmd) -> Self {
        Self {
            role: Role::Projector,
            metrics_addr: a.metrics_addr,
            log: a.log.into(),
            store: a.store.into(),
            policy: a.policy.policy(),
            projector: a.projector.into(),
            ..Config::new(a.data.data_dir)
        }
    }
}

/// `daybook notify`: the notifier only (webhook subscriptions fed from the log).
#[derive(Debug, Clone, Args)]
pub struct NotifyCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Address for /healthz, /readyz and /metrics (none if unset).
    #[arg(long, env = "DAYBOOK_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

impl From<NotifyCmd> for Config {
    fn from(a: NotifyCmd) -> Self {
        Self {
            role: Role::Notify,
            metrics_addr: a.metrics_addr,
            log: a.log.into(),
            store: a.store.into(),
            policy: a.policy.policy(),
            notify: a.notify.into(),
            ..Config::new(a.data.data_dir)
        }
    }
}

/// How the notifier delivers (docs/notifications.md).
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// `run`: do not run the notifier in this process (a `daybook notify` does).
    #[arg(long, env = "DAYBOOK_NO_NOTIFY")]
    pub no_notify: bool,
    /// The key that opens the subscriptions' signing secrets (64 hex digits); default
    /// `DATA_DIR/notify-key`. The same file `daybook subscriptions` sealed them with.
    #[arg(long, env = "DAYBOOK_NOTIFY_KEY_FILE")]
    pub notify_key_file: Option<PathBuf>,
    /// Delay before the first retry of a failed delivery, in milliseconds (then ×3 per
    /// attempt, with ±20 % jitter).
    #[arg(long, env = "DAYBOOK_NOTIFY_RETRY_BASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_retry_base_ms: u64,
    /// Longest delay between two attempts, in seconds (also caps a receiver's Retry-After).
    #[arg(long, env = "DAYBOOK_NOTIFY_RETRY_MAX_S", default_value_t = 36_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_retry_max_s: u64,
    /// How long after its first failure a report is given up on and put in the subscription's
    /// dead letters, in seconds.
    #[arg(long, env = "DAYBOOK_NOTIFY_RETRY_WINDOW_S", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_retry_window_s: u64,
    /// How long a receiver has to answer, in milliseconds.
    #[arg(long, env = "DAYBOOK_NOTIFY_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub notify_timeout_ms: u64,
    /// Deliver to receivers on loopback, private, link-local and other internal addresses
    /// (refused by default: SSRF).
    #[arg(long, env = "DAYBOOK_NOTIFY_ALLOW_PRIVATE")]
    pub notify_allow_private: bool,
    /// Deliver over plain http:// (refused by default).
    #[arg(long, env = "DAYBOOK_NOTIFY_ALLOW_HTTP")]
    pub notify_allow_http: bool,
    /// Deliveries in flight at once per subscription (each device has at most one).
    #[arg(long, env = "DAYBOOK_NOTIFY_MAX_IN_FLIGHT", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub notify_max_in_flight: u64,
    /// Records one subscription may hold between its committed and its read position (what
    /// bounds its memory whatever its receiver does; reading waits when it is full).
    #[arg(long, env = "DAYBOOK_NOTIFY_WINDOW", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub notify_window: u64,
}

impl From<NotifyArgs> for crate::notify::deliver::NotifyConfig {
    fn from(a: NotifyArgs) -> Self {
        Self {
            enabled: !a.no_notify,
            key_file: a.notify_key_file,
            retry_base: Duration::from_millis(a.notify_retry_base_ms),
            retry_max: Duration::from_secs(a.notify_retry_max_s),
            retry_window: Duration::from_secs(a.notify_retry_window_s),
            timeout: Duration::from_millis(a.notify_timeout_ms),
            max_in_flight: a.notify_max_in_flight as usize,
            window: a.notify_window as usize,
            allow_private: a.notify_allow_private,
            allow_http: a.notify_allow_http,
            ..Self::default()
        }
    }
}

/// `daybook api`: the viewer API only.
#[derive(Debug, Clone, Args)]
pub struct ApiCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

/// The owner's controls.
#[derive(Debug, Clone, Args)]
pub struct OwnerArgs {
    /// Most events one device may keep past retention at once (`PUT /v1/events/{id}/keep`;
    /// 409 `kept_limit` past it; 0: keeping is off).
    #[arg(long, env = "DAYBOOK_MAX_KEPT_PER_DEVICE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub max_kept_per_device: u32,
    /// Most exports one camera may be sent in 24 hours (`POST /v1/devices/{cid}/exports`; 429
    /// `export_limit` past it; 0: exports are off).
    #[arg(long, env = "DAYBOOK_MAX_EXPORTS_PER_CAMERA_PER_DAY", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub max_exports_per_camera_per_day: u32,
    /// Hours an export and its archive are kept once the export worker completed it (`daybook
    /// run`); an external bucket needs a lifecycle rule on `exports/` (docs/deployment.md).
    #[arg(long, env = "DAYBOOK_EXPORT_TTL_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..=8760))]
    pub export_ttl_hours: u64,
}

impl OwnerArgs {
    /// Copies the owner's settings into `config`.
    fn apply(&self, config: Config) -> Config {
        Config {
            max_kept_per_device: self.max_kept_per_device,
            max_exports_per_camera_per_day: self.max_exports_per_camera_per_day,
            export_ttl: Duration::from_secs(self.export_ttl_hours * 3600),
            ..config
        }
    }
}

impl From<ApiCmd> for Config {
    fn from(a: ApiCmd) -> Self {
        Self {
            role: Role::Api,
            http_addr: a.http.http_addr,
            http: a.http.limits(),
            store: a.store.into(),
            s3: a.s3.into(),
            policy: a.policy.policy(),
            ..a.owner.apply(Config::new(a.data.data_dir))
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory: embedded log and store, generated secrets, embedded S3 objects.
    #[arg(long, env = "DAYBOOK_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Report log: `embedded` or `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    #[arg(long = "log", env = "DAYBOOK_LOG", default_value = "embedded")]
    pub log: LogUrl,
    /// File of extra librdkafka properties (`key=value` lines: SASL, TLS, …); variables
    /// `DAYBOOK_KAFKA_<PROPERTY>` (e.g. `DAYBOOK_KAFKA_SECURITY_PROTOCOL`) are applied after it.
    #[arg(long, env = "DAYBOOK_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// Embedded log: hours after its last commit that a consumer group is forgotten (as
    /// Kafka's `offsets.retention.minutes`); a forgotten group resumes from the oldest record.
    #[arg(long, env = "DAYBOOK_GROUP_RETENTION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u64).range(1..))]
    pub group_retention_hours: u64,
    /// Embedded log: microseconds a commit may wait for more concurrent reports to share its
    /// fsync (only while requests arrive concurrently, and only until 256 records); 0: never.
    #[arg(long, env = "DAYBOOK_LOG_COMMIT_LINGER_US", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub log_commit_linger_us: u64,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Projection store: `embedded` or `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
    #[arg(long = "store", env = "DAYBOOK_STORE", default_value = "embedded")]
    pub store: StoreUrl,
    /// ScyllaDB consistency level of reads and writes.
    #[arg(long, env = "DAYBOOK_SCYLLA_CONSISTENCY", default_value = "LOCAL_QUORUM")]
    pub scylla_consistency: String,
    /// ScyllaDB client-side timeout of one request, retries included, in milliseconds.
    #[arg(long, env = "DAYBOOK_SCYLLA_TIMEOUT_MS", default_value_t = 10_000)]
    pub scylla_timeout_ms: u64,
    /// Most ScyllaDB requests one process has in flight.
    #[arg(long, env = "DAYBOOK_SCYLLA_MAX_CONCURRENCY", default_value_t = 256)]
    pub scylla_max_concurrency: usize,
}

#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// S3 endpoint daybook talks to (e.g. `http://minio:9000`). Unset with `run`: the
    /// embedded S3 endpoint on `--s3-addr`. Unset elsewhere: AWS S3.
    #[arg(long, env = "DAYBOOK_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Endpoint written into presigned URLs, as devices and viewers reach it (default: the endpoint).
    #[arg(long, env = "DAYBOOK_S3_PUBLIC_URL")]
    pub s3_public_url: Option<String>,
    /// Bucket of segments, snapshots and digests.
    #[arg(long, env = "DAYBOOK_S3_BUCKET", default_value = "daybook")]
    pub s3_bucket: String,
    /// Region of the bucket (part of every signature).
    #[arg(long, env = "DAYBOOK_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Use virtual-hosted-style URLs (AWS) instead of path-style (MinIO, embedded).
    #[arg(long, env = "DAYBOOK_S3_VIRTUAL_HOSTED")]
    pub s3_virtual_hosted: bool,
    /// Lifetime of presigned URLs in seconds (at most 900).
    #[arg(long, env = "DAYBOOK_URL_TTL_SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub url_ttl_secs: u64,
}

impl From<S3Args> for S3Settings {
    fn from(a: S3Args) -> Self {
        Self {
            endpoint: a.s3_endpoint,
            public_url: a.s3_public_url,
            bucket: a.s3_bucket,
            region: a.s3_region,
            virtual_hosted: a.s3_virtual_hosted,
            url_ttl: Duration::from_secs(a.url_ttl_secs),
        }
    }
}

impl From<LogArgs> for LogConfig {
    fn from(a: LogArgs) -> Self {
        Self {
            url: a.log,
            kafka_config: a.kafka_config,
            group_retention: Duration::from_secs(a.group_retention_hours * 3600),
            commit_linger: Duration::from_micros(a.log_commit_linger_us),
        }
    }
}

impl From<StoreArgs> for StoreConfig {
    fn from(a: StoreArgs) -> Self {
        Self {
            url: a.store,
            scylla_consistency: a.scylla_consistency,
            scylla_timeout: Duration::from_millis(a.scylla_timeout_ms),
            scylla_max_concurrency: a.scylla_max_concurrency,
        }
    }
}

/// Day boundary and retention.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// The service's default UTC offset (`+00:00`, `-05:00`, …): a report is filed on the
    /// camera's local day, at the offset its own timestamp carries; this one decides only for a
    /// UTC (`Z`) timestamp from a camera with no zone of its own (`daybook token device --tz`).
    #[arg(long, env = "DAYBOOK_DAY_OFFSET", default_value = "+00:00", value_parser = DayOffset::parse)]
    pub day_offset: DayOffset,
    /// Days data is kept, counted from its trigger time.
    #[arg(long, env = "DAYBOOK_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub retention_days: u32,
    /// How far ahead of the server's clock a device's timestamps may be, in seconds.
    #[arg(long, env = "DAYBOOK_FUTURE_TOLERANCE_SECS", default_value_t = 300)]
    pub future_tolerance_secs: u32,
}

impl PolicyArgs {
    pub fn policy(&self) -> TimePolicy {
        TimePolicy {
            offset: self.day_offset,
            retention_days: self.retention_days,
            future_tolerance_ms: i64::from(self.future_tolerance_secs) * 1000,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address of the HTTP listener (device and viewer routes, health, metrics).
    #[arg(long, env = "DAYBOOK_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Connections served at once; at the limit a new connection evicts the oldest idle or
    /// half-sent one, and is answered 503 and closed when every one is busy.
    #[arg(long, env = "DAYBOOK_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Milliseconds a client has to send a request's headers (also how long an idle
    /// keep-alive connection stays open).
    #[arg(long, env = "DAYBOOK_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request's whole body (400 `unreadable_body` after).
    #[arg(long, env = "DAYBOOK_BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
}

impl HttpArgs {
    fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections as usize,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
        }
    }
}

/// Device API limits.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Largest request body in bytes (413 above).
    #[arg(long, env = "DAYBOOK_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Reports that may wait on the log at once (503 above).
    #[arg(long, env = "DAYBOOK_MAX_INFLIGHT", default_value_t = 150_000)]
    pub max_inflight: usize,
    /// Sustained requests per second per device (429 above).
    #[arg(long, env = "DAYBOOK_DEVICE_RATE", default_value_t = 20)]
    pub device_rate: u32,
    /// Burst of requests per device.
    #[arg(long, env = "DAYBOOK_DEVICE_BURST", default_value_t = 60)]
    pub device_burst: u32,
    /// Start of the nightly digest window, minutes after local midnight.
    #[arg(long, env = "DAYBOOK_DIGEST_WINDOW_START_MIN", default_value_t = 0)]
    pub digest_window_start_min: u32,
    /// Length of the nightly digest window in minutes.
    #[arg(long, env = "DAYBOOK_DIGEST_WINDOW_MIN", default_value_t = 300)]
    pub digest_window_min: u32,
    /// Largest snapshot image in bytes: a larger declared `snapshot_size` is refused (422) and
    /// the embedded S3 endpoint refuses larger snapshot uploads.
    #[arg(long, env = "DAYBOOK_MAX_SNAPSHOT_BYTES", default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_snapshot_bytes: u64,
    /// Longest a device request waits for the log to confirm, and a viewer request for the
    /// store, in milliseconds: past it, 503 with a Retry-After (`log_unavailable` /
    /// `store_unavailable`). Keep it well under the devices' own client timeout.
    #[arg(long, env = "DAYBOOK_REQUEST_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub request_timeout_ms: u64,
}

/// Projector pacing.
#[derive(Debug, Clone, Args)]
pub struct ProjectorArgs {
    /// Consumer group (the projectors of one deployment share it).
    #[arg(long, env = "DAYBOOK_PROJECTOR_GROUP", default_value = "daybook-projector")]
    pub group: String,
    /// Most reports per store batch.
    #[arg(long, env = "DAYBOOK_PROJECTOR_MAX_BATCH", default_value_t = 16_384)]
    pub max_batch: usize,
    /// Milliseconds to gather a batch once its first report arrived.
    #[arg(long, env = "DAYBOOK_PROJECTOR_LINGER_MS", default_value_t = 50)]
    pub linger_ms: u64,
    /// Ceiling on store rows written per second by this projector (0: none). The store sees
    /// at most this rate however bursty the devices are; the log holds the rest.
    #[arg(long, env = "DAYBOOK_PROJECTOR_MAX_ROWS_PER_S", default_value_t = 25_000)]
    pub max_rows_per_s: u64,
    /// Read (and decode) the next batch from the log while the current one is written to the
    /// store, so reading and writing overlap (what the log already holds only; committed once
    /// written, as every batch). `false`: read and write take turns.
    #[arg(long, env = "DAYBOOK_PROJECTOR_READ_AHEAD", default_value_t = true, action = clap::ArgAction::Set)]
    pub read_ahead: bool,
}

impl From<IngestArgs> for IngestLimits {
    fn from(a: IngestArgs) -> Self {
        Self {
            max_body_bytes: a.max_body_bytes,
            max_inflight: a.max_inflight,
            device_rate_per_s: a.device_rate,
            device_burst: a.device_burst,
            digest_window: ingest::DigestWindow {
                start_s: a.digest_window_start_min * 60,
                length_s: a.digest_window_min.max(1) * 60,
                ..ingest::DigestWindow::default()
            },
            max_snapshot_bytes: a.max_snapshot_bytes,
            request_timeout: Duration::from_millis(a.request_timeout_ms),
        }
    }
}

impl From<ProjectorArgs> for projector::ProjectorConfig {
    fn from(a: ProjectorArgs) -> Self {
        Self {
            group: a.group,
            max_batch: a.max_batch.max(1),
            linger: Duration::from_millis(a.linger_ms),
            max_rows_per_s: (a.max_rows_per_s > 0).then_some(a.max_rows_per_s),
            prefetch: a.read_ahead,
            lag_every: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn the_command_line_defaults_are_config_new() {
        let parsed = Config::from(Run::parse_from(["run"]).run);
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::new("./data")));
    }
}
