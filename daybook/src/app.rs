//! The composition: [`Application::build`] opens the engines a [`Config`] names and binds the
//! listeners; [`Application::run_until_stopped`] serves until shutdown, then stops in order —
//! HTTP drains, the projector writes and commits the batch in hand, the log flushes, the
//! janitor and the embedded S3 endpoint stop. Every acknowledged report is durable before
//! its answer either way; the order only keeps a clean stop from redoing work.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use infra::embedded_log::EmbeddedLog;
use infra::LogUrl;
use schemas::{TimePolicy, Timestamp};
use seams::metric::{Kind, Metric};
use seams::{ProjectionStore, ReportLog};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, HttpLimits, Role};
use crate::ops;
use crate::resolve::{self, OpenedLog};

pub(crate) const OBJECTS_EXPIRED_TOTAL: Metric = Metric {
    name: "daybook_objects_expired_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Embedded S3 endpoint: objects deleted because their day passed retention, or their export expired.",
};

pub(crate) const OBJECTS_PURGED_TOTAL: Metric = Metric {
    name: "daybook_objects_purged_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Embedded S3 endpoint: objects deleted because the events that mapped them were deleted.",
};

pub(crate) const STORAGE_BYTES: Metric = Metric {
    name: "daybook_storage_bytes",
    kind: Kind::Gauge,
    unit: Some(metrics::Unit::Bytes),
    labels: &[],
    help: "Storage used by every device: bytes of segments and snapshots as reported, each counted once, less those deleted (the sum of GET /v1/devices/{cid}/usage over all devices). Read from the store every 10 s by each process that projects: several report the same figure (aggregate with max, not sum).",
};

/// How often the storage used metric is read from the store.
const STORAGE_EVERY: Duration = Duration::from_secs(10);

pub(crate) const KEPT_COPIES_TOTAL: Metric = Metric {
    name: "daybook_kept_copies_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["op"],
    help: "External bucket: kept events' objects copied under kept/ (op=copied), found gone before they could be (op=missing), and copies deleted once their event was no longer kept (op=removed).",
};

/// How often kept events' copies on an external bucket are brought in line with the store.
const KEPT_COPY_EVERY: Duration = Duration::from_secs(60);

/// How often the purger looks for objects deletions left to no live event.
const PURGE_EVERY: Duration = Duration::from_secs(2);

/// Engines the caller opened itself, used instead of the ones the [`Config`] names (the
/// bench's direct baseline hands in a log that writes through to the store it also hands in).
#[derive(Debug, Default)]
pub struct Backends {
    pub log: Option<Arc<dyn ReportLog>>,
    pub store: Option<Arc<dyn ProjectionStore>>,
}

/// The services of one process, opened and bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    role: Role,
    policy: TimePolicy,
    projector: projector::ProjectorConfig,
    log: Option<OpenedLog>,
    store: Option<Arc<dyn ProjectionStore>>,
    /// The device API, kept for the sweeper that forgets idle devices' rate limiters.
    ingest: Option<ingest::Ingest>,
    http: Option<(TcpListener, Router)>,
    http_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    s3: Option<EmbeddedS3>,
    /// The external bucket, where this process keeps kept events' copies (a projecting process
    /// without the embedded S3 endpoint).
    kept_copies: Option<infra::s3::S3Signer>,
    http_limits: HttpLimits,
    metrics_upkeep: Duration,
    /// Scheduled backups of the embedded data directory, one per repository (all-in-one only).
    backups: Vec<crate::backup::schedule::Schedule>,
    /// Continuous shipping of the embedded data directory (all-in-one only).
    replicas: Vec<crate::backup::ship::Replica>,
    data_dir: PathBuf,
    group_retention: Duration,
    /// The token keys, read again from the data directory while serving (rotation, revocation).
    auth_reload: Option<(seams::auth::Auth, PathBuf)>,
    /// What the start-up line logs.
    summary: String,
    /// The notifier's settings and key (all-in-one and `daybook notify`).
    notify: Option<(crate::notify::deliver::NotifyConfig, crate::notify::seal::NotifyKey, crate::config::LogConfig)>,
    /// The export worker's bucket and settings (all-in-one: it has the log, the store and the
    /// object store).
    exports: Option<(infra::s3::S3Config, crate::export::ExportSettings)>,
}

