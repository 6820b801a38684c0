//! One `apply` call's writes: merged by primary key, grouped by partition, cut into
//! unlogged batches, each row carrying its TTL and its write timestamp
//! (`schemas::rows::write_stamp`: the report's, so the newer report wins whoever writes it);
//! and the `event_counts` buckets to recount once they are written ([`count_row`]: the
//! replay-safe count the calendar reads, `infra/cql/schema.cql`).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use ::scylla::value::MaybeUnset;
use schemas::rows::{self, bigint_column, int_column, RowData, Unstorable};
use schemas::{Day, DayOffset, Envelope, EventId, Report, TimePolicy, Timestamp};
use seams::StoreError;

use super::schema::day_key;
use super::views::{DeadLetterValues, SubscriptionValues};

/// Most rows in one unlogged batch.
pub const BATCH_MAX_ROWS: usize = 64;
/// Approximate payload at which a batch is cut (Scylla warns at 128 KiB and refuses at
/// 1 MiB by default).
pub const BATCH_MAX_BYTES: usize = 64 * 1024;
/// CQL's largest TTL (20 years).
const MAX_TTL_SECS: i64 = 630_720_000;

/// `events`: cid, day, triggered_at, event_id, kind, started, ended_at, end_status,
/// clock_skew_ms, retention_days, [ttl], [timestamp].
pub(super) type EventValues = (
    String,
    i32,
    i64,
    String,
    String,
    MaybeUnset<bool>,
    MaybeUnset<i64>,
    MaybeUnset<String>,
    MaybeUnset<i64>,
    MaybeUnset<i32>,
    i32,
    i64,
);
/// `devices`: cid, utc_offset, retention_days (the start's plan; null: the deployment's), [ttl],
/// [write timestamp, µs].
pub(super) type DeviceValues = (String, i32, Option<i32>, i32, i64);
/// `segments`: cid, day, segment_id, size, started_at, duration_ms, codec, width, height,
/// fps, audio_sample_rate, keyframes, events, [ttl], [timestamp].
pub(super) type SegmentValues =
    (String, i32, String, i64, i64, i64, String, i32, i32, f64, MaybeUnset<i32>, Vec<i64>, Vec<String>, i32, i64);
/// A deletion's `events` row: cid, day, triggered_at, event_id, kind, deleted (true), [ttl],
/// [timestamp].
pub(super) type DeletionValues = (String, i32, i64, String, String, bool, i32, i64);
/// `event_counts.deleted`: cid, day, hour, deleted, [ttl], [timestamp].
pub(super) type DeletedCountValues = (String, i32, i64, i64, i32, i64);
/// `event_segments`: cid, day, event_id, idx, seg_day, segment_id, start_offset,
/// end_offset, [ttl], [timestamp].
pub(super) type MappingValues = (String, i32, String, i32, i32, String, i64, i64, i32, i64);
/// `digests`: cid, day, segment_id, size, duration_ms, [ttl], [timestamp].
type DigestValues = (String, i32, String, i64, i64, i32, i64);
/// `segments`' usage home (every copy): cid, day, segment_id, counted_day, counted_hour, [ttl],
/// [timestamp].
pub(super) type SegmentHomeValues = (String, i32, String, i32, i64, i32, i64);
/// `segment_usage`: cid, day, hour, segment_id, bytes, filed_at, retention_days, [ttl],
/// [timestamp].
pub(super) type UsageValues = (String, i32, i64, String, i64, i64, i32, i32, i64);
/// `segment_usage`'s freed mark: cid, day, hour, segment_id, freed, [ttl], [timestamp].
pub(super) type FreedValues = (String, i32, i64, String, bool, i32, i64);
/// A segment of a plan and the events it maps: cid, segment_id, event ids, (counted day,
/// counted hour), ttl, stamp.
pub(super) type MappedSegment<'a> = (&'a str, &'a str, &'a [String], Option<(i32, i64)>, i32, i64);
/// `event_counts`: cid, day, hour, events, [ttl], [timestamp].
pub(super) type CountValues = (String, i32, i64, i64, i32, i64);
/// An `event_counts` bucket: cid, day, hour (epoch hour of the events' trigger time).
pub(super) type CountBucket = (String, i32, i64);

/// Trigger time one `event_counts` bucket spans: an hour, so a recount reads a few dozen rows
/// even for a busy camera (≈ 83 at 2 000 events a day), and a day is ~24 buckets to sum.
pub(super) const COUNT_BUCKET_MS: i64 = 3_600_000;

/// The bucket of an event triggered at `triggered_at` (ms): its epoch hour.
pub(super) fn count_bucket(triggered_at: i64) -> i64 {
    triggered_at.div_euclid(COUNT_BUCKET_MS)
}

/// The trigger times (ms, `[from, to)`) bucket `hour` counts: the recount's clustering slice.
pub(super) fn bucket_range(hour: i64) -> (i64, i64) {
    let from = hour.saturating_mul(COUNT_BUCKET_MS);
    (from, from.saturating_add(COUNT_BUCKET_MS))
}

/// The write timestamp (µs) of a count of `events` in bucket `hour`: the hour's first
/// microsecond plus the count, so the largest count ever written for the bucket wins,
/// whatever the order its writes land in (a max-register), and the timestamp stays inside the
/// hour the rows were triggered in.
pub(super) fn count_stamp(hour: i64, events: i64) -> i64 {
    let slots = COUNT_BUCKET_MS * 1000;
    hour.saturating_mul(slots).saturating_add(events.clamp(0, slots - 1))
}

/// The `event_counts` row for a recount of `bucket` that found `events` rows, the newest
/// triggered at `newest` (ms), the longest kept `retention_days`: kept until that event would
/// expire (a fast clock's claim can lie days ahead of its filing; the count never outlives its
/// day by more than two days), or `None` when there is nothing to count or keep.
pub(super) fn count_row(
    (cid, day, hour): &CountBucket,
    events: i64,
    newest: Option<i64>,
    retention_days: u32,
    now: Timestamp,
) -> Option<CountValues> {
    let newest = newest.filter(|_| events > 0)?;
    let last_filing = u32::try_from(*day)
        .ok()
        .and_then(schemas::Day::from_number)
        .map_or(i64::MAX, |d| schemas::DayOffset::default().start_of(d.add_days(2)).millis());
    let ttl = ttl_secs(Timestamp(newest.min(last_filing)).plus_millis(days_ms(retention_days)), now)?;
    Some((cid.clone(), *day, *hour, events, ttl, count_stamp(*hour, events)))
}

