//! `daybook subscriptions`: webhook subscriptions (docs/notifications.md). Every change is a
//! report on the log ([`crate::notify::changes`]); `list` and the changes read the current
//! state from the store, where the projector puts it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use schemas::{
    DeviceId, EventType, Report, ReportKind, SubscriptionDeleted, SubscriptionId, SubscriptionSet, Timestamp,
};
use seams::{ProjectionStore, SubscriptionView};

use super::args::{DataArgs, LogArgs, PolicyArgs, StoreArgs};
use crate::notify::seal::{self, NotifyKey};

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCmd {
    /// Create a subscription; prints its id and its signing secret (`whsec_…`, shown only
    /// now). It starts at the log's end: reports from then on are sent.
    Add(AddArgs),
    /// Print every subscription as a JSON line (never its secrets).
    List(Common),
    /// Change a subscription: every option given replaces that setting (a list option given
    /// replaces the whole list); `--rotate-secret` adds a new secret, which signs from now on
    /// while the previous one still verifies, until `--retire-old-secret`.
    Update(UpdateArgs),
    /// Stop sending; the subscription keeps its position and sends its backlog (within its
    /// max age) once resumed.
    Pause(IdArgs),
    /// Send again, from where it was paused.
    Resume(IdArgs),
    /// End a subscription.
    Delete(IdArgs),
    /// The reports a subscription gave up on: list, replay (deliver again), purge.
    #[command(subcommand)]
    DeadLetters(DeadLettersCmd),
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCmd {
    /// Print a subscription's dead letters as JSON lines, oldest first: webhook id, reason,
    /// attempts, when, and the report as `daybook tail` prints it.
    List(LettersArgs),
    /// Deliver dead letters again (oldest first, in order per device; under their webhook
    /// ids), from where the subscription reads now; they leave the dead letters.
    Replay(LettersArgs),
    /// Drop dead letters.
    Purge(LettersArgs),
}

#[derive(Debug, Args)]
pub struct LettersArgs {
    /// The subscription.
    id: String,
    /// Only these (by webhook id, repeatable); default: all, up to --limit.
    #[arg(long = "webhook-id")]
    webhook_ids: Vec<String>,
    /// Most dead letters to list, replay or purge.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    #[command(flatten)]
    common: Common,
}

/// Dead letters per `dead_letters_released` report: the letters travel in it, and an envelope
/// holds at most 1 MiB.
const LETTERS_PER_REPORT: usize = 100;

/// What every subcommand needs: the data directory, the log the changes go to, the store the
/// state is read from, the notify key.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The key that seals signing secrets (64 hex digits); default `DATA_DIR/notify-key`,
    /// created on first use. Every process of a deployment that manages or delivers
    /// subscriptions needs the same one.
    #[arg(long, env = "DAYBOOK_NOTIFY_KEY_FILE")]
    notify_key_file: Option<PathBuf>,
    /// Accept receivers over plain http:// (tests, a receiver on the same host).
    #[arg(long, env = "DAYBOOK_NOTIFY_ALLOW_HTTP")]
    notify_allow_http: bool,
    /// Accept receivers on loopback, private, link-local and other internal addresses.
    #[arg(long, env = "DAYBOOK_NOTIFY_ALLOW_PRIVATE")]
    notify_allow_private: bool,
}

