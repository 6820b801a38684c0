//! Wiring: opens the backends the flags name, builds the services and serves them until a
//! shutdown signal, then stops in order (HTTP drains, the log flushes, the projector finishes
//! its batch).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::EmbeddedStore;
use infra::kafka::{KafkaConfig, KafkaLog};
use infra::s3::{S3Config, S3Signer};
use infra::scylla::{ScyllaOptions, ScyllaStore};
use infra::{LogUrl, StoreUrl};
use schemas::{TimePolicy, Timestamp};
use seams::auth::Auth;
use seams::{BlobSigner, ProjectionStore, ReportLog};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::*;
use crate::ops;

/// The opened report log, and the embedded one's concrete handle for its janitor.
pub(crate) struct OpenedLog {
    pub(crate) log: Arc<dyn ReportLog>,
    pub(crate) embedded: Option<Arc<EmbeddedLog>>,
}

/// Opens the log `args` names. `direct` (the benchmark baseline) writes through to `store`.
pub(crate) async fn open_log(
    args: &LogArgs,
    data: &DataArgs,
    store: Option<&Arc<dyn ProjectionStore>>,
) -> anyhow::Result<OpenedLog> {
    match &args.log {
        LogUrl::Direct => {
            let store = store.context("--log direct only works with `daybook run` (it writes the store directly)")?;
            Ok(OpenedLog { log: infra::direct::DirectLog::new(store.clone()), embedded: None })
        }
        LogUrl::Embedded => {
            std::fs::create_dir_all(&data.data_dir)
                .with_context(|| format!("cannot create data directory {}", data.data_dir.display()))?;
            let log = EmbeddedLog::open(&data.data_dir.join("log.db"), EmbeddedLogConfig::default())?;
            Ok(OpenedLog { log: log.clone(), embedded: Some(log) })
        }
        LogUrl::Kafka(url) => {
            let log = KafkaLog::connect(kafka_config(url, args)?)?;
            Ok(OpenedLog { log, embedded: None })
        }
    }
}

pub(crate) fn kafka_config(url: &str, args: &LogArgs) -> anyhow::Result<KafkaConfig> {
    let mut config = KafkaConfig::from_url(url)?;
    if let Some(file) = &args.kafka_config {
        config = config.with_properties(infra::kafka::properties_from_file(file)?);
    }
    Ok(config.with_properties(infra::kafka::properties_from_env()))
}

pub(crate) async fn open_store(
    args: &StoreArgs,
    data: &DataArgs,
    policy: TimePolicy,
) -> anyhow::Result<Arc<dyn ProjectionStore>> {
    match &args.store {
        StoreUrl::Embedded => {
            std::fs::create_dir_all(&data.data_dir)
                .with_context(|| format!("cannot create data directory {}", data.data_dir.display()))?;
            Ok(EmbeddedStore::open(&data.data_dir.join("store.db"), policy)?)
        }
        StoreUrl::Scylla(url) => {
            let consistency =
                args.scylla_consistency.parse().map_err(|e| anyhow::anyhow!("--scylla-consistency: {e}"))?;
            let opts = ScyllaOptions {
                consistency,
                request_timeout: Duration::from_millis(args.scylla_timeout_ms.max(1)),
                max_concurrency: args.scylla_max_concurrency.max(1),
            };
            Ok(ScyllaStore::connect(url, policy, opts).await?)
        }
    }
}