#[derive(Debug)]
struct EmbeddedS3 {
    listener: TcpListener,
    addr: SocketAddr,
    root: PathBuf,
    bucket: String,
    credentials: (String, String),
    max_snapshot_bytes: u64,
}

impl Application {
    /// Opens the engines `config` names and binds its listeners.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Backends::default()).await
    }

    /// As [`build`](Self::build), with some engines opened by the caller.
    pub async fn build_with(config: Config, backends: Backends) -> anyhow::Result<Self> {
        ops::install_metrics();
        let role = config.role;
        let policy = config.policy;
        // An outage drill: DAYBOOK_FAULTS wraps every engine in its fault injector.
        let faults = seams::faults::Faults::from_env().map_err(|e| anyhow::anyhow!("{}: {e}", seams::faults::ENV))?;
        if faults.is_some() {
            tracing::warn!(plan = %std::env::var(seams::faults::ENV).unwrap_or_default(), "fault injection is on");
        }
        let store = match (role.store(), backends.store) {
            (true, Some(store)) => Some(store),
            (true, None) => Some(resolve::open_store(&config.store, &config.data_dir, policy).await?),
            (false, _) => None,
        };
        let store = match (store, &faults) {
            (Some(store), Some(f)) => {
                Some(seams::faults::FaultyStore::new(store, f.clone()) as Arc<dyn ProjectionStore>)
            }
            (store, _) => store,
        };
        // An api-only process appends the owner's reports itself where the log takes appends from
        // many processes (Kafka); on the embedded log only the process that ingests may.
        let api_appends = role == Role::Api && matches!(config.log.url, LogUrl::Kafka(_));
        let log = match (role.log() || api_appends, backends.log) {
            (true, Some(log)) => Some(OpenedLog { log, embedded: None }),
            (true, None) => Some(open_log(&config).await?),
            (false, _) => None,
        };
        let log = match (log, &faults) {
            (Some(OpenedLog { log, embedded }), Some(f)) => {
                Some(OpenedLog { log: seams::faults::FaultyLog::new(log, f.clone()), embedded })
            }
            (log, _) => log,
        };

        // The all-in-one serves the data directory over S3 unless told of another endpoint:
        // its ingest signs uploads and its api signs downloads against the same directory.
        let s3 = if role == Role::AllInOne && config.s3.endpoint.is_none() {
            let listener = bind(config.s3_addr, "embedded s3").await?;
            Some(EmbeddedS3 {
                addr: listener.local_addr()?,
                listener,
                root: config.data_dir.join("objects"),
                bucket: config.s3.bucket.clone(),
                credentials: crate::secrets::embedded_s3_credentials(&config.data_dir)?,
                max_snapshot_bytes: config.ingest.max_snapshot_bytes,
            })
        } else {
            None
        };
        let exports = if role == Role::AllInOne {
            let embedded = s3.as_ref().map(|s| s.addr);
            let settings = crate::export::ExportSettings {
                ttl: config.export_ttl,
                part_size: config.export_part_size,
                ..Default::default()
            };
            Some((resolve::s3_config(&config.s3, &config.data_dir, embedded)?, settings))
        } else {
            None
        };
        let signer = if role.signer() {
            let embedded = s3.as_ref().map(|s| s.addr);
            let signer = resolve::open_signer(&config.s3, &config.data_dir, embedded, policy.retention_days).await?;
            Some(match &faults {
                Some(f) => seams::faults::FaultySigner::new(signer, f.clone()) as Arc<dyn seams::BlobSigner>,
                None => signer,
            })
        } else {
            None
        };

        let auth = if role.signer() { Some(crate::secrets::auth(&config.data_dir)?) } else { None };
        let auth_reload = auth.clone().map(|a| (a, config.data_dir.clone()));
        let ingest = match (role.ingest(), &log, &signer, &auth) {
            (true, Some(log), Some(signer), Some(auth)) => {
                Some(ingest::Ingest::new(log.log.clone(), signer.clone(), auth.clone(), ingest_config(&config)))
            }
            _ => None,
        };
        let mut router = Router::new();
        if let Some(ingest) = &ingest {
            router = router.merge(ingest::router(ingest.clone()));
        }
        if let (true, Some(store), Some(signer), Some(auth)) = (role.api(), &store, &signer, auth) {
            let api_config = api::ApiConfig {
                policy,
                url_ttl: config.s3.url_ttl,
                max_kept_per_device: config.max_kept_per_device,
                kept_copies: s3.is_none(),
                max_exports_per_camera_per_day: config.max_exports_per_camera_per_day,
                ..api::ApiConfig::default()
            };
            let mut viewer_api = api::Api::new(store.clone(), signer.clone(), auth, api_config);
            let appender: Option<api::Appender> = if let Some(log) = &log {
                Some(api::log_appender(log.log.clone()))
            } else if matches!(config.log.url, LogUrl::Embedded) {
                // `daybook api` beside the process that ingests: the owner's reports are handed
                // to it through the data directory (notify::changes), as the CLI's changes are.
                let (log_config, data_dir) = (config.log.clone(), config.data_dir.clone());
                Some(Arc::new(move |record| {
                    let (log_config, data_dir) = (log_config.clone(), data_dir.clone());
                    Box::pin(async move {
                        crate::notify::changes::submit_record(record, &log_config, &data_dir)
                            .await
                            .map_err(|e| seams::LogError::Unavailable(format!("{e:#}")))
                    })
                }))
            } else {
                None
            };
            if let Some(appender) = appender {
                // An erasure accepted here revokes the device's tokens in this data directory.
                viewer_api = viewer_api.with_appender(crate::erasure::revoking(appender, config.data_dir.clone()));
            }
            let viewer = api::router(viewer_api)
                .layer(axum::middleware::from_fn_with_state(config.ingest.request_timeout, ops::store_deadline));
            router = router.merge(viewer);
        }
        let doc_limits = ops::DocLimits {
            retention_days: policy.retention_days,
            max_snapshot_bytes: config.ingest.max_snapshot_bytes,
        };
        let ready = ops::Readiness {
            log: log.as_ref().map(|l| l.log.clone()),
            ingest: ingest.clone(),
            store: store.clone(),
            signer,
        };
        let router = router
            .merge(ops::router(ready, ops::openapi(role.ingest(), role.api(), doc_limits)))
            .layer(axum::middleware::from_fn(ops::track));

        // A projector-only process has no API; it serves health and metrics if asked to.
        let (mut http_addr, mut metrics_addr, mut http) = (None, None, None);
        if role.ingest() || role.api() {
            let listener = bind(config.http_addr, "http").await?;
            http_addr = Some(listener.local_addr()?);
            http = Some((listener, router));
        } else if let Some(addr) = config.metrics_addr {
            let listener = bind(addr, "metrics").await?;
            metrics_addr = Some(listener.local_addr()?);
            http = Some((listener, router));
        }

        let notify = if role.notify() && config.notify.enabled {
            let key = crate::notify::seal::NotifyKey::load(&config.data_dir, config.notify.key_file.as_deref())?;
            Some((config.notify.clone(), key, config.log.clone()))
        } else {
            None
        };
        let summary = format!(
            "role {role:?}, log {}, store {}, data dir {}",
            if role.log() { config.log.url.to_string() } else { "-".into() },
            if role.store() { config.store.url.to_string() } else { "-".into() },
            config.data_dir.display()
        );
        let kept_copies = match (role.projector(), &s3) {
            (true, None) => Some(resolve::external_bucket(&config.s3).await),
            _ => None,
        };
        Ok(Self {
            role,
            kept_copies,
            policy,
            projector: config.projector,
            log,
            store,
            ingest,
            http,
            http_addr,
            metrics_addr,
            s3,
            http_limits: config.http,
            metrics_upkeep: config.metrics_upkeep,
            backups: if role == Role::AllInOne { config.backups } else { Vec::new() },
            replicas: if role == Role::AllInOne { config.replicas } else { Vec::new() },
            data_dir: config.data_dir.clone(),
            group_retention: config.log.group_retention,
            auth_reload,
            summary,
            notify,
            exports,
        })
    }

    /// The device and viewer listener (not in a projector-only process).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The embedded S3 endpoint (all-in-one without an external endpoint).
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3.as_ref().map(|s| s.addr)
    }

    /// The health and metrics listener of a projector-only process.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Serves until `shutdown` resolves (or the projector fails), then stops in order.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (tx, rx) = watch::channel(false);
        let upkeep = tokio::spawn(ops::upkeep(self.metrics_upkeep, rx.clone()));
        let objects = self.s3.as_ref().map(|s3| (s3.root.clone(), s3.bucket.clone()));
        // Continuous shipping reads the embedded log's files: only where this process owns them.
        let embedded = self.log.as_ref().is_some_and(|l| l.embedded.is_some());
        if !self.replicas.is_empty() && !embedded {
            anyhow::bail!("--replicate-to ships the embedded log; a deployment on Kafka is replicated by Kafka");
        }
        let feed = (!self.replicas.is_empty() && self.s3.is_some()).then(crate::backup::ship::object_feed);
        let mut shippers = Vec::new();
        for replica in self.replicas {
            shippers.push(crate::backup::ship::Shipper::start(replica, self.data_dir.clone(), feed.as_ref())?);
        }
        let on_stored: Option<infra::s3_server::OnStored> = feed.map(|feed| {
            let f: infra::s3_server::OnStored = Arc::new(move |path: &str| {
                let _ = feed.send(path.to_owned());
            });
            f
        });
        let s3_task = self.s3.map(|s3| {
            let mut stop = rx.clone();
            tokio::spawn(async move {
                let (ak, sk) = &s3.credentials;
                let limits = infra::s3_server::Limits::default();
                infra::s3_server::serve_with(
                    s3.listener,
                    &s3.root,
                    &s3.bucket,
                    ak,
                    sk,
                    s3.max_snapshot_bytes,
                    limits,
                    on_stored,
                    async move {
                        let _ = stop.wait_for(|v| *v).await;
                    },
                )
                .await
            })
        });
        // A server that fails, or a projector that does, stops the whole process.
        let http_task = self.http.map(|(listener, router)| {
            let (rx, tx, limits) = (rx.clone(), tx.clone(), self.http_limits.clone());
            tokio::spawn(async move {
                let served = crate::http::serve(listener, router, limits, rx).await;
                let _ = tx.send(true);
                served
            })
        });
        let (log, store) = (self.log, self.store);
        let projector: Option<JoinHandle<anyhow::Result<projector::Progress>>> =
            match (self.role.projector(), &log, &store) {
                (true, Some(log), Some(store)) => {
                    let (log, store, config, rx, tx) =
                        (log.log.clone(), store.clone(), self.projector, rx.clone(), tx.clone());
                    Some(tokio::spawn(async move {
                        let result = projector::run(log, store, config, rx).await;
                        if let Err(e) = &result {
                            tracing::error!(error = %e, "projector failed; shutting down");
                        }
                        let _ = tx.send(true);
                        Ok(result?)
                    }))
                }
                _ => None,
            };
        // The notifier: a failure of it stops the process, as the projector's does.
        let notifier = match (self.notify, &log, &store) {
            (Some((config, key, log_config)), Some(opened), Some(store)) => {
                let sink = notify_sink(opened, self.role.ingest(), log_config, self.data_dir.clone());
                let (log, store, rx, tx) = (opened.log.clone(), store.clone(), rx.clone(), tx.clone());
                Some(spawn_below("daybook-notify", NOTIFIER_NICE, async move {
                    let result = crate::notify::deliver::run(log, store, key, config, sink, rx).await;
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "notifier failed; shutting down");
                        let _ = tx.send(true);
                    }
                    result
                })?)
            }
            _ => None,
        };
        let janitor = self.role.projector().then(|| {
            let embedded = log.as_ref().and_then(|l| l.embedded.clone()).map(|log| (log, self.group_retention));
            tokio::spawn(janitor(self.policy, store.clone(), embedded, objects.clone(), rx.clone()))
        });
        // The export worker, beside the projector whose store it reads.
        let exporter = match (self.exports, &log, &store) {
            (Some((s3, settings)), Some(log), Some(store)) => {
                let (log, store, rx) = (log.log.clone(), store.clone(), rx.clone());
                Some(tokio::spawn(async move {
                    let worker = crate::export::ExportWorker {
                        store,
                        log,
                        s3: infra::s3::bucket_client(&s3).await,
                        bucket: s3.bucket.clone(),
                        settings,
                    };
                    crate::export::run(worker, rx).await;
                }))
            }
            _ => None,
        };
        let storage = match (self.role.projector(), &store) {
            (true, Some(store)) => Some(tokio::spawn(storage_gauge(store.clone(), rx.clone()))),
            _ => None,
        };
        let kept_copier = match (self.kept_copies, &store) {
            (Some(bucket), Some(store)) => Some(tokio::spawn(kept_copier(store.clone(), bucket, rx.clone()))),
            _ => None,
        };
        let purger = match (self.role.projector(), &store, &objects) {
            (true, Some(store), Some(objects)) => {
                Some(tokio::spawn(purger(store.clone(), objects.clone(), rx.clone())))
            }
            _ => None,
        };
        if let Some(ingest) = self.ingest {
            tokio::spawn(sweep_idle_devices(ingest, rx.clone()));
            // This process appends to the embedded log: it takes the subscription changes
            // commands hand over (`notify::changes`).
            if let Some(log) = log.as_ref().filter(|l| l.embedded.is_some()) {
                tokio::spawn(crate::notify::changes::drain_inbox(log.log.clone(), self.data_dir.clone(), rx.clone()));
            }
        }
        // A task per repository: one that is down or slow holds up none of the others.
        for schedule in self.backups {
            // The restore tests on their own schedule, beside the backups they check.
            if let Some(every) = schedule.plan.verify_every {
                tokio::spawn(crate::backup::trial::run(schedule.clone(), self.data_dir.clone(), every, rx.clone()));
            }
            tokio::spawn(crate::backup::schedule::run(schedule, self.data_dir.clone(), rx.clone()));
        }
        if let Some((auth, dir)) = self.auth_reload {
            tokio::spawn(crate::secrets::reload_keys(auth, dir, Duration::from_secs(5), rx.clone()));
        }
        tracing::info!(http = ?self.http_addr, s3 = ?s3_task.is_some(), metrics = ?self.metrics_addr, "daybook running: {}", self.summary);

        let mut stopped = rx.clone();
        tokio::select! {
            () = shutdown => {}
            _ = stopped.wait_for(|v| *v) => {}
        }
        let _ = tx.send(true);
        let served = match http_task {
            Some(t) => t.await.context("http task")?,
            None => Ok(()),
        };
        let projected = match projector {
            Some(p) => p.await.context("projector task")?,
            None => Ok(Default::default()),
        };
        // Before the log shuts down: the notifier commits what its receivers answered.
        let notified = match notifier {
            Some(n) => n.await.context("notifier task")?,
            None => Ok(()),
        };
        // Before the log shuts down: a completion being appended is finished or dropped whole.
        if let Some(x) = exporter {
            let _ = x.await;
        }
        if let Some(log) = &log {
            log.log.shutdown().await.context("log shutdown")?;
        }
        // After the log: the last round ships everything that was acknowledged.
        for s in shippers {
            tokio::task::spawn_blocking(move || s.stop()).await.context("shipper")?;
        }
        if let Some(j) = janitor {
            let _ = j.await;
        }
        if let Some(k) = kept_copier {
            let _ = k.await;
        }
        if let Some(p) = purger {
            let _ = p.await;
        }
        if let Some(g) = storage {
            let _ = g.await;
        }
        if let Some(t) = s3_task {
            t.await.context("s3 task")??;
        }
        let _ = upkeep.await;
        served?;
        notified?;
        let progress = projected?;
        if self.role.projector() {
            tracing::info!(reports = progress.reports, rows = progress.rows, "projector done");
        }
        tracing::info!("daybook stopped");
        Ok(())
    }
}

