//! `daybook backup`, `backup list`, `backup verify`, `restore`, `rebuild` (see
//! [`crate::backup`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{DataArgs, LogArgs, PolicyArgs, StoreArgs};
use crate::audit;
use crate::backup::{self, KeyRing, S3Options};

/// `daybook backup`: take one (full, differential or incremental); `list` and `verify` the
/// backups in DEST.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupCmd {
    #[command(subcommand)]
    pub sub: Option<BackupSub>,
    #[command(flatten)]
    pub take: TakeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TakeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Destination: a directory, or `s3://BUCKET/PREFIX`. The first backup into it is full,
    /// later ones incremental (unless --full).
    #[arg(long, env = "DAYBOOK_BACKUP_TO", required = true)]
    pub to: Option<String>,
    /// Take a full backup even when DEST holds one (starts a new chain).
    #[arg(long, conflicts_with = "differential")]
    pub full: bool,
    /// Take a differential backup: everything since the newest chain's full backup (a restore
    /// at it needs that full only). A full one when DEST holds none.
    #[arg(long)]
    pub differential: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Keep this many full backups (and the backups after them); delete older ones that no
    /// kept backup needs.
    #[arg(long, env = "DAYBOOK_BACKUP_KEEP_FULL", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_full: Option<u64>,
    #[command(flatten)]
    pub s3: DestS3Args,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupSub {
    /// Print the backups in DEST as JSON lines, oldest first (incomplete ones flagged): each
    /// one's kind, parent and `needs` (every backup a restore at it reads besides it).
    List {
        /// A directory, or `s3://BUCKET/PREFIX`.
        dest: String,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        s3: DestS3Args,
    },
    /// Check every file of the backups in DEST (size, SHA-256, decryption, decompression) and
    /// restore the newest (or --id) into a scratch directory to check it; exit non-zero on any
    /// problem, naming the file.
    Verify {
        /// A directory, or `s3://BUCKET/PREFIX`.
        dest: String,
        /// Verify this backup and the chain it continues only.
        #[arg(long)]
        id: Option<String>,
        /// Directory for the trial restore (default: the system's temporary directory).
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Append the outcome to this audit log (a JSON line; see docs/backups.md). Without
        /// it, the outcome is in the process log only.
        #[arg(long)]
        audit_log: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        s3: DestS3Args,
    },
}

#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// File of encryption keys, one per line, each 32 bytes as 64 hex characters
    /// (`head -c32 /dev/urandom | xxd -p -c64 > key`): the first seals, every one opens (to
    /// rotate, put a new key first and keep the old ones below it). Keep it away from the
    /// backups. With it, backups that are not sealed are refused.
    #[arg(long, env = "DAYBOOK_BACKUP_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn key(&self) -> anyhow::Result<Option<KeyRing>> {
        self.encryption_key_file.as_deref().map(KeyRing::from_file).transpose()
    }
}

/// How to reach an `s3://` destination; credentials come from the AWS chain
/// (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, a profile, an instance role).
#[derive(Debug, Clone, Args)]
pub struct DestS3Args {
    /// Endpoint of an `s3://` destination (MinIO, another region's service…; default: AWS).
    #[arg(long = "s3-endpoint", env = "DAYBOOK_BACKUP_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Region of an `s3://` destination.
    #[arg(long = "s3-region", env = "DAYBOOK_BACKUP_S3_REGION")]
    pub region: Option<String>,
}

impl From<DestS3Args> for S3Options {
    fn from(a: DestS3Args) -> Self {
        Self { endpoint: a.endpoint, region: a.region }
    }
}

