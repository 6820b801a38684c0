//! Opens the engines a [`Config`](crate::Config) names — the log, the store, the object store
//! signer — behind the seam traits, so nothing past this module knows which one it got.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::EmbeddedStore;
use infra::kafka::{KafkaConfig, KafkaLog};
use infra::s3::{S3Config, S3Signer};
use infra::scylla::{ScyllaOptions, ScyllaStore};
use infra::{LogUrl, StoreUrl};
use schemas::TimePolicy;
use seams::{BlobSigner, ProjectionStore, ReportLog};

use crate::config::{LogConfig, S3Settings, StoreConfig};

/// The opened report log, and the embedded one's concrete handle for the janitor's truncation.
#[derive(Debug, Clone)]
pub struct OpenedLog {
    pub log: Arc<dyn ReportLog>,
    pub embedded: Option<Arc<EmbeddedLog>>,
}

pub async fn open_log(config: &LogConfig, data_dir: &Path) -> anyhow::Result<OpenedLog> {
    match &config.url {
        LogUrl::Embedded => {
            create_data_dir(data_dir)?;
            let log = EmbeddedLog::open(
                &data_dir.join("log"),
                EmbeddedLogConfig { commit_linger: config.commit_linger, ..EmbeddedLogConfig::default() },
            )?;
            Ok(OpenedLog { log: log.clone(), embedded: Some(log) })
        }
        LogUrl::Kafka(url) => {
            let log = KafkaLog::connect(kafka_config(url, config)?)?;
            Ok(OpenedLog { log, embedded: None })
        }
    }
}

/// The client configuration of `kafka://…`: the URL, then the properties file, then the
/// `DAYBOOK_KAFKA_*` variables.
pub fn kafka_config(url: &str, config: &LogConfig) -> anyhow::Result<KafkaConfig> {
    let mut kafka = KafkaConfig::from_url(url)?;
    if let Some(file) = &config.kafka_config {
        kafka = kafka.with_properties(infra::kafka::properties_from_file(file)?);
    }
    Ok(kafka.with_properties(infra::kafka::properties_from_env()))
}

pub async fn open_store(
    config: &StoreConfig,
    data_dir: &Path,
    policy: TimePolicy,
) -> anyhow::Result<Arc<dyn ProjectionStore>> {
    match &config.url {
        StoreUrl::Embedded => {
            create_data_dir(data_dir)?;
            Ok(EmbeddedStore::open(&data_dir.join("store.db"), policy)?)
        }
        StoreUrl::Scylla(url) => {
            let consistency =
                config.scylla_consistency.parse().map_err(|e| anyhow::anyhow!("--scylla-consistency: {e}"))?;
            let opts = ScyllaOptions {
                consistency,
                request_timeout: config.scylla_timeout.max(std::time::Duration::from_millis(1)),
                max_concurrency: config.scylla_max_concurrency.max(1),
            };
            Ok(ScyllaStore::connect(url, policy, opts).await?)
        }
    }
}

/// The signer; with `embedded` set, for the all-in-one's own S3 endpoint at that address.
pub async fn open_signer(
    config: &S3Settings,
    data_dir: &Path,
    embedded: Option<SocketAddr>,
    retention_days: u32,
) -> anyhow::Result<Arc<dyn BlobSigner>> {
    let s3 = s3_config(config, data_dir, embedded)?;
    let signer = S3Signer::new(&s3).await;
    if embedded.is_none() {
        // A bucket that cannot be set up is not fatal at start: /readyz reports it.
        if let Err(e) = signer.ensure_bucket(retention_days).await {
            tracing::warn!(error = %e, "object store bucket setup failed");
        }
    }
    Ok(Arc::new(signer))
}

/// The bucket's client configuration; with `embedded` set, the all-in-one's own S3 endpoint at
/// that address.
pub fn s3_config(config: &S3Settings, data_dir: &Path, embedded: Option<SocketAddr>) -> anyhow::Result<S3Config> {
    Ok(match (&config.endpoint, embedded) {
        (None, Some(addr)) => S3Config {
            endpoint: Some(format!("http://{addr}")),
            public_url: config.public_url.clone(),
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            credentials: Some(crate::secrets::embedded_s3_credentials(data_dir)?),
            path_style: true,
        },
        _ => external_config(config),
    })
}

/// The external bucket (`--s3-endpoint`, or AWS when none is given), for a process without the
/// embedded S3 endpoint that keeps kept events' copies there (`infra::s3::S3Signer::reconcile_kept`).
pub async fn external_bucket(config: &S3Settings) -> S3Signer {
    S3Signer::new(&external_config(config)).await
}

fn external_config(config: &S3Settings) -> S3Config {
    S3Config {
        endpoint: config.endpoint.clone(),
        public_url: config.public_url.clone(),
        bucket: config.bucket.clone(),
        region: config.region.clone(),
        credentials: None,
        path_style: !config.virtual_hosted,
    }
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))
}
