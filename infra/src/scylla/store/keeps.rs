//! Keeps in ScyllaDB (`infra/cql/schema.cql`, `kept`): which events a batch leaves kept, the
//! rewrite of a kept or un-kept event's rows with their new TTL, and the reads of kept events.

use std::collections::{HashMap, HashSet};

use ::scylla::response::PagingState;
use ::scylla::value::MaybeUnset;
use futures::stream::{self, StreamExt, TryStreamExt};
use schemas::{DeviceId, Envelope, EventId, Report, TimePolicy, Timestamp};
use seams::{EventView, KeptEvent, KeptPage, KeptReports, ProjectionStore, StoreError};

use super::super::plan::{
    days_ms, longest_plan, ttl_secs, EventValues, KeptSet, MappingValues, SegmentValues, WritePlan,
};
use super::super::retry::{exec_error, is_bad_paging_state};
use super::super::schema::day_key;
use super::super::views::{
    event_view, live_event, other, DeletedRow, EventKey, EventReadRow, EventWholeRow, KeepRow, KeepValues, MappingRow,
    SegmentWholeRow,
};
use super::ScyllaStore;

/// The one partition of `kept_devices`.
pub(super) const KEPT_DEVICES_BUCKET: i32 = 0;
/// Devices restated per page of `kept_reports`.
const DEVICES_PER_PAGE: i32 = 16;

/// A device's kept and un-kept events (ids).
#[derive(Debug, Default)]
pub(super) struct KeepMarks {
    kept: HashSet<String>,
    unkept: HashSet<String>,
}

impl KeepMarks {
    /// Whether reads leave `id` out: un-kept, and past the retention it was written under
    /// (`days`; the deployment's for a row written before rows kept theirs).
    pub(super) fn gone(&self, id: &EventId, days: Option<i32>, policy: &TimePolicy, now: Timestamp) -> bool {
        self.unkept.contains(id.as_str()) && event_expiry(id, days, policy) <= now
    }

    /// Whether `id` is kept.
    pub(super) fn kept(&self, id: &EventId) -> bool {
        self.kept.contains(id.as_str())
    }
}

/// When event `id` expires, written under `days` (the deployment's retention if unknown).
fn event_expiry(id: &EventId, days: Option<i32>, policy: &TimePolicy) -> Timestamp {
    id.filed_at(policy.offset).plus_millis(days_ms(longest_plan([days], policy)))
}

/// The newest keep or un-keep of each event as stored: (cid, event id) → (kept, stamp).
pub(super) type Stored = HashMap<(String, String), (bool, i64)>;

impl ScyllaStore {
    /// The keeps and un-keeps of `cid` as stored.
    pub(super) async fn keep_rows(&self, cid: &str) -> Result<Vec<KeepRow>, StoreError> {
        self.query_all::<KeepRow>(&self.statements.keeps, (cid,)).await
    }

    /// Which of `cid`'s events are kept, and which un-kept.
    pub(super) async fn keep_marks(&self, cid: &str) -> Result<KeepMarks, StoreError> {
        let mut marks = KeepMarks::default();
        for (id, _, _, kept, _, _) in self.keep_rows(cid).await? {
            if kept {
                marks.kept.insert(id);
            } else {
                marks.unkept.insert(id);
            }
        }
        Ok(marks)
    }

