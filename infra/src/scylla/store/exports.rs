//! Exports on ScyllaDB (`infra/cql/schema.cql`, `exports` and `pending_exports`;
//! docs/viewer-api.md, Exports).
//!
//! A request writes its export's row at its write stamp, with the TTL of a pending export, and
//! its row of `pending_exports`. A completion writes the row whole at [`completion_timestamp`]
//! — above every timestamp its request can have (a request's stamp is below the millisecond
//! after its `received_at`, which the completion carries as `requested_at`) — with the TTL to its
//! `expires_at`, and deletes the pending row at the same timestamp: whatever the order of the two
//! writes, the completion wins, and the newer of two completions. An erasure deletes each export
//! of the device asked for before it at a timestamp above its completion's, and the pending rows,
//! and lists the archives to purge.

use ::scylla::statement::prepared::PreparedStatement;
use schemas::export::expiry;
use schemas::{Day, DeviceId, Envelope, ExportId, ExportOutcome, Report, Timestamp};
use seams::{ExportView, ObjectKey, StoreError};

use super::super::plan::{ttl_secs, PURGES_BUCKET};
use super::super::schema::day_key;
use super::super::views::other;
use super::ScyllaStore;

/// The one partition of `pending_exports`.
pub(in crate::scylla) const PENDING_BUCKET: i32 = 0;

/// `exports`: cid, export_id, from_day, to_day, requested_at, completed_at, outcome, expires_at,
/// [ttl], [timestamp].
pub(in crate::scylla) type ExportValues = (String, String, i32, i32, i64, Option<i64>, Option<String>, i64, i32, i64);
/// An `exports` row as read: the [`ExportValues`] columns.
pub(in crate::scylla) type ExportRow = (String, String, i32, i32, i64, Option<i64>, Option<String>, i64);
/// `pending_exports`: bucket, export_id, cid, [ttl], [timestamp].
pub(in crate::scylla) type PendingValues = (i32, String, String, i32, i64);

/// The statements of exports, for `keyspace`.
#[derive(Debug)]
pub(in crate::scylla) struct ExportCql {
    pub(in crate::scylla) insert_export: String,
    pub(in crate::scylla) insert_pending: String,
    pub(in crate::scylla) delete_pending: String,
    pub(in crate::scylla) exports: String,
    pub(in crate::scylla) export: String,
    pub(in crate::scylla) pending: String,
    pub(in crate::scylla) delete_export: String,
}

const COLUMNS: &str = "cid, export_id, from_day, to_day, requested_at, completed_at, outcome, expires_at";

impl ExportCql {
    pub(in crate::scylla) fn new(ks: &str) -> Self {
        Self {
            insert_export: format!(
                "INSERT INTO {ks}.exports ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            insert_pending: format!(
                "INSERT INTO {ks}.pending_exports (bucket, export_id, cid) VALUES (?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            delete_pending: format!(
                "DELETE FROM {ks}.pending_exports USING TIMESTAMP ? WHERE bucket = ? AND export_id = ? AND cid = ?"
            ),
            exports: format!("SELECT {COLUMNS} FROM {ks}.exports WHERE cid = ? AND export_id < ? LIMIT ?"),
            export: format!("SELECT {COLUMNS} FROM {ks}.exports WHERE cid = ? AND export_id = ?"),
            pending: format!("SELECT export_id, cid FROM {ks}.pending_exports WHERE bucket = ? LIMIT ?"),
            delete_export: format!("DELETE FROM {ks}.exports USING TIMESTAMP ? WHERE cid = ? AND export_id = ?"),
        }
    }
}

/// The prepared [`ExportCql`].
#[derive(Debug)]
pub(in crate::scylla) struct Exports {
    insert_export: PreparedStatement,
    insert_pending: PreparedStatement,
    delete_pending: PreparedStatement,
    exports: PreparedStatement,
    export: PreparedStatement,
    pending: PreparedStatement,
    delete_export: PreparedStatement,
}

