//! Keeps in the embedded store (docs/data-model.md, Keeping events): the `keeps` table, the
//! rows a keep spares from the janitor, and the kept events restated as reports.
//!
//! `keeps` is not day-partitioned: one row per (device, event) that was ever kept, holding the
//! newest keep or un-keep by write stamp. The janitor ([`drop_expired`]) drops an expired
//! partition's rows except those of kept events that are not deleted — the event row, its mappings, and the
//! copies of its segments in its partition — and drops a keep row once its event is gone and
//! the keep or un-keep is older than retention (the log no longer holds it, so no replay can
//! bring an older version back). An un-kept event past retention leaves every read at once
//! ([`hidden`]) and its rows at the janitor's next round.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use schemas::owner::MAX_PLAN_DAYS;
use schemas::rows::{self, Row, RowData};
use schemas::{Day, DeviceId, Envelope, TimePolicy, Timestamp};
use seams::{KeptEvent, KeptPage, KeptReports, StoreError};

use super::other;

/// The table (created with the others).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keeps (
    cid      TEXT    NOT NULL,
    event_id TEXT    NOT NULL,
    day      INTEGER NOT NULL, -- the event's partition
    trig     INTEGER NOT NULL,
    kept     INTEGER NOT NULL, -- 1: kept; 0: un-kept
    stamp    INTEGER NOT NULL, -- schemas::rows::write_stamp of the keep or un-keep
    at       INTEGER NOT NULL, -- its received_at
    PRIMARY KEY (cid, event_id)
) WITHOUT ROWID;
";

/// Whether the `events` row `e` is kept (an SQL expression).
pub(super) const KEPT: &str =
    "EXISTS (SELECT 1 FROM keeps k WHERE k.cid = e.cid AND k.event_id = e.event_id AND k.kept = 1)";

/// Whether the `events` row `e` is un-kept and past its expiry, parameter `?{param}` being now
/// (ms) and `retention_ms` the deployment's retention, which a row written before events kept
/// their expiry is read with (an SQL expression): such an event is gone for every read at once.
pub(super) fn hidden(param: usize, retention_ms: i64) -> String {
    format!(
        "(coalesce(e.expires, e.trig + {retention_ms}) <= ?{param} AND EXISTS (SELECT 1 FROM keeps k WHERE k.cid = e.cid AND k.event_id = e.event_id AND k.kept = 0))"
    )
}

/// Writes the keeps and un-keeps of `batch`: of two versions of an event's, the newer stamp
/// wins. Returns the rows written.
pub(super) fn apply(tx: &Transaction<'_>, policy: &TimePolicy, batch: &[Envelope]) -> rusqlite::Result<u64> {
    let mut put = tx.prepare_cached(
        "INSERT INTO keeps (cid, event_id, day, trig, kept, stamp, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT DO UPDATE SET kept = excluded.kept, stamp = excluded.stamp, at = excluded.at
         WHERE excluded.stamp >= stamp",
    )?;
    let mut written = 0;
    for env in batch {
        for row in rows::plan(env, policy) {
            let RowData::EventKept { event_id, kept } = row.data else { continue };
            let (day, trig) = (row.day.number(), row.trigger.millis());
            let (stamp, at) = (rows::write_stamp(env), env.received_at.millis());
            put.execute(params![row.cid.as_str(), event_id.as_str(), day, trig, kept, stamp, at])?;
            written += 1;
        }
    }
    Ok(written)
}

fn is_kept(tx: &Transaction<'_>, cid: &str, event_id: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT kept FROM keeps WHERE cid = ?1 AND event_id = ?2")?
        .query_row(params![cid, event_id], |r| r.get::<_, bool>(0))
        .optional()
        .map(|k| k == Some(true))
}

