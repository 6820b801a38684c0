//! The notifier: every subscription reads the log as its own consumer group and delivers what
//! matches to its receiver (docs/notifications.md).
//!
//! [`run`] re-reads the subscriptions from the store every second and keeps one task per
//! subscription that is not paused. A task has two halves:
//!
//! * the **reader** owns the log consumer: it polls while the window has room (at most
//!   `window` records held between the committed position and the read position, whatever the
//!   receiver does), and commits the positions the deliverer hands it;
//! * the **deliverer** keeps one queue per device — a device's reports go out one at a time,
//!   in log order — and up to `max_in_flight` deliveries at once across devices, so one
//!   device's failing report holds up only that device. A report is *done* once answered 2xx,
//!   or filtered out, cooled down or past its max age; the committed position of a partition
//!   is the first report not done, so a kill -9 at any moment loses nothing (what was in
//!   flight, or answered since the last commit, is sent again: receivers de-duplicate by
//!   `webhook-id`).
//!
//! A failed attempt (a timeout, a connection refused, a 5xx, a 408, 409, 425 or 429) is tried
//! again after an exponential backoff with jitter — `retry_base` × 3ⁿ, at most `retry_max` —
//! or after the receiver's `Retry-After`, whichever is later (Retry-After capped at
//! `retry_max`). Any other 4xx is permanent: the report is dead-lettered at once; so is one
//! still failing `retry_window` after its first failure. A dead letter is a report on the log
//! (`subscription_dead_lettered`, carrying the record), durable before the report counts as
//! done; `daybook subscriptions dead-letters replay` puts a `dead_letters_released` on the log
//! that carries the letters back, and the subscription delivers them again from there. A 410
//! Gone pauses the subscription (a `subscription_set` on the log): it keeps its position.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use schemas::{Envelope, Report, SubscriptionId, SubscriptionSet, Timestamp};
use seams::metric::{Kind, Metric, Unit};
use seams::{Consumed, LogConsumer, Position, ProjectionStore, ReportLog};
use tokio::sync::{mpsc, watch, Semaphore};

use super::seal::NotifyKey;
use super::wire;

pub const NOTIFY_DELIVERED_TOTAL: Metric = Metric {
    name: "daybook_notify_delivered_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["subscription"],
    help: "Notifications: reports a receiver answered 2xx, by subscription.",
};

pub const NOTIFY_FAILED_TOTAL: Metric = Metric {
    name: "daybook_notify_failed_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["subscription", "reason"],
    help: "Notifications: failed delivery attempts, by subscription and reason (timeout, connect, status_5xx, status_4xx, other); each is retried.",
};

pub const NOTIFY_SKIPPED_TOTAL: Metric = Metric {
    name: "daybook_notify_skipped_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["subscription", "reason"],
    help: "Notifications: matching reports not sent, by subscription and reason (cooldown, max_age).",
};

pub const NOTIFY_LAG_RECORDS: Metric = Metric {
    name: "daybook_notify_lag_records",
    kind: Kind::Gauge,
    unit: None,
    labels: &["subscription"],
    help: "Notifications: records of the log a subscription has not read yet.",
};

pub const NOTIFY_OLDEST_UNDELIVERED_SECONDS: Metric = Metric {
    name: "daybook_notify_oldest_undelivered_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["subscription"],
    help: "Notifications: age (since received_at) of the oldest report read and not yet delivered, by subscription (0 when none waits).",
};

pub const NOTIFY_DEAD_LETTERS_TOTAL: Metric = Metric {
    name: "daybook_notify_dead_letters_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["subscription", "reason"],
    help: "Notifications: reports given up on and put in the subscription's dead letters, by reason (permanent: a 4xx; window: failing past the retry window).",
};

pub const NOTIFY_FAILING: Metric = Metric {
    name: "daybook_notify_failing",
    kind: Kind::Gauge,
    unit: None,
    labels: &["subscription"],
    help: "Notifications: 1 while a subscription has a report failing for longer than 10 minutes (its receiver down or refusing), else 0. The DaybookNotifySubscriptionFailing alert watches it.",
};

