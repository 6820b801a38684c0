//! Erasures in the embedded store (`schemas::rows`, module docs): each device's erasure mark in
//! `erasures`, what applying an erasure removes, and the reports a mark covers, left out of the
//! batch before anything of it is written.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension, Transaction};
use schemas::rows;
use schemas::{Day, DeviceId, Envelope, EventId, Report, SegmentId, SubscriptionDeadLettered, TimePolicy, Timestamp};
use seams::{ObjectKey, Purge};

use super::{bad_row, DEVICE_TABLES};

/// Applies the batch's erasures not covered already, in `tx`, and returns the rows they removed
/// or listed, with the batch left to apply when some of it is covered by a mark (`None`: all
/// of it).
pub(super) fn apply(
    tx: &Transaction<'_>,
    policy: &TimePolicy,
    batch: &[Envelope],
) -> rusqlite::Result<(u64, Option<Vec<Envelope>>)> {
    let erases = batch.iter().any(|e| matches!(e.report, Report::DeviceErased(_)));
    if !erases && !tx.query_row("SELECT EXISTS (SELECT 1 FROM erasures)", [], |r| r.get::<_, bool>(0))? {
        return Ok((0, None));
    }
    let mut stored: HashMap<DeviceId, Option<i64>> = HashMap::new();
    let mut lookup = tx.prepare_cached("SELECT stamp FROM erasures WHERE cid = ?1")?;
    let mut erasable = Vec::with_capacity(batch.len());
    for env in batch {
        let of = rows::erasable(env);
        if let Some((cid, _)) = &of {
            if !stored.contains_key(cid) {
                let mark = lookup.query_row([cid.as_str()], |r| r.get(0)).optional()?;
                stored.insert(cid.clone(), mark);
            }
        }
        erasable.push(of);
    }
    let erasing = rows::new_erasures(batch, &erasable, |cid| stored[cid]);
    let mut written = 0;
    for (cid, (stamp, at)) in &erasing {
        written += erase(tx, cid, *stamp, *at)?;
    }
    let mark = |cid: &DeviceId| stored[cid].max(erasing.get(cid).map(|e| e.0));
    let covered =
        |of: &Option<(DeviceId, i64)>| of.as_ref().is_some_and(|(cid, stamp)| rows::erased(*stamp, mark(cid)));
    if !erasable.iter().any(covered) {
        return Ok((written, None));
    }
    // A covered report is not applied, and the objects it names are purged (it may be in this
    // batch beside its erasure, or arrive late).
    let mut put = tx.prepare_cached("INSERT OR IGNORE INTO purges (day, cid, key) VALUES (?1, ?2, ?3)")?;
    let now = Timestamp::now();
    for (env, _) in batch.iter().zip(&erasable).filter(|(_, of)| covered(of)) {
        for p in Purge::named_by(env, policy, now) {
            written += put.execute(params![p.day.number(), p.cid.as_str(), p.key])? as u64;
        }
    }
    let kept = batch.iter().zip(&erasable).filter(|(_, of)| !covered(of)).map(|(env, _)| env.clone()).collect();
    Ok((written, Some(kept)))
}