impl Exports {
    /// Prepares the statements with `prepare` (write statements: `false`; reads: `true`).
    pub(in crate::scylla) async fn prepare<F, Fut>(ks: &str, prepare: F) -> Result<Self, StoreError>
    where
        F: Fn(String, bool) -> Fut,
        Fut: std::future::Future<Output = Result<PreparedStatement, StoreError>>,
    {
        let cql = ExportCql::new(ks);
        Ok(Self {
            insert_export: prepare(cql.insert_export, false).await?,
            insert_pending: prepare(cql.insert_pending, false).await?,
            delete_pending: prepare(cql.delete_pending, false).await?,
            exports: prepare(cql.exports, true).await?,
            export: prepare(cql.export, true).await?,
            pending: prepare(cql.pending, true).await?,
            delete_export: prepare(cql.delete_export, false).await?,
        })
    }
}

/// The timestamp a completion received at `completed_at` of a request received at
/// `requested_at` is written at: its own write stamp, raised above every stamp of the request's
/// millisecond.
pub(in crate::scylla) fn completion_timestamp(stamp: i64, requested_at: Timestamp) -> i64 {
    stamp.max(requested_at.millis().saturating_mul(1000).saturating_add(1000))
}

/// The writes of one export report alive at `now`: its `exports` row, and its pending row (a
/// request: inserted; a completion: `None`, the pending row is deleted at the row's timestamp).
pub(in crate::scylla) fn export_writes(
    env: &Envelope,
    now: Timestamp,
) -> Option<(ExportValues, Option<PendingValues>)> {
    let (_, expires_at) = expiry(env)?;
    let ttl = ttl_secs(expires_at, now)?;
    let stamp = schemas::rows::write_stamp(env);
    match &env.report {
        Report::ExportRequested(r) => {
            let row = (
                r.cid.as_str().to_owned(),
                r.export_id.as_str().to_owned(),
                day_key(r.from),
                day_key(r.to),
                env.received_at.millis(),
                None,
                None,
                expires_at.millis(),
                ttl,
                stamp,
            );
            let pending = (PENDING_BUCKET, r.export_id.as_str().to_owned(), r.cid.as_str().to_owned(), ttl, stamp);
            Some((row, Some(pending)))
        }
        Report::ExportCompleted(r) => {
            let outcome = serde_json::to_string(&r.outcome).ok()?;
            let row = (
                r.cid.as_str().to_owned(),
                r.export_id.as_str().to_owned(),
                day_key(r.from),
                day_key(r.to),
                r.requested_at.millis(),
                Some(env.received_at.millis()),
                Some(outcome),
                expires_at.millis(),
                ttl,
                completion_timestamp(stamp, r.requested_at),
            );
            Some((row, None))
        }
        _ => None,
    }
}

fn view(row: ExportRow) -> Result<ExportView, StoreError> {
    let (cid, id, from, to, requested_at, completed_at, outcome, expires_at) = row;
    let day = |d: i32| u32::try_from(d).ok().and_then(Day::from_number).ok_or_else(|| other("bad day in store"));
    Ok(ExportView {
        cid: DeviceId::parse(&cid).map_err(other)?,
        export_id: ExportId::parse(&id).map_err(other)?,
        from: day(from)?,
        to: day(to)?,
        requested_at: Timestamp(requested_at),
        completed_at: completed_at.map(Timestamp),
        outcome: outcome.map(|o| serde_json::from_str::<ExportOutcome>(&o)).transpose().map_err(other)?,
        expires_at: Timestamp(expires_at),
    })
}

impl ScyllaStore {
    /// Writes the export reports of `batch` (already left without what erasures cover).
    /// Returns the rows written.
    pub(in crate::scylla) async fn write_exports(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        let e = &self.exports_cql;
        let now = Timestamp::now();
        let mut written = 0;
        for env in batch {
            let Some((row, pending)) = export_writes(env, now) else { continue };
            let (timestamp, id, cid) = (row.9, row.1.clone(), row.0.clone());
            self.run(&e.insert_export, row).await?;
            match pending {
                Some(pending) => self.run(&e.insert_pending, pending).await?,
                None => self.run(&e.delete_pending, (timestamp, PENDING_BUCKET, id, cid)).await?,
            };
            written += 1;
        }
        Ok(written)
    }

