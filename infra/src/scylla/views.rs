//! Rows as read: the key tuples the reads bind, the row tuples they return, and their
//! conversion back to the seam's views.

use std::fmt;

use schemas::{DayOffset, EndStatus, EventId, Media, SegmentId, Timestamp};
use seams::{EventStatus, EventView, SegmentView, StoreError};

/// Bound keys of the reads: (cid, day) …
pub(super) type DayKey<'a> = (&'a str, i32);
/// … (cid, day, kind = the event type) …
pub(super) type DayTypeKey<'a> = (&'a str, i32, &'a str);
/// … (cid, day, triggered_at, event_id) …
pub(super) type EventKey<'a> = (&'a str, i32, i64, &'a str);
/// … (cid, day, event_id) for mappings, (cid, seg_day, segment_id) for a segment …
pub(super) type ClusteringKey<'a> = (&'a str, i32, &'a str);
/// … (cid, day, from, to): a recount's slice of trigger times, `[from, to)` ms.
pub(super) type RecountKey<'a> = (&'a str, i32, i64, i64);

/// event_id, ended_at, end_status, clock_skew_ms.
pub(super) type EventRow = (String, Option<i64>, Option<String>, Option<i64>);
/// An [`EventRow`] as read, with `deleted` (true once deleted: the row is then no event) and
/// `retention_days` (the plan it was written under; null: written before rows kept theirs).
pub(super) type EventReadRow = (String, Option<i64>, Option<String>, Option<i64>, Option<bool>, Option<i32>);
/// deleted, of one event row.
pub(super) type DeletedRow = (Option<bool>,);
/// deleted, retention_days, of one event row (a recount of deletions).
pub(super) type DeletedRecountRow = (Option<bool>, Option<i32>);
/// events, counted_day, counted_hour of one segment row (null: written before segments kept
/// their events, or where their bytes are counted).
pub(super) type SegmentEventsRow = (Option<Vec<String>>, Option<i32>, Option<i64>);
/// bytes, freed, filed_at, retention_days, of one `segment_usage` row.
pub(super) type UsageRow = (Option<i64>, Option<bool>, Option<i64>, Option<i32>);
/// cid, day, key, of one purge.
pub(super) type PurgeRow = (String, i32, String);
/// utc_offset (minutes east of UTC), retention_days (the device's plan; null: the deployment's).
pub(super) type DeviceRow = (i32, Option<i32>);
/// events, deleted (one hour bucket of `event_counts`; either may be unset); likewise stored,
/// freed (one hour bucket of `usage_counts`).
pub(super) type CountRow = (Option<i64>, Option<i64>);
/// count, max(triggered_at), max(retention_days) (null when the slice holds no row, or no row
/// with a plan).
pub(super) type RecountRow = (i64, Option<i64>, Option<i32>);
/// idx, seg_day, segment_id, start_offset, end_offset.
pub(super) type MappingRow = (i32, i32, String, i64, i64);
/// segment_id, size, started_at, duration_ms, codec, width, height, fps,
/// audio_sample_rate, keyframes.
pub(super) type SegmentRow = (String, i64, i64, i64, String, i32, i32, f64, Option<i32>, Option<Vec<i64>>);
/// segment_id, size, duration_ms.
pub(super) type DigestRow = (String, i64, i64);
/// part, off, key, value, reason, quarantined_at.
pub(super) type QuarantineRow = (i32, i64, String, Vec<u8>, String, i64);
/// `quarantine`: day, part, off, key, value, reason, quarantined_at, [ttl].
pub(super) type QuarantineValues = (i32, i32, i64, String, Vec<u8>, String, i64, i32);

/// id, changed_at, body (null once deleted).
pub(super) type SubscriptionRow = (String, i64, Option<String>);
/// `subscriptions`: bucket, id, changed_at, body, [ttl], [timestamp].
pub(super) type SubscriptionValues = (i32, String, i64, Option<String>, i32, i64);

/// event_id, day, triggered_at, kept, at, stamp: a keep or un-keep of one event.
pub(super) type KeepRow = (String, i32, i64, bool, i64, i64);
/// `kept`: cid, event_id, day, triggered_at, kept, at, stamp, [ttl], [timestamp].
pub(super) type KeepValues = (String, String, i32, i64, bool, i64, i64, i32, i64);
/// kind, started, ended_at, end_status, clock_skew_ms, deleted, retention_days: an event row whole.
pub(super) type EventWholeRow =
    (String, Option<bool>, Option<i64>, Option<String>, Option<i64>, Option<bool>, Option<i32>);
