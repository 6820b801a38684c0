//! Erasures on ScyllaDB (`schemas::rows`, module docs; `infra/cql/schema.cql`, `erasures`).
//!
//! A device's erasure mark is its row of `erasures` (one small partition, never expired,
//! written with the erasure's stamp, so the newest erasure wins). Applying an erasure stamped
//! `S` lists every object the device's rows name to purge, then deletes each of the device's
//! day partitions of retention (and a few days either side) with partition tombstones at `S`:
//! a row written by a report not newer than the erasure, even one a stale projector writes a
//! moment later, is shadowed, and one newer than it is not. Tombstones are purged after
//! `gc_grace_seconds`, so the mark itself keeps the rule for good: every `apply` leaves out
//! the reports a mark covers, reading the marks once per [`MARKS_FRESH`] (and at once after
//! an erasure of its own).
//!
//! `event_counts` and `usage_counts` (the storage used) are max-registers by write timestamp
//! ([`super::super::plan::count_stamp`]), whose cells for an hour ahead of the erasure (a fast clock's
//! claim) may carry timestamps above `S`: their partitions are deleted at [`count_mark`]
//! instead, the first count timestamp of an hour past every day the erasure deletes, and a
//! count written after the erasure for an hour before that is raised above it
//! ([`after_erasure`]), keeping its order among the counts written after the erasure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::scylla::statement::prepared::PreparedStatement;
use futures::stream::{self, StreamExt, TryStreamExt};
use schemas::rows;
use schemas::{Day, DeviceId, Envelope, EventId, Report, SegmentId, SubscriptionDeadLettered, TimePolicy, Timestamp};
use seams::{ObjectKey, Purge, StoreError};

use super::super::plan::{
    count_stamp, days_ms, longest_retention_days, ttl_secs, COUNT_BUCKET_MS, PURGES_BUCKET, SUBSCRIPTIONS_BUCKET,
};
use super::super::schema::day_key;
use super::super::views::{other, DayKey, DigestRow, SubscriptionRow};
use super::ScyllaStore;

/// How long marks read from `erasures` are used before they are read again. An erasure applied
/// by another projector meanwhile is kept by its tombstones (for `gc_grace_seconds`, hours).
pub(in crate::scylla) const MARKS_FRESH: Duration = Duration::from_secs(10);

/// The one partition of `erasures`.
pub(in crate::scylla) const ERASURES_BUCKET: i32 = 0;

/// Days of partitions an erasure deletes beyond retention, either side (camera offsets, a fast
/// clock's claim, the clocks of different hosts).
const MARGIN_DAYS: i64 = 3;

/// The day-partitioned tables of a device's rows, deleted whole by an erasure.
pub(in crate::scylla) const DEVICE_TABLES: [&str; 7] =
    ["events", "segments", "event_segments", "digests", "event_counts", "segment_usage", "usage_counts"];

/// Whether `table` is a max-register of counts by timestamp ([`count_mark`]).
pub(in crate::scylla) fn holds_counts(table: &str) -> bool {
    matches!(table, "event_counts" | "usage_counts")
}

/// `erasures`: bucket, cid, stamp, erased_at, [ttl], [timestamp].
pub(in crate::scylla) type ErasureValues = (i32, String, i64, i64, i32, i64);
/// A mark as read: cid, stamp.
pub(in crate::scylla) type MarkRow = (String, i64);
/// One id column: an event's or a segment's.
pub(in crate::scylla) type IdRow = (String,);

/// The statements of erasures, for `keyspace`.
#[derive(Debug)]
pub(in crate::scylla) struct ErasureCql {
    pub(in crate::scylla) insert_erasure: String,
    pub(in crate::scylla) erasures: String,
    pub(in crate::scylla) day_events: String,
    pub(in crate::scylla) day_segments: String,
    /// One per [`DEVICE_TABLES`], in its order: a partition deleted at a timestamp.
    pub(in crate::scylla) delete_day: Vec<String>,
    pub(in crate::scylla) delete_device: String,
    /// The device's keeps, and its row in the list of devices with keeps.
    pub(in crate::scylla) delete_kept: String,
    pub(in crate::scylla) delete_kept_device: String,
}