    /// Which events are kept once `batch` is applied: the stored keeps of every device the
    /// batch writes rows of (one partition read per device), the batch's newer ones over them,
    /// less the events the batch deletes. Also returns what was stored.
    pub(super) async fn kept_after(&self, batch: &[Envelope]) -> Result<(KeptSet, Stored), StoreError> {
        // One small partition per device, read concurrently like the recounts.
        let rows: Vec<(String, Vec<KeepRow>)> = stream::iter(WritePlan::devices_written(batch))
            .map(|cid| async move {
                let rows = self.keep_rows(&cid).await?;
                Ok::<_, StoreError>((cid, rows))
            })
            .buffer_unordered(self.max_concurrency)
            .try_collect()
            .await?;
        let mut stored = Stored::new();
        for (cid, rows) in rows {
            for (id, _, _, kept, _, stamp) in rows {
                stored.insert((cid.clone(), id), (kept, stamp));
            }
        }
        let mut now = stored.clone();
        let mut deleted = Vec::new();
        for env in batch {
            let (cid, id, kept) = match &env.report {
                Report::EventKept(r) => (&r.cid, &r.event_id, true),
                Report::EventUnkept(r) => (&r.cid, &r.event_id, false),
                Report::EventDeleted(r) => {
                    deleted.push((r.cid.as_str().to_owned(), r.event_id.as_str().to_owned()));
                    continue;
                }
                _ => continue,
            };
            let stamp = schemas::rows::write_stamp(env);
            let slot = now.entry((cid.as_str().to_owned(), id.as_str().to_owned())).or_insert((kept, stamp));
            if stamp >= slot.1 {
                *slot = (kept, stamp);
            }
        }
        let mut kept: KeptSet = now.into_iter().filter(|(_, (k, _))| *k).map(|(key, _)| key).collect();
        for key in deleted {
            kept.remove(&key);
        }
        // A deleted event is not kept: of the kept events the batch writes rows of (few: keeps
        // are rare), those deleted before are left out, so their rows keep their TTL.
        let mut touched: Vec<(String, EventId)> = Vec::new();
        for env in batch {
            let Some(cid) = env.report.cid() else { continue };
            let ids: Vec<&EventId> = match &env.report {
                Report::EventStarted(r) => vec![&r.event_id],
                Report::EventEnded(r) => vec![&r.event_id],
                Report::EventKept(r) => vec![&r.event_id],
                Report::EventUnkept(r) => vec![&r.event_id],
                Report::SegmentReported(r) => r.events.iter().map(|m| &m.event_id).collect(),
                _ => Vec::new(),
            };
            for id in ids {
                let key = (cid.as_str().to_owned(), id.as_str().to_owned());
                if kept.contains(&key) && !touched.iter().any(|(c, i)| *c == key.0 && i.as_str() == key.1) {
                    touched.push((key.0, id.clone()));
                }
            }
        }
        for (cid, id) in touched {
            let key: EventKey<'_> = (cid.as_str(), day_key(id.day()), id.triggered_at().millis(), id.as_str());
            if let Some((Some(true),)) = self.query_opt::<DeletedRow>(&self.statements.event_deleted, key).await? {
                kept.remove(&(cid, id.as_str().to_owned()));
            }
        }
        Ok((kept, stored))
    }

    /// Writes the keeps and un-keeps of `plan`: a keep never expires, an un-keep is kept a
    /// retention (the log's reach); a device with a keep is listed in `kept_devices`.
    pub(super) async fn write_keeps(&self, plan: &WritePlan) -> Result<(), StoreError> {
        let s = &self.statements;
        let retention = i32::try_from(self.policy.retention_ms() / 1000).unwrap_or(i32::MAX);
        for (cid, id, day, trig, kept, at, stamp) in plan.keeps() {
            let ttl = if kept { 0 } else { retention };
            let values: KeepValues = (cid.to_owned(), id.to_owned(), day, trig, kept, at, stamp, ttl, stamp);
            self.write(&s.insert_keep, vec![values]).await?;
            if kept {
                self.write(&s.insert_kept_device, vec![(KEPT_DEVICES_BUCKET, cid, 0_i32, stamp)]).await?;
            }
        }
        Ok(())
    }

    /// After `plan`'s rows are written: each event whose keep or un-keep won, and each kept
    /// event the plan deletes, has its rows rewritten with the TTL it now has.
    pub(super) async fn rewrite_kept(
        &self,
        plan: &WritePlan,
        kept: &KeptSet,
        stored: &Stored,
    ) -> Result<(), StoreError> {
        for (cid, id, _, _, _, _, stamp) in plan.keeps() {
            let key = (cid.to_owned(), id.to_owned());
            if stored.get(&key).is_none_or(|s| stamp >= s.1) {
                self.restamp(cid, &EventId::parse(id).map_err(other)?, kept, stamp).await?;
            }
        }
        for (cid, _, id, _, stamp) in plan.deleted_events() {
            if stored.get(&(cid.to_owned(), id.to_owned())).is_some_and(|s| s.0) {
                self.restamp(cid, &EventId::parse(id).map_err(other)?, kept, stamp).await?;
            }
        }
        Ok(())
    }