/// The `event_counts.deleted` cell for a recount of `bucket` that found `deleted` rows marked
/// deleted: kept by the same max-register rule as the count, until the latest instant any event
/// of the hour can expire (the hour's end, at most two days past the day's end), so it never
/// goes before the count it is taken from (`retention_days`: the longest of the hour's events);
/// `None` when there is nothing to write.
pub(super) fn deleted_count_row(
    (cid, day, hour): &CountBucket,
    deleted: i64,
    retention_days: u32,
    now: Timestamp,
) -> Option<DeletedCountValues> {
    if deleted <= 0 {
        return None;
    }
    let last_filing = u32::try_from(*day)
        .ok()
        .and_then(schemas::Day::from_number)
        .map_or(i64::MAX, |d| schemas::DayOffset::default().start_of(d.add_days(2)).millis());
    let expires = Timestamp(bucket_range(*hour).1.min(last_filing)).plus_millis(days_ms(retention_days));
    let ttl = ttl_secs(expires, now)?;
    Some((cid.clone(), *day, *hour, deleted, ttl, count_stamp(*hour, deleted)))
}

/// `days` in milliseconds.
pub(super) fn days_ms(days: u32) -> i64 {
    i64::from(days) * 86_400_000
}

/// The longest of `days` (the plans rows were written under, `None` for a row written before
/// rows kept theirs), or the deployment's retention when none is known.
pub(super) fn longest_plan(days: impl IntoIterator<Item = Option<i32>>, policy: &TimePolicy) -> u32 {
    days.into_iter().flatten().filter_map(|d| u32::try_from(d).ok()).max().unwrap_or(policy.retention_days)
}

/// The most days any row may be kept: the longest plan, or the deployment's retention if longer.
pub(super) fn longest_retention_days(policy: &TimePolicy) -> u32 {
    policy.retention_days.max(schemas::owner::MAX_PLAN_DAYS)
}

/// Per-partition unlogged batches of count rows.
pub(super) fn count_chunks(mut rows: Vec<CountValues>) -> Vec<Vec<CountValues>> {
    rows.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    partition_chunks(rows.into_iter().map(|v| ((v.0.clone(), v.1), v.clone(), 40 + v.0.len())))
}

/// Seconds a row expiring at `expires_at` has left at `now` (rounded up), or `None` when it
/// is already past retention and must not be written.
pub(super) fn ttl_secs(expires_at: Timestamp, now: Timestamp) -> Option<i32> {
    let left_ms = expires_at.millis().saturating_sub(now.millis());
    if left_ms <= 0 {
        return None;
    }
    let secs = (left_ms.saturating_add(999) / 1000).min(MAX_TTL_SECS);
    i32::try_from(secs).ok()
}

/// The farthest from UTC a camera's clock may be, in minutes. Time zones in use run from
/// UTC−12:00 to UTC+14:00, but a report's offset is whatever `±HH:MM` its timestamp carries
/// (any under 24 hours either way: [`DayOffset::from_minutes`]), and its event is filed under
/// the date at that offset; so the days that may hold rows are bounded by these, never by the
/// deployment's `--day-offset`.
pub(super) const MAX_CAMERA_OFFSET_MINUTES: i32 = 23 * 60 + 59;

/// The days `calendar(from, to)` reads at `now`, as an inclusive range, or `None` when none:
/// the request (at most 366 days), cut to the days that may hold rows — from the oldest date
/// inside retention at the westernmost camera offset to the newest date the future tolerance
/// allows at the easternmost, a day either side for the clocks of different hosts. A camera
/// 25 hours east of the deployment (UTC+14:00 on a UTC−11:00 deployment) is two days ahead of
/// it for an hour a day: its today is inside the range, whatever the deployment's offset.
/// Never more than the longest retention (a plan's or the deployment's) + 6 days, whatever is
/// asked.
pub(super) fn calendar_day_range(from: Day, to: Day, policy: &TimePolicy, now: Timestamp) -> Option<(Day, Day)> {
    if !(0..=366).contains(&to.days_since(from)) {
        return None;
    }
    let west = DayOffset::from_minutes(-MAX_CAMERA_OFFSET_MINUTES).expect("under 24 h");
    let east = DayOffset::from_minutes(MAX_CAMERA_OFFSET_MINUTES).expect("under 24 h");
    let oldest = west.day_of(now.plus_millis(-days_ms(longest_retention_days(policy)))).map(|d| d.add_days(-1));
    let newest = east.day_of(now.plus_millis(policy.future_tolerance_ms)).map(|d| d.add_days(1));
    let from = oldest.map_or(from, |o| from.max(o));
    let to = newest.map_or(to, |n| to.min(n));
    (from <= to).then_some((from, to))
}

