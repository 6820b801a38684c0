//! The `daybook` command line: `daybook run` starts everything in one process on the embedded
//! default (segment log, SQLite store, S3 endpoint served from the data directory);
//! `daybook ingest | projector | api` run one service each for the distributed deployment
//! (Kafka, ScyllaDB, S3); the rest are operator tools.

mod args;
pub mod backup;
pub mod erase;
pub mod quarantine;
pub mod reference;
pub mod subscriptions;
mod tail;

use std::time::Duration;

use clap::{Parser, Subcommand};
use infra::{LogUrl, StoreUrl};
use schemas::DeviceId;

pub use args::*;

use crate::{Application, Config};

#[derive(Debug, Parser)]
#[command(name = "daybook", version, about = "Event-sourced ingestion pipeline of a camera cloud")]
pub struct Cli {
    /// Log output: `text` or `json`. Verbosity from RUST_LOG (default `info`).
    #[arg(long, global = true, env = "DAYBOOK_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: device and viewer API on one listener, projector, and (unless
    /// --s3-endpoint is given) an S3 endpoint serving the data directory.
    Run(RunArgs),
    /// The device API only.
    Ingest(IngestCmd),
    /// One projector (a member of the consumer group).
    Projector(ProjectorCmd),
    /// The viewer API only.
    Api(ApiCmd),
    /// The notifier only: delivers webhook subscriptions from the log (`run` includes it).
    Notify(NotifyCmd),
    /// Print a bearer token.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Print reports from the log as JSON lines.
    Tail(tail::TailArgs),
    /// Consumer groups of the embedded log (Kafka's are managed with Kafka's tools).
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Kafka topic administration.
    #[command(subcommand)]
    Topic(TopicCmd),
    /// ScyllaDB schema administration.
    #[command(subcommand)]
    Schema(SchemaCmd),
    /// Records the projector set aside because no store accepts them: list, replay.
    #[command(subcommand)]
    Quarantine(quarantine::QuarantineCmd),
    /// Webhook subscriptions: add, list, update, pause, resume, delete.
    #[command(subcommand)]
    Subscriptions(subscriptions::SubscriptionsCmd),
    /// Erase a device: everything it reported, for good (docs/operations.md).
    #[command(subcommand)]
    Erase(erase::EraseCmd),
    /// Back up an embedded data directory (full, then incremental); `list`, `verify`.
    Backup(backup::BackupCmd),
    /// Restore a backup into a new data directory.
    Restore(backup::RestoreCmd),
    /// Rebuild the store from the log (`run` stopped).
    Rebuild(backup::RebuildCmd),
    /// Print a generated page of docs/ (e.g. `docs configuration`).
    #[command(subcommand, hide = true)]
    Docs(reference::DocsCmd),
}

/// How long a token lives: `--ttl` (`90d`, `12h`, `1y`…) or, as before, `--ttl-days`.
#[derive(Debug, Clone, clap::Args)]
pub struct TtlArgs {
    /// Lifetime of the token (humantime: `90d`, `12h`, `30m`, `1y`).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "ttl_days")]
    ttl: Option<Duration>,
    /// Lifetime in days (the same as `--ttl Nd`).
    #[arg(long)]
    ttl_days: Option<u64>,
}