/// Whether `row`, past retention, is still written: an event that spares it is kept
/// (`schemas::rows::Row::kept_by`).
pub(super) fn spares(tx: &Transaction<'_>, row: &Row<'_>) -> rusqlite::Result<bool> {
    if matches!(row.data, RowData::EventKept { .. }) {
        return Ok(true);
    }
    for event_id in row.kept_by() {
        if is_kept(tx, row.cid.as_str(), event_id.as_str())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Partitions looked at per transaction of [`drop_expired`].
const EXPIRED_PER_ROUND: i64 = 5_000;

/// Drops the expired partitions' rows except those of kept events (see the module docs):
/// `oldest_kept` is the oldest day the deployment's `retention_days` keeps, and a partition kept
/// `days` (`partitions`, docs/data-model.md, Plans) expires once its day is before
/// `oldest_kept` + (`retention_days` − `days`); a partition holding only the owner's marks is
/// kept the longest plan, and every row of a day older than the longest plan goes whatever
/// (rows no partition names: an erased device's purges). One transaction per
/// [`EXPIRED_PER_ROUND`] partitions, in key order. Returns the partitions dropped.
pub(super) fn drop_expired(
    conn: &mut Connection,
    oldest_kept: Day,
    cutoff: Timestamp,
    retention_days: u32,
) -> rusqlite::Result<u64> {
    let floor = oldest_kept.add_days((i64::from(retention_days) - i64::from(MAX_PLAN_DAYS)).min(0));
    let mut dropped = 0;
    let mut after = (0u32, String::new());
    loop {
        let tx = conn.transaction()?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS plans (days INTEGER, before INTEGER);
             CREATE TEMP TABLE IF NOT EXISTS expired (day INTEGER, cid TEXT, PRIMARY KEY (day, cid)) WITHOUT ROWID;
             CREATE TEMP TABLE IF NOT EXISTS spared (day INTEGER, cid TEXT, event_id TEXT,
                 PRIMARY KEY (day, cid, event_id)) WITHOUT ROWID;
             DELETE FROM temp.plans; DELETE FROM temp.expired; DELETE FROM temp.spared;",
        )?;
        let plans: Vec<Option<u32>> = tx
            .prepare("SELECT DISTINCT days FROM partitions")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for days in plans {
            let kept = i64::from(days.unwrap_or(MAX_PLAN_DAYS));
            let before = oldest_kept.add_days(i64::from(retention_days) - kept);
            tx.execute("INSERT INTO temp.plans (days, before) VALUES (?1, ?2)", params![days, before.number()])?;
        }
        let round = tx.execute(
            "INSERT INTO temp.expired (day, cid)
             SELECT p.day, p.cid FROM partitions p JOIN temp.plans c ON c.days IS p.days
             WHERE p.day < c.before AND (p.day, p.cid) > (?1, ?2) ORDER BY p.day, p.cid LIMIT ?3",
            params![after.0, after.1, EXPIRED_PER_ROUND],
        )?;
        if let Some(last) = tx
            .query_row("SELECT day, cid FROM temp.expired ORDER BY day DESC, cid DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?
        {
            after = last;
        }
        let in_expired = "(day < ?1 OR (day, cid) IN (SELECT day, cid FROM temp.expired))";
        tx.execute(
            "INSERT INTO temp.spared (day, cid, event_id)
             SELECT k.day, k.cid, k.event_id FROM keeps k
             JOIN events e ON e.day = k.day AND e.cid = k.cid AND e.trig = k.trig AND e.event_id = k.event_id
             WHERE k.kept = 1 AND e.deleted = 0
               AND (k.day < ?1 OR (k.day, k.cid) IN (SELECT day, cid FROM temp.expired))",
            [floor.number()],
        )?;
        let spare_event = "(cid, event_id) NOT IN (SELECT cid, event_id FROM temp.spared)";
        let spare_segment = "(day, cid, segment_id) NOT IN (SELECT m.seg_day, m.cid, m.segment_id FROM temp.spared s
             JOIN event_segments m ON m.day = s.day AND m.cid = s.cid AND m.event_id = s.event_id)";
        // A partition with a kept event stays, to be looked at again once it is un-kept.
        let spare_partition = "(day, cid) NOT IN (SELECT day, cid FROM temp.spared)";
        // Segments before the mappings they are spared by.
        for (table, spare) in [
            ("segments", spare_segment),
            ("events", spare_event),
            ("event_segments", spare_event),
            ("digests", "1"),
            ("day_counts", "1"),
            ("purges", "1"),
            ("segment_usage", "1"),
            ("day_usage", "1"),
            ("partitions", spare_partition),
        ] {
            let n = tx.execute(&format!("DELETE FROM {table} WHERE {in_expired} AND {spare}"), [floor.number()])?;
            if table == "partitions" {
                dropped += n as u64;
            }
        }
        tx.execute(
            &format!(
                "DELETE FROM keeps WHERE {in_expired} AND at < ?2 AND (cid, event_id) NOT IN (SELECT cid, event_id FROM temp.spared)"
            ),
            params![floor.number(), cutoff.millis()],
        )?;
        // Quarantined records go a retention after they were set aside.
        tx.execute("DELETE FROM quarantine WHERE at < ?1", [cutoff.millis()])?;
        tx.execute_batch("DELETE FROM temp.spared; DELETE FROM temp.expired; DELETE FROM temp.plans;")?;
        tx.commit()?;
        if (round as i64) < EXPIRED_PER_ROUND {
            return Ok(dropped);
        }
    }
}

/// Devices restated per page of [`kept_reports`].
const DEVICES_PER_PAGE: i64 = 16;

/// Every device's kept events restated as reports (`seams::KeptReports`), a page of devices
/// after `cursor` (the last device of the previous page).
pub(super) fn kept_reports(c: &Connection, policy: &TimePolicy, cursor: Option<&[u8]>) -> Result<KeptPage, StoreError> {
    let after = match cursor {
        Some(b) => std::str::from_utf8(b).map_err(|_| StoreError::BadCursor)?.to_owned(),
        None => String::new(),
    };
    let cids: Vec<String> = c
        .prepare_cached("SELECT DISTINCT cid FROM keeps WHERE kept = 1 AND cid > ?1 ORDER BY cid LIMIT ?2")
        .map_err(other)?
        .query_map(params![after, DEVICES_PER_PAGE + 1], |r| r.get(0))
        .map_err(other)?
        .collect::<Result<_, _>>()
        .map_err(other)?;
    let more = cids.len() as i64 > DEVICES_PER_PAGE;
    let mut page = KeptPage::default();
    for cid in cids.iter().take(DEVICES_PER_PAGE as usize) {
        let device = DeviceId::parse(cid).map_err(other)?;
        let events = kept_events(c, policy, cid).map_err(other)?;
        if !events.is_empty() {
            page.devices.push(KeptReports { reports: seams::restate(&device, &events, policy.offset), cid: device });
        }
    }
    if more {
        page.next = cids.get(DEVICES_PER_PAGE as usize - 1).map(|c| c.as_bytes().to_vec());
    }
    Ok(page)
}

/// The kept events of `cid` as stored, with their segments.
fn kept_events(c: &Connection, policy: &TimePolicy, cid: &str) -> rusqlite::Result<Vec<KeptEvent>> {
    let mut events: Vec<KeptEvent> = c
        .prepare_cached(
            "SELECT e.event_id, e.ended_at, e.end_status, e.skew_ms, 1 AS kept, e.started, k.at,
                    (e.expires - e.trig) / 86400000 AS days FROM keeps k
             JOIN events e ON e.day = k.day AND e.cid = k.cid AND e.trig = k.trig AND e.event_id = k.event_id
             WHERE k.cid = ?1 AND k.kept = 1 AND e.deleted = 0 ORDER BY k.event_id",
        )?
        .query_map([cid], |r| {
            Ok(KeptEvent {
                event: super::event_from_row(r, policy.offset)?,
                started: r.get("started")?,
                kept_at: Timestamp(r.get("at")?),
                segments: Vec::new(),
                retention_days: r.get("days")?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for k in &mut events {
        let id = &k.event.event_id;
        k.segments = super::segments_of(c, id.day().number(), cid, id.as_str(), -1, i64::MAX)?;
    }
    Ok(events)
}