/// `daybook restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreCmd {
    /// Where the backups are: a directory, or `s3://BUCKET/PREFIX`.
    #[arg(long)]
    pub from: String,
    /// The backup to restore, exactly (default: the newest, continued by the log shipped
    /// since it by `run --replicate-to`).
    #[arg(long, conflicts_with_all = ["until", "until_offset"])]
    pub at: Option<String>,
    /// Point in time (RFC 3339, e.g. 2026-12-06T21:14:03Z): restore the log as it was then —
    /// every record appended at or before it, none after — from the newest backup before it
    /// and the shipped log; the store is then rebuilt from that log.
    #[arg(long, value_parser = parse_instant, conflicts_with = "until_offset")]
    pub until: Option<i64>,
    /// As --until, cut at a log offset: records at or below it.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub until_offset: Option<i64>,
    /// The data directory to restore into; it must be empty (or missing) unless --force.
    #[arg(long, env = "DAYBOOK_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Restore into a non-empty directory: its log, store, objects and secrets are replaced.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub s3: DestS3Args,
    /// For the store rebuilt after a point-in-time restore.
    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// An RFC 3339 instant, as Unix milliseconds.
fn parse_instant(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2026-12-06T21:14:03Z: {e}"))
}

/// `daybook rebuild`.
///
/// `--log embedded --store embedded` (the default): `run` stopped, the store is rebuilt beside
/// the old one and swapped in once complete. Any other pair (`--log kafka://…`, `--store
/// scylla://…`): the TARGET STORE MUST BE EMPTY — a new keyspace, or a fresh `--data-dir` for
/// the embedded store — and is filled from the start of the log with a fresh group
/// `daybook-rebuild-<ms>`, up to what the log held at start; then start the projectors on it
/// with `--group` set to that group and switch the api over.
#[derive(Debug, Clone, Args)]
#[command(after_help = "With --log embedded --store embedded (the default), `run` must be stopped: the store is \
rebuilt beside the old one and swapped in once complete.\n\
With any other --log/--store, the target store MUST BE EMPTY (a new ScyllaDB keyspace, or a fresh \
--data-dir for the embedded store): it is filled from the start of the log with a fresh group \
daybook-rebuild-<ms> up to what the log held at start; then start the projectors on it with \
--group set to that group and switch the api over.")]
pub struct RebuildCmd {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub log: LogArgs,
    // Other than `--log embedded --store embedded`, the store must be empty.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Embedded log and store: the projector consumer group, which resumes where the rebuild
    /// stopped. Otherwise unused: the rebuild's own fresh group is printed at the end.
    #[arg(long, env = "DAYBOOK_PROJECTOR_GROUP", default_value = "daybook-projector")]
    pub group: String,
    /// Most reports per store batch.
    #[arg(long, default_value_t = 16_384)]
    pub max_batch: usize,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Other than `--log embedded --store embedded`: the old store (`scylla://…`, or
    /// `embedded` for the `store.db` of `--kept-from-dir`), whose kept events are carried into
    /// the new one before the log is replayed — the log may no longer hold their reports.
    #[arg(long)]
    pub kept_from: Option<infra::StoreUrl>,
    /// The data directory of an embedded `--kept-from`.
    #[arg(long, requires = "kept_from")]
    pub kept_from_dir: Option<std::path::PathBuf>,
}

fn print(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).expect("serializes"));
}