impl ErasureCql {
    pub(in crate::scylla) fn new(ks: &str) -> Self {
        Self {
            insert_erasure: format!(
                "INSERT INTO {ks}.erasures (bucket, cid, stamp, erased_at) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            erasures: format!("SELECT cid, stamp FROM {ks}.erasures WHERE bucket = ?"),
            day_events: format!("SELECT event_id FROM {ks}.events WHERE cid = ? AND day = ?"),
            day_segments: format!("SELECT segment_id FROM {ks}.segments WHERE cid = ? AND day = ?"),
            delete_day: DEVICE_TABLES
                .iter()
                .map(|t| format!("DELETE FROM {ks}.{t} USING TIMESTAMP ? WHERE cid = ? AND day = ?"))
                .collect(),
            delete_device: format!("DELETE FROM {ks}.devices USING TIMESTAMP ? WHERE cid = ?"),
            delete_kept: format!("DELETE FROM {ks}.kept USING TIMESTAMP ? WHERE cid = ?"),
            delete_kept_device: format!("DELETE FROM {ks}.kept_devices USING TIMESTAMP ? WHERE bucket = ? AND cid = ?"),
        }
    }
}

/// The prepared [`ErasureCql`] and the marks last read.
#[derive(Debug)]
pub(in crate::scylla) struct Erasures {
    insert_erasure: PreparedStatement,
    erasures: PreparedStatement,
    day_events: PreparedStatement,
    day_segments: PreparedStatement,
    delete_day: Vec<PreparedStatement>,
    delete_device: PreparedStatement,
    delete_kept: PreparedStatement,
    delete_kept_device: PreparedStatement,
    marks: Mutex<Option<(Instant, Arc<Marks>)>>,
}

/// Device id → erasure mark (the stamp of its newest erasure).
pub(in crate::scylla) type Marks = HashMap<String, i64>;

impl Erasures {
    /// Prepares the statements with `prepare` (write statements: `false`; reads: `true`).
    pub(in crate::scylla) async fn prepare<F, Fut>(ks: &str, prepare: F) -> Result<Self, StoreError>
    where
        F: Fn(String, bool) -> Fut,
        Fut: std::future::Future<Output = Result<PreparedStatement, StoreError>>,
    {
        let cql = ErasureCql::new(ks);
        let mut delete_day = Vec::new();
        for text in &cql.delete_day {
            delete_day.push(prepare(text.clone(), false).await?);
        }
        Ok(Self {
            insert_erasure: prepare(cql.insert_erasure, false).await?,
            erasures: prepare(cql.erasures, true).await?,
            day_events: prepare(cql.day_events, true).await?,
            day_segments: prepare(cql.day_segments, true).await?,
            delete_day,
            delete_device: prepare(cql.delete_device, false).await?,
            delete_kept: prepare(cql.delete_kept, false).await?,
            delete_kept_device: prepare(cql.delete_kept_device, false).await?,
            marks: Mutex::new(None),
        })
    }
}

/// The timestamp an erasure stamped `stamp` deletes `event_counts` partitions at: the first
/// count timestamp of the hour after the last day it deletes (see the module docs).
pub(in crate::scylla) fn count_mark(stamp: i64) -> i64 {
    let ms = stamp / 1000 + (MARGIN_DAYS + 1) * 86_400_000;
    count_stamp(ms / COUNT_BUCKET_MS + 1, 0)
}

/// A count cell's timestamp `stamp` for `events` counted in `hour` of a device whose erasure
/// mark is `mark`: unchanged without one or for an hour past [`count_mark`], else above that
/// mark, ordered by the number as the count timestamps are.
pub(in crate::scylla) fn after_erasure(stamp: i64, hour: i64, events: i64, mark: Option<i64>) -> i64 {
    match mark.map(count_mark) {
        Some(deleted_at) if count_stamp(hour, 0) < deleted_at => deleted_at.saturating_add(1 + events.max(0)),
        _ => stamp,
    }
}

impl ScyllaStore {
    /// The erasure marks, read again when older than [`MARKS_FRESH`] (or `refresh`).
    async fn marks(&self, refresh: bool) -> Result<Arc<Marks>, StoreError> {
        let e = &self.erasure;
        if let Some((at, marks)) = e.marks.lock().expect("marks lock").as_ref() {
            if !refresh && at.elapsed() < MARKS_FRESH {
                return Ok(marks.clone());
            }
        }
        let rows = self.query_all::<MarkRow>(&e.erasures, (ERASURES_BUCKET,)).await?;
        let marks = Arc::new(rows.into_iter().collect::<Marks>());
        *e.marks.lock().expect("marks lock") = Some((Instant::now(), marks.clone()));
        Ok(marks)
    }

