//! Bounded answers while the log is down: every append waits at most a deadline, and once an
//! append failed or ran out of time, requests are refused at once (503 `log_unavailable`)
//! instead of each one waiting out the deadline — except one probe at a time, which finds out
//! when the log is back.
//!
//! Why not a crate: the tower/axum circuit breakers count failures over windows and need a
//! `Service` around the log; here the state is one atomic instant ("refuse until"), shared by
//! every request, and the probe is claimed with one compare-and-swap. Without a breaker a
//! broker outage would hold every device connection for the full deadline, and devices that
//! time out and retry would multiply the load exactly when the system is weakest.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seams::metric::{Kind, Metric};

pub(crate) const INGEST_LOG_AVAILABLE: Metric = Metric {
    name: "daybook_ingest_log_available",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "1 while ingest's appends to the log succeed; 0 while they fail or time out and reports are refused \
           with 503 log_unavailable (one probe request per interval finds out when the log is back).",
};

/// The log's state as ingest has seen it.
#[derive(Debug)]
pub(crate) struct LogBreaker {
    /// Time base of the instants below.
    epoch: Instant,
    /// Until when (µs since `epoch`) requests are refused without trying; 0 when the log is up.
    refuse_until: AtomicI64,
    /// How long a failed probe keeps the breaker open before the next one.
    probe_interval: Duration,
    /// The deadline of one append (and of a probe).
    deadline: Duration,
    /// The last failure, for `/readyz` (its message is in `last_error`).
    failures: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

/// What a request may do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Append (the log is up, or this request is the probe).
    Try,
    /// Refuse at once: the log is down and another request is probing it.
    Refuse,
}

impl LogBreaker {
    pub(crate) fn new(deadline: Duration, probe_interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            refuse_until: AtomicI64::new(0),
            probe_interval,
            deadline,
            failures: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
        })
    }

    /// The deadline of one append.
    pub(crate) fn deadline(&self) -> Duration {
        self.deadline
    }

    fn now_us(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// Whether a request may append now. While the breaker is open, the first request after
    /// the probe interval becomes the probe: it moves "refuse until" past its own deadline,
    /// so every other request keeps being refused until the probe has its answer.
    pub(crate) fn admit(&self) -> Admit {
        let until = self.refuse_until.load(Ordering::Acquire);
        if until == 0 {
            return Admit::Try;
        }
        let now = self.now_us();
        if now < until {
            return Admit::Refuse;
        }
        let probe_until = now.saturating_add(i64::try_from(self.deadline.as_micros()).unwrap_or(i64::MAX));
        match self.refuse_until.compare_exchange(until, probe_until, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Admit::Try,
            Err(_) => Admit::Refuse,
        }
    }

    /// An append succeeded: the log is up.
    pub(crate) fn succeeded(&self) {
        if self.refuse_until.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("report log reachable again; accepting reports");
            metrics::gauge!(INGEST_LOG_AVAILABLE.name).set(1.0);
        }
    }

    /// An append failed (the log unreachable, or no confirmation within the deadline):
    /// refuse for the probe interval.
    pub(crate) fn failed(&self, why: &str) {
        let until = self.now_us().saturating_add(i64::try_from(self.probe_interval.as_micros()).unwrap_or(i64::MAX));
        let was = self.refuse_until.swap(until.max(1), Ordering::AcqRel);
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("breaker lock") = Some(why.to_owned());
        if was == 0 {
            tracing::error!(error = why, "report log unavailable; refusing reports with 503 until a probe succeeds");
            metrics::gauge!(INGEST_LOG_AVAILABLE.name).set(0.0);
        }
    }

    /// `Err(why)` while the breaker is open (for `/readyz`).
    pub(crate) fn health(&self) -> Result<(), String> {
        if self.refuse_until.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let why = self.last_error.lock().expect("breaker lock").clone().unwrap_or_default();
        Err(format!("ingest's appends are failing: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_breaker_refuses_all_but_one_probe_per_interval() {
        let b = LogBreaker::new(Duration::from_millis(200), Duration::from_millis(50));
        assert_eq!(b.admit(), Admit::Try);
        assert!(b.health().is_ok());
        b.failed("broker down");
        assert_eq!(b.admit(), Admit::Refuse, "refused at once, not after the deadline");
        assert!(b.health().unwrap_err().contains("broker down"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admit::Try, "the first request after the interval probes");
        assert_eq!(b.admit(), Admit::Refuse, "one probe at a time");
        b.failed("still down");
        assert_eq!(b.admit(), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(), Admit::Try);
        b.succeeded();
        assert_eq!(b.admit(), Admit::Try);
        assert_eq!(b.admit(), Admit::Try, "closed: everyone appends");
        assert!(b.health().is_ok());
    }

    #[test]
    fn a_probe_that_never_answers_gives_way_to_the_next_after_its_deadline() {
        let b = LogBreaker::new(Duration::from_millis(40), Duration::from_millis(10));
        b.failed("down");
        std::thread::sleep(Duration::from_millis(15));
        assert_eq!(b.admit(), Admit::Try);
        // The probe hangs (its caller was cancelled): past its deadline another may probe.
        assert_eq!(b.admit(), Admit::Refuse);
        std::thread::sleep(Duration::from_millis(45));
        assert_eq!(b.admit(), Admit::Try);
    }
}
