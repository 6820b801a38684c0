//! Fault injection at the seams: wrappers around a log, a store and a blob signer that fail,
//! slow down or hang chosen operations, so every failure mode can be produced on purpose — by
//! tests, and by an operator rehearsing an outage (`DAYBOOK_FAULTS`, docs/operations.md,
//! Failure behaviour).
//!
//! A plan names operations and what happens to them:
//!
//! ```text
//! DAYBOOK_FAULTS="append=hang; apply=fail_first:3,latency_ms:200; commit=fail_fraction:0.1"
//! ```
//!
//! Operations: `append`, `poll`, `commit` (log), `apply`, `read` (every viewer read),
//! `quarantine` (store), `sign` (both presign calls), `health` (any engine's readiness).
//! Faults: `fail_first:N` (the first N calls fail), `fail_fraction:F` (each call fails with
//! probability F), `latency_ms:MS` (every call waits first), `hang` (calls never return).
//! A failure is the engine's "unavailable" error, so callers see exactly what an outage gives.
//! Plans can be changed while running ([`Faults::set`]): a test hangs the log, then heals it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use schemas::{Day, DayOffset, DeviceId, Envelope, EventId, EventType};

use crate::blob::{BlobError, BlobSigner, ObjectKey, PresignedRequest};
use crate::log::{Consumed, LogConsumer, LogError, LogRecord, Position, ReportLog};
use crate::store::{DayPage, DigestView, EventDetail, ProjectionStore, Quarantined, StoreError};

/// The environment variable holding a plan for manual drills.
pub const ENV: &str = "DAYBOOK_FAULTS";

/// What happens to one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fault {
    /// The first N calls fail.
    pub fail_first: u64,
    /// Each call fails with this probability (0..=1).
    pub fail_fraction: f64,
    /// Every call waits this long first.
    pub latency: Duration,
    /// Calls never return.
    pub hang: bool,
}

/// The faults of every operation, shared by the wrappers and changeable at run time.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<HashMap<String, (Fault, u64)>>,
    injected: AtomicU64,
}

impl Faults {
    /// No faults yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Parses a plan (see the module docs).
    pub fn parse(plan: &str) -> Result<Arc<Self>, String> {
        let faults = Self::new();
        for entry in plan.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (op, spec) = entry.split_once('=').ok_or_else(|| format!("fault `{entry}`: expected OP=FAULT,…"))?;
            let op = op.trim();
            if !OPERATIONS.contains(&op) {
                return Err(format!("fault `{entry}`: unknown operation `{op}` (one of {})", OPERATIONS.join(", ")));
            }
            let mut fault = Fault::default();
            for part in spec.split(',').map(str::trim) {
                let (name, value) = part.split_once(':').unwrap_or((part, ""));
                let bad = |e: &dyn std::fmt::Display| format!("fault `{entry}`: `{part}`: {e}");
                match name {
                    "hang" => fault.hang = true,
                    "fail_first" => fault.fail_first = value.parse().map_err(|e| bad(&e))?,
                    "fail_fraction" => {
                        fault.fail_fraction = value.parse().map_err(|e| bad(&e))?;
                        if !(0.0..=1.0).contains(&fault.fail_fraction) {
                            return Err(bad(&"must be between 0 and 1"));
                        }
                    }
                    "latency_ms" => fault.latency = Duration::from_millis(value.parse().map_err(|e| bad(&e))?),
                    _ => return Err(bad(&"unknown fault (hang, fail_first:N, fail_fraction:F, latency_ms:MS)")),
                }
            }
            faults.set(op, fault);
        }
        Ok(faults)
    }

    /// The plan in `DAYBOOK_FAULTS`, if set.
    pub fn from_env() -> Result<Option<Arc<Self>>, String> {
        match std::env::var(ENV) {
            Ok(plan) if !plan.trim().is_empty() => Self::parse(&plan).map(Some),
            _ => Ok(None),
        }
    }

    /// Sets the fault of `op` (replacing any; its call count starts again).
    pub fn set(&self, op: &str, fault: Fault) {
        self.plan.lock().expect("faults lock").insert(op.to_owned(), (fault, 0));
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.plan.lock().expect("faults lock").clear();
    }

    /// How many calls failed or hung by injection so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Applies the fault of `op`: waits, hangs, or returns `Err` when the call must fail.
    pub async fn inject(&self, op: &str) -> Result<(), String> {
        let (fault, call) = {
            let mut plan = self.plan.lock().expect("faults lock");
            match plan.get_mut(op) {
                None => return Ok(()),
                Some((fault, calls)) => {
                    *calls += 1;
                    (fault.clone(), *calls)
                }
            }
        };
        if !fault.latency.is_zero() {
            tokio::time::sleep(fault.latency).await;
        }
        if fault.hang {
            self.injected.fetch_add(1, Ordering::Relaxed);
            std::future::pending::<()>().await;
        }
        if call <= fault.fail_first || (fault.fail_fraction > 0.0 && fastrand::f64() < fault.fail_fraction) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(format!("injected fault: {op} (call {call})"));
        }
        Ok(())
    }
}