/// An event row being assembled from the reports of one batch.
#[derive(Debug, Clone, PartialEq)]
struct EventWrite {
    /// The `kind` column: the event type.
    event_type: String,
    started: bool,
    /// The newest end of the batch: ended_at, status, its report's stamp.
    end: Option<(i64, &'static str, i64)>,
    skew: Option<i64>,
    ttl: i32,
    /// The longest plan its start and end were written under (days).
    retention: i32,
    /// The newest start's stamp.
    start_stamp: i64,
}

impl EventWrite {
    /// One INSERT has one timestamp. The end columns are the only ones two reports can
    /// disagree on, so they decide it; `kind` and `started` hold the same value in every
    /// version, so any stamp is right for them.
    fn stamp(&self) -> i64 {
        self.end.map_or(self.start_stamp, |e| e.2)
    }
}

/// Keeps the newer of two versions of a row (by stamp; the same report: the later expiry).
fn keep_newer<V>(slot: &mut V, new: V, stamp: impl Fn(&V) -> (i64, i32)) {
    if stamp(&new) >= stamp(slot) {
        *slot = new;
    }
}

type Partition = (String, i32);
/// Where a segment row's bytes are counted: counted day, counted hour, ttl, stamp.
type Home = (i32, i64, i32, i64);
/// A counted segment: bytes, filed_at, retention_days, ttl, stamp.
type Counted = (i64, i64, i32, i32, i64);
/// An `events` row's key: cid, day, triggered_at, event_id.
type EventKeyOwned = (String, i32, i64, String);

/// One `apply` call's writes, merged by primary key (later reports win) and ordered by
/// partition.
#[derive(Default)]
pub(super) struct WritePlan {
    /// Rows the reports asked for (before merging), as the embedded store counts them.
    pub(super) rows: u64,
    events: BTreeMap<(String, i32, i64, String), EventWrite>,
    segments: BTreeMap<(String, i32, String), SegmentValues>,
    mappings: BTreeMap<(String, i32, String, i32), MappingValues>,
    digests: BTreeMap<Partition, DigestValues>,
    /// cid → (utc_offset, plan, ttl, write timestamp µs) of its latest start in this call.
    devices: BTreeMap<String, (i32, Option<i32>, i32, i64)>,
    /// Deletions: (cid, day, triggered_at, event_id) → (event type, ttl, stamp).
    deletions: BTreeMap<EventKeyOwned, (String, i32, i64)>,
    /// Where each segment row's bytes are counted: (cid, day, segment_id) → (counted day,
    /// counted hour, ttl, stamp), written on the own row and every copy.
    homes: BTreeMap<(String, i32, String), Home>,
    /// Segments counted in storage used: (cid, day, hour, segment_id) → (bytes, filed_at, ttl,
    /// stamp).
    usage: BTreeMap<(String, i32, i64, String), Counted>,
    /// Keeps and un-keeps, the newest per (cid, event_id).
    keeps: BTreeMap<(String, String), KeepWrite>,
}

/// A keep or un-keep to write: day, triggered_at, kept, at (received_at), stamp.
type KeepWrite = (i32, i64, bool, i64, i64);

/// The events kept once a batch is applied, as (cid, event id): their rows are written without
/// TTL, also past retention.
pub(super) type KeptSet = std::collections::HashSet<(String, String)>;

fn rejected(index: usize) -> impl Fn(Unstorable) -> StoreError {
    move |e| StoreError::Rejected { index: Some(index), reason: e.to_string() }
}

impl WritePlan {
    pub(super) fn build(
        batch: &[Envelope],
        policy: &TimePolicy,
        now: Timestamp,
        kept: &KeptSet,
    ) -> Result<Self, StoreError> {
        let mut plan = Self::default();
        // A record no column can hold is refused before anything is written, by its index.
        for (index, env) in batch.iter().enumerate() {
            env.report.storable().map_err(rejected(index))?;
        }
        for (index, env) in batch.iter().enumerate() {
            let to_i64 = |what, v| bigint_column(what, v).map_err(rejected(index));
            let to_i32 = |what, v| int_column(what, v).map_err(rejected(index));
            let stamp = rows::write_stamp(env);
            // Where each row lands and when it expires is decided by `schemas::rows`, the
            // same for every store; this only maps rows onto tables and TTLs.
            let planned = rows::plan(env, policy);
            // A segment's bytes are counted with its own row: every copy names where.
            let counted = planned.iter().find_map(|r| match r.data {
                RowData::SegmentBytes { .. } => Some((day_key(r.day), count_bucket(r.trigger.millis()))),
                _ => None,
            });
            for row in planned {
                let cid = row.cid.as_str().to_owned();
                let day = day_key(row.day);
                if let RowData::EventKept { event_id, kept } = row.data {
                    let value = (day, event_id.triggered_at().millis(), kept, env.received_at.millis(), stamp);
                    match plan.keeps.entry((cid, event_id.as_str().to_owned())) {
                        Entry::Vacant(e) => {
                            e.insert(value);
                        }
                        Entry::Occupied(mut e) => keep_newer(e.get_mut(), value, |v| (v.4, 0)),
                    }
                    plan.rows += 1;
                    continue;
                }
                // A kept event's rows never expire (TTL 0), and are written past retention too.
                let spared = row.kept_by().iter().any(|id| kept.contains(&(cid.clone(), id.as_str().to_owned())));
                let ttl = match ttl_secs(row.expires_at, now) {
                    _ if spared => 0,
                    Some(ttl) => ttl,
                    None => continue,
                };
                match row.data {
                    RowData::EventKept { .. } => continue,
                    RowData::EventStart { event_id, clock_skew_ms } => {
                        let w = plan.event(cid, day, event_id, ttl, to_i32("retention_days", row.retention_days())?);
                        w.started = true;
                        w.skew = clock_skew_ms;
                        w.start_stamp = w.start_stamp.max(stamp);
                    }
                    RowData::DeviceOffset { offset } => {
                        // The latest start wins: in the plan here, in the table by its write
                        // timestamp (the start's filing instant).
                        let at = row.trigger.millis().saturating_mul(1000);
                        let days = env.retention_days.map(|d| to_i32("retention_days", d)).transpose()?;
                        let entry = plan.devices.entry(cid).or_insert((offset.minutes(), days, ttl, at));
                        if at >= entry.3 {
                            *entry = (offset.minutes(), days, ttl, at);
                        }
                    }
                    RowData::EventEnd { event_id, ended_at, status } => {
                        let row = plan.event(cid, day, event_id, ttl, to_i32("retention_days", row.retention_days())?);
                        if row.end.is_none_or(|e| stamp >= e.2) {
                            row.end = Some((ended_at.millis(), status.as_str(), stamp));
                        }
                    }
                    RowData::Segment(r) => {
                        let m = &r.media;
                        let keyframes =
                            r.keyframes.iter().map(|k| to_i64("keyframe", *k)).collect::<Result<Vec<_>, _>>()?;
                        let audio = match m.audio_sample_rate {
                            Some(rate) => MaybeUnset::Set(to_i32("audio_sample_rate", rate)?),
                            None => MaybeUnset::Unset,
                        };
                        let values = (
                            cid.clone(),
                            day,
                            r.segment_id.as_str().to_owned(),
                            to_i64("size", r.size)?,
                            r.started_at.millis(),
                            i64::from(r.duration_ms),
                            m.codec.clone(),
                            to_i32("width", m.width)?,
                            to_i32("height", m.height)?,
                            m.fps,
                            audio,
                            keyframes,
                            r.events.iter().map(|m| m.event_id.as_str().to_owned()).collect(),
                            ttl,
                            stamp,
                        );
                        if let Some((counted_day, hour)) = counted {
                            let home = (counted_day, hour, ttl, stamp);
                            match plan.homes.entry((cid.clone(), day, r.segment_id.as_str().to_owned())) {
                                Entry::Vacant(e) => {
                                    e.insert(home);
                                }
                                Entry::Occupied(mut e) => keep_newer(e.get_mut(), home, |v| (v.3, v.2)),
                            }
                        }
                        // A copy of the segment in its own day may come with a later expiry.
                        match plan.segments.entry((cid, day, r.segment_id.as_str().to_owned())) {
                            Entry::Vacant(e) => {
                                e.insert(values);
                            }
                            Entry::Occupied(mut e) => keep_newer(e.get_mut(), values, |v| (v.14, v.13)),
                        }
                    }
                    RowData::Mapping { mapping: e, segment_id, segment_day } => {
                        let idx = to_i32("index", e.index)?;
                        let values = (
                            cid.clone(),
                            day,
                            e.event_id.as_str().to_owned(),
                            idx,
                            day_key(segment_day),
                            segment_id.as_str().to_owned(),
                            to_i64("start_offset", e.start_offset)?,
                            to_i64("end_offset", e.end_offset)?,
                            ttl,
                            stamp,
                        );
                        match plan.mappings.entry((cid, day, e.event_id.as_str().to_owned(), idx)) {
                            Entry::Vacant(e) => {
                                e.insert(values);
                            }
                            Entry::Occupied(mut e) => keep_newer(e.get_mut(), values, |v| (v.9, v.8)),
                        }
                    }
                    RowData::EventDeleted { event_id } => {
                        let key = (cid, day, event_id.triggered_at().millis(), event_id.as_str().to_owned());
                        let value = (event_id.event_type().as_str().to_owned(), ttl, stamp);
                        match plan.deletions.entry(key) {
                            Entry::Vacant(e) => {
                                e.insert(value);
                            }
                            Entry::Occupied(mut e) => keep_newer(e.get_mut(), value, |v| (v.2, v.1)),
                        }
                    }
                    RowData::SegmentBytes { .. } | RowData::SnapshotBytes { .. } => {
                        // A segment by its id, a snapshot by its object's key (never alike: a
                        // segment id holds no `/`).
                        let (object, bytes) = match row.data {
                            RowData::SegmentBytes { segment_id, bytes } => (segment_id.as_str().to_owned(), bytes),
                            RowData::SnapshotBytes { event_id, bytes } => {
                                (seams::ObjectKey::snapshot(event_id).as_str().to_owned(), bytes)
                            }
                            _ => unreachable!("matched above"),
                        };
                        let key = (cid, day, count_bucket(row.trigger.millis()), object);
                        let days = to_i32("retention_days", row.retention_days())?;
                        let value = (to_i64("size", bytes)?, row.trigger.millis(), days, ttl, stamp);
                        match plan.usage.entry(key) {
                            Entry::Vacant(e) => {
                                e.insert(value);
                            }
                            Entry::Occupied(mut e) => keep_newer(e.get_mut(), value, |v| (v.4, v.3)),
                        }
                    }
                    RowData::Digest(r) => {
                        let values = (
                            cid.clone(),
                            day,
                            r.segment_id.as_str().to_owned(),
                            to_i64("size", r.size)?,
                            i64::from(r.duration_ms),
                            ttl,
                            stamp,
                        );
                        match plan.digests.entry((cid, day)) {
                            Entry::Vacant(e) => {
                                e.insert(values);
                            }
                            Entry::Occupied(mut e) => keep_newer(e.get_mut(), values, |v| (v.6, v.5)),
                        }
                    }
                }
                plan.rows += 1;
            }
        }
        Ok(plan)
    }