    /// Applies the batch's erasures no mark covers yet, and returns the rows they removed or
    /// listed, the batch left to apply when a mark covers some of it (`None`: all of it), and
    /// the marks.
    pub(in crate::scylla) async fn apply_erasures(
        &self,
        batch: &[Envelope],
    ) -> Result<(u64, Option<Vec<Envelope>>, Arc<Marks>), StoreError> {
        let erases = batch.iter().any(|e| matches!(e.report, Report::DeviceErased(_)));
        let mut marks = self.marks(false).await?;
        if !erases && marks.is_empty() {
            return Ok((0, None, marks));
        }
        let erasable: Vec<Option<(DeviceId, i64)>> = batch.iter().map(rows::erasable).collect();
        let erasing = rows::new_erasures(batch, &erasable, |cid| marks.get(cid.as_str()).copied());
        let mut written = 0;
        for (cid, (stamp, at)) in &erasing {
            written += self.erase(cid, *stamp, *at).await?;
        }
        if !erasing.is_empty() {
            marks = self.marks(true).await?;
        }
        let covered = |of: &Option<(DeviceId, i64)>| {
            of.as_ref().is_some_and(|(cid, stamp)| rows::erased(*stamp, marks.get(cid.as_str()).copied()))
        };
        if !erasable.iter().any(covered) {
            return Ok((written, None, marks));
        }
        // A covered report is not applied, and the objects it names are purged (it may be in
        // this batch beside its erasure, or arrive late).
        let now = Timestamp::now();
        for (env, of) in batch.iter().zip(&erasable).filter(|(_, of)| covered(of)) {
            let stamp = of.as_ref().map_or(0, |o| o.1);
            for p in Purge::named_by(env, &self.policy, now) {
                let ttl = ttl_secs(longest_expiry(&self.policy, p.day), now).unwrap_or(86_400);
                let values = (PURGES_BUCKET, p.cid.as_str(), day_key(p.day), p.key, ttl, stamp);
                self.run(&self.statements.insert_purge, values).await?;
                written += 1;
            }
        }
        let kept = batch.iter().zip(&erasable).filter(|(_, of)| !covered(of)).map(|(env, _)| env.clone()).collect();
        Ok((written, Some(kept), marks))
    }