impl TtlArgs {
    fn or_days(&self, default_days: u64) -> anyhow::Result<Duration> {
        let ttl = self.ttl.unwrap_or_else(|| Duration::from_secs(self.ttl_days.unwrap_or(default_days) * 86_400));
        anyhow::ensure!(ttl >= Duration::from_secs(60), "a token must live at least a minute");
        anyhow::ensure!(ttl <= Duration::from_secs(10 * 366 * 86_400), "a token may live at most 10 years");
        Ok(ttl)
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// A token with which device CID writes its reports (default lifetime 365 days).
    Device {
        /// The device id.
        cid: String,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        ttl: TtlArgs,
        /// The device's time zone (IANA name, e.g. America/Los_Angeles): the day of a
        /// timestamp it sends as `Z` is taken in this zone at that instant (daylight saving
        /// included). Without it, `--day-offset` of the server.
        #[arg(long, value_parser = schemas::DeviceZone::parse)]
        tz: Option<schemas::DeviceZone>,
        /// The device's plan: days of its history kept (7..=365), written on every report it
        /// makes (docs/data-model.md, Plans). Without it, the deployment's `--retention-days`.
        #[arg(long, value_parser = parse_plan)]
        retention_days: Option<u32>,
    },
    /// A token that may read the listed devices (default lifetime 30 days).
    Viewer {
        /// Device ids.
        #[arg(required = true)]
        cids: Vec<String>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        ttl: TtlArgs,
        /// The token may also manage the devices' footage: delete events (scope `manage`).
        #[arg(long)]
        manage: bool,
    },
    /// Refuse device CID's tokens issued before a time (default: now). Running processes
    /// on the same data directory apply it within 5 seconds.
    Revoke {
        /// The device id.
        cid: String,
        /// Tokens issued before this instant (RFC 3339) are refused; default now.
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// The signing keys: list, add (the new one signs), retire (its tokens are refused).
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Print the key ids, the signing one first, and the revoked devices.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Add a key that signs from now on; the others keep verifying until retired.
    Add {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Retire a key: the tokens it signed are refused (within 5 s in running processes).
    Retire {
        /// The key id.
        kid: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// Print every group as a JSON line: `group`, `next` offset, `lag`, `committed_ms`.
    List {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Forget a group's position (it resumes from the oldest record). Groups are also
    /// forgotten on their own after `--group-retention-hours` without a commit.
    Delete {
        /// The group.
        group: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TopicCmd {
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
pub enum SchemaCmd {
    /// Create the ScyllaDB keyspace and tables (idempotent, safe to rerun).
    Apply {
        #[command(flatten)]
        store: StoreArgs,
        /// Keyspace replication factor.
        #[arg(long, default_value_t = 3)]
        replication_factor: u32,
    },
}

/// Runs one command to completion (a service: until SIGINT/SIGTERM).
pub async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(a) => serve(a.into()).await,
        Command::Ingest(a) => serve(a.into()).await,
        Command::Projector(a) => serve(a.into()).await,
        Command::Api(a) => serve(a.into()).await,
        Command::Notify(a) => serve(a.into()).await,
        Command::Token(t) => token(t),
        Command::Tail(a) => tail::run(a).await,
        Command::Groups(cmd) => groups(cmd).await,
        Command::Quarantine(c) => quarantine::run(c).await,
        Command::Subscriptions(c) => subscriptions::run(c).await,
        Command::Erase(c) => erase::run(c).await,
        Command::Backup(c) => backup::backup_cmd(c).await,
        Command::Restore(c) => backup::restore_cmd(c).await,
        Command::Rebuild(c) => backup::rebuild_cmd(c).await,
        Command::Docs(c) => reference::run(c),
        Command::Topic(TopicCmd::Create { log, partitions, replication_factor, retention_hours }) => {
            let LogUrl::Kafka(url) = &log.log else {
                anyhow::bail!("`topic create` needs --log kafka://HOST:PORT/TOPIC");
            };
            let config = crate::resolve::kafka_config(url, &log.clone().into())?;
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

async fn groups(cmd: GroupsCmd) -> anyhow::Result<()> {
    use seams::ReportLog;
    let data = match &cmd {
        GroupsCmd::List { data } | GroupsCmd::Delete { data, .. } => data,
    };
    let path = data.data_dir.join("log");
    anyhow::ensure!(path.exists() || data.data_dir.join("log.db").exists(), "no embedded log at {}", path.display());
    let log = infra::embedded_log::EmbeddedLog::open(&path, Default::default())?;
    let result = match &cmd {
        GroupsCmd::List { .. } => log.groups().await.map(|groups| {
            for g in groups {
                println!("{}", serde_json::to_string(&g).expect("groups serialize"));
            }
        }),
        GroupsCmd::Delete { group, .. } => match log.delete_group(group).await {
            Ok(true) => {
                println!("deleted group {group}");
                Ok(())
            }
            Ok(false) => Err(seams::LogError::Other(format!("no group {group}"))),
            Err(e) => Err(e),
        },
    };
    log.shutdown().await?;
    Ok(result?)
}

/// A plan's days, 7..=365 (`seams::auth::check_plan`).
fn parse_plan(s: &str) -> Result<u32, String> {
    let days: u32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    seams::auth::check_plan(days)
}

fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    let (token, what) = match cmd {
        TokenCmd::Device { cid, data, ttl, tz, retention_days } => {
            let cid = DeviceId::parse(&cid)?;
            let auth = crate::secrets::auth(&data.data_dir)?;
            (auth.device_token_planned(&cid, tz, retention_days, ttl.or_days(365)?), format!("device {cid}"))
        }
        TokenCmd::Viewer { cids, data, ttl, manage } => {
            let cids = cids.iter().map(|c| DeviceId::parse(c)).collect::<Result<Vec<_>, _>>()?;
            let names = cids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let auth = crate::secrets::auth(&data.data_dir)?;
            match manage {
                true => (auth.managing_viewer_token(&cids, ttl.or_days(30)?), format!("managing viewer of {names}")),
                false => (auth.viewer_token(&cids, ttl.or_days(30)?), format!("viewer of {names}")),
            }
        }
        TokenCmd::Revoke { cid, before, data } => {
            let cid = DeviceId::parse(&cid)?;
            let before = match before {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| anyhow::anyhow!("--before {t:?}: {e} (RFC 3339, e.g. 2026-12-01T12:00:00Z)"))?
                    .timestamp(),
                None => chrono::Utc::now().timestamp() + 1,
            };
            crate::secrets::revoke(&data.data_dir, &cid, before)?;
            eprintln!("device {cid}: tokens issued before {before} (epoch s) are refused");
            return Ok(());
        }
        TokenCmd::Keys(KeysCmd::List { data }) => {
            let ring = crate::secrets::key_ring(&data.data_dir)?;
            for (i, (kid, _)) in ring.keys.iter().enumerate() {
                println!("{}", serde_json::json!({"kid": kid, "signs": i == 0}));
            }
            let mut revoked: Vec<_> = ring.revoked.iter().collect();
            revoked.sort();
            for (cid, before) in revoked {
                println!("{}", serde_json::json!({"revoked": cid, "issued_before": before}));
            }
            return Ok(());
        }
        TokenCmd::Keys(KeysCmd::Add { data }) => {
            let kid = crate::secrets::add_key(&data.data_dir)?;
            eprintln!("key {kid} signs from now on; running processes pick it up within 5 s");
            println!("{kid}");
            return Ok(());
        }
        TokenCmd::Keys(KeysCmd::Retire { kid, data }) => {
            crate::secrets::retire_key(&data.data_dir, &kid)?;
            eprintln!("key {kid} retired: the tokens it signed are refused within 5 s");
            return Ok(());
        }
    };
    eprintln!("token for {what}:");
    println!("{token}");
    Ok(())
}

/// Builds the application, prints where it listens as one JSON line on stdout (tests and
/// scripts read it, useful with port 0), and serves until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Installed first: a signal during start-up still stops the process cleanly.
    let shutdown = crate::shutdown_signal();
    let app = Application::build(config).await?;
    let mut listening = serde_json::json!({"event": "listening"});
    for (key, addr) in [("http", app.http_addr()), ("s3", app.s3_addr()), ("metrics", app.metrics_addr())] {
        if let Some(addr) = addr {
            listening[key] = addr.to_string().into();
        }
    }
    if listening.as_object().is_some_and(|o| o.len() > 1) {
        println!("{listening}");
    }
    app.run_until_stopped(shutdown).await
}