pub(crate) async fn backup_cmd(cmd: BackupCmd) -> anyhow::Result<()> {
    match cmd.sub {
        None => {
            let a = cmd.take;
            let opts = backup::BackupOptions {
                data_dir: a.data.data_dir,
                to: a.to.expect("required"),
                full: a.full,
                differential: a.differential,
                key: a.key.key()?,
                keep_full: a.keep_full.map(|n| n as usize),
                s3: a.s3.into(),
            };
            let taken = tokio::task::spawn_blocking(move || backup::backup(&opts)).await??;
            for p in &taken.prune_problems {
                eprintln!("warning: pruning: {p}");
            }
            let m = taken.manifest;
            print(&serde_json::json!({
                "event": "backup", "id": m.id, "kind": m.kind, "parent": m.parent, "log": m.log,
                "records": m.counts.records, "objects": m.counts.objects, "files": m.files.len(),
                "bytes": m.files.iter().map(|f| f.size).sum::<u64>(), "stored_bytes": m.stored_bytes(),
                "seconds": m.seconds, "encrypted": m.encrypted, "pruned": taken.pruned,
                "prune_problems": taken.prune_problems,
            }));
            Ok(())
        }
        Some(BackupSub::List { dest, key, s3 }) => {
            let key = key.key()?;
            let listed = tokio::task::spawn_blocking(move || backup::list(&dest, key.as_ref(), &s3.into())).await??;
            for l in &listed {
                print(l);
            }
            Ok(())
        }
        Some(BackupSub::Verify { dest, id, scratch, audit_log, key, s3 }) => {
            let key = key.key()?;
            let started = std::time::Instant::now();
            let repo = backup::repo_label(&dest);
            let asked = id.clone();
            let result = tokio::task::spawn_blocking(move || {
                backup::verify(&dest, id.as_deref(), key.as_ref(), &s3.into(), scratch.as_deref())
            })
            .await?;
            let mut entry = audit::Entry::new(audit::Action::Verify, Some(repo), started, &result);
            match &result {
                Ok(v) => {
                    entry.ids = v.backups.clone();
                    entry.detail("files", v.files);
                }
                Err(_) => entry.ids.extend(asked),
            }
            audit::record_in(audit_log.as_deref(), entry);
            let v = result?;
            print(&serde_json::json!({
                "event": "verified", "backups": v.backups, "files": v.files, "stored_bytes": v.stored_bytes,
                "trial_restore": v.trial_restore, "seconds": started.elapsed().as_secs_f64(),
            }));
            Ok(())
        }
    }
}

pub(crate) async fn restore_cmd(a: RestoreCmd) -> anyhow::Result<()> {
    let until = match (a.until, a.until_offset) {
        (Some(t), _) => Some(backup::Until::Time(t)),
        (None, Some(n)) => Some(backup::Until::Offset(n)),
        (None, None) => None,
    };
    let opts = backup::RestoreOptions {
        from: a.from,
        at: a.at,
        data_dir: a.data_dir.clone(),
        force: a.force,
        key: a.key.key()?,
        s3: a.s3.into(),
        until,
    };
    let started = std::time::Instant::now();
    let r = tokio::task::spawn_blocking(move || backup::restore(&opts)).await??;
    print(&serde_json::json!({"event": "restored", "restored": r, "seconds": started.elapsed().as_secs_f64()}));
    if until.is_none() {
        eprintln!("restored; `daybook run` on this directory replays the log tail into the store (or run `daybook rebuild` first)");
        return Ok(());
    }
    // A point in time: the store is a function of the restored log.
    let opts = crate::rebuild::RebuildOptions {
        data_dir: a.data_dir,
        group: "daybook-projector".into(),
        policy: a.policy.policy(),
        max_batch: 16_384,
        progress_every: Duration::from_secs(2),
    };
    let rebuilt = crate::rebuild::rebuild(&opts, |line| eprintln!("{line}")).await?;
    print(&serde_json::json!({"event": "rebuilt", "rebuilt": rebuilt, "seconds": started.elapsed().as_secs_f64()}));
    Ok(())
}