#[derive(Debug, Args)]
pub struct Filters {
    /// A device to send reports of (repeatable; with --device-prefix: either matches; neither:
    /// every device).
    #[arg(long = "device")]
    devices: Vec<String>,
    /// A device id prefix to send reports of (repeatable).
    #[arg(long = "device-prefix")]
    device_prefixes: Vec<String>,
    /// A report kind to send: event_started, event_ended, segment_reported, digest_reported,
    /// event_deleted, device_erased, plan_set (repeatable; none: all of them).
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// An event type to send (`person`, repeatable; none: all).
    #[arg(long = "type")]
    event_types: Vec<String>,
    /// At most one event start per device and event type per this long (`60s`); the others
    /// are counted, not sent. `0s`: none.
    #[arg(long, value_parser = humantime::parse_duration)]
    cooldown: Option<Duration>,
    /// Reports older than this when their turn comes are counted, not sent (`1h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The receiver: https://… (http:// with --notify-allow-http).
    #[arg(long)]
    url: String,
    #[command(flatten)]
    filters: Filters,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The subscription.
    id: String,
    /// A new receiver.
    #[arg(long)]
    url: Option<String>,
    #[command(flatten)]
    filters: Filters,
    /// Remove the device filters (every device).
    #[arg(long, conflicts_with_all = ["devices", "device_prefixes"])]
    all_devices: bool,
    /// Remove the max age.
    #[arg(long, conflicts_with = "max_age")]
    no_max_age: bool,
    /// Add a new signing secret (printed once); the previous one still verifies.
    #[arg(long, conflicts_with = "retire_old_secret")]
    rotate_secret: bool,
    /// Drop the previous secret after a rotation.
    #[arg(long)]
    retire_old_secret: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The subscription.
    id: String,
    #[command(flatten)]
    common: Common,
}

/// How long a command waits for the projector to show its change in the store.
const PROJECTED_WITHIN: Duration = Duration::from_secs(10);

pub async fn run(cmd: SubscriptionsCmd) -> anyhow::Result<()> {
    match cmd {
        SubscriptionsCmd::Add(a) => add(a).await,
        SubscriptionsCmd::List(c) => {
            let store = open_store(&c).await?;
            for v in store.subscriptions().await? {
                println!("{}", view_json(&v));
            }
            Ok(())
        }
        SubscriptionsCmd::Update(a) => update(a).await,
        SubscriptionsCmd::Pause(a) => set_paused(a, true).await,
        SubscriptionsCmd::Resume(a) => set_paused(a, false).await,
        SubscriptionsCmd::DeadLetters(c) => dead_letters(c).await,
        SubscriptionsCmd::Delete(a) => {
            let store = open_store(&a.common).await?;
            let current = find(store.as_ref(), &a.id).await?;
            let id = current.subscription.subscription_id;
            let deleted = Report::SubscriptionDeleted(SubscriptionDeleted { subscription_id: id.clone() });
            submit(&a.common, deleted).await?;
            wait_projected(store.as_ref(), &id, |v| v.is_none()).await;
            eprintln!("deleted {id}");
            Ok(())
        }
    }
}

