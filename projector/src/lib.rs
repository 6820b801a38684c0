//! projector: turns the report log into the day-partitioned tables.
//!
//! The loop is: gather a batch (bounded by records and by time), decode it, write it to the
//! store, and only then commit the batch's positions. A crash between write and commit means
//! the batch is written again after restart — harmless, because the store's apply is
//! idempotent. So delivery is at-least-once and the effect exactly-once: replaying the log
//! from the start yields identical tables. Store writes are paced to a configurable ceiling,
//! so the store sees a flat rate however bursty the devices are; the log absorbs the rest.
//!
//! Errors are of two kinds. A transient one (the store or the log unreachable) is retried
//! with backoff: nothing is lost by waiting. A permanent one — a record that does not decode,
//! or that the store refuses as [`StoreError::Rejected`] — would halt the partition forever
//! if retried, so the record is set aside in the store's dead-letter table with the reason
//! (`daybook quarantine list` / `replay`), counted in `daybook_projector_quarantined_total`,
//! logged, and the rest of the batch goes on. The store names the refused record when it can;
//! otherwise the batch is halved until the refused record is alone.
//!
//! Records of partitions a rebalance revoked are dropped before every write attempt: the new
//! owner writes them, and a stale write after its newer ones must not happen. (The stores'
//! newer-wins rule makes even that harmless, but it is cheaper not to write at all.)

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use schemas::{DecodeError, Envelope, Timestamp};
use seams::log::{commit_positions, retain_owned};
use seams::metric::{Kind, Metric, Unit};
use seams::{Consumed, LogConsumer, LogError, ProjectionStore, Quarantined, ReportLog, StoreError};
use tokio::sync::watch;

/// Settings of a projector.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Consumer group (all projectors of a deployment share it).
    pub group: String,
    /// Most reports in one store batch.
    pub max_batch: usize,
    /// How long to keep gathering a batch once its first report arrived.
    pub linger: Duration,
    /// Ceiling on store rows written per second (`None`: unpaced).
    pub max_rows_per_s: Option<u64>,
    /// Read (and decode) the next batch while the current one is written, so that reading the
    /// log and writing the store overlap instead of taking turns. The read ahead takes only
    /// what the log already holds (it does not wait for more), and its records are committed
    /// only once written, as any batch's. It holds a second batch in memory. On by default for
    /// live projectors (`--read-ahead`) and for replays (`rebuild`): on Kafka the fetch of
    /// the next batch otherwise waits for every store write (docs/deployment.md).
    pub prefetch: bool,
    /// How often, while records flow, the lag gauge is set (and, in
    /// [`run_until_caught_up`], the lag checked).
    pub lag_every: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            group: "daybook-projector".into(),
            max_batch: 16_384,
            linger: Duration::from_millis(50),
            max_rows_per_s: None,
            prefetch: true,
            lag_every: Duration::from_secs(1),
        }
    }
}

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The log failed in a way retrying does not fix.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A record of a schema version this build does not know: upgrade the projector.
    #[error("record at partition {partition} offset {offset} has {source}; upgrade daybook to read it")]
    NewerSchema {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// The decode error.
        source: DecodeError,
    },
}

/// What one run did (for tests and logs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    /// Reports written to the store.
    pub reports: u64,
    /// Store rows written.
    pub rows: u64,
    /// Records quarantined because they could not be decoded.
    pub undecodable: u64,
    /// Records quarantined in all (undecodable or refused by the store).
    pub quarantined: u64,
    /// Records dropped because a rebalance revoked their partition before they were written.
    pub revoked: u64,
}