pub const NOTIFY_HELD_RECORDS: Metric = Metric {
    name: "daybook_notify_held_records",
    kind: Kind::Gauge,
    unit: None,
    labels: &["subscription"],
    help: "Notifications: records a subscription holds between its committed and its read position (at most --notify-window: what bounds its memory).",
};

pub const NOTIFY_LATENCY_SECONDS: Metric = Metric {
    name: "daybook_notify_latency_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Notifications: from a report's received_at to its receiver's 2xx.",
};

/// How long a report may fail before its subscription counts as failing.
const FAILING_AFTER: Duration = Duration::from_secs(600);

/// Puts a report on the log (a dead letter, a subscription paused by a 410) and returns once
/// it is durable. The process that appends to the log appends; another one hands it over
/// (`notify::changes`).
pub type Sink = Arc<dyn Fn(Report) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

pub use crate::config::NotifyConfig;

/// The HTTP client every subscription shares: keep-alive connections, no redirects (a
/// receiver that redirects is answering 3xx: a failure, never followed), the timeout.
pub fn client(config: &NotifyConfig) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder();
    // Internal addresses are dropped where names are resolved, at every connection.
    let builder =
        if config.allow_private { builder } else { builder.dns_resolver(Arc::new(super::safety::PublicOnly)) };
    Ok(builder
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("daybook-notify/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// A subscription's task: its settings (with the time of their change) and its handle.
type Task = (watch::Sender<(SubscriptionSet, Timestamp)>, tokio::task::JoinHandle<()>);

/// Runs the notifier until `shutdown`: a task per active subscription.
pub async fn run(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    key: NotifyKey,
    config: NotifyConfig,
    sink: Sink,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = client(&config)?;
    let mut tasks: HashMap<SubscriptionId, Task> = HashMap::new();
    tracing::info!(log = log.backend(), store = store.backend(), "notifier started");
    loop {
        // A store that hangs must not hold up a shutdown.
        let read = tokio::select! {
            r = store.subscriptions() => Some(r),
            _ = shutdown.wait_for(|v| *v) => None,
        };
        let Some(read) = read else { break };
        match read {
            Ok(subs) => {
                // With the time of the change: a resume that restores every setting is a change
                // too (it matters to a task that saw a 410).
                let active: HashMap<SubscriptionId, (SubscriptionSet, Timestamp)> = subs
                    .into_iter()
                    .filter(|v| !v.subscription.paused)
                    .map(|v| (v.subscription.subscription_id.clone(), (v.subscription, v.changed_at)))
                    .collect();
                // Paused or deleted: its task stops (committing what it finished).
                let gone: Vec<SubscriptionId> = tasks.keys().filter(|id| !active.contains_key(id)).cloned().collect();
                for id in gone {
                    if let Some((tx, handle)) = tasks.remove(&id) {
                        drop(tx);
                        let _ = handle.await;
                        tracing::info!(subscription = %id, "notifier: subscription paused or deleted");
                    }
                }
                tasks.retain(|_, (_, h)| !h.is_finished());
                for (id, sub) in active {
                    match tasks.get(&id) {
                        Some((tx, _)) => {
                            tx.send_if_modified(|cur| {
                                let changed = *cur != sub;
                                *cur = sub.clone();
                                changed
                            });
                        }
                        None => {
                            let (tx, rx) = watch::channel(sub);
                            let task = Subscription {
                                log: log.clone(),
                                key: key.clone(),
                                client: client.clone(),
                                config: config.clone(),
                                sink: sink.clone(),
                            };
                            let handle = tokio::spawn(task.run(rx, shutdown.clone()));
                            tasks.insert(id, (tx, handle));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "notifier: cannot read the subscriptions; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.refresh) => {}
            _ = shutdown.wait_for(|v| *v) => break,
        }
    }
    for (_, (tx, handle)) in tasks {
        drop(tx);
        let _ = handle.await;
    }
    tracing::info!("notifier stopped");
    Ok(())
}

/// What a subscription's task shares with the others.
struct Subscription {
    log: Arc<dyn ReportLog>,
    key: NotifyKey,
    client: reqwest::Client,
    config: NotifyConfig,
    sink: Sink,
}

/// One report on its way.
struct Item {
    position: Position,
    schema: u16,
    envelope: Envelope,
    /// The record's value as on the log (what a dead letter carries).
    value: Vec<u8>,
    webhook_id: String,
    attempt: u32,
    not_before: Instant,
    first_failure: Option<Instant>,
    last_reason: &'static str,
    /// Sent again from the dead letters: no max age applies.
    replayed: bool,
}

/// How an attempt ended.
enum Outcome {
    Delivered,
    /// Try again, not before this (a Retry-After), for this reason.
    Failed {
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    /// A 4xx other than 408, 409, 425, 429: never retried.
    Permanent {
        status: u16,
    },
    /// The URL is refused (an internal address, plain http): never sent.
    Refused {
        why: String,
    },
    /// 410 Gone: the receiver wants no more.
    Gone,
    /// Put in the dead letters (durably), for this reason (`permanent`, `window`).
    DeadLettered {
        why: &'static str,
    },
    /// Nothing further to do for this device's head (the subscription paused after a 410).
    Held,
}

/// Per partition, the offsets read and how many of each record's deliveries are not done (a
/// replay record carries several): the commit position is the first one not done.
#[derive(Default)]
struct Window {
    partitions: BTreeMap<i32, VecDeque<(i64, u32)>>,
    held: usize,
}

impl Window {
    fn push(&mut self, p: Position, pending: u32) {
        self.partitions.entry(p.partition).or_default().push_back((p.offset, pending));
        self.held += 1;
    }

    fn done(&mut self, p: Position) {
        if let Some(q) = self.partitions.get_mut(&p.partition) {
            // Offsets ascend in a partition: a binary search finds the record.
            if let Ok(i) = q.binary_search_by_key(&p.offset, |e| e.0) {
                q[i].1 = q[i].1.saturating_sub(1);
            }
        }
    }

    /// Drops the done prefix of every partition; the positions to commit (and how many
    /// records left the window).
    fn advance(&mut self) -> (Vec<Position>, usize) {
        let mut out = Vec::new();
        let mut freed = 0;
        for (&partition, q) in &mut self.partitions {
            let mut last = None;
            while q.front().is_some_and(|e| e.1 == 0) {
                last = q.pop_front().map(|e| e.0);
                freed += 1;
            }
            if let Some(offset) = last {
                out.push(Position { partition, offset: offset + 1 });
            }
        }
        self.held -= freed;
        (out, freed)
    }
}

impl Subscription {
    async fn run(self, mut sub: watch::Receiver<(SubscriptionSet, Timestamp)>, mut shutdown: watch::Receiver<bool>) {
        let id = sub.borrow().0.subscription_id.clone();
        let group = super::group_of(&id);
        let mut backoff = Duration::from_millis(200);
        loop {
            let consumer = match self.log.consumer_resuming_or_at_end(&group).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(subscription = %id, error = %e, "notifier: cannot open the log; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait_for(|v| *v) => return,
                        r = sub.changed() => if r.is_err() { return },
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            match self.deliver(consumer, &mut sub, &mut shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(subscription = %id, error = %e, "notifier: reading the log failed; resuming from the last commit");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Delivers until the subscription is paused or deleted (its sender dropped) or shutdown;
    /// an error of the log ends it early (the caller reopens).
    async fn deliver(
        &self,
        consumer: Box<dyn LogConsumer>,
        sub: &mut watch::Receiver<(SubscriptionSet, Timestamp)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut current = sub.borrow_and_update().0.clone();
        let id = current.subscription_id.clone();
        let label = id.to_string();
        let mut secrets = self.open_secrets(&current);
        let room = Arc::new(Semaphore::new(self.config.window));
        let (batch_tx, mut batch_rx) = mpsc::unbounded_channel::<Vec<Consumed>>();
        let (commit_tx, commit_rx) = watch::channel(Vec::<Position>::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let reader = tokio::spawn(read(consumer, room.clone(), batch_tx, commit_rx, stop_rx, label.clone()));

        let mut window = Window::default();
        let mut devices: HashMap<String, VecDeque<Item>> = HashMap::new();
        // Devices whose first report may go at the instant given (ordered by instant).
        let mut ready: BTreeMap<(Instant, u64), String> = BTreeMap::new();
        let mut seq = 0u64;
        let mut busy: std::collections::HashSet<String> = Default::default();
        let mut in_flight = FuturesUnordered::new();
        // Event starts sent per (device, event type): the trigger time of the last one.
        let mut cooled: HashMap<(String, String), (Timestamp, Instant)> = HashMap::new();
        let mut last_gauge = Instant::now();
        // A 410 was answered: nothing more is sent (the subscription is being paused).
        let mut gone = false;
        // Devices whose report was answered 410: sent again only if the subscription is
        // changed (resumed) before this task sees it paused.
        let mut held: Vec<String> = Vec::new();
        let result = loop {
            // Send what may go now, up to the in-flight bound.
            let now = Instant::now();
            while in_flight.len() < self.config.max_in_flight && !gone {
                let Some((&(at, n), _)) = ready.first_key_value() else { break };
                if at > now {
                    break;
                }
                let device = ready.remove(&(at, n)).expect("just seen");
                let Some(item) = devices.get(&device).and_then(|q| q.front()) else { continue };
                // Past its max age when its turn comes: counted, not sent.
                if let (Some(max_age), false) = (current.max_age_ms, item.replayed) {
                    let age = Timestamp::now().millis() - item.envelope.received_at.millis();
                    if age > max_age as i64 {
                        metrics::counter!(NOTIFY_SKIPPED_TOTAL.name, "subscription" => label.clone(), "reason" => "max_age")
                            .increment(1);
                        let p = item.position;
                        window.done(p);
                        finish_head(&mut devices, &device, &mut ready, &mut seq);
                        continue;
                    }
                }
                let Some(secrets) = secrets.as_ref() else {
                    // Secrets that do not open: nothing can be signed; wait for a change.
                    ready.insert((now + Duration::from_secs(5), n), device);
                    break;
                };
                busy.insert(device.clone());
                let attempt = self.attempt(&current, secrets, item, &device);
                in_flight.push(attempt);
            }
            let next_ready = ready.first_key_value().map(|(k, _)| k.0);
            tokio::select! {
                batch = batch_rx.recv() => {
                    let Some(batch) = batch else { break Err(anyhow::anyhow!("the log reader stopped")) };
                    for c in batch {
                        self.take(&current, c, &mut window, &mut devices, &mut ready, &mut seq, &busy, &mut cooled, &label);
                    }
                }
                Some((device, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                    busy.remove(&device);
                    match outcome {
                        Outcome::Delivered => {
                            if let Some(item) = devices.get(&device).and_then(|q| q.front()) {
                                let age = Timestamp::now().millis() - item.envelope.received_at.millis();
                                metrics::histogram!(NOTIFY_LATENCY_SECONDS.name).record(age.max(0) as f64 / 1000.0);
                                metrics::counter!(NOTIFY_DELIVERED_TOTAL.name, "subscription" => label.clone()).increment(1);
                                window.done(item.position);
                            }
                            finish_head(&mut devices, &device, &mut ready, &mut seq);
                        }
                        Outcome::Failed { reason, retry_after } => {
                            metrics::counter!(NOTIFY_FAILED_TOTAL.name, "subscription" => label.clone(), "reason" => reason).increment(1);
                            if let Some(item) = devices.get_mut(&device).and_then(|q| q.front_mut()) {
                                let first = *item.first_failure.get_or_insert_with(Instant::now);
                                item.last_reason = reason;
                                item.attempt += 1;
                                if first.elapsed() >= self.config.retry_window {
                                    let why = format!("{reason} (failing for {}s)", first.elapsed().as_secs());
                                    busy.insert(device.clone());
                                    in_flight.push(self.dead_letter(&current, item, why, "window", &device));
                                } else {
                                    let delay = self.backoff(item.attempt - 1).max(retry_after.unwrap_or_default().min(self.config.retry_max));
                                    item.not_before = Instant::now() + delay;
                                    seq += 1;
                                    ready.insert((item.not_before, seq), device);
                                }
                            }
                        }
                        Outcome::Permanent { status } => {
                            metrics::counter!(NOTIFY_FAILED_TOTAL.name, "subscription" => label.clone(), "reason" => "status_4xx").increment(1);
                            if let Some(item) = devices.get_mut(&device).and_then(|q| q.front_mut()) {
                                item.attempt += 1;
                                busy.insert(device.clone());
                                in_flight.push(self.dead_letter(&current, item, format!("status {status}"), "permanent", &device));
                            }
                        }
                        Outcome::Refused { why } => {
                            metrics::counter!(NOTIFY_FAILED_TOTAL.name, "subscription" => label.clone(), "reason" => "refused").increment(1);
                            if let Some(item) = devices.get_mut(&device).and_then(|q| q.front_mut()) {
                                busy.insert(device.clone());
                                in_flight.push(self.dead_letter(&current, item, format!("refused: {why}"), "permanent", &device));
                            }
                        }
                        Outcome::DeadLettered { why } => {
                            metrics::counter!(NOTIFY_DEAD_LETTERS_TOTAL.name, "subscription" => label.clone(), "reason" => why).increment(1);
                            if let Some(item) = devices.get(&device).and_then(|q| q.front()) {
                                window.done(item.position);
                            }
                            finish_head(&mut devices, &device, &mut ready, &mut seq);
                        }
                        Outcome::Gone => {
                            metrics::counter!(NOTIFY_FAILED_TOTAL.name, "subscription" => label.clone(), "reason" => "gone").increment(1);
                            // The device's head stays unsent (and uncommitted): a resume sends it.
                            held.push(device.clone());
                            if !gone {
                                gone = true;
                                tracing::warn!(subscription = %id, "notifier: the receiver answered 410 Gone; pausing the subscription");
                                let paused = SubscriptionSet { paused: true, ..current.clone() };
                                let sink = self.sink.clone();
                                in_flight.push(Box::pin(async move {
                                    if let Err(e) = sink(Report::SubscriptionSet(paused)).await {
                                        tracing::error!(error = %e, "notifier: cannot pause the subscription after a 410");
                                    }
                                    (device, Outcome::Held)
                                }));
                            }
                        }
                        Outcome::Held => {}
                    }
                }
                () = sleep_until(next_ready), if next_ready.is_some() && in_flight.len() < self.config.max_in_flight => {}
                changed = sub.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    current = sub.borrow_and_update().0.clone();
                    secrets = self.open_secrets(&current);
                    // Any change this task sees is of an active subscription (a paused one's
                    // task is stopped): after a 410, it was resumed before the pause showed.
                    if gone {
                        gone = false;
                        for device in held.drain(..) {
                            seq += 1;
                            ready.insert((Instant::now(), seq), device);
                        }
                    }
                }
                _ = shutdown.wait_for(|v| *v) => break Ok(()),
                // Nothing happening (a receiver hangs, the window is full): the gauges below
                // stay current.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let (commit, freed) = window.advance();
            if freed > 0 {
                room.add_permits(freed);
            }
            if !commit.is_empty() {
                commit_tx.send_modify(|c| merge(c, &commit));
            }
            if last_gauge.elapsed() > Duration::from_secs(1) {
                last_gauge = Instant::now();
                let heads = || devices.values().filter_map(|q| q.front());
                let oldest = heads()
                    .map(|i| i.envelope.received_at.millis())
                    .min()
                    .map_or(0.0, |t| (Timestamp::now().millis() - t).max(0) as f64 / 1000.0);
                metrics::gauge!(NOTIFY_OLDEST_UNDELIVERED_SECONDS.name, "subscription" => label.clone()).set(oldest);
                let failing = heads().any(|i| i.first_failure.is_some_and(|f| f.elapsed() > FAILING_AFTER));
                metrics::gauge!(NOTIFY_FAILING.name, "subscription" => label.clone()).set(f64::from(u8::from(failing)));
                metrics::gauge!(NOTIFY_HELD_RECORDS.name, "subscription" => label.clone()).set(window.held as f64);
                // Cooldowns long over are forgotten (kept twice their length plus five minutes
                // for late uploads): the map holds the devices of the last few periods, not
                // every device ever seen.
                let keep = Duration::from_millis(2 * current.cooldown_ms) + Duration::from_secs(300);
                cooled.retain(|_, (_, at)| at.elapsed() < keep);
            }
        };
        // What was done is committed; what was in flight is sent again next time.
        let _ = stop_tx.send(true);
        drop(in_flight);
        match reader.await {
            Ok(Ok(())) => result,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        }
    }

    fn open_secrets(&self, s: &SubscriptionSet) -> Option<Vec<Vec<u8>>> {
        match s.secrets.iter().map(|x| self.key.open(&s.subscription_id, x)).collect::<anyhow::Result<Vec<_>>>() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(subscription = %s.subscription_id, error = %e, "notifier: cannot open the signing secrets; nothing is sent");
                None
            }
        }
    }

    /// Retry delay after `attempt` failures: `retry_base` × 3^attempt, capped, ±20 % jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.retry_base.as_secs_f64() * 3f64.powi(attempt.min(30) as i32);
        let capped = base.min(self.config.retry_max.as_secs_f64());
        Duration::from_secs_f64(capped * (0.8 + 0.4 * fastrand::f64()))
    }

    /// Takes a record read from the log: done at once unless it is to be sent.
    #[allow(clippy::too_many_arguments)]
    fn take(
        &self,
        sub: &SubscriptionSet,
        c: Consumed,
        window: &mut Window,
        devices: &mut HashMap<String, VecDeque<Item>>,
        ready: &mut BTreeMap<(Instant, u64), String>,
        seq: &mut u64,
        busy: &std::collections::HashSet<String>,
        cooled: &mut HashMap<(String, String), (Timestamp, Instant)>,
        label: &str,
    ) {
        // Most records are for nobody here: ruled out on their kind and key, undecoded.
        if !sub.may_match(&c.report_kind, &c.key) {
            return window.push(c.position, 0);
        }
        let envelope = match Envelope::decode(&c.value) {
            Ok(e) if sub.matches(&e.report) => e,
            // Dead letters of this subscription to send again, in their order.
            Ok(Envelope { report: Report::DeadLettersReleased(r), .. })
                if r.subscription_id == sub.subscription_id && !r.replayed.is_empty() =>
            {
                let mut queued = 0;
                for letter in r.replayed {
                    let Ok(envelope) = Envelope::decode(&letter.record.0) else { continue };
                    let Some(cid) = envelope.report.cid().map(ToString::to_string) else { continue };
                    let item = Item {
                        position: c.position,
                        schema: letter.record_schema,
                        envelope,
                        value: letter.record.0,
                        webhook_id: letter.webhook_id,
                        attempt: 0,
                        not_before: Instant::now(),
                        first_failure: None,
                        last_reason: "",
                        replayed: true,
                    };
                    enqueue(devices, ready, seq, busy, cid, item);
                    queued += 1;
                }
                return window.push(c.position, queued);
            }
            // Not for this subscription, another record kind, or undecodable (the projector
            // quarantines those): nothing to send.
            _ => return window.push(c.position, 0),
        };
        if let (Report::EventStarted(r), true) = (&envelope.report, sub.cooldown_ms > 0) {
            let key = (r.cid.to_string(), r.event_type.to_string());
            match cooled.get(&key) {
                Some((last, _)) if (r.triggered_at.millis() - last.millis()).unsigned_abs() < sub.cooldown_ms => {
                    metrics::counter!(NOTIFY_SKIPPED_TOTAL.name, "subscription" => label.to_owned(), "reason" => "cooldown")
                        .increment(1);
                    return window.push(c.position, 0);
                }
                _ => {
                    cooled.insert(key, (r.triggered_at, Instant::now()));
                }
            }
        }
        window.push(c.position, 1);
        let webhook_id = wire::webhook_id(&sub.subscription_id, &envelope.report);
        let item = Item {
            position: c.position,
            schema: c.schema,
            envelope,
            value: c.value,
            webhook_id,
            attempt: 0,
            not_before: Instant::now(),
            first_failure: None,
            last_reason: "",
            replayed: false,
        };
        enqueue(devices, ready, seq, busy, c.key, item);
    }

    /// Puts `item` in the dead letters (on the log); the outcome says whether that is durable.
    fn dead_letter(
        &self,
        sub: &SubscriptionSet,
        item: &Item,
        reason: String,
        why: &'static str,
        device: &str,
    ) -> futures::future::BoxFuture<'static, (String, Outcome)> {
        let report = Report::SubscriptionDeadLettered(schemas::SubscriptionDeadLettered {
            subscription_id: sub.subscription_id.clone(),
            webhook_id: item.webhook_id.clone(),
            reason,
            attempts: item.attempt,
            record_schema: item.schema,
            record: schemas::Blob(item.value.clone()),
        });
        let (sink, device) = (self.sink.clone(), device.to_owned());
        Box::pin(async move {
            match sink(report).await {
                Ok(()) => (device, Outcome::DeadLettered { why }),
                Err(e) => {
                    tracing::warn!(error = %e, "notifier: cannot put a dead letter on the log; retrying");
                    (device, Outcome::Failed { reason: "dead_letter_write", retry_after: None })
                }
            }
        })
    }

    /// One attempt to deliver `item`.
    fn attempt(
        &self,
        sub: &SubscriptionSet,
        secrets: &[Vec<u8>],
        item: &Item,
        device: &str,
    ) -> futures::future::BoxFuture<'static, (String, Outcome)> {
        if let Err(why) = super::safety::check_url(&sub.url, self.config.allow_http, self.config.allow_private) {
            let device = device.to_owned();
            return Box::pin(async move { (device, Outcome::Refused { why }) });
        }
        let now = Timestamp::now();
        let body = wire::body(item.schema, &item.envelope, now);
        let ts = now.millis() / 1000;
        let signature = wire::signature(secrets, &item.webhook_id, ts, &body);
        let request = self
            .client
            .post(&sub.url)
            .header("content-type", "application/json")
            .header("webhook-id", &item.webhook_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body);
        let device = device.to_owned();
        Box::pin(async move {
            let outcome = match request.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after =
                        resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(retry_after);
                    // The body is not read: a receiver's answer is its status. Dropping the
                    // response closes a connection whose body is still coming (a slow drip
                    // costs nothing here).
                    drop(resp);
                    if status.is_success() {
                        Outcome::Delivered
                    } else if status.as_u16() == 410 {
                        Outcome::Gone
                    } else if status.is_client_error() && ![408, 409, 425, 429].contains(&status.as_u16()) {
                        Outcome::Permanent { status: status.as_u16() }
                    } else {
                        let reason = match status.as_u16() {
                            500..=599 => "status_5xx",
                            400..=499 => "status_4xx",
                            _ => "status_other",
                        };
                        Outcome::Failed { reason, retry_after }
                    }
                }
                Err(e) if e.is_timeout() => Outcome::Failed { reason: "timeout", retry_after: None },
                // A name that resolves only to internal addresses: refused, not retried.
                Err(e) if e.is_connect() && format!("{e:?}").contains("SSRF protection") => {
                    Outcome::Refused { why: "the receiver's name resolves to no public address".into() }
                }
                Err(e) if e.is_connect() => Outcome::Failed { reason: "connect", retry_after: None },
                Err(_) => Outcome::Failed { reason: "other", retry_after: None },
            };
            (device, outcome)
        })
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date (a date already
/// past is no delay).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(s) => Some(Duration::from_secs(s)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()
            .map(|at| at.duration_since(std::time::SystemTime::now()).unwrap_or_default()),
    }
}

/// Queues `item` behind `device`'s others; ready at once when it is the only one.
fn enqueue(
    devices: &mut HashMap<String, VecDeque<Item>>,
    ready: &mut BTreeMap<(Instant, u64), String>,
    seq: &mut u64,
    busy: &std::collections::HashSet<String>,
    device: String,
    item: Item,
) {
    let q = devices.entry(device.clone()).or_default();
    q.push_back(item);
    if q.len() == 1 && !busy.contains(&device) {
        *seq += 1;
        ready.insert((Instant::now(), *seq), device);
    }
}

/// The head of `device`'s queue is done: the next one (if any) may go now.
fn finish_head(
    devices: &mut HashMap<String, VecDeque<Item>>,
    device: &str,
    ready: &mut BTreeMap<(Instant, u64), String>,
    seq: &mut u64,
) {
    if let Some(q) = devices.get_mut(device) {
        q.pop_front();
        match q.front() {
            Some(next) => {
                *seq += 1;
                ready.insert((next.not_before, *seq), device.to_owned());
            }
            None => {
                devices.remove(device);
            }
        }
    }
}

/// Keeps the highest position per partition.
fn merge(into: &mut Vec<Position>, new: &[Position]) {
    for p in new {
        match into.iter_mut().find(|q| q.partition == p.partition) {
            Some(q) => q.offset = q.offset.max(p.offset),
            None => into.push(*p),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// How often a subscription commits its position at most: a kill -9 re-sends what was in
/// flight and what was answered in the last this-long (receivers de-duplicate by
/// `webhook-id`).
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// The reader half: polls while the window has room, commits what the deliverer says.
async fn read(
    mut consumer: Box<dyn LogConsumer>,
    room: Arc<Semaphore>,
    batches: mpsc::UnboundedSender<Vec<Consumed>>,
    mut commits: watch::Receiver<Vec<Position>>,
    stop: watch::Receiver<bool>,
    label: String,
) -> anyhow::Result<()> {
    let mut last_lag = Instant::now() - Duration::from_secs(10);
    let mut last_commit = Instant::now() - COMMIT_EVERY;
    loop {
        let stopping = *stop.borrow();
        // At most one commit per COMMIT_EVERY (and a last one when stopping): a commit of the
        // embedded log is two fsyncs, and a subscription that filters out a burst's records
        // would otherwise commit after every poll, competing with ingest's group commits.
        if commits.has_changed().unwrap_or(false) && (stopping || last_commit.elapsed() >= COMMIT_EVERY) {
            last_commit = Instant::now();
            let positions = commits.borrow_and_update().clone();
            if let Err(e) = consumer.commit(&positions).await {
                tracing::warn!(subscription = %label, error = %e, "notifier: commit failed; the next one covers it");
            }
        }
        if stopping {
            return Ok(());
        }
        if last_lag.elapsed() > Duration::from_secs(1) {
            last_lag = Instant::now();
            if let Ok(lag) = consumer.lag().await {
                let total: i64 = lag.iter().map(|l| l.1).sum();
                metrics::gauge!(NOTIFY_LAG_RECORDS.name, "subscription" => label.clone()).set(total as f64);
            }
        }
        let free = room.available_permits().min(1000);
        if free == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // Never cancelled mid-poll (records it took would be lost to this member): a short
        // wait instead, so commits and the stop are seen promptly.
        let batch = consumer.poll(free, Duration::from_millis(100)).await?;
        if batch.is_empty() {
            continue;
        }
        room.acquire_many(batch.len() as u32).await?.forget();
        if batches.send(batch).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(retry_after(" 120 "), Some(Duration::from_secs(120)));
        let in_90s = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(90));
        let d = retry_after(&in_90s).expect("an HTTP-date");
        assert!(d > Duration::from_secs(85) && d <= Duration::from_secs(90), "{d:?}");
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn the_window_commits_only_below_the_first_report_not_done() {
        let p = |offset| Position { partition: 0, offset };
        let mut w = Window::default();
        for o in 0..4 {
            w.push(p(o), u32::from(o != 2));
        }
        w.push(p(4), 0);
        assert_eq!(w.advance(), (vec![], 0));
        w.done(p(0));
        w.done(p(3));
        assert_eq!(w.advance(), (vec![p(1)], 1));
        w.done(p(1));
        assert_eq!(w.advance(), (vec![p(5)], 4));
        assert_eq!(w.held, 0);
    }
}