    /// The event row for `id` in partition (`cid`, `day`), created if this batch has not
    /// touched it yet.
    fn event(&mut self, cid: String, day: i32, id: &EventId, ttl: i32, retention: i32) -> &mut EventWrite {
        let key = (cid, day, id.triggered_at().millis(), id.as_str().to_owned());
        let row = self.events.entry(key).or_insert_with(|| EventWrite {
            event_type: id.event_type().as_str().to_owned(),
            started: false,
            end: None,
            skew: None,
            ttl,
            retention,
            start_stamp: i64::MIN,
        });
        // One INSERT writes the start and end of a batch: with the longer of their TTLs.
        row.ttl = if row.ttl == 0 || ttl == 0 { 0 } else { row.ttl.max(ttl) };
        row.retention = row.retention.max(retention);
        row
    }

    /// The `event_counts` buckets this plan writes event rows into (each once, in partition
    /// order): each is recounted after the rows are written.
    pub(super) fn count_buckets(&self) -> Vec<CountBucket> {
        let mut out: Vec<CountBucket> = Vec::new();
        for (cid, day, trig, _) in self.events.keys().chain(self.deletions.keys()) {
            out.push((cid.clone(), *day, count_bucket(*trig)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// The buckets this plan writes deletions into: their `deleted` cells are recounted too.
    pub(super) fn deleted_buckets(&self) -> Vec<CountBucket> {
        let mut out: Vec<CountBucket> =
            self.deletions.keys().map(|(cid, day, trig, _)| (cid.clone(), *day, count_bucket(*trig))).collect();
        out.dedup();
        out
    }

    /// The deletions' `events` rows, one per partition chunk.
    pub(super) fn deletion_chunks(&self) -> Vec<Vec<DeletionValues>> {
        partition_chunks(self.deletions.iter().map(|((cid, day, trig, id), (kind, ttl, stamp))| {
            let values = (cid.clone(), *day, *trig, id.clone(), kind.clone(), true, *ttl, *stamp);
            ((cid.clone(), *day), values, 48 + id.len())
        }))
    }

    /// The keeps and un-keeps of this plan, the newest per event: (cid, event id, day,
    /// triggered_at, kept, at, stamp).
    pub(super) fn keeps(&self) -> impl Iterator<Item = (&str, &str, i32, i64, bool, i64, i64)> {
        self.keeps.iter().map(|((cid, id), (day, trig, kept, at, stamp))| {
            (cid.as_str(), id.as_str(), *day, *trig, *kept, *at, *stamp)
        })
    }

    /// The devices this plan writes day-partitioned rows of (each once).
    pub(super) fn devices_written(batch: &[Envelope]) -> Vec<String> {
        let mut out: Vec<String> = batch
            .iter()
            .filter(|e| e.report.trigger_time(DayOffset::default()).is_some())
            .filter_map(|e| e.report.cid().map(|c| c.as_str().to_owned()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The events this plan deletes: (cid, day, event id, ttl, stamp).
    pub(super) fn deleted_events(&self) -> impl Iterator<Item = (&str, i32, &str, i32, i64)> {
        self.deletions
            .iter()
            .map(|((cid, day, _, id), (_, ttl, stamp))| (cid.as_str(), *day, id.as_str(), *ttl, *stamp))
    }

    pub(super) fn event_chunks(&self) -> Vec<Vec<EventValues>> {
        partition_chunks(self.events.iter().map(|((cid, day, trig, id), w)| {
            let values: EventValues = (
                cid.clone(),
                *day,
                *trig,
                id.clone(),
                w.event_type.clone(),
                if w.started { MaybeUnset::Set(true) } else { MaybeUnset::Unset },
                w.end.map_or(MaybeUnset::Unset, |(at, _, _)| MaybeUnset::Set(at)),
                w.end.map_or(MaybeUnset::Unset, |(_, st, _)| MaybeUnset::Set(st.to_owned())),
                w.skew.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                MaybeUnset::Set(w.retention),
                w.ttl,
                w.stamp(),
            );
            ((cid.clone(), *day), values, 64 + cid.len() + 2 * id.len())
        }))
    }

    pub(super) fn segment_chunks(&self) -> Vec<Vec<SegmentValues>> {
        partition_chunks(self.segments.iter().map(|((cid, day, seg), v)| {
            let events: usize = v.12.iter().map(String::len).sum();
            ((cid.clone(), *day), v.clone(), 96 + cid.len() + seg.len() + v.6.len() + 8 * v.11.len() + events)
        }))
    }

    pub(super) fn mapping_chunks(&self) -> Vec<Vec<MappingValues>> {
        partition_chunks(
            self.mappings
                .iter()
                .map(|((cid, day, id, _), v)| ((cid.clone(), *day), v.clone(), 48 + cid.len() + id.len() + v.5.len())),
        )
    }

    /// One write per device (each its own partition).
    pub(super) fn device_writes(&self) -> Vec<Vec<DeviceValues>> {
        self.devices
            .iter()
            .map(|(cid, (offset, days, ttl, at))| vec![(cid.clone(), *offset, *days, *ttl, *at)])
            .collect()
    }

    /// Where every segment row this plan writes has its bytes counted.
    pub(super) fn home_chunks(&self) -> Vec<Vec<SegmentHomeValues>> {
        partition_chunks(self.homes.iter().map(|((cid, day, seg), (counted_day, hour, ttl, stamp))| {
            let values = (cid.clone(), *day, seg.clone(), *counted_day, *hour, *ttl, *stamp);
            ((cid.clone(), *day), values, 40 + cid.len() + seg.len())
        }))
    }

    /// The `segment_usage` rows of the segments this plan writes.
    pub(super) fn usage_chunks(&self) -> Vec<Vec<UsageValues>> {
        partition_chunks(self.usage.iter().map(|((cid, day, hour, seg), (bytes, filed_at, days, ttl, stamp))| {
            let values = (cid.clone(), *day, *hour, seg.clone(), *bytes, *filed_at, *days, *ttl, *stamp);
            ((cid.clone(), *day), values, 48 + cid.len() + seg.len())
        }))
    }

    /// Each segment this plan writes that maps events, once: (cid, segment_id, the events it
    /// maps, where its bytes are counted, the TTL and stamp of its row), to purge if every
    /// known event it maps is deleted.
    pub(super) fn mapped_segments(&self) -> Vec<MappedSegment<'_>> {
        let mut out: Vec<MappedSegment<'_>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ((cid, day, seg), v) in &self.segments {
            if v.12.is_empty() || !seen.insert((cid.as_str(), seg.as_str())) {
                continue;
            }
            let home = self.homes.get(&(cid.clone(), *day, seg.clone())).map(|h| (h.0, h.1));
            out.push((cid.as_str(), seg.as_str(), v.12.as_slice(), home, v.13, v.14));
        }
        out
    }

    /// The `usage_counts` buckets this plan writes segments into: each is recounted after.
    pub(super) fn usage_buckets(&self) -> Vec<CountBucket> {
        let mut out: Vec<CountBucket> =
            self.usage.keys().map(|(cid, day, hour, _)| (cid.clone(), *day, *hour)).collect();
        out.dedup();
        out
    }

    pub(super) fn digest_chunks(&self) -> Vec<Vec<DigestValues>> {
        partition_chunks(
            self.digests.iter().map(|((cid, day), v)| ((cid.clone(), *day), v.clone(), 48 + cid.len() + v.2.len())),
        )
    }
}

/// Cuts rows (already ordered so that a partition's rows are adjacent) into per-partition
/// chunks of at most [`BATCH_MAX_ROWS`] rows and about [`BATCH_MAX_BYTES`].
fn partition_chunks<V>(rows: impl IntoIterator<Item = (Partition, V, usize)>) -> Vec<Vec<V>> {
    let mut chunks: Vec<Vec<V>> = Vec::new();
    let mut current: Option<(Partition, usize)> = None;
    for (partition, values, bytes) in rows {
        let fits = match &current {
            Some((p, size)) => {
                *p == partition
                    && chunks.last().is_some_and(|c| c.len() < BATCH_MAX_ROWS)
                    && size + bytes <= BATCH_MAX_BYTES
            }
            None => false,
        };
        if fits {
            if let (Some((_, size)), Some(chunk)) = (current.as_mut(), chunks.last_mut()) {
                *size += bytes;
                chunk.push(values);
            }
        } else {
            current = Some((partition, bytes));
            chunks.push(vec![values]);
        }
    }
    chunks
}

/// The one partition of `purges`.
pub(super) const PURGES_BUCKET: i32 = 0;

/// The one partition of `subscriptions`.
pub(super) const SUBSCRIPTIONS_BUCKET: i32 = 0;

/// The `subscriptions` writes of a batch's subscription changes: each stamped with its report's
/// write stamp (so the newest change wins in any order), never expiring; a deletion writes a
/// null body.
pub(super) fn subscription_writes(batch: &[Envelope]) -> Vec<SubscriptionValues> {
    batch
        .iter()
        .filter_map(|env| {
            let (id, body) = match &env.report {
                Report::SubscriptionSet(r) => {
                    (r.subscription_id.to_string(), Some(serde_json::to_string(r).expect("subscriptions serialize")))
                }
                Report::SubscriptionDeleted(r) => (r.subscription_id.to_string(), None),
                _ => return None,
            };
            Some((SUBSCRIPTIONS_BUCKET, id, env.received_at.millis(), body, 0, rows::write_stamp(env)))
        })
        .collect()
}

/// The `dead_letters` writes of a batch: a dead letter's row, and a null body for every one a
/// release names, each stamped with its report's write stamp, never expiring.
pub(super) fn dead_letter_writes(batch: &[Envelope]) -> Vec<DeadLetterValues> {
    let mut out = Vec::new();
    for env in batch {
        let (stamp, at) = (rows::write_stamp(env), env.received_at.millis());
        match &env.report {
            Report::SubscriptionDeadLettered(r) => {
                let body = serde_json::to_string(r).expect("dead letters serialize");
                out.push((r.subscription_id.to_string(), r.webhook_id.clone(), at, Some(body), 0, stamp));
            }
            Report::DeadLettersReleased(r) => {
                for id in r.purged.iter().chain(r.replayed.iter().map(|l| &l.webhook_id)) {
                    out.push((r.subscription_id.to_string(), id.clone(), at, None, 0, stamp));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use schemas::{DayOffset, EndStatus};

    use super::super::fixtures::*;
    use super::*;

    /// Item 10: the calendar cut its days to the deployment's offset ±1 day, so a camera at
    /// UTC+14:00 on a UTC−11:00 deployment — two days ahead of it from 23:00 to midnight
    /// deployment time — got 0 for its today. At 10:30 UTC the deployment is at 23:30 on
    /// 30 November and the camera at 00:30 on 2 December.
    #[test]
    fn calendar_range_holds_a_utc_plus_14_cameras_today_on_a_utc_minus_11_deployment() {
        let policy = TimePolicy { offset: DayOffset::parse("-11:00").unwrap(), ..policy() };
        let now = Timestamp::parse_rfc3339("2026-12-01T10:30:00Z").unwrap();
        let camera = DayOffset::parse("+14:00").unwrap();
        let today = camera.day_of(now).unwrap();
        assert_eq!(today, Day::parse("2026-12-02").unwrap());
        assert_eq!(policy.offset.day_of(now).unwrap(), Day::parse("2026-11-30").unwrap());
        // What the API asks for a 30-day calendar: the camera's last 30 days.
        let (from, to) = calendar_day_range(today.add_days(-29), today, &policy, now).expect("days to read");
        assert_eq!((from, to), (today.add_days(-29), today), "the whole request is read");
    }

    /// Whatever the deployment's offset and the camera's (any `±HH:MM` a report may carry)
    /// and the time of day, the range holds every day a row can be on: the camera's today,
    /// the day of a clock up to the tolerance fast, and the day of its oldest kept event.
    #[test]
    fn calendar_range_holds_every_cameras_days_at_every_offset() {
        let base = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let offsets = [-MAX_CAMERA_OFFSET_MINUTES, -12 * 60, -11 * 60, -570, 0, 345, 13 * 60, 14 * 60]
            .into_iter()
            .chain([MAX_CAMERA_OFFSET_MINUTES])
            .map(|m| DayOffset::from_minutes(m).unwrap())
            .collect::<Vec<_>>();
        for deployment in &offsets {
            let policy = TimePolicy { offset: *deployment, ..policy() };
            for step in 0..(24 * 4) {
                let now = base.plus_millis(step * 15 * 60_000 + 7_000);
                for camera in &offsets {
                    let today = camera.day_of(now).unwrap();
                    let fast = camera.day_of(now.plus_millis(policy.future_tolerance_ms)).unwrap();
                    let oldest = camera.day_of(now.plus_millis(1_000 - policy.retention_ms())).unwrap();
                    let asked = (oldest.add_days(-3), fast.add_days(3));
                    let (from, to) = calendar_day_range(asked.0, asked.1, &policy, now).unwrap();
                    let at = format!("deployment {deployment}, camera {camera}, now {now}");
                    assert!(from <= oldest && fast <= to, "{at}: {from}..={to} misses {oldest}..={fast}");
                    assert!(from <= today && today <= to, "{at}");
                }
            }
        }
    }

    /// A kept event's rows carry no TTL and are written past retention too — its row, its
    /// mapping, the copy of its segment in its partition — while the rows of an event of the
    /// same partition that is not kept are left out past retention; the keep itself is in the
    /// plan, the newest per event.
    #[test]
    fn a_kept_events_rows_have_no_ttl_and_are_written_past_retention() {
        let now = Timestamp::now();
        let old = now.plus_millis(-policy().retention_ms() - 3_600_000);
        let (kept, sk) = start("cam-k", "motion", old);
        let (gone, sg) = start("cam-k", "person", old.plus_millis(1000));
        let both = segment("cam-k", "seg-both", old, &[(&kept, 0), (&gone, 0)]);
        let only_gone = segment("cam-k", "seg-gone", old, &[(&gone, 1)]);
        let mut set = KeptSet::new();
        set.insert(("cam-k".to_owned(), kept.as_str().to_owned()));
        let batch = [sk, sg, both, only_gone, end(&kept, 10, EndStatus::Complete), kept_report(&kept), deleted(&gone)];
        let plan = WritePlan::build(&batch, &policy(), now, &set).unwrap();
        let events: Vec<_> = plan.event_chunks().into_iter().flatten().map(|v| (v.3, v.10)).collect();
        assert_eq!(events, vec![(kept.as_str().to_owned(), 0)], "only the kept event, without TTL");
        let mappings: Vec<_> = plan.mapping_chunks().into_iter().flatten().map(|v| (v.2, v.8)).collect();
        assert_eq!(mappings, vec![(kept.as_str().to_owned(), 0)]);
        let segments: Vec<_> = plan.segment_chunks().into_iter().flatten().map(|v| (v.2, v.13)).collect();
        assert_eq!(segments, vec![("seg-both".to_owned(), 0)], "the copy the kept event maps; not the other");
        assert_eq!(plan.deletion_chunks().len(), 1, "a deletion's mark outlives every plan's rows of its event");
        let keeps: Vec<_> = plan.keeps().map(|k| (k.1.to_owned(), k.4)).collect();
        assert_eq!(keeps, vec![(kept.as_str().to_owned(), true)]);
        assert_eq!(WritePlan::devices_written(&batch), vec!["cam-k".to_owned()]);
    }

    /// The range stays bounded: never more than the longest plan + 6 days, however many are
    /// asked; an inverted, over-long or wholly expired request reads nothing; a 60-day plan's
    /// days past the deployment's 30 are read.
    #[test]
    fn calendar_range_is_bounded() {
        let now = Timestamp::parse_rfc3339("2026-12-01T23:59:00Z").unwrap();
        for minutes in [-12 * 60, 0, 14 * 60] {
            let policy = TimePolicy { offset: DayOffset::from_minutes(minutes).unwrap(), ..policy() };
            let today = policy.offset.day_of(now).unwrap();
            let (from, to) = calendar_day_range(today.add_days(-300), today.add_days(66), &policy, now).unwrap();
            assert!(to.days_since(from) < 300 + 6, "{from}..={to}");
            let longest = i64::from(longest_retention_days(&policy));
            let (from, to) = calendar_day_range(today.add_days(-366), today, &policy, now).unwrap();
            assert!(to.days_since(from) < longest + 6, "{from}..={to}");
            let sixty = calendar_day_range(today.add_days(-60), today.add_days(-31), &policy, now);
            assert_eq!(sixty, Some((today.add_days(-60), today.add_days(-31))), "a 60-day plan's days");
            assert_eq!(calendar_day_range(today.add_days(-400), today, &policy, now), None, "over 366 days");
            assert_eq!(calendar_day_range(today, today.add_days(-1), &policy, now), None, "inverted");
            let past = -longest - 10;
            assert_eq!(
                calendar_day_range(today.add_days(past - 30), today.add_days(past), &policy, now),
                None,
                "expired"
            );
            assert_eq!(calendar_day_range(today.add_days(5), today.add_days(9), &policy, now), None, "future");
        }
    }

    #[test]
    fn ttl_counts_from_the_trigger_time() {
        let p = policy();
        let now = Timestamp(1_800_000_000_000);
        assert_eq!(ttl_secs(p.expires_at(now), now), Some(30 * 86_400));
        // Three days late: 27 days left.
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(-3 * DAY_MS)), now), Some(27 * 86_400));
        // Rounded up: 1 ms left is 1 s, never 0 (TTL 0 means "never expire").
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(-30 * DAY_MS + 1)), now), Some(1));
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(-30 * DAY_MS + 1001)), now), Some(2));
        // At or past retention: not written.
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(-30 * DAY_MS)), now), None);
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(-40 * DAY_MS)), now), None);
        // Trigger slightly in the future (device clock): a little more than retention.
        assert_eq!(ttl_secs(p.expires_at(now.plus_millis(60_000)), now), Some(30 * 86_400 + 60));
        // Absurd retention is capped at CQL's maximum TTL.
        let long = TimePolicy { retention_days: 100_000, ..p };
        assert_eq!(ttl_secs(long.expires_at(now), now), Some(MAX_TTL_SECS as i32));
    }

    #[test]
    fn partition_chunks_group_adjacent_rows_and_cut_large_batches() {
        let p = |c: &str, d: i32| (c.to_owned(), d);
        let rows =
            vec![(p("a", 1), 1, 10), (p("a", 1), 2, 10), (p("a", 2), 3, 10), (p("b", 2), 4, 10), (p("b", 2), 5, 10)];
        assert_eq!(partition_chunks(rows), vec![vec![1, 2], vec![3], vec![4, 5]]);

        let many = (0..BATCH_MAX_ROWS * 2 + 1).map(|i| (p("a", 1), i, 1));
        let chunks = partition_chunks(many);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), vec![BATCH_MAX_ROWS, BATCH_MAX_ROWS, 1]);

        let big = (0..5).map(|i| (p("a", 1), i, BATCH_MAX_BYTES / 2));
        assert_eq!(partition_chunks(big), vec![vec![0, 1], vec![2, 3], vec![4]]);
        // A single row larger than the cut still goes out (alone).
        assert_eq!(partition_chunks([(p("a", 1), 0, BATCH_MAX_BYTES * 3)]), vec![vec![0]]);
        assert!(partition_chunks(Vec::<(Partition, u8, usize)>::new()).is_empty());
    }

    #[test]
    fn plan_merges_start_and_end_in_any_order() {
        let now = Timestamp::now();
        let t = now.plus_millis(-DAY_MS);
        let (a, sa) = start("cam-1", "motion", t);
        let (b, sb) = start("cam-1", "sound", t.plus_millis(1000));
        let batch = [
            end(&a, 5_000, EndStatus::Aborted),
            sa.clone(),
            sb,
            sa,
            end(&b, 1, EndStatus::Complete),
            end(&b, 7, EndStatus::Complete),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            // Received in batch order: the later report is the newer.
            e.received_at = now.plus_millis(i as i64);
            e
        })
        .collect::<Vec<_>>();
        let plan = WritePlan::build(&batch, &policy(), now, &KeptSet::new()).unwrap();
        // Each start also writes its device's offset row.
        assert_eq!(plan.rows, 9, "rows are counted per report, as the embedded store does");
        assert_eq!(plan.events.len(), 2);
        let chunks = plan.event_chunks();
        assert_eq!(chunks.len(), 1, "one partition, one batch");
        let rows = &chunks[0];
        assert_eq!(rows[0].3, a.as_str());
        assert!(matches!(rows[0].5, MaybeUnset::Set(true)));
        assert!(matches!(rows[0].6, MaybeUnset::Set(at) if at == t.millis() + 5_000));
        assert!(matches!(&rows[0].7, MaybeUnset::Set(s) if s == "aborted"));
        assert_eq!(rows[0].4, "motion");
        // The later end wins within a batch, as it would across batches.
        assert!(matches!(rows[1].6, MaybeUnset::Set(at) if at == t.millis() + 1_000 + 7));
        assert!((DAY_MS / 1000 * 29..=DAY_MS / 1000 * 29 + 1).contains(&i64::from(rows[0].10)));

        // A start alone leaves the end columns unset (never null: no tombstones, no reopening).
        let (_, only) = start("cam-1", "person", t);
        let plan = WritePlan::build(&[only], &policy(), now, &KeptSet::new()).unwrap();
        let row = &plan.event_chunks()[0][0];
        assert!(matches!(row.5, MaybeUnset::Set(true)));
        assert!(matches!(row.6, MaybeUnset::Unset) && matches!(row.7, MaybeUnset::Unset));
        // An end alone leaves `started` unset, so a later start cannot be overwritten by it.
        let plan = WritePlan::build(&[end(&a, 1, EndStatus::Complete)], &policy(), now, &KeptSet::new()).unwrap();
        assert!(matches!(plan.event_chunks()[0][0].5, MaybeUnset::Unset));
    }

    #[test]
    fn plan_routes_rows_to_their_partitions_and_skips_expired_ones() {
        let now = Timestamp::now();
        let today = DayOffset::default().day_of(now).unwrap();
        let noon = |days_ago: i64| DayOffset::default().start_of(today.add_days(-days_ago)).plus_millis(DAY_MS / 2);
        let (yesterday_ev, st_y) = start("cam-s", "motion", noon(1));
        let (old_ev, st_old) = start("cam-s", "motion", noon(40));
        let batch = [
            st_y,
            st_old,
            // Started today, holds the end of yesterday's event: the mapping lives with the
            // event (yesterday), pointing at the segment's own day.
            segment("cam-s", "seg-1", noon(0), &[(&yesterday_ev, 3), (&old_ev, 0)]),
            segment("cam-s", "seg-old", noon(40), &[(&yesterday_ev, 0)]),
            digest("cam-s", today.add_days(-2), "dg-1"),
            digest("cam-s", today.add_days(-2), "dg-2"),
            digest("cam-s", today.add_days(-31), "dg-old"),
        ];
        let plan = WritePlan::build(&batch, &policy(), now, &KeptSet::new()).unwrap();
        // start(y) and its device offset + seg-1, its copy in y and mapping(y, 3) + seg-old's
        // copy in y and mapping(y, 0) (its own day is past retention) + 2 digests + seg-1's bytes
        // (seg-old's are counted in its own day, past retention)
        assert_eq!(plan.rows, 10);
        let counted: Vec<_> = plan.usage_chunks().concat().into_iter().map(|u| (u.1, u.3, u.4)).collect();
        assert_eq!(counted, vec![(day_key(today), "seg-1".to_owned(), 1000)], "counted once, in its own day");
        let homes: Vec<_> = plan.home_chunks().concat().into_iter().map(|h| (h.1, h.2, h.3)).collect();
        let t = day_key(today);
        let y = day_key(today.add_days(-1));
        let old = day_key(today.add_days(-40));
        assert_eq!(
            homes,
            vec![(y, "seg-1".to_owned(), t), (y, "seg-old".to_owned(), old), (t, "seg-1".to_owned(), t)],
            "every copy names where its bytes are counted"
        );
        assert_eq!(plan.events.keys().map(|k| k.1).collect::<Vec<_>>(), vec![day_key(today.add_days(-1))]);
        let y = day_key(today.add_days(-1));
        let segs = plan.segment_chunks();
        let got: Vec<Vec<_>> =
            segs.iter().map(|c| c.iter().map(|s| (s.1, s.2.clone(), s.11.clone())).collect()).collect();
        assert_eq!(
            got,
            vec![
                vec![(y, "seg-1".to_owned(), vec![0, 500]), (y, "seg-old".to_owned(), vec![0, 500])],
                vec![(day_key(today), "seg-1".to_owned(), vec![0, 500])],
            ],
            "each segment in its own day (while alive) and copied into its events' day"
        );
        assert!(matches!(segs[0][0].10, MaybeUnset::Unset), "no audio: unset, not null");
        // The copies expire with yesterday's event, not with the 40-day-old start.
        assert_eq!(segs[0][1].13, plan.event_chunks()[0][0].10);
        let maps = plan.mapping_chunks();
        assert_eq!(maps.len(), 1, "both mappings are in yesterday's partition: one batch");
        let m: Vec<_> = maps[0].iter().map(|m| (m.1, m.3, m.4, m.5.as_str())).collect();
        assert_eq!(m, vec![(y, 0, y, "seg-old"), (y, 3, y, "seg-1")], "mappings point at the copies");
        let dg = plan.digest_chunks();
        assert_eq!(dg.len(), 1);
        assert_eq!((dg[0][0].1, dg[0][0].2.as_str()), (day_key(today.add_days(-2)), "dg-2"), "a re-upload replaces");
    }

    #[test]
    fn an_older_report_never_outranks_a_newer_one_whoever_writes_it_and_when() {
        let now = Timestamp::now();
        let t = now.plus_millis(-DAY_MS);
        let (a, _) = start("cam-1", "motion", t);
        let mut older = end(&a, 1_000, EndStatus::Aborted);
        let mut newer = end(&a, 9_000, EndStatus::Complete);
        older.received_at = t.plus_millis(2_000);
        newer.received_at = t.plus_millis(10_000);
        let stamp = |batch: &[Envelope], at: Timestamp| {
            let plan = WritePlan::build(batch, &policy(), at, &KeptSet::new()).unwrap();
            let row = plan.event_chunks()[0][0].clone();
            (row.11, row.6)
        };
        // The stamp is the report's: the same whichever process writes it, and whenever
        // (a stale projector an hour later still writes the older stamp).
        let (old_stamp, _) = stamp(std::slice::from_ref(&older), now);
        assert_eq!(stamp(std::slice::from_ref(&older), now.plus_millis(3_600_000)).0, old_stamp);
        let (new_stamp, _) = stamp(std::slice::from_ref(&newer), now);
        assert!(old_stamp < new_stamp);
        assert_eq!(old_stamp, schemas::rows::write_stamp(&older));
        // In one batch, in either order, the newer end wins and carries its own stamp.
        for batch in [[older.clone(), newer.clone()], [newer.clone(), older.clone()]] {
            let (s, ended) = stamp(&batch, now);
            assert_eq!(s, new_stamp);
            assert!(matches!(ended, MaybeUnset::Set(at) if at == t.millis() + 9_000));
        }
    }

    #[test]
    fn counts_are_recounted_per_hour_and_the_largest_wins() {
        let now = Timestamp::now();
        let today = DayOffset::default().day_of(now).unwrap();
        let hour =
            |days_ago: i64, h: i64| DayOffset::default().start_of(today.add_days(-days_ago)).plus_millis(h * 3_600_000);
        let (a, sa) = start("cam-k", "motion", hour(1, 3).plus_millis(10));
        let (_, sb) = start("cam-k", "motion", hour(1, 3).plus_millis(20));
        let (_, sc) = start("cam-k", "motion", hour(1, 5));
        let (_, sd) = start("cam-j", "motion", hour(2, 3));
        let plan =
            WritePlan::build(&[sa, sb, sc, sd, end(&a, 5, EndStatus::Complete)], &policy(), now, &KeptSet::new())
                .unwrap();
        let h = |days_ago, hr| count_bucket(hour(days_ago, hr).millis());
        let (d1, d2) = (day_key(today.add_days(-1)), day_key(today.add_days(-2)));
        assert_eq!(
            plan.count_buckets(),
            vec![
                ("cam-j".to_owned(), d2, h(2, 3)),
                ("cam-k".to_owned(), d1, h(1, 3)),
                ("cam-k".to_owned(), d1, h(1, 5))
            ],
            "each (device, day, hour) once, whatever its number of rows"
        );
        let (from, to) = bucket_range(h(1, 3));
        assert_eq!((from, to), (hour(1, 3).millis(), hour(1, 4).millis()));
        assert_eq!(count_bucket(-1), -1, "before 1970 too");
        // The larger count has the later timestamp, inside the hour counted.
        let b = h(1, 3);
        assert!(count_stamp(b, 2) > count_stamp(b, 1) && count_stamp(b, 1) > count_stamp(b, 0));
        assert_eq!(count_stamp(b, 0), from * 1000);
        assert!(count_stamp(b, i64::MAX) < to * 1000);
        // Kept until the newest event counted expires.
        let bucket = ("cam-k".to_owned(), d1, b);
        let row = count_row(&bucket, 2, Some(from + 20), policy().retention_days, now).unwrap();
        assert_eq!((row.3, row.5), (2, count_stamp(b, 2)));
        assert_eq!(row.4, ttl_secs(policy().expires_at(Timestamp(from + 20)), now).unwrap());
        assert_eq!(count_chunks(vec![row.clone(), row.clone()]).len(), 1, "one partition: one batch");
        // Nothing counted, or nothing left alive: nothing written.
        assert_eq!(count_row(&bucket, 0, None, policy().retention_days, now), None);
        let long_ago = now.plus_millis(-31 * DAY_MS).millis();
        assert_eq!(count_row(&bucket, 1, Some(long_ago), policy().retention_days, now), None);
        // A fast clock's claim days ahead: the count outlives its day by two days at most.
        let far =
            count_row(&bucket, 1, Some(now.plus_millis(20 * DAY_MS).millis()), policy().retention_days, now).unwrap();
        let cap = DayOffset::default().start_of(today.add_days(1));
        assert_eq!(far.4, ttl_secs(policy().expires_at(cap), now).unwrap());
    }

    #[test]
    fn a_value_no_column_holds_is_rejected_by_its_index() {
        let now = Timestamp::now();
        let (a, st) = start("cam-1", "motion", now.plus_millis(-1000));
        let ok = segment("cam-1", "seg-1", now.plus_millis(-500), &[(&a, 0)]);
        // Validation refuses it; a record of an older build may still carry it.
        let poison = segment("cam-1", "seg-2", now.plus_millis(-400), &[(&a, 1 << 31)]);
        let err = WritePlan::build(&[st, ok, poison], &policy(), now, &KeptSet::new()).err().expect("refused");
        assert!(err.is_permanent(), "{err}");
        assert!(matches!(err, StoreError::Rejected { index: Some(2), .. }), "{err}");
    }
}