/// Runs the projector until `shutdown` turns true; finishes (writes and commits) the batch in
/// hand before returning.
pub async fn run(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    config: ProjectorConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Progress, ProjectorError> {
    run_inner(log, store, config, shutdown, None).await
}

/// Where a [`run_until_caught_up`] stands: what it wrote so far and the group's lag (records
/// of the log not yet consumed, all partitions) at the last check.
#[derive(Debug, Default, Clone, Copy)]
pub struct CatchUp {
    /// What was written so far.
    pub progress: Progress,
    /// Records left, at the last check.
    pub lag: i64,
    /// Whether the run is done (the last call).
    pub caught_up: bool,
}

/// Runs the projector until its group has consumed the whole log — a poll came back empty
/// (or a batch was committed) and the group's lag is 0 on every partition it was assigned,
/// hence at least the head of every partition at start was reached — or until `shutdown`.
/// Calls `on_check` after every lag check (at most about once a second while records
/// flow); the last one has `caught_up` set unless `shutdown` came first. For rebuilds: a fresh group
/// from the start of the log into an empty store.
pub async fn run_until_caught_up(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    config: ProjectorConfig,
    shutdown: watch::Receiver<bool>,
    mut on_check: impl FnMut(CatchUp) + Send,
) -> Result<Progress, ProjectorError> {
    run_inner(log, store, config, shutdown, Some(&mut on_check)).await
}

/// The lag check of [`run_until_caught_up`]: `true` once every assigned partition is at its
/// high watermark (no assignment yet — a Kafka group still joining — is not caught up).
async fn caught_up(
    consumer: &mut dyn LogConsumer,
    progress: Progress,
    on_check: &mut (dyn FnMut(CatchUp) + Send),
) -> bool {
    let lag = match consumer.lag().await {
        Ok(lag) => lag,
        Err(e) => {
            tracing::warn!(error = %e, "lag check failed; retrying");
            return false;
        }
    };
    let total = lag.iter().map(|l| l.1).sum::<i64>();
    let done = !lag.is_empty() && total == 0;
    on_check(CatchUp { progress, lag: total, caught_up: done });
    done
}

async fn run_inner(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    config: ProjectorConfig,
    mut shutdown: watch::Receiver<bool>,
    mut until_caught_up: Option<&mut (dyn FnMut(CatchUp) + Send)>,
) -> Result<Progress, ProjectorError> {
    let mut consumer = log.consumer(&config.group).await?;
    // Under a ceiling, a batch holds at most a tenth of a second's worth of rows, so the store
    // sees the rate spread evenly instead of big batches separated by pauses.
    let mut config = config;
    if let Some(per_s) = config.max_rows_per_s.filter(|r| *r > 0) {
        config.max_batch = config.max_batch.min((per_s / 10).max(1) as usize);
    }
    let mut progress = Progress::default();
    let pacer = Pacer::new(config.max_rows_per_s);
    let mut last_lag = Instant::now();
    let mut log_backoff = Duration::from_millis(200);
    tracing::info!(group = %config.group, log = log.backend(), store = store.backend(), "projector started");
    // With `prefetch`: the batch read (and decoded) while the previous one was written.
    let mut prefetched: Option<Result<Vec<Consumed>, LogError>> = None;
    let mut decoded_ahead: Option<Decoding> = None;
    while !*shutdown.borrow() {
        let read_ahead = prefetched.is_some();
        let batch = match prefetched.take() {
            Some(b) => b,
            None => tokio::select! {
                b = gather(consumer.as_mut(), &config, POLL_WAIT) => b,
                _ = shutdown.changed() => break,
            },
        };
        let mut batch = match batch {
            Ok(b) => {
                log_backoff = Duration::from_millis(200);
                b
            }
            // A broker restarting, a topic not yet visible, a network blip: nothing was
            // consumed, so waiting and polling again loses nothing.
            Err(e @ (LogError::Unavailable(_) | LogError::Timeout(_))) => {
                metrics::counter!(PROJECTOR_LOG_ERRORS_TOTAL.name).increment(1);
                tracing::warn!(error = %e, retry_in_ms = log_backoff.as_millis() as u64, "log read failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(log_backoff) => {}
                    _ = shutdown.changed() => {}
                }
                log_backoff = (log_backoff * 2).min(Duration::from_secs(10));
                continue;
            }
            Err(LogError::Closed) => break,
            Err(e) => return Err(e.into()),
        };
        if batch.is_empty() {
            if *shutdown.borrow() {
                break;
            }
            // An empty read-ahead only says nothing was fetched yet while the last batch was
            // written: poll again at once. The lag (a round trip to the broker, which took
            // 0.3–1.2 s from tansu in the burst benchmark) waits for a poll that found nothing,
            // unless a replay is watching for its end.
            if read_ahead && until_caught_up.is_none() {
                continue;
            }
            report_lag(consumer.as_mut()).await;
            if let Some(f) = until_caught_up.as_deref_mut() {
                if caught_up(consumer.as_mut(), progress, f).await {
                    break;
                }
            }
            continue;
        }
        let (mut items, mut quarantine) = match decoded_ahead.take() {
            Some(d) => d?,
            None => decode(&batch)?,
        };
        progress.undecodable += quarantine.len() as u64;
        let first = if config.prefetch {
            // The first attempt to write this batch, with the next batch read meanwhile (both
            // block on the blocking pool, so they run side by side).
            let revoked = drop_revoked(consumer.as_ref(), &batch, &mut items);
            let started = Instant::now();
            let read_ahead = async {
                // Only what the log holds already: waiting for more would hold up the commit.
                let next = gather(consumer.as_mut(), &config, Duration::ZERO).await;
                // Decoded here, while the store writes (its error, if any, comes with the batch).
                let decoded = next.as_ref().ok().filter(|b| !b.is_empty()).map(|b| decode(b));
                (next, decoded)
            };
            let (outcome, (next, decoded)) =
                tokio::join!(apply_isolating(store.as_ref(), &items.envelopes), read_ahead);
            prefetched = Some(next);
            decoded_ahead = decoded;
            Some(FirstAttempt { outcome, started, revoked })
        } else {
            None
        };
        let written = write(store.as_ref(), consumer.as_mut(), &batch, &mut items, &mut shutdown, first).await;
        // Shutting down before the write succeeded: nothing committed, the batch is replayed.
        let Some((rows, rejected)) = written else { break };
        progress.revoked += rejected.revoked;
        quarantine.extend(rejected.records);
        if !quarantine.is_empty() && !set_aside(store.as_ref(), &quarantine, &mut shutdown).await {
            break;
        }
        progress.quarantined += quarantine.len() as u64;
        let envelopes = items.envelopes;
        // Commit only what this member still owns (the log ignores the rest anyway).
        retain_owned(&*consumer, &mut batch);
        match consumer.commit(&commit_positions(&batch)).await {
            Ok(()) => {}
            // The log shut down under us: the batch is written but not committed, so the next
            // start replays it (harmlessly: apply is idempotent).
            Err(LogError::Closed) => break,
            // A commit that failed now is covered by the next one (positions only move
            // forward); at worst this batch is replayed after a restart.
            Err(e @ (LogError::Unavailable(_) | LogError::Timeout(_))) => {
                metrics::counter!(PROJECTOR_COMMIT_ERRORS_TOTAL.name).increment(1);
                tracing::warn!(error = %e, "commit failed; the next commit covers this batch");
            }
            Err(e) => return Err(e.into()),
        }
        progress.reports += envelopes.len() as u64;
        progress.rows += rows;
        metrics::counter!(PROJECTOR_REPORTS_TOTAL.name).increment(envelopes.len() as u64);
        metrics::counter!(PROJECTOR_ROWS_TOTAL.name).increment(rows);
        metrics::histogram!(PROJECTOR_BATCH_REPORTS.name).record(batch.len() as f64);
        if last_lag.elapsed() > config.lag_every {
            let lag = report_lag(consumer.as_mut()).await;
            last_lag = Instant::now();
            // Records read ahead are not written yet: the lag (counted from what was read) must
            // not end a run that still holds them.
            let held = prefetched.as_ref().map_or(0, |b| b.as_ref().map_or(0, Vec::len)) as i64;
            if let Some(f) = until_caught_up.as_deref_mut() {
                if held > 0 {
                    if let Some(lag) = lag {
                        f(CatchUp { progress, lag: lag + held, caught_up: false });
                    }
                } else if caught_up(consumer.as_mut(), progress, f).await {
                    break;
                }
            }
        }
        pacer.pace(rows).await;
    }
    tracing::info!(reports = progress.reports, rows = progress.rows, "projector stopped");
    Ok(progress)
}

/// Sets the lag gauge; the lag (`None` if it could not be read).
async fn report_lag(consumer: &mut dyn LogConsumer) -> Option<i64> {
    let total = consumer.lag().await.ok()?.iter().map(|l| l.1).sum::<i64>();
    metrics::gauge!(PROJECTOR_LAG_RECORDS.name).set(total as f64);
    Some(total)
}

/// How long the first poll of a batch waits for a record.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// Polls until `max_batch` records or `linger` after the first one. Fails only when the first
/// poll does: once records were handed out, they are returned whatever happens next.
/// `first_wait`: how long the first poll waits for a record.
async fn gather(
    consumer: &mut dyn LogConsumer,
    config: &ProjectorConfig,
    first_wait: Duration,
) -> Result<Vec<Consumed>, LogError> {
    let mut batch = consumer.poll(config.max_batch, first_wait).await?;
    if batch.is_empty() {
        return Ok(batch);
    }
    let deadline = Instant::now() + config.linger;
    while batch.len() < config.max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(config.max_batch - batch.len(), left).await {
            Ok(more) if more.is_empty() => break,
            Ok(more) => batch.extend(more),
            // The records already polled are consumed (the member's read position is past
            // them): dropping them here would skip them for good. Write what we have; the
            // next poll meets the error again if it lasts.
            Err(e) => {
                tracing::warn!(error = %e, records = batch.len(), "log read failed mid-batch; writing what was read");
                break;
            }
        }
    }
    Ok(batch)
}