    /// Up to `limit` exports of `cid` not expired, newest first, before `before`.
    pub(in crate::scylla) async fn export_list(
        &self,
        cid: &DeviceId,
        before: Option<&ExportId>,
        limit: u32,
    ) -> Result<Vec<ExportView>, StoreError> {
        // Every id sorts before `~` (ids are of A-Z a-z 0-9 _ -).
        let before = before.map_or("~", ExportId::as_str);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows = self.query_all::<ExportRow>(&self.exports_cql.exports, (cid.as_str(), before, limit)).await?;
        let now = Timestamp::now();
        rows.into_iter().map(view).filter(|v| v.as_ref().map_or(true, |v| v.expires_at > now)).collect()
    }

    /// One export of `cid`, if held and not expired.
    pub(in crate::scylla) async fn export_one(
        &self,
        cid: &DeviceId,
        id: &ExportId,
    ) -> Result<Option<ExportView>, StoreError> {
        let row = self.query_opt::<ExportRow>(&self.exports_cql.export, (cid.as_str(), id.as_str())).await?;
        let now = Timestamp::now();
        Ok(row.map(view).transpose()?.filter(|v| v.expires_at > now))
    }

    /// Up to `limit` exports asked for and not completed nor expired, oldest first.
    pub(in crate::scylla) async fn export_pending(&self, limit: u32) -> Result<Vec<ExportView>, StoreError> {
        let rows = self
            .query_all::<(String, String)>(
                &self.exports_cql.pending,
                (PENDING_BUCKET, i32::try_from(limit).unwrap_or(i32::MAX)),
            )
            .await?;
        let mut out = Vec::new();
        for (id, cid) in rows {
            let (cid, id) = (DeviceId::parse(&cid).map_err(other)?, ExportId::parse(&id).map_err(other)?);
            // The completion deleted the pending row: one left over by a lagging replica is
            // told apart by the export's own row.
            if let Some(view) = self.export_one(&cid, &id).await?.filter(|v| v.outcome.is_none()) {
                out.push(view);
            }
        }
        Ok(out)
    }

    /// Erases the exports of `cid` asked for up to `stamp` (an erasure's, received on `day`):
    /// lists their archives to purge, deletes their pending rows and their rows, each at a
    /// timestamp above any write of it. Returns the rows removed or listed.
    pub(in crate::scylla) async fn erase_exports(
        &self,
        cid: &DeviceId,
        stamp: i64,
        day: Day,
    ) -> Result<u64, StoreError> {
        let e = &self.exports_cql;
        let c = cid.as_str();
        let rows = self.query_all::<ExportRow>(&e.exports, (c, "~", i32::MAX)).await?;
        let mut written = 0;
        for row in rows {
            let (requested_at, completed_at) = (row.4, row.5);
            if requested_at.saturating_mul(1000) > stamp {
                continue;
            }
            let id = ExportId::parse(&row.1).map_err(other)?;
            let key = ObjectKey::export(cid, &id).as_str().to_owned();
            // Kept a day: the purger takes it within minutes.
            self.run(&self.statements.insert_purge, (PURGES_BUCKET, c, day_key(day), key, 86_400, stamp)).await?;
            let above = completed_at
                .map_or(0, |at| {
                    completion_timestamp(at.saturating_mul(1000).saturating_add(999), Timestamp(requested_at))
                })
                .max(stamp)
                .saturating_add(1);
            self.run(&e.delete_pending, (above, PENDING_BUCKET, id.as_str(), c)).await?;
            self.run(&e.delete_export, (above, c, id.as_str())).await?;
            written += 2;
        }
        Ok(written)
    }
}