pub(crate) async fn rebuild_cmd(a: RebuildCmd) -> anyhow::Result<()> {
    if matches!(a.log.log, infra::LogUrl::Embedded) && matches!(a.store.store, infra::StoreUrl::Embedded) {
        let opts = crate::rebuild::RebuildOptions {
            data_dir: a.data.data_dir,
            group: a.group,
            policy: a.policy.policy(),
            max_batch: a.max_batch,
            progress_every: Duration::from_secs(2),
        };
        let r = crate::rebuild::rebuild(&opts, |line| println!("{line}")).await?;
        print(&serde_json::json!({"event": "rebuilt", "rebuilt": r}));
        return Ok(());
    }
    let data_dir = a.data.data_dir;
    if matches!(a.store.store, infra::StoreUrl::Embedded) {
        let db = data_dir.join("store.db");
        anyhow::ensure!(
            !db.exists(),
            "{} exists: a rebuild from {} goes into an empty store; give a fresh --data-dir",
            db.display(),
            a.log.log
        );
    }
    let log_url = a.log.log.clone();
    let store_url = match &a.store.store {
        infra::StoreUrl::Embedded => format!("embedded --data-dir {}", data_dir.display()),
        url => url.to_string(),
    };
    let started = std::time::Instant::now();
    let log = crate::resolve::open_log(&a.log.into(), &data_dir).await?;
    let kept_from = match &a.kept_from {
        Some(url) => {
            let config = crate::config::StoreConfig { url: url.clone(), ..a.store.clone().into() };
            let dir = a.kept_from_dir.clone().unwrap_or_else(|| data_dir.clone());
            anyhow::ensure!(
                !matches!(url, infra::StoreUrl::Embedded) || dir.join("store.db").exists(),
                "--kept-from embedded: no store.db in {}",
                dir.display()
            );
            Some(crate::resolve::open_store(&config, &dir, a.policy.policy()).await?)
        }
        None => None,
    };
    let store = crate::resolve::open_store(&a.store.into(), &data_dir, a.policy.policy()).await?;
    let result =
        crate::rebuild::rebuild_into(log.log.clone(), store, kept_from, a.max_batch, Duration::from_secs(2), |line| {
            println!("{line}")
        })
        .await;
    log.log.shutdown().await?;
    let mut entry = audit::Entry::new(audit::Action::Rebuild, None, started, &result);
    entry.detail("log", log_url.to_string());
    entry.detail("store", &store_url);
    if let Ok(r) = &result {
        entry.detail("group", &r.group);
        entry.detail("rows", r.rows);
    }
    audit::record(&data_dir, entry);
    let r = result?;
    print(&serde_json::json!({"event": "rebuilt", "rebuilt": r}));
    eprintln!(
        "switch over: daybook projector --log {log_url} --store {store_url} --group {} (then point the api at \
         --store {store_url})",
        r.group
    );
    Ok(())
}

/// `daybook run --backup-to DEST`: scheduled backups beside the services.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// Take backups of the data directory into DEST (a directory or `s3://BUCKET/PREFIX`):
    /// one at start, then every --backup-every. Give it several times (or a comma-separated
    /// list) for several repositories, each on its own schedule: one that is down or slow
    /// holds up none of the others. Off when unset.
    #[arg(long, env = "DAYBOOK_BACKUP_TO", value_delimiter = ',')]
    pub backup_to: Vec<String>,
    /// Time between backups (humantime: `1h`, `30m`, `1d`).
    #[arg(long, env = "DAYBOOK_BACKUP_EVERY", alias = "backup-interval", default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_every: Duration,
    /// A full backup when the newest full one is older than this; incrementals in between.
    #[arg(long, env = "DAYBOOK_BACKUP_FULL_EVERY", default_value = "7d", value_parser = humantime::parse_duration)]
    pub backup_full_every: Duration,
    /// A differential backup (everything since the full: a restore needs the full and it)
    /// when the newest full or differential is older than this. Off when unset.
    #[arg(long, env = "DAYBOOK_BACKUP_DIFFERENTIAL_EVERY", value_parser = humantime::parse_duration)]
    pub backup_differential_every: Option<Duration>,
    /// Keep this many full backups (with the backups that depend on them).
    #[arg(long, env = "DAYBOOK_BACKUP_KEEP_FULL", value_parser = clap::value_parser!(u64).range(1..))]
    pub backup_keep_full: Option<u64>,
    /// Encryption key file of the backups (see `daybook backup --help`).
    #[arg(long, env = "DAYBOOK_BACKUP_KEY_FILE")]
    pub backup_encryption_key_file: Option<PathBuf>,
    /// Endpoint of an `s3://` backup destination (default: AWS).
    #[arg(long, env = "DAYBOOK_BACKUP_S3_ENDPOINT")]
    pub backup_s3_endpoint: Option<String>,
    /// Region of an `s3://` backup destination.
    #[arg(long, env = "DAYBOOK_BACKUP_S3_REGION")]
    pub backup_s3_region: Option<String>,
    /// Verify the newest backup of each repository this often: every file of its chain read,
    /// then a trial restore into --backup-verify-scratch checked. Off when unset.
    #[arg(long, env = "DAYBOOK_BACKUP_VERIFY_EVERY", value_parser = humantime::parse_duration)]
    pub backup_verify_every: Option<Duration>,
    /// Directory for the scheduled trial restores (default: the system's temporary
    /// directory). A trial that does not fit, or would leave the data directory's filesystem
    /// under 10 % free, is skipped.
    #[arg(long, env = "DAYBOOK_BACKUP_VERIFY_SCRATCH")]
    pub backup_verify_scratch: Option<PathBuf>,
    /// Ship the log's records, new objects and changed secrets to DEST (a directory or
    /// `s3://BUCKET/PREFIX`) every --replicate-every, and take the scheduled backups there
    /// too, so DEST alone restores to seconds before a loss. Repeatable.
    #[arg(long, env = "DAYBOOK_REPLICATE_TO", value_delimiter = ',')]
    pub replicate_to: Vec<String>,
    /// How often shipping runs: the most a lost disk costs in acknowledged reports (plus the
    /// time a round takes).
    #[arg(long, env = "DAYBOOK_REPLICATE_EVERY", default_value = "1s", value_parser = humantime::parse_duration)]
    pub replicate_every: Duration,
}