/// The decoded records of a batch: each one's index in the batch, and the envelopes (kept
/// apart so the store takes them without a copy).
#[derive(Debug, Default)]
struct Decoded {
    at: Vec<usize>,
    envelopes: Vec<Envelope>,
}

impl Decoded {
    /// Keeps the records for which `keep(index in the batch, position in self)` holds.
    fn retain(&mut self, mut keep: impl FnMut(usize, usize) -> bool) {
        let mut k = 0;
        let mut flags = Vec::with_capacity(self.at.len());
        self.at.retain(|&i| {
            let f = keep(i, k);
            flags.push(f);
            k += 1;
            f
        });
        let mut flags = flags.into_iter();
        self.envelopes.retain(|_| flags.next().unwrap_or(false));
    }
}

fn quarantined(c: &Consumed, reason: String) -> Quarantined {
    Quarantined {
        position: c.position,
        key: c.key.clone(),
        value: c.value.clone(),
        reason,
        quarantined_at: Timestamp::now(),
    }
}

/// What [`decode`] returns.
type Decoding = Result<(Decoded, Vec<Quarantined>), ProjectorError>;

/// Decodes a batch. Malformed records are set aside for quarantine (they can never be
/// projected and must not wedge the partition); a record from a newer schema stops the
/// projector, since setting it aside would hide a valid report until an operator replays it.
fn decode(batch: &[Consumed]) -> Decoding {
    let mut out = Decoded { at: Vec::with_capacity(batch.len()), envelopes: Vec::with_capacity(batch.len()) };
    let mut bad = Vec::new();
    for (i, c) in batch.iter().enumerate() {
        match Envelope::decode(&c.value) {
            Ok(e) => {
                out.at.push(i);
                out.envelopes.push(e);
            }
            Err(source @ DecodeError::UnknownVersion(_)) => {
                return Err(ProjectorError::NewerSchema {
                    partition: c.position.partition,
                    offset: c.position.offset,
                    source,
                })
            }
            Err(e) => {
                metrics::counter!(PROJECTOR_UNDECODABLE_TOTAL.name).increment(1);
                bad.push(quarantined(c, format!("undecodable: {e}")));
            }
        }
    }
    Ok((out, bad))
}

