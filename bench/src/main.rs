//! `daybook-bench`: the midnight burst measured against the direct baseline and the machine's
//! bare-HTTP ceiling (bench/RESULTS.md). Its own binary so that the product `daybook`
//! carries neither the load generator nor the chart renderer; the servers under test are this
//! binary again (`serve`, `noop`), built on the `daybook` library, so they run in their own
//! process as the product does.

mod burst;
mod chart;
mod cpu;
mod direct;
mod hooks;
mod load;
mod notify;
mod raw;
mod soak;
mod sustain;

use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use daybook::{Application, Backends, Config};

// The same allocator as the product binary: the server under test must allocate as it does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "daybook-bench",
    version,
    about = "Benchmarks of daybook (`daybook-bench burst --out DIR`, `daybook-bench sustain --out DIR`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The midnight burst: N devices report their digest within W ms.
    Burst(burst::BurstArgs),
    /// A steady open-loop evening at a fraction of the bare ceiling: mixed device reports plus
    /// a viewer reading calendars and day pages; latency over time and server CPU per report.
    Sustain(sustain::SustainArgs),
    /// Millions of single-report requests with nobody scraping /metrics; the server's
    /// resident memory sampled every interval (it must stay flat).
    Soak(soak::SoakArgs),
    /// Webhook delivery latency at a steady rate of event starts, receivers in this process
    /// (`--bad-receivers`: a hanging, a 500, a 410 and a slow-drip receiver beside them); the
    /// server's memory every second.
    Notify(notify::NotifyArgs),
    /// `daybook subscriptions` (the benchmarks subscribe their receivers with it).
    #[command(subcommand, hide = true)]
    Subscriptions(Box<daybook::cli::subscriptions::SubscriptionsCmd>),
    /// A server under test: `daybook run` with the same flags, or the direct baseline.
    #[command(hide = true)]
    Serve(Box<ServeArgs>),
    /// A bare HTTP no-op handler (the ceiling the burst is compared with).
    #[command(hide = true)]
    Noop {
        #[arg(long, default_value = "127.0.0.1:0")]
        http_addr: SocketAddr,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    run: daybook::cli::RunArgs,
    /// No log: every request writes the store before it is answered.
    #[arg(long)]
    direct: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Burst(a) => burst::run(a).await,
            Command::Sustain(a) => sustain::run(a).await,
            Command::Soak(a) => soak::run(a).await,
            Command::Notify(a) => notify::run(a).await,
            Command::Subscriptions(c) => daybook::cli::subscriptions::run(*c).await,
            Command::Serve(a) => serve(*a).await,
            Command::Noop { http_addr } => noop(http_addr).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("daybook-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the `listening` line the burst reads (as `daybook run` does).
fn announce(http: SocketAddr) {
    println!("{}", serde_json::json!({"event": "listening", "http": http}));
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let shutdown = daybook::shutdown_signal();
    let config = Config::from(a.run);
    let backends = if a.direct {
        let store = daybook::resolve::open_store(&config.store, &config.data_dir, config.policy).await?;
        Backends { log: Some(direct::DirectLog::new(store.clone())), store: Some(store) }
    } else {
        Backends::default()
    };
    let app = Application::build_with(config, backends).await?;
    announce(app.http_addr().expect("the all-in-one has an http listener"));
    app.run_until_stopped(shutdown).await
}

async fn noop(addr: SocketAddr) -> anyhow::Result<()> {
    let shutdown = daybook::shutdown_signal();
    let router = axum::Router::new().fallback(axum::routing::post(|body: Bytes| async move {
        (http::StatusCode::ACCEPTED, axum::Json(serde_json::json!({"accepted": !body.is_empty()})))
    }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    announce(listener.local_addr()?);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