const OPERATIONS: &[&str] = &["append", "poll", "commit", "apply", "read", "quarantine", "sign", "health"];

/// A log whose operations fail, slow down or hang as `faults` says.
#[derive(Debug)]
pub struct FaultyLog {
    inner: Arc<dyn ReportLog>,
    faults: Arc<Faults>,
}

impl FaultyLog {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ReportLog>, faults: Arc<Faults>) -> Arc<Self> {
        Arc::new(Self { inner, faults })
    }
}

#[async_trait]
impl ReportLog for FaultyLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Position>, LogError> {
        self.faults.inject("append").await.map_err(LogError::Unavailable)?;
        self.inner.append(records).await
    }
    async fn consumer(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let inner = self.inner.consumer(group).await?;
        Ok(Box::new(FaultyConsumer { inner, faults: self.faults.clone() }))
    }
    async fn consumer_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let inner = self.inner.consumer_at_end(group).await?;
        Ok(Box::new(FaultyConsumer { inner, faults: self.faults.clone() }))
    }
    async fn consumer_resuming_or_at_end(&self, group: &str) -> Result<Box<dyn LogConsumer>, LogError> {
        let inner = self.inner.consumer_resuming_or_at_end(group).await?;
        Ok(Box::new(FaultyConsumer { inner, faults: self.faults.clone() }))
    }
    async fn health(&self) -> Result<(), LogError> {
        self.faults.inject("health").await.map_err(LogError::Unavailable)?;
        self.inner.health().await
    }
    async fn shutdown(&self) -> Result<(), LogError> {
        self.inner.shutdown().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// A consumer whose polls and commits fail, slow down or hang as `faults` says.
#[derive(Debug)]
struct FaultyConsumer {
    inner: Box<dyn LogConsumer>,
    faults: Arc<Faults>,
}

#[async_trait]
impl LogConsumer for FaultyConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Consumed>, LogError> {
        self.faults.inject("poll").await.map_err(LogError::Unavailable)?;
        self.inner.poll(max_records, max_wait).await
    }
    async fn commit(&mut self, positions: &[Position]) -> Result<(), LogError> {
        self.faults.inject("commit").await.map_err(LogError::Unavailable)?;
        self.inner.commit(positions).await
    }
    async fn lag(&mut self) -> Result<Vec<(i32, i64)>, LogError> {
        self.inner.lag().await
    }
    fn owns(&self, partition: i32) -> bool {
        self.inner.owns(partition)
    }
}

/// A store whose writes and reads fail, slow down or hang as `faults` says.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ProjectionStore>,
    faults: Arc<Faults>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ProjectionStore>, faults: Arc<Faults>) -> Arc<Self> {
        Arc::new(Self { inner, faults })
    }

    async fn read(&self) -> Result<(), StoreError> {
        self.faults.inject("read").await.map_err(StoreError::Unavailable)
    }
}