async fn dead_letters(cmd: DeadLettersCmd) -> anyhow::Result<()> {
    let (a, action) = match cmd {
        DeadLettersCmd::List(a) => (a, "list"),
        DeadLettersCmd::Replay(a) => (a, "replay"),
        DeadLettersCmd::Purge(a) => (a, "purge"),
    };
    let store = open_store(&a.common).await?;
    let id = SubscriptionId::parse(&a.id)?;
    let letters: Vec<_> = store
        .dead_letters(&id, a.limit)
        .await?
        .into_iter()
        .filter(|d| a.webhook_ids.is_empty() || a.webhook_ids.contains(&d.letter.webhook_id))
        .collect();
    if action == "list" {
        for d in &letters {
            let report = schemas::json::decode_json(&d.letter.record.0).ok();
            println!(
                "{}",
                serde_json::json!({
                    "webhook_id": d.letter.webhook_id,
                    "reason": d.letter.reason,
                    "attempts": d.letter.attempts,
                    "dead_at": d.dead_at,
                    "report": report,
                })
            );
        }
        eprintln!("{} dead letter(s)", letters.len());
        return Ok(());
    }
    for chunk in letters.chunks(LETTERS_PER_REPORT) {
        let mut released =
            schemas::DeadLettersReleased { subscription_id: id.clone(), purged: vec![], replayed: vec![] };
        for d in chunk {
            if action == "replay" {
                released.replayed.push(schemas::ReplayedLetter {
                    webhook_id: d.letter.webhook_id.clone(),
                    record_schema: d.letter.record_schema,
                    record: d.letter.record.clone(),
                });
            } else {
                released.purged.push(d.letter.webhook_id.clone());
            }
        }
        submit(&a.common, Report::DeadLettersReleased(released)).await?;
    }
    // Shown once projected, so the next `list` agrees.
    let deadline = std::time::Instant::now() + PROJECTED_WITHIN;
    let ids: Vec<&str> = letters.iter().map(|d| d.letter.webhook_id.as_str()).collect();
    while std::time::Instant::now() < deadline {
        let left = store.dead_letters(&id, a.limit).await?;
        if !left.iter().any(|d| ids.contains(&d.letter.webhook_id.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{} {} dead letter(s) of {id}", if action == "replay" { "replaying" } else { "purged" }, letters.len());
    Ok(())
}

/// One printed line: everything but the secrets (their number only).
pub fn view_json(v: &SubscriptionView) -> serde_json::Value {
    let s = &v.subscription;
    serde_json::json!({
        "subscription_id": s.subscription_id,
        "url": s.url,
        "paused": s.paused,
        "devices": s.devices,
        "device_prefixes": s.device_prefixes,
        "kinds": s.kinds,
        "event_types": s.event_types,
        "cooldown_ms": s.cooldown_ms,
        "max_age_ms": s.max_age_ms,
        "secrets": s.secrets.len(),
        "created_at": s.created_at,
        "changed_at": v.changed_at,
        "group": crate::notify::group_of(&s.subscription_id),
    })
}

async fn open_store(c: &Common) -> anyhow::Result<std::sync::Arc<dyn ProjectionStore>> {
    crate::resolve::open_store(&c.store.clone().into(), &c.data.data_dir, c.policy.policy()).await
}

fn key(c: &Common) -> anyhow::Result<NotifyKey> {
    NotifyKey::load(&c.data.data_dir, c.notify_key_file.as_deref())
}

async fn submit(c: &Common, report: Report) -> anyhow::Result<()> {
    crate::notify::changes::submit(report, &c.log.clone().into(), &c.data.data_dir).await
}

async fn find(store: &dyn ProjectionStore, id: &str) -> anyhow::Result<SubscriptionView> {
    let id = SubscriptionId::parse(id)?;
    store
        .subscriptions()
        .await?
        .into_iter()
        .find(|v| v.subscription.subscription_id == id)
        .with_context(|| format!("no subscription {id} (a change made a moment ago shows once projected)"))
}

/// Waits until the store shows what `done` looks for, so the next command sees the change; a
/// stopped projector only delays it (the change is on the log already): a warning, not an error.
async fn wait_projected(
    store: &dyn ProjectionStore,
    id: &SubscriptionId,
    done: impl Fn(Option<&SubscriptionView>) -> bool,
) {
    let deadline = std::time::Instant::now() + PROJECTED_WITHIN;
    while std::time::Instant::now() < deadline {
        if let Ok(all) = store.subscriptions().await {
            if done(all.iter().find(|v| &v.subscription.subscription_id == id)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("note: the change is on the log but not projected yet (is a projector running?)");
}

fn check_url(url: &str, c: &Common) -> anyhow::Result<()> {
    crate::notify::safety::check_url(url, c.notify_allow_http, c.notify_allow_private)
        .map_err(|e| anyhow::anyhow!("--url: {e}"))
}

/// Applies the filter options given onto `s`.
fn apply_filters(s: &mut SubscriptionSet, f: &Filters, replace_empty: bool) -> anyhow::Result<()> {
    if replace_empty || !f.devices.is_empty() {
        s.devices = f.devices.iter().map(|d| DeviceId::parse(d)).collect::<Result<_, _>>()?;
    }
    if replace_empty || !f.device_prefixes.is_empty() {
        s.device_prefixes = f.device_prefixes.iter().map(|d| DeviceId::parse(d)).collect::<Result<_, _>>()?;
    }
    if replace_empty || !f.kinds.is_empty() {
        s.kinds = f
            .kinds
            .iter()
            .map(|k| {
                ReportKind::parse(k)
                    .filter(|k| {
                        k.is_device_report()
                            || matches!(k, ReportKind::EventDeleted | ReportKind::DeviceErased | ReportKind::PlanSet)
                    })
                    .with_context(|| {
                        format!(
                            "--kind {k}: one of event_started, event_ended, segment_reported, digest_reported, \
                             event_deleted, device_erased, plan_set"
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    if replace_empty || !f.event_types.is_empty() {
        s.event_types = f.event_types.iter().map(|t| EventType::parse(t)).collect::<Result<_, _>>()?;
    }
    if let Some(c) = f.cooldown {
        s.cooldown_ms = c.as_millis() as u64;
    }
    if let Some(m) = f.max_age {
        s.max_age_ms = Some(m.as_millis() as u64);
    }
    Ok(())
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    check_url(&a.url, &a.common)?;
    let key = key(&a.common)?;
    let id = SubscriptionId::generate(u64::from_le_bytes(seal::new_secret()[..8].try_into().expect("8 bytes")));
    let secret = seal::new_secret();
    let mut s = SubscriptionSet {
        subscription_id: id.clone(),
        url: a.url,
        secrets: vec![key.seal(&id, &secret)],
        devices: vec![],
        device_prefixes: vec![],
        kinds: vec![],
        event_types: vec![],
        cooldown_ms: 0,
        max_age_ms: None,
        paused: a.paused,
        created_at: Timestamp::now(),
    };
    apply_filters(&mut s, &a.filters, true)?;
    s.check().map_err(anyhow::Error::msg)?;
    // Its position first, while no notifier knows the subscription (a Kafka group takes a
    // commit from outside only while it has no members).
    start_at_end(&a.common, &id).await?;
    submit(&a.common, Report::SubscriptionSet(s)).await?;
    let store = open_store(&a.common).await?;
    wait_projected(store.as_ref(), &id, |v| v.is_some()).await;
    // The only time the secret is shown.
    println!("{}", serde_json::json!({"subscription_id": id, "secret": seal::whsec(&secret)}));
    Ok(())
}

/// Records the log's end as the new subscription's position, so it sends what comes after
/// its creation even if no notifier takes it up for a while (the embedded log: its group
/// file; Kafka: the group's offsets, committed before any member joins).
async fn start_at_end(c: &Common, id: &SubscriptionId) -> anyhow::Result<()> {
    let config: crate::config::LogConfig = c.log.clone().into();
    let log = crate::resolve::open_log(&config, &c.data.data_dir).await?.log;
    drop(log.consumer_resuming_or_at_end(&crate::notify::group_of(id)).await?);
    log.shutdown().await?;
    Ok(())
}

async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    let store = open_store(&a.common).await?;
    let current = find(store.as_ref(), &a.id).await?;
    let mut s = current.subscription.clone();
    if let Some(url) = &a.url {
        check_url(url, &a.common)?;
        s.url = url.clone();
    }
    apply_filters(&mut s, &a.filters, false)?;
    if a.all_devices {
        s.devices.clear();
        s.device_prefixes.clear();
    }
    if a.no_max_age {
        s.max_age_ms = None;
    }
    let mut new_secret = None;
    if a.rotate_secret {
        let secret = seal::new_secret();
        let key = key(&a.common)?;
        s.secrets = vec![key.seal(&s.subscription_id, &secret), s.secrets[0].clone()];
        new_secret = Some(secret);
    }
    if a.retire_old_secret {
        s.secrets.truncate(1);
    }
    s.check().map_err(anyhow::Error::msg)?;
    let id = s.subscription_id.clone();
    submit(&a.common, Report::SubscriptionSet(s.clone())).await?;
    wait_projected(store.as_ref(), &id, |v| v.is_some_and(|v| v.subscription == s)).await;
    match new_secret {
        Some(secret) => println!("{}", serde_json::json!({"subscription_id": id, "secret": seal::whsec(&secret)})),
        None => eprintln!("updated {id}"),
    }
    Ok(())
}

async fn set_paused(a: IdArgs, paused: bool) -> anyhow::Result<()> {
    let store = open_store(&a.common).await?;
    let mut s = find(store.as_ref(), &a.id).await?.subscription;
    s.paused = paused;
    let id = s.subscription_id.clone();
    submit(&a.common, Report::SubscriptionSet(s)).await?;
    wait_projected(store.as_ref(), &id, |v| v.is_some_and(|v| v.subscription.paused == paused)).await;
    eprintln!("{} {id}", if paused { "paused" } else { "resumed" });
    Ok(())
}