    /// Erases device `cid` as of write stamp `stamp` (received at `at`): lists its objects to
    /// purge, deletes its partitions (a kept event's too), its offset, keeps, quarantined records
    /// and dead letters, then writes its mark (last: an erasure cut short is applied again whole
    /// when retried).
    async fn erase(&self, cid: &DeviceId, stamp: i64, at: Timestamp) -> Result<u64, StoreError> {
        let (e, s) = (&self.erasure, &self.statements);
        let policy = &self.policy;
        let now = Timestamp::now();
        let today = policy.offset.today();
        // Every day a plan may keep (the device's rows may have been written under any).
        let longest = i64::from(longest_retention_days(policy));
        let mut days: Vec<Day> = (-MARGIN_DAYS..=longest + MARGIN_DAYS).map(|i| today.add_days(-i)).collect();
        let c = cid.as_str();
        // And the days of its kept events, which outlive retention.
        for (_, day, ..) in self.keep_rows(c).await? {
            if let Some(day) = u32::try_from(day).ok().and_then(Day::from_number) {
                if !days.contains(&day) {
                    days.push(day);
                }
            }
        }
        let per_day = stream::iter(days)
            .map(|day| async move {
                let key: DayKey<'_> = (c, day_key(day));
                let mut keys = Vec::new();
                for (id,) in self.query_all::<IdRow>(&e.day_events, key).await? {
                    keys.push(ObjectKey::snapshot(&EventId::parse(&id).map_err(other)?));
                }
                for (id,) in self.query_all::<IdRow>(&e.day_segments, key).await? {
                    keys.push(ObjectKey::segment(cid, &SegmentId::parse(&id).map_err(other)?));
                }
                if let Some((id, _, _)) = self.query_opt::<DigestRow>(&s.digest, key).await? {
                    keys.push(ObjectKey::digest(cid, &SegmentId::parse(&id).map_err(other)?));
                }
                // Kept until the day's rows would have expired under the longest plan, at least a day.
                let ttl = ttl_secs(longest_expiry(policy, day), now).unwrap_or(86_400);
                let listed = keys.len() as u64;
                for k in keys {
                    self.run(&s.insert_purge, (PURGES_BUCKET, c, day_key(day), k.as_str().to_owned(), ttl, stamp))
                        .await?;
                }
                for (table, delete) in DEVICE_TABLES.iter().zip(&e.delete_day) {
                    let at = if holds_counts(table) { count_mark(stamp) } else { stamp };
                    self.run(delete, (at, c, day_key(day))).await?;
                }
                Ok::<u64, StoreError>(listed)
            })
            .buffer_unordered(self.max_concurrency)
            .try_collect::<Vec<u64>>()
            .await?;
        let mut written: u64 = per_day.iter().sum();
        self.run(&e.delete_device, (stamp, c)).await?;
        self.run(&e.delete_kept, (stamp, c)).await?;
        self.run(&e.delete_kept_device, (stamp, super::keeps::KEPT_DEVICES_BUCKET, c)).await?;
        // Its exports asked for before the erasure, their archives listed to purge.
        let erased_on = schemas::DayOffset::default().day_of(at).unwrap_or(today);
        written += self.erase_exports(cid, stamp, erased_on).await?;
        // Quarantined records keyed by the device, but a report newer than the erasure.
        for q in seams::ProjectionStore::quarantined(self, u32::MAX).await? {
            let newer = Envelope::decode(&q.value).is_ok_and(|env| rows::write_stamp(&env) > stamp);
            if q.key == c && !newer {
                seams::ProjectionStore::release(self, std::slice::from_ref(&q)).await?;
                written += 1;
            }
        }
        // Dead letters holding a report of the device the erasure covers: released (`body`
        // null) with a stamp above the letter's own.
        let subscriptions = self.query_all::<SubscriptionRow>(&s.subscriptions, (SUBSCRIPTIONS_BUCKET,)).await?;
        for (sub, _, _) in subscriptions {
            for (webhook_id, dead_at, body) in
                self.query_all::<super::super::views::DeadLetterRow>(&s.dead_letters, (sub.as_str(),)).await?
            {
                let Some(Ok(letter)) = body.map(|b| serde_json::from_str::<SubscriptionDeadLettered>(&b)) else {
                    continue;
                };
                let held = Envelope::new(Report::SubscriptionDeadLettered(letter), Timestamp(dead_at));
                if rows::erasable(&held).is_some_and(|(of, record)| &of == cid && record <= stamp) {
                    let release = rows::write_stamp(&held).max(stamp).saturating_add(1);
                    self.run(&s.insert_dead_letter, (sub.clone(), webhook_id, dead_at, None::<String>, 0, release))
                        .await?;
                    written += 1;
                }
            }
        }
        let mark: ErasureValues = (ERASURES_BUCKET, c.to_owned(), stamp, at.millis(), 0, stamp);
        self.run(&e.insert_erasure, mark).await?;
        Ok(written + 1)
    }
}

/// When the last row of `day` expires under the longest plan (a day later for the camera
/// offsets a day can be filed at).
fn longest_expiry(policy: &TimePolicy, day: Day) -> Timestamp {
    policy.offset.start_of(day.add_days(2)).plus_millis(days_ms(longest_retention_days(policy)))
}