/// A [`SegmentRow`] with its events.
pub(super) type SegmentWholeRow =
    (String, i64, i64, i64, String, i32, i32, f64, Option<i32>, Option<Vec<i64>>, Option<Vec<String>>);

/// webhook_id, dead_at, body (null once released).
pub(super) type DeadLetterRow = (String, i64, Option<String>);
/// `dead_letters`: subscription_id, webhook_id, dead_at, body, [ttl], [timestamp].
pub(super) type DeadLetterValues = (String, String, i64, Option<String>, i32, i64);

pub(super) fn other(e: impl fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

pub(super) fn to_u64(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Other(format!("negative {what} {v} in store")))
}

pub(super) fn to_u32(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Other(format!("{what} {v} in store is out of range")))
}

/// The event of a row as read, with the plan it was written under, unless it is deleted.
pub(super) fn live_event((id, ended_at, status, skew, deleted, days): EventReadRow) -> Option<(EventRow, Option<i32>)> {
    (deleted != Some(true)).then_some(((id, ended_at, status, skew), days))
}

pub(super) fn event_view(
    (event_id, ended_at, end_status, clock_skew_ms): EventRow,
    fallback: DayOffset,
) -> Result<EventView, StoreError> {
    let event_id = EventId::parse(&event_id).map_err(other)?;
    let end = match end_status.as_deref() {
        None => None,
        Some(s) => {
            Some(EndStatus::parse(s).ok_or_else(|| StoreError::Other(format!("bad end status {s:?} in store")))?)
        }
    };
    Ok(EventView {
        utc_offset: event_id.offset().unwrap_or(fallback),
        clock_skew_ms,
        event_type: event_id.event_type().clone(),
        triggered_at: event_id.triggered_at(),
        ended_at: ended_at.map(Timestamp),
        status: EventStatus::from_end(end),
        kept: false,
        event_id,
    })
}

pub(super) fn segment_view(mapping: MappingRow, segment: SegmentRow) -> Result<SegmentView, StoreError> {
    let (idx, _, _, start_offset, end_offset) = mapping;
    let (segment_id, size, started_at, duration_ms, codec, width, height, fps, audio, keyframes) = segment;
    Ok(SegmentView {
        segment_id: SegmentId::parse(&segment_id).map_err(other)?,
        index: to_u32("idx", idx.into())?,
        size: to_u64("size", size)?,
        start_offset: to_u64("start_offset", start_offset)?,
        end_offset: to_u64("end_offset", end_offset)?,
        started_at: Timestamp(started_at),
        duration_ms: to_u32("duration_ms", duration_ms)?,
        media: Media {
            codec,
            width: to_u32("width", width.into())?,
            height: to_u32("height", height.into())?,
            fps,
            audio_sample_rate: audio.map(|a| to_u32("audio_sample_rate", a.into())).transpose()?,
        },
        keyframes: keyframes
            .unwrap_or_default()
            .into_iter()
            .map(|k| to_u64("keyframe", k))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::start;
    use super::*;

    #[test]
    fn rows_convert_back_to_views() {
        let (id, _) = start("cam-v", "person", Timestamp(1_800_000_000_000));
        let v = event_view(
            (id.as_str().to_owned(), Some(1_800_000_004_000), Some("complete".into()), None),
            DayOffset::default(),
        )
        .unwrap();
        assert_eq!((v.status, v.duration_ms(), v.event_type.as_str()), (EventStatus::Complete, Some(4_000), "person"));
        let open = event_view((id.as_str().to_owned(), None, None, Some(5)), DayOffset::default()).unwrap();
        assert_eq!(open.status, EventStatus::Open);
        assert!(event_view(("nonsense".into(), None, None, None), DayOffset::default()).is_err());
        assert!(
            event_view((id.as_str().to_owned(), Some(1), Some("weird".into()), None), DayOffset::default()).is_err()
        );

        let seg = segment_view(
            (2, 20261122, "seg-9".into(), 10, 90),
            ("seg-9".into(), 100, 5, 10_000, "h265".into(), 640, 480, 12.5, Some(8000), None),
        )
        .unwrap();
        assert_eq!((seg.index, seg.size, seg.start_offset, seg.end_offset), (2, 100, 10, 90));
        assert_eq!((seg.media.audio_sample_rate, seg.keyframes.len()), (Some(8000), 0));
        assert!(
            segment_view((0, 1, "s".into(), -1, 0), ("s".into(), 1, 0, 1, "c".into(), 1, 1, 1.0, None, None)).is_err()
        );
    }
}