/// The signer; with `embedded` set, for the embedded S3 endpoint at that address.
pub(crate) async fn open_signer(
    args: &S3Args,
    data: &DataArgs,
    embedded: Option<SocketAddr>,
    retention_days: u32,
) -> anyhow::Result<Arc<dyn BlobSigner>> {
    let config = match (&args.s3_endpoint, embedded) {
        (None, Some(addr)) => S3Config {
            endpoint: Some(format!("http://{addr}")),
            public_url: args.s3_public_url.clone(),
            bucket: args.s3_bucket.clone(),
            region: args.s3_region.clone(),
            credentials: Some(crate::secrets::embedded_s3_credentials(&data.data_dir)?),
            path_style: true,
        },
        (endpoint, _) => S3Config {
            endpoint: endpoint.clone(),
            public_url: args.s3_public_url.clone(),
            bucket: args.s3_bucket.clone(),
            region: args.s3_region.clone(),
            credentials: None,
            path_style: !args.s3_virtual_hosted,
        },
    };
    let signer = S3Signer::new(&config).await;
    if embedded.is_none() {
        // A bucket that cannot be set up is not fatal at start: /readyz reports it.
        if let Err(e) = signer.ensure_bucket(retention_days).await {
            tracing::warn!(error = %e, "object store bucket setup failed");
        }
    }
    Ok(Arc::new(signer))
}

pub(crate) fn auth(data: &DataArgs) -> anyhow::Result<Auth> {
    Ok(Auth::new(&crate::secrets::token_secret(&data.data_dir)?))
}

pub(crate) fn ingest_config(args: &IngestArgs, s3: &S3Args, policy: TimePolicy) -> ingest::IngestConfig {
    ingest::IngestConfig {
        policy,
        max_body_bytes: args.max_body_bytes,
        max_inflight: args.max_inflight,
        device_rate_per_s: args.device_rate,
        device_burst: args.device_burst,
        url_ttl: s3.url_ttl(),
        digest_window: ingest::DigestWindow {
            start_s: args.digest_window_start_min * 60,
            length_s: args.digest_window_min.max(1) * 60,
            ..ingest::DigestWindow::default()
        },
        ..ingest::IngestConfig::default()
    }
}

pub(crate) fn api_config(s3: &S3Args, policy: TimePolicy) -> api::ApiConfig {
    api::ApiConfig { policy, url_ttl: s3.url_ttl(), ..api::ApiConfig::default() }
}

pub(crate) fn projector_config(args: &ProjectorArgs) -> projector::ProjectorConfig {
    projector::ProjectorConfig {
        group: args.group.clone(),
        max_batch: args.max_batch.max(1),
        linger: Duration::from_millis(args.linger_ms),
        max_rows_per_s: (args.max_rows_per_s > 0).then_some(args.max_rows_per_s),
    }
}

/// Resolves on SIGINT or SIGTERM and flips `tx`.
pub(crate) async fn wait_for_signal(tx: watch::Sender<bool>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
    let _ = tx.send(true);
}

pub(crate) async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Serves `router` until `shutdown` turns true; in-flight requests finish first.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await
        .context("http server failed")
}

/// Periodic upkeep of the embedded engines: drop days past retention, truncate the log.
pub(crate) async fn janitor(
    policy: TimePolicy,
    store: Option<Arc<dyn ProjectionStore>>,
    log: Option<Arc<EmbeddedLog>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = Timestamp::now();
        if let Some(store) = &store {
            match store.drop_expired(policy.oldest_kept_day(now)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(days = n, "dropped expired days"),
                Err(e) => tracing::warn!(error = %e, "dropping expired days failed"),
            }
        }
        if let Some(log) = &log {
            let mut total = 0;
            loop {
                match log.truncate(now.millis() - policy.retention_ms()).await {
                    Ok(n) => {
                        total += n;
                        if n < infra::embedded_log::TRUNCATE_CHUNK as u64 || *shutdown.borrow() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "log truncation failed");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(records = total, "truncated the log");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Prints where a service listens, as one JSON line on stdout (tests and scripts read it).
pub(crate) fn announce(fields: serde_json::Value) {
    println!("{fields}");
}

pub(crate) fn with_ops(router: Router, ready: ops::Readiness, docs: utoipa::openapi::OpenApi) -> Router {
    router.merge(ops::router(ready, docs)).layer(axum::middleware::from_fn(ops::track))
}