/// The notifier's thread's nice value: under a burst, accepting and projecting reports come
/// first; the notifier lags and catches up after (its lag and oldest-undelivered age are
/// metrics).
const NOTIFIER_NICE: i32 = 10;

/// Runs `task` on a runtime of its own whose threads run at `nice` (Linux gives each thread
/// its own nice value): a task on the shared runtime cannot be given less of the CPU than the
/// others. Two workers, as the shared runtime has on this project's reference machine, so a
/// notifier with many subscriptions is not held to one core. Its output comes back through the
/// returned handle.
fn spawn_below<F>(name: &str, nice: i32, task: F) -> anyhow::Result<tokio::task::JoinHandle<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let lower = move || crate::priority::lower_this_thread(nice);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .on_thread_start(lower)
        .enable_all()
        .build()?;
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        lower();
        let _ = tx.send(runtime.block_on(task));
    })?;
    Ok(tokio::spawn(async move { rx.await.expect("the thread ended without an outcome: it panicked") }))
}

/// Where the notifier puts its reports (dead letters, a pause after a 410): the log directly
/// where this process may append to it (Kafka, or the embedded log of a process that ingests),
/// else through the running appender (`notify::changes`).
fn notify_sink(
    opened: &OpenedLog,
    ingests: bool,
    log_config: crate::config::LogConfig,
    data_dir: PathBuf,
) -> crate::notify::deliver::Sink {
    if opened.embedded.is_none() || ingests {
        let log = opened.log.clone();
        Arc::new(move |report| {
            let log = log.clone();
            Box::pin(async move {
                log.append(vec![crate::notify::changes::record(report)]).await?;
                Ok(())
            })
        })
    } else {
        Arc::new(move |report| {
            let (config, dir) = (log_config.clone(), data_dir.clone());
            Box::pin(async move { crate::notify::changes::submit(report, &config, &dir).await })
        })
    }
}