    /// Rewrites event `id`'s rows — its `events` row, its mappings, the copies of its segments
    /// in its partition — at `stamp`: without TTL if it is kept, else with what the normal rule
    /// leaves (a second once it has run out: gone at once). A segment's copy keeps no TTL while
    /// another kept event of the partition maps it, else lives as long as the longest-lived
    /// event of the partition it names.
    async fn restamp(&self, cid: &str, id: &EventId, kept: &KeptSet, stamp: i64) -> Result<(), StoreError> {
        let s = &self.statements;
        let now = Timestamp::now();
        let is_kept = |e: &str| kept.contains(&(cid.to_owned(), e.to_owned()));
        let ttl_of = |expires: Timestamp| ttl_secs(expires, now).unwrap_or(1);
        let offset = self.policy.offset;
        let (day, trig) = (day_key(id.day()), id.triggered_at().millis());
        let key: EventKey<'_> = (cid, day, trig, id.as_str());
        let whole = self.query_opt::<EventWholeRow>(&s.event_whole, key).await?;
        // The plan the event was written under decides its expiry once it is not kept.
        let days = whole.as_ref().and_then(|w| w.6);
        let ttl = if is_kept(id.as_str()) { 0 } else { ttl_of(event_expiry(id, days, &self.policy)) };
        if let Some((kind, started, ended_at, status, skew, deleted, days)) = whole {
            let set = |v: Option<i64>| v.map_or(MaybeUnset::Unset, MaybeUnset::Set);
            let values: EventValues = (
                cid.to_owned(),
                day,
                trig,
                id.as_str().to_owned(),
                kind.clone(),
                if started == Some(true) { MaybeUnset::Set(true) } else { MaybeUnset::Unset },
                set(ended_at),
                status.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                set(skew),
                days.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                ttl,
                stamp,
            );
            self.write(&s.insert_event, vec![values]).await?;
            if deleted == Some(true) {
                self.write(
                    &s.insert_deletion,
                    vec![(cid.to_owned(), day, trig, id.as_str().to_owned(), kind, true, ttl, stamp)],
                )
                .await?;
            }
        }
        for (idx, seg_day, segment_id, start, end) in
            self.query_all::<MappingRow>(&s.mappings, (cid, day, id.as_str())).await?
        {
            let mapping: MappingValues =
                (cid.to_owned(), day, id.as_str().to_owned(), idx, seg_day, segment_id.clone(), start, end, ttl, stamp);
            self.write(&s.insert_mapping, vec![mapping]).await?;
            let Some(row) =
                self.query_opt::<SegmentWholeRow>(&s.segment_whole, (cid, seg_day, segment_id.as_str())).await?
            else {
                continue;
            };
            let (segment_id, size, started_at, duration_ms, codec, width, height, fps, audio, keyframes, events) = row;
            let names = events.clone().unwrap_or_else(|| vec![id.as_str().to_owned()]);
            let here: Vec<EventId> =
                names.iter().filter_map(|e| EventId::parse(e).ok()).filter(|e| day_key(e.day()) == seg_day).collect();
            let copy_ttl = if here.iter().any(|e| is_kept(e.as_str())) {
                0
            } else {
                // (The other events' plans are not read: this event's stands for them.)
                let latest = here.iter().map(|e| e.filed_at(offset)).max().unwrap_or(id.filed_at(offset));
                ttl_of(latest.plus_millis(days_ms(longest_plan([days], &self.policy))))
            };
            let values: SegmentValues = (
                cid.to_owned(),
                seg_day,
                segment_id,
                size,
                started_at,
                duration_ms,
                codec,
                width,
                height,
                fps,
                audio.map_or(MaybeUnset::Unset, MaybeUnset::Set),
                keyframes.unwrap_or_default(),
                events.unwrap_or_default(),
                copy_ttl,
                stamp,
            );
            self.write(&s.insert_segment, vec![values]).await?;
        }
        Ok(())
    }

