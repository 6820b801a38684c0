//! The ScyllaDB projection store (`--store scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`).
//!
//! The tables are those of `infra/cql/schema.cql` (applied by [`apply_schema`], i.e.
//! `daybook schema apply`): every partition is one device's day, `(cid, day)`.
//!
//! * **Writes** are prepared, idempotent upserts with every partition-key column bound, so
//!   the driver routes each one to a replica and shard that owns it. A batch of reports is
//!   first merged by primary key (a start and an end of the same event in one batch become
//!   one row write, later reports win in log order), then grouped by partition: the rows of
//!   one partition go out as one UNLOGGED batch (cut at [`BATCH_MAX_ROWS`] /
//!   [`BATCH_MAX_BYTES`]), never a logged or multi-partition batch. Partitions are written
//!   concurrently, bounded by [`ScyllaOptions::max_concurrency`]. The one read before the
//!   writes: the `kept` partition of each device the batch writes (which of its events are
//!   kept decides their rows' TTL).
//! * **Retries never double-apply**: every statement and batch is marked idempotent (they
//!   are pure upserts: same key, same values), the driver retries them on another replica
//!   after timeouts and broken connections, and a failed `apply` is simply applied again by
//!   the projector. There are no counters and no list appends.
//! * **Event counts** (what the calendar reads): after its rows are written, `apply` recounts
//!   each hour of trigger time it wrote events into — `COUNT(*)` over that clustering slice
//!   of the day's `events` partition — and writes the number into `event_counts` with
//!   `USING TIMESTAMP` = the hour's first microsecond + the number, so the largest count ever
//!   written wins (a max-register). Every recount is a true count of rows that exist, and the
//!   one after the last write of an hour sees them all, so the kept count is exact under
//!   retries, replays and concurrent projectors; a crash before the recount leaves the batch
//!   uncommitted, and its replay recounts. The cost is one single-partition slice read of a
//!   few dozen rows per (device, day, hour) a batch touches; the reasons, and the schemes
//!   rejected (counters behind a lightweight transaction; per-day sets of ids), are in
//!   `infra/cql/schema.cql`.
//! * **Storage used** is kept the same way: each segment's bytes in `segment_usage`, in the
//!   hour of its own row; after a batch, each hour it wrote segments into is summed into
//!   `usage_counts.stored`, and each hour a purge freed segments in into `usage_counts.freed`
//!   (max-registers; usage is their difference). A segment of the batch that maps a deleted
//!   event and no live one is purged at once (one read per event it maps), so the purges do
//!   not depend on the order of a segment and its events' deletions.
//! * **Expiry** is by TTL counted from the trigger time: each row carries `USING TTL` =
//!   trigger + its report's retention (the device's plan, `schemas::rows`) − now (rounded up to
//!   whole seconds); an event row keeps the plan it was written under (`retention_days`), and
//!   the count registers live until their hour's newest row would expire under the hour's
//!   longest plan; a row whose TTL would be
//!   ≤ 0 is not written, so [`ProjectionStore::drop_expired`] has nothing to do. A kept
//!   event's rows carry TTL 0 (none) and are written past retention too; a keep or an
//!   un-keep rewrites the event's rows with their new TTL (`store/keeps.rs`,
//!   docs/data-model.md, Keeping events).
//! * **Day page cursor**: the driver's paging state, wrapped as
//!   `"DBsc" | version | 8-byte binding of (device, day, type) | paging state`. A cursor
//!   with another prefix, or made for another device, day or type filter, is
//!   [`StoreError::BadCursor`]. (Whatever a paging state holds, the server only returns
//!   rows that match the query's `WHERE` clause, which binds the device and the day.)
//! * **Type filter**: `AND kind = ? ALLOW FILTERING` (the `kind` column is the event type), scanning only the one (cid, day)
//!   partition. A filtered page may come back short from the server; `day_page` then asks
//!   again from where it stopped (a few rounds at most), so pages hold at most `limit`
//!   events and paging always ends.
//! * **Kept marks**: a day page or an event detail reads the device's `kept` partition once
//!   to mark its kept events (`EventView::kept`) and to leave out the un-kept ones past
//!   retention (their rows have a second left to live).
//! * **Calendar**: one read per day of that day's `event_counts` partition (its hour buckets,
//!   summed), run concurrently: ≤ 31 small partitions a request, whatever the volume of events.
//! * **Plans**: `devices.retention_days` is the plan of the device's latest start (same write,
//!   timestamp and TTL as its offset), what [`ProjectionStore::plan`] reads; an erasure scans the
//!   days of the longest plan. Days
//!   no row can be on are skipped: the requested range is cut to the longest plan and the future
//!   tolerance at the widest camera offsets (±23:59, so a UTC+14:00 camera on a UTC−11:00
//!   deployment keeps its today), never at the deployment's `--day-offset`
//!   (`plan::calendar_day_range`).
//!
//! The `scylla` crate's types stay private to this module.
//!
//! | file | role |
//! |---|---|
//! | `config.rs` | URL, consistency level, tuning |
//! | `schema.rs` | the schema file, its statements, and the CQL text of every prepared statement |
//! | `plan.rs` | one `apply` batch as per-partition unlogged batches, with TTLs |
//! | `cursor.rs` | day page cursors bound to their query |
//! | `views.rs` | rows as read, converted back to the seam's views |
//! | `retry.rs` | which errors are retried, and how they map to [`StoreError`] |
//! | `store.rs` | [`ScyllaStore`]: the session and the [`ProjectionStore`] implementation |
//! | `store/keeps.rs` | keeps: the kept set a batch leaves, the rewrite of a kept or un-kept event's rows, the kept reads |
//! | `check.rs` | (tests) an offline checker of every statement against the schema file |
//!
//! [`StoreError`]: seams::StoreError
//! [`ProjectionStore`]: seams::ProjectionStore
//! [`ProjectionStore::drop_expired`]: seams::ProjectionStore::drop_expired
//! [`ProjectionStore::plan`]: seams::ProjectionStore::plan
//! [`StoreError::BadCursor`]: seams::StoreError::BadCursor

mod config;
mod cursor;
mod plan;
mod retry;
mod schema;
mod store;
mod views;

#[cfg(test)]
mod check;
#[cfg(test)]
mod fixtures;

pub use config::{ScyllaConsistency, ScyllaOptions, ScyllaUrl};
pub use plan::{BATCH_MAX_BYTES, BATCH_MAX_ROWS};
pub use schema::{apply_schema, schema_statements, SCHEMA_CQL};
pub use store::{ScyllaStore, MAX_PAGE};