impl ScheduleArgs {
    /// The repositories to ship to.
    pub fn replicas(&self) -> Vec<backup::ship::Replica> {
        self.replicate_to
            .iter()
            .map(|to| backup::ship::Replica {
                to: to.clone(),
                every: self.replicate_every.max(Duration::from_millis(50)),
                key_file: self.backup_encryption_key_file.clone(),
                s3: S3Options { endpoint: self.backup_s3_endpoint.clone(), region: self.backup_s3_region.clone() },
            })
            .collect()
    }

    /// How every repository is backed up.
    pub fn plan(&self) -> backup::schedule::Plan {
        backup::schedule::Plan {
            interval: self.backup_every.max(Duration::from_secs(1)),
            full_every: self.backup_full_every,
            differential_every: self.backup_differential_every,
            keep_full: self.backup_keep_full.map(|n| n as usize),
            key_file: self.backup_encryption_key_file.clone(),
            s3: S3Options { endpoint: self.backup_s3_endpoint.clone(), region: self.backup_s3_region.clone() },
            verify_every: self.backup_verify_every.map(|d| d.max(Duration::from_secs(1))),
            verify_scratch: self.backup_verify_scratch.clone(),
        }
    }

    /// One schedule per repository: every `--backup-to`, and every `--replicate-to` (whose
    /// shipped log continues the backups taken there, so that it alone restores).
    pub fn schedules(&self) -> Vec<backup::schedule::Schedule> {
        let repos = self.backup_to.iter().chain(&self.replicate_to).cloned();
        backup::schedule::schedules(repos, &self.plan())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Run {
        #[command(flatten)]
        schedule: ScheduleArgs,
    }

    #[test]
    fn backup_every_keeps_backup_interval_as_an_alias() {
        for flag in ["--backup-every", "--backup-interval"] {
            let r = Run::try_parse_from(["daybook", "--backup-to", "/b", flag, "5m"]).unwrap();
            assert_eq!(r.schedule.schedules()[0].plan.interval, Duration::from_secs(300), "{flag}");
        }
    }

    #[test]
    fn backup_to_takes_several_repositories_each_once() {
        let r = Run::try_parse_from([
            "daybook",
            "--backup-to",
            "/a,s3://bucket/site",
            "--backup-to",
            "/b",
            "--backup-to",
            "/a",
        ])
        .unwrap();
        let repos: Vec<String> = r.schedule.schedules().iter().map(|s| s.repo()).collect();
        assert_eq!(repos, ["/a", "s3://bucket/site", "/b"]);
        assert!(Run::try_parse_from(["daybook"]).unwrap().schedule.schedules().is_empty());
    }
}
