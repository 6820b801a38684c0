//! `daybook`: every service of the pipeline in one binary.
//!
//! `daybook run` starts everything in one process on the embedded default (SQLite log and
//! store, S3 endpoint served from the data directory). `daybook ingest | projector | api` run
//! one service each for the distributed deployment (Kafka, ScyllaDB, S3).

mod app;
mod bench;
mod config;
mod ops;
mod secrets;
mod tail;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use config::*;
use infra::{LogUrl, StoreUrl};
use schemas::DeviceId;
use tokio::sync::watch;

// glibc malloc was ~15 % of the server's CPU under the burst (perf); mimalloc's per-thread
// free lists take most of that back.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "daybook", version, about = "Event-sourced ingestion pipeline of a camera cloud")]
struct Cli {
    /// Log output: `text` or `json`. Verbosity from RUST_LOG (default `info`).
    #[arg(long, global = true, env = "DAYBOOK_LOG_FORMAT", default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: device and viewer API on one listener, projector, and (unless
    /// --s3-endpoint is given) an S3 endpoint serving the data directory.
    Run(RunArgs),
    /// The device API only.
    Ingest(IngestCmd),
    /// One projector (a member of the consumer group).
    Projector(ProjectorCmd),
    /// The viewer API only.
    Api(ApiCmd),
    /// Print a bearer token.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Print reports from the log as JSON lines.
    Tail(tail::TailArgs),
    /// Kafka topic administration.
    #[command(subcommand)]
    Topic(TopicCmd),
    /// ScyllaDB schema administration.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// Benchmarks (`daybook bench burst --out DIR`).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    http: HttpArgs,
    /// Address of the embedded S3 endpoint (unused with --s3-endpoint).
    #[arg(long, env = "DAYBOOK_S3_ADDR", default_value = "127.0.0.1:9000")]
    s3_addr: SocketAddr,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    ingest: IngestArgs,
    #[command(flatten)]
    projector: ProjectorArgs,
}

#[derive(Debug, Args)]
struct IngestCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    ingest: IngestArgs,
}

#[derive(Debug, Args)]
struct ProjectorCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    projector: ProjectorArgs,
    /// Address for /healthz, /readyz and /metrics (none if unset).
    #[arg(long, env = "DAYBOOK_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct ApiCmd {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    http: HttpArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// A token with which device CID writes its reports.
    Device {
        /// The device id.
        cid: String,
        #[command(flatten)]
        data: DataArgs,
        /// Days the token is valid.
        #[arg(long, default_value_t = 365)]
        ttl_days: u64,
    },
    /// A token that may read the listed devices.
    Viewer {
        /// Device ids.
        #[arg(required = true)]
        cids: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
        /// Days the token is valid.
        #[arg(long, default_value_t = 30)]
        ttl_days: u64,
    },
}

#[derive(Debug, Subcommand)]
enum TopicCmd {
    /// Create the reports topic (idempotent).
    Create {
        #[command(flatten)]
        log: LogArgs,
        /// Partitions (the most projectors that can share the work).
        #[arg(long, default_value_t = 12)]
        partitions: i32,
        /// Replication factor (3 in production, with min.insync.replicas=2).
        #[arg(long, default_value_t = 1)]
        replication_factor: i32,
        /// Topic retention in hours (default: 7 days).
        #[arg(long, default_value_t = 168)]
        retention_hours: i64,
    },
}

#[derive(Debug, Subcommand)]
enum SchemaCmd {
    /// Create the ScyllaDB keyspace and tables (idempotent, safe to rerun).
    Apply {
        #[command(flatten)]
        store: StoreArgs,
        /// Keyspace replication factor.
        #[arg(long, default_value_t = 3)]
        replication_factor: u32,
    },
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daybook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => run(a).await,
        Command::Ingest(a) => run_ingest(a).await,
        Command::Projector(a) => run_projector(a).await,
        Command::Api(a) => run_api(a).await,
        Command::Token(t) => token(t),
        Command::Tail(a) => tail::run(a).await,
        Command::Bench(b) => bench::run(b).await,
        Command::Topic(TopicCmd::Create { log, partitions, replication_factor, retention_hours }) => {
            let LogUrl::Kafka(url) = &log.log else {
                anyhow::bail!("`topic create` needs --log kafka://HOST:PORT/TOPIC");
            };
            let config = app::kafka_config(url, &log)?;
            infra::kafka::create_topic(&config, partitions, replication_factor, Some(retention_hours * 3_600_000))
                .await?;
            println!("topic {} ready ({partitions} partitions, replication factor {replication_factor})", config.topic);
            Ok(())
        }
        Command::Schema(SchemaCmd::Apply { store, replication_factor }) => {
            let StoreUrl::Scylla(url) = &store.store else {
                anyhow::bail!("`schema apply` needs --store scylla://HOST:PORT/KEYSPACE");
            };
            infra::scylla::apply_schema(url, replication_factor).await?;
            println!("schema applied to {url}");
            Ok(())
        }
    }
}

fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    let (token, what) = match cmd {
        TokenCmd::Device { cid, data, ttl_days } => {
            let cid = DeviceId::parse(&cid)?;
            (app::auth(&data)?.device_token(&cid, Duration::from_secs(ttl_days * 86_400)), format!("device {cid}"))
        }
        TokenCmd::Viewer { cids, data, ttl_days } => {
            let cids = cids.iter().map(|c| DeviceId::parse(c)).collect::<Result<Vec<_>, _>>()?;
            let names = cids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            (
                app::auth(&data)?.viewer_token(&cids, Duration::from_secs(ttl_days * 86_400)),
                format!("viewer of {names}"),
            )
        }
    };
    eprintln!("token for {what}:");
    println!("{token}");
    Ok(())
}

/// Spawns the signal watcher; the receiver turns true on SIGINT/SIGTERM.
fn shutdown_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(app::wait_for_signal(tx.clone()));
    (tx, rx)
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    ops::install_metrics();
    let policy = a.policy.policy();
    let (tx, rx) = shutdown_signal();
    let store = app::open_store(&a.store, &a.data, policy).await?;
    if let LogUrl::Kafka(url) = &a.log.log {
        // The all-in-one creates its topic if it is missing (idempotent), so `run --log
        // kafka://…` works against a fresh broker; distributed deployments use `topic create`.
        let config = app::kafka_config(url, &a.log)?;
        infra::kafka::create_topic(&config, 12, 1, Some(7 * 24 * 3_600_000)).await?;
    }
    let opened = app::open_log(&a.log, &a.data, Some(&store)).await?;
    // A topic just created takes a moment to appear in the broker's metadata.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while let Err(e) = opened.log.health().await {
        if std::time::Instant::now() > deadline {
            tracing::warn!(error = %e, "log not ready yet; starting anyway (/readyz reports it)");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut s3_task = None;
    let mut s3_addr = None;
    if a.s3.s3_endpoint.is_none() {
        let listener = app::bind(a.s3_addr, "embedded s3").await?;
        let addr = listener.local_addr()?;
        let (ak, sk) = secrets::embedded_s3_credentials(&a.data.data_dir)?;
        let root = a.data.data_dir.join("objects");
        let bucket = a.s3.s3_bucket.clone();
        let mut stop = rx.clone();
        s3_task = Some(tokio::spawn(async move {
            infra::s3_server::serve(listener, &root, &bucket, &ak, &sk, async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await
        }));
        s3_addr = Some(addr);
    }
    let signer = app::open_signer(&a.s3, &a.data, s3_addr, policy.retention_days).await?;
    let auth = app::auth(&a.data)?;

    let ingest = ingest::Ingest::new(
        opened.log.clone(),
        signer.clone(),
        auth.clone(),
        app::ingest_config(&a.ingest, &a.s3, policy),
    );
    let api = api::Api::new(store.clone(), signer.clone(), auth, app::api_config(&a.s3, policy));
    let ready =
        ops::Readiness { log: Some(opened.log.clone()), store: Some(store.clone()), signer: Some(signer.clone()) };
    let router = app::with_ops(ingest::router(ingest.clone()).merge(api::router(api)), ready, ops::openapi(true, true));

    let listener = app::bind(a.http.http_addr, "http").await?;
    let http_addr = listener.local_addr()?;

    let direct = matches!(a.log.log, LogUrl::Direct);
    let projector = (!direct).then(|| {
        let (log, store, config, rx, tx) =
            (opened.log.clone(), store.clone(), app::projector_config(&a.projector), rx.clone(), tx.clone());
        tokio::spawn(async move {
            let result = projector::run(log, store, config, rx).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "projector failed; shutting down");
                let _ = tx.send(true);
            }
            result
        })
    });
    let janitor = tokio::spawn(app::janitor(policy, Some(store.clone()), opened.embedded.clone(), rx.clone()));
    spawn_idle_sweeper(ingest, rx.clone());

    tracing::info!(http = %http_addr, s3 = ?s3_addr, log = %a.log.log, store = %a.store.store, data_dir = %a.data.data_dir.display(), "daybook running");
    app::announce(serde_json::json!({"event": "listening", "http": http_addr, "s3": s3_addr}));
    let served = app::serve(listener, router, rx.clone()).await;
    let _ = tx.send(true);
    // The projector writes and commits the batch in hand, then the log flushes and closes.
    // Every acknowledged report is already durable either way.
    let projected = match projector {
        Some(p) => p.await.context("projector task")?.map(|_| ()),
        None => Ok(()),
    };
    opened.log.shutdown().await.context("log shutdown")?;
    let _ = janitor.await;
    if let Some(t) = s3_task {
        t.await.context("s3 task")??;
    }
    served?;
    projected?;
    tracing::info!("daybook stopped");
    Ok(())
}