async fn open_log(config: &Config) -> anyhow::Result<OpenedLog> {
    let all_in_one = config.role == Role::AllInOne;
    if let (true, LogUrl::Kafka(url)) = (all_in_one, &config.log.url) {
        // The all-in-one creates its topic if it is missing (idempotent), so `run --log
        // kafka://…` works against a fresh broker; distributed deployments use `topic create`.
        let kafka = resolve::kafka_config(url, &config.log)?;
        infra::kafka::create_topic(&kafka, 12, 1, Some(7 * 24 * 3_600_000)).await?;
    }
    let opened = resolve::open_log(&config.log, &config.data_dir).await?;
    if all_in_one {
        // A topic just created takes a moment to appear in the broker's metadata.
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Err(e) = opened.log.health().await {
            if Instant::now() > deadline {
                tracing::warn!(error = %e, "log not ready yet; starting anyway (/readyz reports it)");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(opened)
}

fn ingest_config(config: &Config) -> ingest::IngestConfig {
    let limits = &config.ingest;
    ingest::IngestConfig {
        policy: config.policy,
        max_body_bytes: limits.max_body_bytes,
        max_inflight: limits.max_inflight,
        device_rate_per_s: limits.device_rate_per_s,
        device_burst: limits.device_burst,
        url_ttl: config.s3.url_ttl,
        digest_window: limits.digest_window,
        max_snapshot_bytes: limits.max_snapshot_bytes,
        request_timeout: limits.request_timeout,
        ..ingest::IngestConfig::default()
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Per-device rate limiters of devices gone quiet are dropped every minute, so memory follows
/// the active fleet, not every device ever seen.
async fn sweep_idle_devices(ingest: ingest::Ingest, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => ingest.forget_idle_devices(),
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Keeps [`STORAGE_BYTES`] at the store's total (`ProjectionStore::usage_total`): read from the
/// store rather than added up from the reports this process projects, so it is the same in every
/// process, right after a restart, and unchanged by replays (the store's figures are exact under
/// them).
async fn storage_gauge(store: Arc<dyn ProjectionStore>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let total = tokio::select! {
            r = store.usage_total() => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        match total {
            Ok(bytes) => metrics::gauge!(STORAGE_BYTES.name).set(bytes as f64),
            Err(e) => tracing::warn!(error = %e, "reading the storage used failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(STORAGE_EVERY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Keeps a copy of every kept event's objects under `kept/` on the external bucket, whose
/// lifecycle rule expires `devices/` by age, and deletes the copies of events no longer kept
/// (`infra::s3::S3Signer::reconcile_kept`; docs/data-model.md, Keeping events). Derived from
/// the store each round, so a failed round is made good by the next.
async fn kept_copier(
    store: Arc<dyn ProjectionStore>,
    bucket: infra::s3::S3Signer,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let round = async {
            let kept = seams::kept_objects(store.as_ref()).await.map_err(|e| e.to_string())?;
            bucket.reconcile_kept(&kept).await.map_err(|e| e.to_string())
        };
        let done = tokio::select! {
            r = round => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        match done {
            Ok(done) => {
                for (op, n) in [("copied", done.copied), ("missing", done.missing), ("removed", done.removed)] {
                    metrics::counter!(KEPT_COPIES_TOTAL.name, "op" => op).increment(n);
                }
                if done != infra::s3::KeptCopies::default() {
                    tracing::info!(
                        copied = done.copied,
                        missing = done.missing,
                        removed = done.removed,
                        "kept events' copies updated"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "updating kept events' copies failed; trying again next round"),
        }
        tokio::select! {
            () = tokio::time::sleep(KEPT_COPY_EVERY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Deletes from the embedded S3 endpoint's directory (`objects`: its root and bucket) the objects
/// deletions left to no live event, as the store lists them (`seams::Purge`), then tells the
/// store they are gone. Deleting an object that is already gone is no error, so a purge listed
/// again (a rebuild, a crash before the store heard back) costs nothing.
async fn purger(store: Arc<dyn ProjectionStore>, objects: (PathBuf, String), mut shutdown: watch::Receiver<bool>) {
    loop {
        let listed = tokio::select! {
            r = store.purges(256) => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        match listed {
            Ok(purges) if !purges.is_empty() => {
                let (root, bucket) = objects.clone();
                let keys: Vec<String> = purges.iter().map(|p| p.key.clone()).collect();
                let deleted = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
                    let mut n = 0;
                    for key in &keys {
                        n += u64::from(infra::s3_server::delete_object(&root, &bucket, key)?);
                    }
                    Ok(n)
                })
                .await;
                match deleted {
                    Ok(Ok(n)) => {
                        metrics::counter!(OBJECTS_PURGED_TOTAL.name).increment(n);
                        tracing::info!(objects = n, listed = purges.len(), "deleted objects of deleted events");
                        if let Err(e) = store.purged(&purges).await {
                            tracing::warn!(error = %e, "forgetting purged objects failed");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "deleting objects of deleted events failed"),
                    Err(e) => tracing::warn!(error = %e, "deleting objects of deleted events failed"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the objects to purge failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(PURGE_EVERY) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Deletes the export archives of the embedded endpoint's directory whose export the store no
/// longer holds (expired; an archive written within the last hour may be one whose completion
/// is not projected yet, and stays). Returns how many went.
async fn expire_archives(store: &dyn ProjectionStore, root: &std::path::Path, bucket: &str) -> anyhow::Result<u64> {
    let (r, b) = (root.to_owned(), bucket.to_owned());
    let archives =
        tokio::task::spawn_blocking(move || infra::s3_server::export_archives(&r, &b, Duration::from_secs(3600)))
            .await??;
    let mut gone = Vec::new();
    for (cid, id, key) in archives {
        let (Ok(cid), Ok(id)) = (schemas::DeviceId::parse(&cid), schemas::ExportId::parse(&id)) else { continue };
        if store.export(&cid, &id).await?.is_none() {
            gone.push(key);
        }
    }
    let (r, b) = (root.to_owned(), bucket.to_owned());
    let deleted = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut n = 0;
        for key in &gone {
            n += u64::from(infra::s3_server::delete_object(&r, &b, key)?);
        }
        Ok(n)
    })
    .await??;
    Ok(deleted)
}

/// How old a multipart upload of the embedded endpoint must be for the janitor to take it for
/// abandoned (an export's upload takes minutes).
const STALE_UPLOAD_AGE: Duration = Duration::from_secs(86_400);

/// Hourly upkeep of the embedded engines: drop days past retention, forget consumer groups
/// idle past `group_retention` and truncate the log, delete objects past retention from the
/// embedded S3 endpoint's directory (`objects`: its root and bucket).
async fn janitor(
    policy: TimePolicy,
    store: Option<Arc<dyn ProjectionStore>>,
    log: Option<(Arc<EmbeddedLog>, Duration)>,
    objects: Option<(PathBuf, String)>,
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
        // The objects of kept events stay; unknown (the store unreadable): none expires this round.
        let spared = match &store {
            Some(store) => match tokio::select! {
                r = seams::kept_objects(store.as_ref()) => r,
                _ = shutdown.wait_for(|v| *v) => return,
            } {
                Ok(keys) => Some(keys),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the kept events; no object expires this round");
                    None
                }
            },
            None => Some(std::collections::HashSet::new()),
        };
        if let (Some((root, bucket)), Some(spared)) = (&objects, spared) {
            let (root, bucket, oldest) = (root.clone(), bucket.clone(), policy.oldest_kept_day(now));
            // A device whose plan is longer than the deployment's keeps its objects that long
            // (its plan read from the store as the walk meets it: nothing held per device).
            let (handle, store) = (tokio::runtime::Handle::current(), store.clone());
            let oldest_for = move |cid: &str| -> Option<schemas::Day> {
                let Some(store) = &store else { return Some(oldest) };
                let Ok(cid) = schemas::DeviceId::parse(cid) else { return Some(oldest) };
                match handle.block_on(seams::oldest_object_day(store.as_ref(), &cid, &policy, now)) {
                    Ok(day) => Some(day),
                    Err(e) => {
                        tracing::warn!(error = %e, %cid, "cannot read the device's plan; its objects stay this round");
                        None
                    }
                }
            };
            let expire = move || infra::s3_server::expire_objects(&root, &bucket, &oldest_for, &spared);
            match tokio::task::spawn_blocking(expire).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    metrics::counter!(OBJECTS_EXPIRED_TOTAL.name).increment(n);
                    tracing::info!(objects = n, "deleted objects past retention");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "deleting expired objects failed"),
                Err(e) => tracing::warn!(error = %e, "deleting expired objects failed"),
            }
        }
        // Export archives whose export is gone (expired, or erased while it was written).
        if let (Some((root, bucket)), Some(store)) = (&objects, &store) {
            match tokio::select! {
                n = expire_archives(store.as_ref(), root, bucket) => n,
                _ = shutdown.wait_for(|v| *v) => return,
            } {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!(OBJECTS_EXPIRED_TOTAL.name).increment(n);
                    tracing::info!(archives = n, "deleted expired export archives");
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "deleting expired export archives failed"),
            }
        }
        // Multipart uploads a stopped export worker left half done (the endpoint lists none).
        if let Some((root, _)) = &objects {
            let root = root.clone();
            let stale = move || infra::s3_server::expire_stale_uploads(&root, STALE_UPLOAD_AGE);
            match tokio::task::spawn_blocking(stale).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(files = n, "deleted the parts of abandoned uploads"),
                Ok(Err(e)) => tracing::warn!(error = %e, "deleting abandoned uploads failed"),
                Err(e) => tracing::warn!(error = %e, "deleting abandoned uploads failed"),
            }
        }
        if let Some((log, group_retention)) = &log {
            let idle_before = now.millis() - group_retention.as_millis() as i64;
            // A subscription's group lives as long as the subscription, however long it is
            // paused (or its receiver down): its position is what it has yet to send. Unknown
            // subscriptions (the store unreadable): nothing expires this round.
            let spared: Option<Vec<String>> = match &store {
                // A store that hangs must not hold up a shutdown.
                Some(store) => match tokio::select! {
                    r = store.subscriptions() => r,
                    _ = shutdown.wait_for(|v| *v) => return,
                } {
                    Ok(subs) => {
                        Some(subs.iter().map(|v| crate::notify::group_of(&v.subscription.subscription_id)).collect())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read subscriptions; no consumer group expires this round");
                        None
                    }
                },
                None => Some(Vec::new()),
            };
            if let Some(Err(e)) = match spared {
                Some(spared) => Some(log.expire_groups_except(idle_before, &spared).await),
                None => None,
            } {
                tracing::warn!(error = %e, "expiring consumer groups failed");
            }
            match log.truncate(now.millis() - policy.retention_ms()).await {
                Ok(0) => {}
                Ok(records) => tracing::info!(records, "truncated the log"),
                Err(e) => tracing::warn!(error = %e, "log truncation failed"),
            }
            match log.lagging_groups().await {
                Ok(lagging) => {
                    for g in lagging {
                        tracing::warn!(group = %g.group, next = g.next, "consumer group lost records past retention before reading them");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "checking consumer groups failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (inside a
/// runtime), not when the future is first polled: a signal that arrives while the
/// application is still starting is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    }
}