/// Erases device `cid` as of write stamp `stamp` (its erasure received at `at`): raises its mark,
/// lists every object its rows name to purge (in the row's day, as deletions do), removes its
/// rows and counts from every day, its offset, its quarantined records and its dead letters,
/// except those of reports newer than the erasure. Returns the rows removed or listed.
fn erase(tx: &Transaction<'_>, cid: &DeviceId, stamp: i64, at: Timestamp) -> rusqlite::Result<u64> {
    let c = cid.as_str();
    tx.prepare_cached(
        "INSERT INTO erasures (cid, stamp, erased_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO UPDATE SET stamp = excluded.stamp, erased_at = excluded.erased_at WHERE excluded.stamp > stamp",
    )?
    .execute(params![c, stamp, at.millis()])?;
    let mut written = 0u64;
    let mut put = tx.prepare_cached("INSERT OR IGNORE INTO purges (day, cid, key) VALUES (?1, ?2, ?3)")?;
    for day in days_held(tx)? {
        let n = day.number();
        let keys = |sql: &str, key: &dyn Fn(&str) -> rusqlite::Result<ObjectKey>| -> rusqlite::Result<Vec<ObjectKey>> {
            let ids: Vec<String> =
                tx.prepare_cached(sql)?.query_map(params![n, c], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids.iter().map(|id| key(id)).collect()
        };
        let mut objects = keys("SELECT event_id FROM events WHERE day = ?1 AND cid = ?2", &|id| {
            Ok(ObjectKey::snapshot(&EventId::parse(id).map_err(bad_row)?))
        })?;
        objects.extend(keys("SELECT segment_id FROM segments WHERE day = ?1 AND cid = ?2", &|id| {
            Ok(ObjectKey::segment(cid, &SegmentId::parse(id).map_err(bad_row)?))
        })?);
        objects.extend(keys("SELECT segment_id FROM digests WHERE day = ?1 AND cid = ?2", &|id| {
            Ok(ObjectKey::digest(cid, &SegmentId::parse(id).map_err(bad_row)?))
        })?);
        for key in &objects {
            written += put.execute(params![n, c, key.as_str()])? as u64;
        }
        for table in DEVICE_TABLES {
            let sql = format!("DELETE FROM {table} WHERE day = ?1 AND cid = ?2");
            written += tx.prepare_cached(&sql)?.execute(params![n, c])? as u64;
        }
    }
    written += tx.prepare_cached("DELETE FROM devices WHERE cid = ?1")?.execute([c])? as u64;
    // Its exports asked for before the erasure, their archives listed to purge.
    let today = schemas::DayOffset::default().day_of(at).unwrap_or_else(|| schemas::DayOffset::default().today());
    written += super::exports::erase(tx, cid, stamp, today)?;
    // Its keeps (not day-partitioned: they outlive retention), but a newer one.
    written +=
        tx.prepare_cached("DELETE FROM keeps WHERE cid = ?1 AND stamp <= ?2")?.execute(params![c, stamp])? as u64;
    // Quarantined records of the device (keyed by it), but a report newer than the erasure.
    let quarantined: Vec<(i64, i64, Vec<u8>)> = tx
        .prepare_cached("SELECT part, off, value FROM quarantine WHERE key = ?1")?
        .query_map([c], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut release = tx.prepare_cached("DELETE FROM quarantine WHERE part = ?1 AND off = ?2")?;
    for (part, off, value) in quarantined {
        let newer = Envelope::decode(&value).is_ok_and(|env| rows::write_stamp(&env) > stamp);
        if !newer {
            written += release.execute(params![part, off])? as u64;
        }
    }
    // Dead letters holding a report of the device the erasure covers (their bodies go; the row
    // stays as the release, as a purge leaves it).
    let letters: Vec<(String, String, String)> = tx
        .prepare_cached("SELECT sub, webhook_id, body FROM dead_letters WHERE body IS NOT NULL")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut drop_letter =
        tx.prepare_cached("UPDATE dead_letters SET body = NULL WHERE sub = ?1 AND webhook_id = ?2")?;
    for (sub, webhook_id, body) in letters {
        let Ok(letter) = serde_json::from_str::<SubscriptionDeadLettered>(&body) else { continue };
        let held = Envelope::new(Report::SubscriptionDeadLettered(letter), at);
        if rows::erasable(&held).is_some_and(|(of, record)| &of == cid && record <= stamp) {
            written += drop_letter.execute(params![sub, webhook_id])? as u64;
        }
    }
    Ok(written)
}

/// Every day from the oldest to the newest any device's rows are in (a few more than retention:
/// the janitor drops older days), ascending.
fn days_held(tx: &Transaction<'_>) -> rusqlite::Result<Vec<Day>> {
    let (mut first, mut last) = (u32::MAX, 0u32);
    for table in DEVICE_TABLES {
        let sql = format!("SELECT min(day), max(day) FROM {table}");
        let (min, max): (Option<u32>, Option<u32>) = tx.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if let (Some(min), Some(max)) = (min, max) {
            (first, last) = (first.min(min), last.max(max));
        }
    }
    let (Some(mut day), Some(last)) = (Day::from_number(first), Day::from_number(last)) else { return Ok(Vec::new()) };
    let mut days = Vec::new();
    while day <= last {
        days.push(day);
        day = day.add_days(1);
    }
    Ok(days)
}