fn spawn_idle_sweeper(ingest: ingest::Ingest, mut rx: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => ingest.forget_idle_devices(),
                _ = rx.wait_for(|v| *v) => return,
            }
        }
    });
}

async fn run_ingest(a: IngestCmd) -> anyhow::Result<()> {
    ops::install_metrics();
    let policy = a.policy.policy();
    let (tx, rx) = shutdown_signal();
    let opened = app::open_log(&a.log, &a.data, None).await?;
    let signer = app::open_signer(&a.s3, &a.data, None, policy.retention_days).await?;
    let ingest = ingest::Ingest::new(
        opened.log.clone(),
        signer.clone(),
        app::auth(&a.data)?,
        app::ingest_config(&a.ingest, &a.s3, policy),
    );
    let ready = ops::Readiness { log: Some(opened.log.clone()), store: None, signer: Some(signer) };
    let router = app::with_ops(ingest::router(ingest.clone()), ready, ops::openapi(true, false));
    let listener = app::bind(a.http.http_addr, "http").await?;
    let http_addr = listener.local_addr()?;
    spawn_idle_sweeper(ingest, rx.clone());
    tracing::info!(http = %http_addr, log = %a.log.log, "ingest running");
    app::announce(serde_json::json!({"event": "listening", "http": http_addr}));
    let served = app::serve(listener, router, rx).await;
    let _ = tx.send(true);
    opened.log.shutdown().await.context("log shutdown")?;
    served
}

async fn run_projector(a: ProjectorCmd) -> anyhow::Result<()> {
    ops::install_metrics();
    let policy = a.policy.policy();
    let (tx, rx) = shutdown_signal();
    let store = app::open_store(&a.store, &a.data, policy).await?;
    let opened = app::open_log(&a.log, &a.data, None).await?;
    let mut metrics_server = None;
    if let Some(addr) = a.metrics_addr {
        let ready = ops::Readiness { log: Some(opened.log.clone()), store: Some(store.clone()), signer: None };
        let router = app::with_ops(axum::Router::new(), ready, ops::openapi(false, false));
        let listener = app::bind(addr, "metrics").await?;
        app::announce(serde_json::json!({"event": "listening", "metrics": listener.local_addr()?}));
        metrics_server = Some(tokio::spawn(app::serve(listener, router, rx.clone())));
    }
    let janitor = tokio::spawn(app::janitor(policy, Some(store.clone()), opened.embedded.clone(), rx.clone()));
    tracing::info!(log = %a.log.log, store = %a.store.store, group = %a.projector.group, "projector running");
    let result = projector::run(opened.log.clone(), store, app::projector_config(&a.projector), rx).await;
    let _ = tx.send(true);
    let _ = janitor.await;
    if let Some(m) = metrics_server {
        m.await??;
    }
    opened.log.shutdown().await.context("log shutdown")?;
    let progress = result?;
    tracing::info!(reports = progress.reports, rows = progress.rows, "projector done");
    Ok(())
}

async fn run_api(a: ApiCmd) -> anyhow::Result<()> {
    ops::install_metrics();
    let policy = a.policy.policy();
    let (_tx, rx) = shutdown_signal();
    let store = app::open_store(&a.store, &a.data, policy).await?;
    let signer = app::open_signer(&a.s3, &a.data, None, policy.retention_days).await?;
    let api = api::Api::new(store.clone(), signer.clone(), app::auth(&a.data)?, app::api_config(&a.s3, policy));
    let ready = ops::Readiness { log: None, store: Some(store), signer: Some(signer) };
    let router = app::with_ops(api::router(api), ready, ops::openapi(false, true));
    let listener = app::bind(a.http.http_addr, "http").await?;
    let http_addr = listener.local_addr()?;
    tracing::info!(http = %http_addr, store = %a.store.store, "api running");
    app::announce(serde_json::json!({"event": "listening", "http": http_addr}));
    app::serve(listener, router, rx).await
}
