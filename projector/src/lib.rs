//! projector: turns the report log into the day-partitioned tables.
//!
//! The loop is: gather a batch (bounded by records and by time), decode it, write it to the
//! store, and only then commit the batch's positions. A crash between write and commit means
//! the batch is written again after restart — harmless, because the store's apply is
//! idempotent. So delivery is at-least-once and the effect exactly-once: replaying the log
//! from the start yields identical tables. Store writes are paced to a configurable ceiling,
//! so the store sees a flat rate however bursty the devices are; the log absorbs the rest.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use schemas::{DecodeError, Envelope};
use seams::log::commit_positions;
use seams::{Consumed, LogConsumer, LogError, ProjectionStore, ReportLog};
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
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            group: "daybook-projector".into(),
            max_batch: 16_384,
            linger: Duration::from_millis(50),
            max_rows_per_s: None,
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
    /// Records skipped because they could not be decoded.
    pub undecodable: u64,
}

/// Runs the projector until `shutdown` turns true; finishes (writes and commits) the batch in
/// hand before returning.
pub async fn run(
    log: Arc<dyn ReportLog>,
    store: Arc<dyn ProjectionStore>,
    config: ProjectorConfig,
    mut shutdown: watch::Receiver<bool>,
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
    while !*shutdown.borrow() {
        let batch = tokio::select! {
            b = gather(consumer.as_mut(), &config) => b,
            _ = shutdown.changed() => break,
        };
        let batch = match batch {
            Ok(b) => {
                log_backoff = Duration::from_millis(200);
                b
            }
            // A broker restarting, a topic not yet visible, a network blip: nothing was
            // consumed, so waiting and polling again loses nothing.
            Err(e @ (LogError::Unavailable(_) | LogError::Timeout(_))) => {
                metrics::counter!("daybook_projector_log_errors_total").increment(1);
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
            report_lag(consumer.as_mut()).await;
            continue;
        }
        let (envelopes, skipped) = decode(&batch)?;
        progress.undecodable += skipped;
        let rows = write(store.as_ref(), &envelopes, &mut shutdown).await;
        let Some(rows) = rows else { break }; // shutting down before the write succeeded: nothing committed
        match consumer.commit(&commit_positions(&batch)).await {
            Ok(()) => {}
            // The log shut down under us: the batch is written but not committed, so the next
            // start replays it (harmlessly: apply is idempotent).
            Err(LogError::Closed) => break,
            // A commit that failed now is covered by the next one (positions only move
            // forward); at worst this batch is replayed after a restart.
            Err(e @ (LogError::Unavailable(_) | LogError::Timeout(_))) => {
                metrics::counter!("daybook_projector_commit_errors_total").increment(1);
                tracing::warn!(error = %e, "commit failed; the next commit covers this batch");
            }
            Err(e) => return Err(e.into()),
        }
        progress.reports += envelopes.len() as u64;
        progress.rows += rows;
        metrics::counter!("daybook_projector_reports_total").increment(envelopes.len() as u64);
        metrics::counter!("daybook_projector_rows_total").increment(rows);
        metrics::histogram!("daybook_projector_batch_reports").record(batch.len() as f64);
        if last_lag.elapsed() > Duration::from_secs(1) {
            report_lag(consumer.as_mut()).await;
            last_lag = Instant::now();
        }
        pacer.pace(rows).await;
    }
    tracing::info!(reports = progress.reports, rows = progress.rows, "projector stopped");
    Ok(progress)
}

async fn report_lag(consumer: &mut dyn LogConsumer) {
    if let Ok(lag) = consumer.lag().await {
        metrics::gauge!("daybook_projector_lag_records").set(lag.iter().map(|l| l.1).sum::<i64>() as f64);
    }
}

/// Polls until `max_batch` records or `linger` after the first one.
async fn gather(consumer: &mut dyn LogConsumer, config: &ProjectorConfig) -> Result<Vec<Consumed>, LogError> {
    let mut batch = consumer.poll(config.max_batch, Duration::from_millis(500)).await?;
    if batch.is_empty() {
        return Ok(batch);
    }
    let deadline = Instant::now() + config.linger;
    while batch.len() < config.max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let more = consumer.poll(config.max_batch - batch.len(), left).await?;
        if more.is_empty() {
            break;
        }
        batch.extend(more);
    }
    Ok(batch)
}

/// Decodes a batch. Malformed records are counted and skipped (they can never be projected
/// and must not wedge the partition); a record from a newer schema stops the projector, since
/// skipping it would lose a valid report.
fn decode(batch: &[Consumed]) -> Result<(Vec<Envelope>, u64), ProjectorError> {
    let mut out = Vec::with_capacity(batch.len());
    let mut skipped = 0;
    for c in batch {
        match Envelope::decode(&c.value) {
            Ok(e) => out.push(e),
            Err(source @ DecodeError::UnknownVersion(_)) => {
                return Err(ProjectorError::NewerSchema {
                    partition: c.position.partition,
                    offset: c.position.offset,
                    source,
                })
            }
            Err(e) => {
                skipped += 1;
                metrics::counter!("daybook_projector_undecodable_total").increment(1);
                tracing::error!(partition = c.position.partition, offset = c.position.offset, error = %e, "skipping undecodable record");
            }
        }
    }
    Ok((out, skipped))
}

/// Writes until the store takes the batch, backing off between failures; `None` if shutdown
/// came first.
async fn write(store: &dyn ProjectionStore, batch: &[Envelope], shutdown: &mut watch::Receiver<bool>) -> Option<u64> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match store.apply(batch).await {
            Ok(rows) => {
                metrics::histogram!("daybook_projector_write_seconds").record(started.elapsed().as_secs_f64());
                return Some(rows);
            }
            Err(e) => {
                metrics::counter!("daybook_projector_write_errors_total").increment(1);
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
