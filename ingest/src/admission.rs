//! Admission control: what keeps a midnight burst from knocking anything over.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use schemas::{DayOffset, DeviceId, Timestamp};
use seams::metric::{Kind, Metric};
use seams::web::{ApiError, ErrorCode};
use sha2::{Digest, Sha256};

use crate::IngestConfig;

pub(crate) const INGEST_REJECTED_TOTAL: Metric = Metric {
    name: "daybook_ingest_rejected_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help:
        "Device requests refused by admission, by reason: rate (429, the device is over --device-rate/--device-burst), \
           inflight (503 overloaded, more than --max-inflight reports waiting on the log), digest_slot (429, a digest \
           outside its device's slot while there is no headroom).",
};

pub(crate) const INGEST_INFLIGHT_REPORTS: Metric = Metric {
    name: "daybook_ingest_inflight_reports",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Reports waiting for the log to confirm their append, as of the last admission (503 overloaded above --max-inflight).",
};

/// The nightly window over which devices' digest uploads are spread.
#[derive(Debug, Clone, Copy)]
pub struct DigestWindow {
    /// Start, seconds after local midnight (default 0: 00:00).
    pub start_s: u32,
    /// Length in seconds (default 5 h: until 05:00).
    pub length_s: u32,
    /// Length of one device's slot in seconds (default 10 min).
    pub slot_s: u32,
}

impl Default for DigestWindow {
    fn default() -> Self {
        Self { start_s: 0, length_s: 5 * 3600, slot_s: 600 }
    }
}

impl DigestWindow {
    /// Seconds after the window start at which `cid`'s slot begins: deterministic per
    /// device (a hash of its id), uniform over the window.
    pub fn slot_offset_s(&self, cid: &DeviceId) -> u32 {
        let h = Sha256::digest(cid.as_str().as_bytes());
        let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
        let span = self.length_s.saturating_sub(self.slot_s).max(1);
        (n % u64::from(span)) as u32
    }

    /// `cid`'s slot in the night that starts at local midnight of the day holding `at`,
    /// as `[start, end)`.
    pub fn slot_on(&self, cid: &DeviceId, offset: DayOffset, at: Timestamp) -> (Timestamp, Timestamp) {
        let day = offset.day_of(at).expect("time in range");
        let start = offset.start_of(day).plus_millis(i64::from(self.start_s + self.slot_offset_s(cid)) * 1000);
        (start, start.plus_millis(i64::from(self.slot_s) * 1000))
    }

    /// The next slot of `cid` that has not ended yet at `now`.
    pub fn next_slot(&self, cid: &DeviceId, offset: DayOffset, now: Timestamp) -> (Timestamp, Timestamp) {
        let today = self.slot_on(cid, offset, now);
        if today.1 > now {
            today
        } else {
            self.slot_on(cid, offset, now.plus_millis(86_400_000))
        }
    }
}

#[derive(Debug)]
pub(crate) struct Admission {
    limiter: DefaultKeyedRateLimiter<DeviceId>,
    inflight: AtomicUsize,
    max_inflight: usize,
    digest_headroom: usize,
    window: DigestWindow,
    offset: DayOffset,
}

/// Holds reports' places in the in-flight budget until dropped.
#[derive(Debug)]
pub(crate) struct InflightGuard<'a> {
    admission: &'a Admission,
    n: usize,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.admission.inflight.fetch_sub(self.n, Ordering::Relaxed);
    }
}

impl Admission {
    pub(crate) fn new(c: &IngestConfig) -> Self {
        let rate = NonZeroU32::new(c.device_rate_per_s.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(c.device_burst.max(1)).expect("non-zero");
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            inflight: AtomicUsize::new(0),
            max_inflight: c.max_inflight,
            digest_headroom: (c.max_inflight as f64 * c.digest_headroom) as usize,
            window: c.digest_window,
            offset: c.policy.offset,
        }
    }

    /// 429 when `cid` is over its rate.
    pub(crate) fn check_rate(&self, cid: &DeviceId) -> Result<(), ApiError> {
        self.limiter.check_key(cid).map_err(|not_until| {
            metrics::counter!(INGEST_REJECTED_TOTAL.name, "reason" => "rate").increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited("this device is sending too fast", wait.max(Duration::from_secs(1)))
        })
    }

    /// Reserves room for `n` reports waiting on the log; 503 when the budget is spent.
    pub(crate) fn reserve(&self, n: usize) -> Result<InflightGuard<'_>, ApiError> {
        let before = self.inflight.fetch_add(n, Ordering::Relaxed);
        let guard = InflightGuard { admission: self, n };
        metrics::gauge!(INGEST_INFLIGHT_REPORTS.name).set((before + n) as f64);
        if before + n > self.max_inflight {
            metrics::counter!(INGEST_REJECTED_TOTAL.name, "reason" => "inflight").increment(1);
            return Err(ApiError::unavailable(
                ErrorCode::Overloaded,
                "too many reports are waiting on the log",
                Duration::from_secs(2),
            ));
        }
        Ok(guard)
    }

    /// A digest inside its device's slot is always admitted; outside, only with headroom.
    pub(crate) fn check_digest_slot(&self, cid: &DeviceId, now: Timestamp) -> Result<(), ApiError> {
        let (start, end) = self.window.next_slot(cid, self.offset, now);
        if start <= now && now < end {
            return Ok(());
        }
        if self.inflight.load(Ordering::Relaxed) < self.digest_headroom {
            return Ok(());
        }
        metrics::counter!(INGEST_REJECTED_TOTAL.name, "reason" => "digest_slot").increment(1);
        let wait = Duration::from_millis((start.millis() - now.millis()).max(1000) as u64);
        let spread = Duration::from_millis(fastrand_ms(u64::from(self.window.slot_s) * 1000));
        Err(ApiError::rate_limited(
            format!("digests are admitted outside the device's slot only with headroom; its slot starts {start}"),
            wait + spread,
        ))
    }

    /// Where this device's next digest slot is.
    pub(crate) fn digest_slot(&self, cid: &DeviceId, now: Timestamp) -> (Timestamp, Timestamp) {
        // The slot "for the next night": tomorrow's, unless tonight's has not begun yet.
        let (start, end) = self.window.next_slot(cid, self.offset, now);
        if start > now {
            (start, end)
        } else {
            self.window.slot_on(cid, self.offset, now.plus_millis(86_400_000))
        }
    }

    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Spreads retries over the slot rather than all at its first second.
fn fastrand_ms(max: u64) -> u64 {
    fastrand::u64(0..max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_deterministic_and_inside_the_window() {
        let w = DigestWindow::default();
        let offset = DayOffset::default();
        let now = Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap();
        let mut starts = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let cid = DeviceId::parse(&format!("cam-{i}")).unwrap();
            let (s, e) = w.slot_on(&cid, offset, now);
            assert_eq!(w.slot_on(&cid, offset, now), (s, e));
            let midnight = offset.start_of(offset.day_of(now).unwrap());
            assert!(s >= midnight && e <= midnight.plus_millis(5 * 3600 * 1000));
            starts.insert(s.millis() / 600_000);
        }
        assert!(starts.len() > 20, "slots spread over the window: {}", starts.len());
    }
}
