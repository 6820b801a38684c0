//! Exports in the embedded store (docs/viewer-api.md, Exports): the `exports` table, one row per
//! (device, export id), not day-partitioned, each until its own expiry
//! (`schemas::export::expiry`).
//!
//! A row holds the newest report of its export by rank, then write stamp: a completion (rank 1)
//! replaces a request (rank 0) whatever their order, a request never replaces a completion.
//! Reads leave an expired row out; the janitor ([`drop_expired`]) deletes it. An erasure
//! deletes the device's rows and lists their archives to purge ([`erase`]).

use rusqlite::{params, Connection, Transaction};
use schemas::export::expiry;
use schemas::{Day, DeviceId, Envelope, ExportId, ExportOutcome, Report, Timestamp};
use seams::{ExportView, ObjectKey, StoreError};

use super::{bad_row, other};

/// The table (created with the others).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS exports (
    cid          TEXT    NOT NULL,
    export_id    TEXT    NOT NULL,
    from_day     INTEGER NOT NULL,
    to_day       INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    rank         INTEGER NOT NULL, -- 0: requested; 1: completed
    stamp        INTEGER NOT NULL, -- schemas::rows::write_stamp of the report held
    completed_at INTEGER,          -- the completion's received_at
    outcome      TEXT,             -- the completion's schemas::ExportOutcome, JSON
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (cid, export_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exports_pending ON exports (rank, export_id);
";

const COLUMNS: &str = "cid, export_id, from_day, to_day, requested_at, completed_at, outcome, expires_at";

/// Writes the export reports of `batch` still alive at `now`. Returns the rows written.
pub(super) fn apply(tx: &Transaction<'_>, batch: &[Envelope], now: Timestamp) -> rusqlite::Result<u64> {
    let mut put = tx.prepare_cached(
        "INSERT INTO exports (cid, export_id, from_day, to_day, requested_at, rank, stamp, completed_at, outcome,
                              expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT DO UPDATE SET from_day = excluded.from_day, to_day = excluded.to_day,
             requested_at = excluded.requested_at, rank = excluded.rank, stamp = excluded.stamp,
             completed_at = excluded.completed_at, outcome = excluded.outcome, expires_at = excluded.expires_at
         WHERE excluded.rank > rank OR (excluded.rank = rank AND excluded.stamp >= stamp)",
    )?;
    let mut written = 0;
    for env in batch {
        let Some((rank, expires_at)) = expiry(env) else { continue };
        if expires_at <= now {
            continue;
        }
        let stamp = schemas::rows::write_stamp(env);
        let (cid, id, from, to, requested_at, completed_at, outcome) = match &env.report {
            Report::ExportRequested(r) => (&r.cid, &r.export_id, r.from, r.to, env.received_at, None, None),
            Report::ExportCompleted(r) => {
                let outcome = serde_json::to_string(&r.outcome).map_err(bad_row)?;
                (&r.cid, &r.export_id, r.from, r.to, r.requested_at, Some(env.received_at.millis()), Some(outcome))
            }
            _ => continue,
        };
        written += put.execute(params![
            cid.as_str(),
            id.as_str(),
            from.number(),
            to.number(),
            requested_at.millis(),
            rank,
            stamp,
            completed_at,
            outcome,
            expires_at.millis()
        ])? as u64;
    }
    Ok(written)
}

fn view(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExportView> {
    let day = |i: usize| -> rusqlite::Result<Day> {
        Day::from_number(r.get(i)?).ok_or_else(|| bad_row(std::io::Error::other("bad day in store")))
    };
    let outcome: Option<String> = r.get(6)?;
    Ok(ExportView {
        cid: DeviceId::parse(&r.get::<_, String>(0)?).map_err(bad_row)?,
        export_id: ExportId::parse(&r.get::<_, String>(1)?).map_err(bad_row)?,
        from: day(2)?,
        to: day(3)?,
        requested_at: Timestamp(r.get(4)?),
        completed_at: r.get::<_, Option<i64>>(5)?.map(Timestamp),
        outcome: outcome.map(|o| serde_json::from_str::<ExportOutcome>(&o)).transpose().map_err(bad_row)?,
        expires_at: Timestamp(r.get(7)?),
    })
}

/// Up to `limit` exports of `cid` not expired at `now`, newest first, before `before`.
pub(super) fn list(
    c: &Connection,
    cid: &DeviceId,
    before: Option<&ExportId>,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<ExportView>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM exports WHERE cid = ?1 AND export_id < ?2 AND expires_at > ?3
         ORDER BY export_id DESC LIMIT ?4"
    );
    // Every id sorts before `~` (ids are of A-Z a-z 0-9 _ -).
    let before = before.map_or("~", ExportId::as_str);
    let mut stmt = c.prepare_cached(&sql).map_err(other)?;
    let rows = stmt.query_map(params![cid.as_str(), before, now.millis(), limit], view).map_err(other)?;
    rows.collect::<Result<_, _>>().map_err(other)
}

/// One export of `cid`, if held and not expired at `now`.
pub(super) fn one(
    c: &Connection,
    cid: &DeviceId,
    id: &ExportId,
    now: Timestamp,
) -> Result<Option<ExportView>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM exports WHERE cid = ?1 AND export_id = ?2 AND expires_at > ?3");
    let mut stmt = c.prepare_cached(&sql).map_err(other)?;
    let mut rows = stmt.query_map(params![cid.as_str(), id.as_str(), now.millis()], view).map_err(other)?;
    rows.next().transpose().map_err(other)
}

/// Up to `limit` exports asked for and not completed nor expired at `now`, oldest first.
pub(super) fn pending(c: &Connection, limit: u32, now: Timestamp) -> Result<Vec<ExportView>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM exports WHERE rank = 0 AND expires_at > ?1 ORDER BY export_id LIMIT ?2");
    let mut stmt = c.prepare_cached(&sql).map_err(other)?;
    let rows = stmt.query_map(params![now.millis(), limit], view).map_err(other)?;
    rows.collect::<Result<_, _>>().map_err(other)
}

/// Erases the exports of `cid` asked for up to `stamp` (an erasure's): lists each one's archive
/// to purge in `day` (the erasure's), then deletes the rows. Returns the rows removed or listed.
pub(super) fn erase(tx: &Transaction<'_>, cid: &DeviceId, stamp: i64, day: Day) -> rusqlite::Result<u64> {
    let covered = "cid = ?1 AND requested_at * 1000 <= ?2";
    let ids: Vec<String> = tx
        .prepare_cached(&format!("SELECT export_id FROM exports WHERE {covered}"))?
        .query_map(params![cid.as_str(), stamp], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut put = tx.prepare_cached("INSERT OR IGNORE INTO purges (day, cid, key) VALUES (?1, ?2, ?3)")?;
    let mut written = 0;
    for id in ids {
        let key = ObjectKey::export(cid, &ExportId::parse(&id).map_err(bad_row)?);
        written += put.execute(params![day.number(), cid.as_str(), key.as_str()])? as u64;
    }
    written += tx
        .prepare_cached(&format!("DELETE FROM exports WHERE {covered}"))?
        .execute(params![cid.as_str(), stamp])? as u64;
    Ok(written)
}

/// Deletes the exports expired at `now` (their archives go with the object janitor, or the
/// bucket's lifecycle rule). Returns how many went.
pub(super) fn drop_expired(conn: &Connection, now: Timestamp) -> rusqlite::Result<u64> {
    Ok(conn.execute("DELETE FROM exports WHERE expires_at <= ?1", [now.millis()])? as u64)
}