#[async_trait]
impl ProjectionStore for FaultyStore {
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        self.faults.inject("apply").await.map_err(StoreError::Unavailable)?;
        self.inner.apply(batch).await
    }
    async fn quarantine(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        self.faults.inject("quarantine").await.map_err(StoreError::Unavailable)?;
        self.inner.quarantine(records).await
    }
    async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>, StoreError> {
        self.read().await?;
        self.inner.quarantined(limit).await
    }
    async fn release(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        self.faults.inject("quarantine").await.map_err(StoreError::Unavailable)?;
        self.inner.release(records).await
    }
    async fn subscriptions(&self) -> Result<Vec<crate::store::SubscriptionView>, StoreError> {
        self.read().await?;
        self.inner.subscriptions().await
    }
    async fn dead_letters(
        &self,
        subscription: &schemas::SubscriptionId,
        limit: u32,
    ) -> Result<Vec<crate::store::DeadLetterView>, StoreError> {
        self.read().await?;
        self.inner.dead_letters(subscription, limit).await
    }
    async fn purges(&self, limit: u32) -> Result<Vec<crate::store::Purge>, StoreError> {
        self.read().await?;
        self.inner.purges(limit).await
    }
    async fn purged(&self, done: &[crate::store::Purge]) -> Result<(), StoreError> {
        self.read().await?;
        self.inner.purged(done).await
    }
    async fn exports(
        &self,
        cid: &DeviceId,
        before: Option<&schemas::ExportId>,
        limit: u32,
    ) -> Result<Vec<crate::store::ExportView>, StoreError> {
        self.read().await?;
        self.inner.exports(cid, before, limit).await
    }
    async fn export(
        &self,
        cid: &DeviceId,
        id: &schemas::ExportId,
    ) -> Result<Option<crate::store::ExportView>, StoreError> {
        self.read().await?;
        self.inner.export(cid, id).await
    }
    async fn pending_exports(&self, limit: u32) -> Result<Vec<crate::store::ExportView>, StoreError> {
        self.read().await?;
        self.inner.pending_exports(limit).await
    }
    async fn kept(
        &self,
        cid: &DeviceId,
        after: Option<&EventId>,
        limit: u32,
    ) -> Result<Vec<crate::store::EventView>, StoreError> {
        self.read().await?;
        self.inner.kept(cid, after, limit).await
    }
    async fn kept_reports(&self, cursor: Option<&[u8]>) -> Result<crate::store::KeptPage, StoreError> {
        self.read().await?;
        self.inner.kept_reports(cursor).await
    }
    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        self.read().await?;
        self.inner.calendar(cid, from, to).await
    }
    async fn usage(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        self.read().await?;
        self.inner.usage(cid, from, to).await
    }
    async fn usage_total(&self) -> Result<u64, StoreError> {
        self.read().await?;
        self.inner.usage_total().await
    }
    async fn day_page(
        &self,
        cid: &DeviceId,
        day: Day,
        event_type: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError> {
        self.read().await?;
        self.inner.day_page(cid, day, event_type, limit, cursor).await
    }
    async fn event_page(
        &self,
        id: &EventId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Option<EventDetail>, StoreError> {
        self.read().await?;
        self.inner.event_page(id, after, limit).await
    }
    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError> {
        self.read().await?;
        self.inner.digest(cid, day).await
    }
    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError> {
        self.read().await?;
        self.inner.utc_offset(cid).await
    }

    async fn plan(&self, cid: &DeviceId) -> Result<Option<u32>, StoreError> {
        self.read().await?;
        self.inner.plan(cid).await
    }

    async fn drop_expired(&self, oldest_kept: Day) -> Result<u64, StoreError> {
        self.inner.drop_expired(oldest_kept).await
    }
    async fn health(&self) -> Result<(), StoreError> {
        self.faults.inject("health").await.map_err(StoreError::Unavailable)?;
        self.inner.health().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// A signer whose calls fail, slow down or hang as `faults` says.
#[derive(Debug)]
pub struct FaultySigner {
    inner: Arc<dyn BlobSigner>,
    faults: Arc<Faults>,
}

impl FaultySigner {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlobSigner>, faults: Arc<Faults>) -> Arc<Self> {
        Arc::new(Self { inner, faults })
    }
}

#[async_trait]
impl BlobSigner for FaultySigner {
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        ttl: Duration,
    ) -> Result<PresignedRequest, BlobError> {
        self.faults.inject("sign").await.map_err(BlobError::Unavailable)?;
        self.inner.presign_put(key, content_type, content_length, ttl).await
    }
    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedRequest, BlobError> {
        self.faults.inject("sign").await.map_err(BlobError::Unavailable)?;
        self.inner.presign_get(key, ttl).await
    }
    async fn health(&self) -> Result<(), BlobError> {
        self.faults.inject("health").await.map_err(BlobError::Unavailable)?;
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_bad_ones_say_why() {
        let f = Faults::parse("append=hang; apply=fail_first:3,latency_ms:200;commit=fail_fraction:0.5").unwrap();
        let plan = f.plan.lock().unwrap();
        assert!(plan["append"].0.hang);
        assert_eq!(plan["apply"].0, Fault { fail_first: 3, latency: Duration::from_millis(200), ..Fault::default() });
        assert_eq!(plan["commit"].0.fail_fraction, 0.5);
        for bad in ["apend=hang", "append", "append=explode", "commit=fail_fraction:2", "apply=fail_first:x"] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn fail_first_fails_exactly_that_many_calls() {
        let f = Faults::new();
        f.set("apply", Fault { fail_first: 2, ..Fault::default() });
        let got: Vec<bool> = calls(&f, 4).await;
        assert_eq!(got, [false, false, true, true]);
        assert_eq!(f.injected(), 2);
        assert!(f.inject("append").await.is_ok(), "other operations are untouched");
    }

    async fn calls(f: &Faults, n: usize) -> Vec<bool> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(f.inject("apply").await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn hang_never_returns_until_healed_for_new_calls() {
        let f = Faults::new();
        f.set("append", Fault { hang: true, ..Fault::default() });
        assert!(tokio::time::timeout(Duration::from_millis(50), f.inject("append")).await.is_err());
        f.heal();
        assert!(f.inject("append").await.is_ok());
    }
}