    /// Marks the kept ones among `events` of `cid`, and leaves out the un-kept ones past
    /// retention (their rows, rewritten with a second to live, may not be gone yet).
    /// `plans`: the plan each event was written under, by id.
    pub(super) async fn mark_kept(
        &self,
        cid: &str,
        events: &mut Vec<EventView>,
        plans: &HashMap<String, Option<i32>>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let marks = self.keep_marks(cid).await?;
        let now = Timestamp::now();
        events.retain(|e| {
            let days = plans.get(e.event_id.as_str()).copied().flatten();
            !marks.gone(&e.event_id, days, &self.policy, now)
        });
        for e in events {
            e.kept = marks.kept.contains(e.event_id.as_str());
        }
        Ok(())
    }

    /// Up to `limit` kept events of `cid` (not deleted) after `after`, ascending by id.
    pub(super) async fn kept_events(
        &self,
        cid: &DeviceId,
        after: Option<&EventId>,
        limit: u32,
    ) -> Result<Vec<EventView>, StoreError> {
        let after = after.map_or("", |a| a.as_str());
        let mut out = Vec::new();
        for (id, day, trig, kept, _, _) in self.keep_rows(cid.as_str()).await? {
            if !kept || id.as_str() <= after {
                continue;
            }
            let key: EventKey<'_> = (cid.as_str(), day, trig, id.as_str());
            if let Some((row, _)) =
                self.query_opt::<EventReadRow>(&self.statements.event, key).await?.and_then(live_event)
            {
                let mut view = event_view(row, self.policy.offset)?;
                view.kept = true;
                out.push(view);
                if out.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// A page of devices with kept events, each restated (`seams::restate`).
    pub(super) async fn restate_kept(&self, cursor: Option<&[u8]>) -> Result<KeptPage, StoreError> {
        let state = match cursor {
            Some(c) => PagingState::new_from_raw_bytes(c.to_vec()),
            None => PagingState::start(),
        };
        let mut stmt = self.statements.kept_devices.clone();
        stmt.set_page_size(DEVICES_PER_PAGE);
        let (result, next) = self.page_once(&stmt, (KEPT_DEVICES_BUCKET,), state).await?.map_err(|e| {
            if cursor.is_some() && is_bad_paging_state(&e) {
                StoreError::BadCursor
            } else {
                exec_error(e)
            }
        })?;
        let rows = result.into_rows_result().map_err(other)?;
        let cids: Vec<String> = rows
            .rows::<(String,)>()
            .map_err(other)?
            .map(|r| r.map(|(c,)| c))
            .collect::<Result<_, _>>()
            .map_err(other)?;
        let mut page = KeptPage::default();
        for cid in cids {
            let device = DeviceId::parse(&cid).map_err(other)?;
            let mut events = Vec::new();
            for (id, day, trig, kept, at, _) in self.keep_rows(&cid).await? {
                if !kept {
                    continue;
                }
                let key: EventKey<'_> = (cid.as_str(), day, trig, id.as_str());
                let Some(whole) = self.query_opt::<EventWholeRow>(&self.statements.event_whole, key).await? else {
                    continue;
                };
                let Some(detail) = self.event(&EventId::parse(&id).map_err(other)?).await? else { continue };
                let mut event = detail.event;
                event.kept = true;
                let started = whole.1 == Some(true);
                let retention_days = whole.6.and_then(|d| u32::try_from(d).ok());
                events.push(KeptEvent {
                    event,
                    started,
                    kept_at: Timestamp(at),
                    segments: detail.segments,
                    retention_days,
                });
            }
            if !events.is_empty() {
                let reports = seams::restate(&device, &events, self.policy.offset);
                page.devices.push(KeptReports { cid: device, reports });
            }
        }
        page.next = match next.into_paging_control_flow() {
            std::ops::ControlFlow::Continue(s) => s.as_bytes_slice().map(|b| b.to_vec()),
            std::ops::ControlFlow::Break(()) => None,
        };
        Ok(page)
    }
}