/// What a write set aside.
#[derive(Debug, Default)]
struct Rejected {
    /// Records the store refused for good.
    records: Vec<Quarantined>,
    /// Records dropped because their partition was revoked.
    revoked: u64,
}

/// Drops the records of partitions this member no longer owns; how many.
fn drop_revoked(consumer: &dyn LogConsumer, batch: &[Consumed], items: &mut Decoded) -> u64 {
    let before = items.at.len();
    items.retain(|i, _| consumer.owns(batch[i].position.partition));
    let dropped = before - items.at.len();
    if dropped > 0 {
        metrics::counter!(PROJECTOR_REVOKED_RECORDS_TOTAL.name).increment(dropped as u64);
        tracing::info!(records = dropped, "dropping records of partitions revoked by a rebalance");
    }
    dropped as u64
}

/// An attempt to write a batch made before [`write`] was called (after [`drop_revoked`]).
struct FirstAttempt {
    outcome: Result<(u64, Vec<(usize, String)>), StoreError>,
    started: Instant,
    revoked: u64,
}

/// Writes until the store takes the batch (less the records it refuses for good), backing off
/// between transient failures; `None` if shutdown came first. Before every attempt, drops the
/// records of partitions this member no longer owns. `first`: the outcome of a first attempt
/// already made.
async fn write(
    store: &dyn ProjectionStore,
    consumer: &mut dyn LogConsumer,
    batch: &[Consumed],
    items: &mut Decoded,
    shutdown: &mut watch::Receiver<bool>,
    mut first: Option<FirstAttempt>,
) -> Option<(u64, Rejected)> {
    let mut backoff = Duration::from_millis(100);
    let mut revoked = 0;
    loop {
        let (outcome, started) = match first.take() {
            Some(done) => {
                revoked += done.revoked;
                (done.outcome, done.started)
            }
            None => {
                revoked += drop_revoked(consumer, batch, items);
                let started = Instant::now();
                (apply_isolating(store, &items.envelopes).await, started)
            }
        };
        match outcome {
            Ok((rows, refused)) => {
                metrics::histogram!(PROJECTOR_WRITE_SECONDS.name).record(started.elapsed().as_secs_f64());
                let records =
                    refused.iter().map(|(k, reason)| quarantined(&batch[items.at[*k]], reason.clone())).collect();
                // Refused records stay out of the count of reports written.
                items.retain(|_, k| !refused.iter().any(|(r, _)| *r == k));
                return Some((rows, Rejected { records, revoked }));
            }
            Err(e) => {
                metrics::counter!(PROJECTOR_WRITE_ERRORS_TOTAL.name).increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return None },
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Applies `items` in log order. A record the store refuses for good is left out and
/// reported (by its index in `items`) with the reason; the rest is applied. When the store
/// names the refused record, it is dropped directly; otherwise the refused part is halved
/// until the record is alone. A transient error fails the whole call (it is retried whole:
/// applying is idempotent).
async fn apply_isolating(
    store: &dyn ProjectionStore,
    items: &[Envelope],
) -> Result<(u64, Vec<(usize, String)>), StoreError> {
    let first = match store.apply(items).await {
        Ok(rows) => return Ok((rows, Vec::new())),
        Err(e) if e.is_permanent() => e,
        Err(e) => return Err(e),
    };
    let mut rows = 0;
    let mut refused = Vec::new();
    // Groups of indices into `items`, applied in log order: the stack's top is the earliest.
    let mut pending: Vec<(Vec<usize>, Option<StoreError>)> = vec![((0..items.len()).collect(), Some(first))];
    while let Some((group, known)) = pending.pop() {
        if group.is_empty() {
            continue;
        }
        let outcome = match known {
            Some(e) => Err(e),
            None => {
                let envs: Vec<Envelope> = group.iter().map(|&k| items[k].clone()).collect();
                store.apply(&envs).await
            }
        };
        match outcome {
            Ok(n) => rows += n,
            Err(StoreError::Rejected { index: Some(i), reason }) if i < group.len() => {
                refused.push((group[i], reason));
                let rest: Vec<usize> = group.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, k)| *k).collect();
                pending.push((rest, None));
            }
            Err(StoreError::Rejected { reason, .. }) => {
                if group.len() == 1 {
                    refused.push((group[0], reason));
                } else {
                    let (early, late) = group.split_at(group.len() / 2);
                    pending.push((late.to_vec(), None));
                    pending.push((early.to_vec(), None));
                }
            }
            Err(e) => return Err(e),
        }
    }
    refused.sort_by_key(|r| r.0);
    Ok((rows, refused))
}

/// Writes `records` to the dead-letter table, retrying transient failures; `false` if
/// shutdown came first.
async fn set_aside(store: &dyn ProjectionStore, records: &[Quarantined], shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.quarantine(records).await {
            Ok(()) => break,
            Err(e) => {
                metrics::counter!(PROJECTOR_WRITE_ERRORS_TOTAL.name).increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "quarantine write failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return false },
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    for q in records {
        let kind = if q.reason.starts_with("undecodable") { "undecodable" } else { "rejected" };
        metrics::counter!(PROJECTOR_QUARANTINED_TOTAL.name, "reason" => kind).increment(1);
        tracing::error!(
            partition = q.position.partition,
            offset = q.position.offset,
            key = %q.key,
            reason = %q.reason,
            "record quarantined; see `daybook quarantine list`"
        );
    }
    true
}

/// Keeps the store's write rate under a ceiling: after writing `rows`, waits until the
/// budget allows them. governor's GCRA bucket holds a tenth of a second of burst, so idle time
/// never banks a flood and no window boundary lets two windows' worth through at once.
#[derive(Debug)]
struct Pacer {
    limiter: Option<(DefaultDirectRateLimiter, NonZeroU32)>,
}

impl Pacer {
    fn new(per_s: Option<u64>) -> Self {
        let limiter = per_s.filter(|r| *r > 0).map(|per_s| {
            let clamp =
                |n: u64| NonZeroU32::new(n.clamp(1, u64::from(u32::MAX)) as u32).expect("clamped to at least 1");
            let burst = clamp(per_s / 10);
            (RateLimiter::direct(Quota::per_second(clamp(per_s)).allow_burst(burst)), burst)
        });
        Self { limiter }
    }

    async fn pace(&self, rows: u64) {
        let Some((limiter, burst)) = &self.limiter else { return };
        let mut left = rows;
        while left > 0 {
            let n = left.min(u64::from(burst.get())) as u32;
            // `n` never exceeds the burst, the only case in which this errs.
            let _ = limiter.until_n_ready(NonZeroU32::new(n).expect("n > 0")).await;
            left -= u64::from(n);
        }
    }
}

/// The metrics this crate emits (see [`seams::metric`]).
pub const METRICS: &[Metric] = &[
    PROJECTOR_REPORTS_TOTAL,
    PROJECTOR_ROWS_TOTAL,
    PROJECTOR_BATCH_REPORTS,
    PROJECTOR_WRITE_SECONDS,
    PROJECTOR_WRITE_ERRORS_TOTAL,
    PROJECTOR_COMMIT_ERRORS_TOTAL,
    PROJECTOR_LOG_ERRORS_TOTAL,
    PROJECTOR_LAG_RECORDS,
    PROJECTOR_UNDECODABLE_TOTAL,
    PROJECTOR_QUARANTINED_TOTAL,
    PROJECTOR_REVOKED_RECORDS_TOTAL,
];

pub const PROJECTOR_REPORTS_TOTAL: Metric = Metric {
    name: "daybook_projector_reports_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Reports the projector wrote to the store and committed in the log.",
};

pub const PROJECTOR_ROWS_TOTAL: Metric = Metric {
    name: "daybook_projector_rows_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Store rows the projector wrote (one report writes one or more rows); paced under --max-rows-per-s.",
};

pub const PROJECTOR_BATCH_REPORTS: Metric = Metric {
    name: "daybook_projector_batch_reports",
    kind: Kind::Histogram,
    unit: Some(Unit::Count),
    labels: &[],
    help: "Log records in one projector batch (bounded by --max-batch and --linger-ms).",
};

pub const PROJECTOR_WRITE_SECONDS: Metric = Metric {
    name: "daybook_projector_write_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Time of one successful store write of a projector batch (isolating records the store refuses included).",
};

pub const PROJECTOR_WRITE_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_projector_write_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help:
        "Store writes by the projector (a batch, or its quarantined records) that failed and are retried with backoff; \
           nothing is committed in the log meanwhile.",
};

pub const PROJECTOR_COMMIT_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_projector_commit_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Log offset commits that failed after the batch was written (the next commit covers it).",
};

pub const PROJECTOR_LOG_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_projector_log_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Log reads by the projector that failed (log unavailable or timed out); it waits and polls again.",
};

pub const PROJECTOR_LAG_RECORDS: Metric = Metric {
    name: "daybook_projector_lag_records",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Records in the log this projector has not projected yet (summed over its partitions); \
           refreshed at most once a second while busy, and whenever it finds nothing to read.",
};

pub const PROJECTOR_UNDECODABLE_TOTAL: Metric = Metric {
    name: "daybook_projector_undecodable_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Log records the projector could not decode (set aside in quarantine).",
};

pub const PROJECTOR_QUARANTINED_TOTAL: Metric = Metric {
    name: "daybook_projector_quarantined_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help: "Records set aside in the store's quarantine table instead of being projected, by reason (undecodable; \
           rejected: refused by the store for good); `daybook quarantine list` shows them.",
};

pub const PROJECTOR_REVOKED_RECORDS_TOTAL: Metric = Metric {
    name: "daybook_projector_revoked_records_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Records dropped from a batch before writing because a rebalance revoked their partition (its new owner writes them).",
};
