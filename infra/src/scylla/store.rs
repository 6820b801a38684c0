//! The store: one driver session, every statement prepared once, and the
//! [`ProjectionStore`] implementation over them.

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;

use ::scylla::client::execution_profile::ExecutionProfile;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::deserialize::row::DeserializeRow;
use ::scylla::errors::ExecutionError;
use ::scylla::response::query_result::QueryResult;
use ::scylla::response::{PagingState, PagingStateResponse};
use ::scylla::serialize::row::SerializeRow;
use ::scylla::statement::batch::{Batch, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt, TryStreamExt};
use schemas::{
    Day, DayOffset, DeviceId, Envelope, EventId, EventType, ExportId, SegmentId, SubscriptionId, TimePolicy, Timestamp,
};
use seams::{
    DayPage, DeadLetterView, DigestView, EventDetail, EventView, ExportView, KeptPage, ObjectKey, Position,
    ProjectionStore, Purge, Quarantined, SegmentView, StoreError, SubscriptionView,
};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::config::{ScyllaConsistency, ScyllaOptions, ScyllaUrl};
use super::cursor::{cursor_binding, decode_cursor, encode_cursor};
use super::plan::{
    bucket_range, calendar_day_range, count_bucket, count_chunks, count_row, days_ms, dead_letter_writes,
    deleted_count_row, longest_plan, longest_retention_days, subscription_writes, ttl_secs, CountBucket, CountValues,
    FreedValues, WritePlan, PURGES_BUCKET, SUBSCRIPTIONS_BUCKET,
};
use super::retry::{exec_error, is_bad_paging_state, IdempotentRetryPolicy};
use super::schema::{day_key, Cql};
use super::views::{
    event_view, live_event, other, segment_view, to_u32, to_u64, ClusteringKey, CountRow, DayKey, DayTypeKey,
    DeadLetterRow, DeletedRecountRow, DeletedRow, DeviceRow, DigestRow, EventKey, EventReadRow, MappingRow, PurgeRow,
    QuarantineRow, QuarantineValues, RecountKey, RecountRow, SegmentEventsRow, SegmentRow, SubscriptionRow, UsageRow,
};
use erase::{after_erasure, Erasures, Marks};

pub(super) mod erase;

pub(super) mod exports;
mod keeps;

/// Largest page `day_page` asks the server for.
pub const MAX_PAGE: u32 = 1000;
/// Server round trips one `day_page` call may make to fill a (filtered) page.
const MAX_PAGE_ROUNDS: usize = 8;

#[derive(Debug)]
struct Statements {
    insert_event: PreparedStatement,
    insert_segment: PreparedStatement,
    insert_mapping: PreparedStatement,
    insert_digest: PreparedStatement,
    insert_device: PreparedStatement,
    device: PreparedStatement,
    recount: PreparedStatement,
    insert_count: PreparedStatement,
    day_counts: PreparedStatement,
    page: PreparedStatement,
    page_type: PreparedStatement,
    event: PreparedStatement,
    mappings: PreparedStatement,
    segment: PreparedStatement,
    digest: PreparedStatement,
    insert_quarantine: PreparedStatement,
    quarantined: PreparedStatement,
    release: PreparedStatement,
    insert_subscription: PreparedStatement,
    subscriptions: PreparedStatement,
    insert_dead_letter: PreparedStatement,
    dead_letters: PreparedStatement,
    insert_deletion: PreparedStatement,
    recount_deleted: PreparedStatement,
    insert_deleted_count: PreparedStatement,
    event_deleted: PreparedStatement,
    segment_events: PreparedStatement,
    insert_purge: PreparedStatement,
    purges: PreparedStatement,
    delete_purge: PreparedStatement,
    insert_segment_home: PreparedStatement,
    insert_usage: PreparedStatement,
    insert_freed: PreparedStatement,
    recount_usage: PreparedStatement,
    insert_usage_stored: PreparedStatement,
    insert_usage_freed: PreparedStatement,
    day_usage: PreparedStatement,
    usage_scan: PreparedStatement,
    insert_keep: PreparedStatement,
    keeps: PreparedStatement,
    insert_kept_device: PreparedStatement,
    kept_devices: PreparedStatement,
    event_whole: PreparedStatement,
    segment_whole: PreparedStatement,
}

/// The ScyllaDB projection store. Cheap to share (`Arc`).
pub struct ScyllaStore {
    session: Session,
    statements: Statements,
    /// Erasures' statements and marks (`erase`).
    erasure: Erasures,
    /// Exports' statements (`exports`).
    exports_cql: exports::Exports,
    policy: TimePolicy,
    url: ScyllaUrl,
    consistency: ScyllaConsistency,
    permits: Semaphore,
    max_concurrency: usize,
}

impl fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("nodes", &self.url.nodes)
            .field("keyspace", &self.url.keyspace)
            .field("consistency", &self.consistency)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

impl ScyllaStore {
    /// Connects to the cluster named by `url` (`scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`)
    /// and prepares every statement. The schema must exist (`daybook schema apply`).
    pub async fn connect(url: &str, policy: TimePolicy, opts: ScyllaOptions) -> Result<Arc<Self>, StoreError> {
        let url = ScyllaUrl::parse(url).map_err(StoreError::Other)?;
        let max_concurrency = opts.max_concurrency.max(1);
        let profile = ExecutionProfile::builder()
            .consistency(opts.consistency.driver())
            .request_timeout(Some(opts.request_timeout))
            .retry_policy(Arc::new(IdempotentRetryPolicy))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(&url.nodes)
            .keyspaces_to_fetch([url.keyspace.clone()])
            // No timestamp generator: every write binds its report's own stamp
            // (`USING TIMESTAMP`, schemas::rows::write_stamp), never a process clock.
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| StoreError::Unavailable(format!("connecting to {:?}: {e}", url.nodes)))?;
        let cql = Cql::new(&url.keyspace);
        let reads = opts.consistency.for_reads().driver();
        let prepare = |text: &str, read: bool| {
            let session = &session;
            let text = text.to_owned();
            async move {
                let mut stmt = session.prepare(text.as_str()).await.map_err(|e| {
                    StoreError::Other(format!(
                        "preparing `{text}`: {e} (has `daybook schema apply` created the keyspace?)"
                    ))
                })?;
                stmt.set_is_idempotent(true);
                if read {
                    stmt.set_consistency(reads);
                }
                Ok::<_, StoreError>(stmt)
            }
        };
        let (insert_event, insert_segment, insert_mapping, insert_digest, insert_device, device) = futures::try_join!(
            prepare(&cql.insert_event, false),
            prepare(&cql.insert_segment, false),
            prepare(&cql.insert_mapping, false),
            prepare(&cql.insert_digest, false),
            prepare(&cql.insert_device, false),
            prepare(&cql.device, true),
        )?;
        let (recount, insert_count, day_counts) = futures::try_join!(
            prepare(&cql.recount, true),
            prepare(&cql.insert_count, false),
            prepare(&cql.day_counts, true),
        )?;
        let (page, page_type, event, mappings, segment, digest) = futures::try_join!(
            prepare(&cql.page, true),
            prepare(&cql.page_type, true),
            prepare(&cql.event, true),
            prepare(&cql.mappings, true),
            prepare(&cql.segment, true),
            prepare(&cql.digest, true),
        )?;
        let (insert_quarantine, quarantined, release, insert_subscription, subscriptions) = futures::try_join!(
            prepare(&cql.insert_quarantine, false),
            prepare(&cql.quarantined, true),
            prepare(&cql.release, false),
            prepare(&cql.insert_subscription, false),
            prepare(&cql.subscriptions, true),
        )?;
        let (insert_dead_letter, dead_letters) =
            futures::try_join!(prepare(&cql.insert_dead_letter, false), prepare(&cql.dead_letters, true))?;
        let (insert_deletion, recount_deleted, insert_deleted_count, event_deleted) = futures::try_join!(
            prepare(&cql.insert_deletion, false),
            prepare(&cql.recount_deleted, true),
            prepare(&cql.insert_deleted_count, false),
            prepare(&cql.event_deleted, true),
        )?;
        let (segment_events, insert_purge, purges, delete_purge) = futures::try_join!(
            prepare(&cql.segment_events, true),
            prepare(&cql.insert_purge, false),
            prepare(&cql.purges, true),
            prepare(&cql.delete_purge, false),
        )?;
        let (insert_segment_home, insert_usage, insert_freed, recount_usage) = futures::try_join!(
            prepare(&cql.insert_segment_home, false),
            prepare(&cql.insert_usage, false),
            prepare(&cql.insert_freed, false),
            prepare(&cql.recount_usage, true),
        )?;
        let (insert_usage_stored, insert_usage_freed, day_usage, usage_scan) = futures::try_join!(
            prepare(&cql.insert_usage_stored, false),
            prepare(&cql.insert_usage_freed, false),
            prepare(&cql.day_usage, true),
            prepare(&cql.usage_scan, true),
        )?;
        let (insert_keep, keeps, insert_kept_device, kept_devices, event_whole, segment_whole) = futures::try_join!(
            prepare(&cql.insert_keep, false),
            prepare(&cql.keeps, true),
            prepare(&cql.insert_kept_device, false),
            prepare(&cql.kept_devices, true),
            prepare(&cql.event_whole, true),
            prepare(&cql.segment_whole, true),
        )?;
        let statements = Statements {
            insert_event,
            insert_segment,
            insert_mapping,
            insert_digest,
            insert_device,
            device,
            recount,
            insert_count,
            day_counts,
            page,
            page_type,
            event,
            mappings,
            segment,
            digest,
            insert_quarantine,
            quarantined,
            release,
            insert_subscription,
            subscriptions,
            insert_dead_letter,
            dead_letters,
            insert_deletion,
            recount_deleted,
            insert_deleted_count,
            event_deleted,
            segment_events,
            insert_purge,
            purges,
            delete_purge,
            insert_segment_home,
            insert_usage,
            insert_freed,
            recount_usage,
            insert_usage_stored,
            insert_usage_freed,
            day_usage,
            usage_scan,
            insert_keep,
            keeps,
            insert_kept_device,
            kept_devices,
            event_whole,
            segment_whole,
        };
        let erasure = Erasures::prepare(&url.keyspace, |text, read| prepare(&text, read)).await?;
        let exports_cql = exports::Exports::prepare(&url.keyspace, |text, read| prepare(&text, read)).await?;
        Ok(Arc::new(Self {
            session,
            statements,
            erasure,
            exports_cql,
            policy,
            url,
            consistency: opts.consistency,
            permits: Semaphore::new(max_concurrency),
            max_concurrency,
        }))
    }

    /// The keyspace this store writes.
    pub fn keyspace(&self) -> &str {
        &self.url.keyspace
    }

    async fn permit(&self) -> Result<SemaphorePermit<'_>, StoreError> {
        self.permits.acquire().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Writes one partition's rows: one statement, or one unlogged batch.
    async fn write<V: SerializeRow + Send + Sync>(
        &self,
        stmt: &PreparedStatement,
        rows: Vec<V>,
    ) -> Result<(), StoreError> {
        let _permit = self.permit().await?;
        match <[V; 1]>::try_from(rows) {
            Ok([row]) => {
                self.session.execute_unpaged(stmt, row).await.map_err(exec_error)?;
            }
            Err(rows) => {
                let mut batch = Batch::new(BatchType::Unlogged);
                for _ in &rows {
                    batch.append_statement(stmt.clone());
                }
                batch.set_is_idempotent(true);
                self.session.batch(&batch, rows).await.map_err(exec_error)?;
            }
        }
        Ok(())
    }

    pub(super) async fn run(
        &self,
        stmt: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<QueryResult, StoreError> {
        let _permit = self.permit().await?;
        self.session.execute_unpaged(stmt, values).await.map_err(exec_error)
    }

    async fn query_all<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self.run(stmt, values).await?.into_rows_result().map_err(other)?;
        let out = rows.rows::<R>().map_err(other)?.collect::<Result<Vec<R>, _>>().map_err(other)?;
        Ok(out)
    }

    async fn query_opt<R>(&self, stmt: &PreparedStatement, values: impl SerializeRow) -> Result<Option<R>, StoreError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let rows = self.run(stmt, values).await?.into_rows_result().map_err(other)?;
        let first = rows.maybe_first_row::<R>().map_err(other)?;
        Ok(first)
    }

    /// Lists, as purges, the objects deleted event `id` (in partition `cid`, `day`) leaves to no
    /// live event: its snapshot, and each segment it maps whose other events are all deleted or
    /// gone (a segment row without its events, written before they were kept, is left alone).
    /// Written with the deletion's TTL and stamp. The snapshot and each purged segment are marked
    /// freed in `segment_usage` (with the deletion's stamp), and their buckets added to `freed`,
    /// to be recounted. Returns the purges written.
    async fn list_purges(
        &self,
        (cid, day, id, ttl, stamp): (&str, i32, &str, i32, i64),
        freed: &mut Vec<CountBucket>,
    ) -> Result<u64, StoreError> {
        let s = &self.statements;
        let device = DeviceId::parse(cid).map_err(other)?;
        let event = EventId::parse(id).map_err(other)?;
        let snapshot = ObjectKey::snapshot(&event);
        // Its snapshot's usage row (cid, the event's day, the hour of its filing), marked freed
        // whether or not its start has been applied yet: a start applied later adds its bytes
        // to both sums, netting nothing.
        let hour = count_bucket(event.filed_at(self.policy.offset).millis());
        freed.extend(self.free_usage((cid, day, hour, snapshot.as_str()), stamp).await?);
        let mut keys = vec![snapshot.as_str().to_owned()];
        let mappings_key: ClusteringKey<'_> = (cid, day, id);
        'segments: for (_, seg_day, segment_id, _, _) in self.query_all::<MappingRow>(&s.mappings, mappings_key).await?
        {
            let key: ClusteringKey<'_> = (cid, seg_day, segment_id.as_str());
            let Some((Some(events), counted_day, counted_hour)) =
                self.query_opt::<SegmentEventsRow>(&s.segment_events, key).await?
            else {
                continue;
            };
            for other_id in events.iter().filter(|e| e.as_str() != id) {
                let Ok(other_event) = EventId::parse(other_id) else { continue 'segments };
                let key: EventKey<'_> =
                    (cid, day_key(other_event.day()), other_event.triggered_at().millis(), other_id.as_str());
                if let Some((deleted,)) = self.query_opt::<DeletedRow>(&s.event_deleted, key).await? {
                    if deleted != Some(true) {
                        continue 'segments;
                    }
                }
            }
            if let (Some(counted_day), Some(hour)) = (counted_day, counted_hour) {
                freed.extend(self.free_usage((cid, counted_day, hour, &segment_id), stamp).await?);
            }
            let segment_id = SegmentId::parse(&segment_id).map_err(other)?;
            keys.push(ObjectKey::segment(&device, &segment_id).as_str().to_owned());
        }
        let written = keys.len() as u64;
        for key in keys {
            self.run(&s.insert_purge, (PURGES_BUCKET, cid, day, key, ttl, stamp)).await?;
        }
        Ok(written)
    }

    /// Marks an object's `segment_usage` row (cid, counted day, hour, segment id or snapshot key) freed, with
    /// the deletion's `stamp`, until the row's latest possible expiry (the end of its hour's).
    /// Returns its bucket, to be recounted (`None`: the row is past retention).
    async fn free_usage(
        &self,
        (cid, day, hour, segment_id): (&str, i32, i64, &str),
        stamp: i64,
    ) -> Result<Option<CountBucket>, StoreError> {
        // The row's plan is not read: the mark outlives any (a mark alone counts no bytes).
        let expires = Timestamp(bucket_range(hour).1).plus_millis(days_ms(longest_retention_days(&self.policy)));
        let Some(ttl) = ttl_secs(expires, Timestamp::now()) else { return Ok(None) };
        let values: FreedValues = (cid.to_owned(), day, hour, segment_id.to_owned(), true, ttl, stamp);
        self.run(&self.statements.insert_freed, values).await?;
        Ok(Some((cid.to_owned(), day, hour)))
    }

    /// Lists a segment of this batch to purge if it maps a deleted event and no live one (a
    /// segment reported after the deletion of every event it maps goes like one reported
    /// before, whatever the order or batching of a replay); an event with no row yet is
    /// neither. One read per event it maps. Returns the purges written and the usage bucket it
    /// freed.
    async fn purge_orphaned(
        &self,
        (cid, segment_id, events, home, ttl, stamp): super::plan::MappedSegment<'_>,
    ) -> Result<(u64, Option<CountBucket>), StoreError> {
        let s = &self.statements;
        let mut deleted_day = None;
        for id in events {
            let Ok(event) = EventId::parse(id) else { return Ok((0, None)) };
            let day = day_key(event.day());
            let key: EventKey<'_> = (cid, day, event.triggered_at().millis(), id.as_str());
            match self.query_opt::<DeletedRow>(&s.event_deleted, key).await? {
                Some((Some(true),)) => {
                    deleted_day.get_or_insert(day);
                }
                Some(_) => return Ok((0, None)),
                None => {}
            }
        }
        let Some(day) = deleted_day else { return Ok((0, None)) };
        let bucket = match home {
            Some((counted_day, hour)) => self.free_usage((cid, counted_day, hour, segment_id), stamp).await?,
            None => None,
        };
        let device = DeviceId::parse(cid).map_err(other)?;
        let key = ObjectKey::segment(&device, &SegmentId::parse(segment_id).map_err(other)?);
        self.run(&s.insert_purge, (PURGES_BUCKET, cid, day, key.as_str(), ttl, stamp)).await?;
        Ok((1, bucket))
    }

    /// Sums the `segment_usage` rows of each bucket — all of them, and the freed ones — and
    /// writes the sums into its `usage_counts` registers (`stored`, `freed`; schema.cql), kept
    /// until the hour's newest object would expire under the hour's longest plan (both
    /// registers alike: they go together). Both from the one read, so an object counted after
    /// it was freed (a snapshot whose event's start is applied after its deletion) nets nothing
    /// whichever recount sees it.
    /// `marks`: the devices' erasure marks, as the event counts' recount takes them
    /// ([`after_erasure`]: `usage_counts` is deleted with them at an erasure).
    async fn recount_usage(&self, buckets: Vec<CountBucket>, marks: &Marks) -> Result<(), StoreError> {
        let s = &self.statements;
        stream::iter(buckets)
            .map(|bucket| async move {
                let key = (bucket.0.as_str(), bucket.1, bucket.2);
                let rows = self.query_all::<UsageRow>(&s.recount_usage, key).await?;
                let newest = rows.iter().filter_map(|r| r.0.and(r.2)).max();
                let days = longest_plan(rows.iter().map(|r| r.3), &self.policy);
                for (insert, freed) in [(&s.insert_usage_stored, false), (&s.insert_usage_freed, true)] {
                    let sum: i64 = rows
                        .iter()
                        .filter(|(_, f, _, _)| !freed || *f == Some(true))
                        .map(|(bytes, _, _, _)| bytes.unwrap_or(0))
                        .fold(0i64, i64::saturating_add);
                    if let Some(mut row) = count_row(&bucket, sum, newest, days, Timestamp::now()) {
                        row.5 = after_erasure(row.5, row.2, row.3, marks.get(&row.0).copied());
                        self.write(insert, vec![row]).await?;
                    }
                }
                Ok::<_, StoreError>(())
            })
            .buffer_unordered(self.max_concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Per day of `from..=to` that holds one, the sum over its hour rows of `first - second`
    /// of `stmt` (`event_counts`: events less deleted; `usage_counts`: stored less freed).
    async fn kept_per_day(
        &self,
        stmt: &PreparedStatement,
        cid: &DeviceId,
        from: Day,
        to: Day,
    ) -> Result<Vec<(Day, u64)>, StoreError> {
        // Days outside what retention and the future tolerance allow, at any camera's offset
        // (not the deployment's), hold no rows: skip them.
        let Some((from, to)) = calendar_day_range(from, to, &self.policy, Timestamp::now()) else {
            return Ok(Vec::new());
        };
        let days: Vec<Day> = (0..=to.days_since(from)).map(|i| from.add_days(i)).collect();
        let cid = cid.as_str();
        let mut kept = stream::iter(days)
            .map(|day| async move {
                // A day's hour buckets: ~24 small rows, whatever the day holds.
                let key: DayKey<'_> = (cid, day_key(day));
                let hours = self.query_all::<CountRow>(stmt, key).await?;
                let live = hours.iter().map(|(n, less)| n.unwrap_or(0) - less.unwrap_or(0)).sum::<i64>();
                Ok::<_, StoreError>((day, live))
            })
            .buffer_unordered(self.max_concurrency)
            .try_filter(|(_, n)| futures::future::ready(*n > 0))
            .map_ok(|(day, n)| (day, n.unsigned_abs()))
            .try_collect::<Vec<_>>()
            .await?;
        kept.sort_by_key(|c| std::cmp::Reverse(c.0));
        Ok(kept)
    }

    async fn page_once(
        &self,
        stmt: &PreparedStatement,
        values: impl SerializeRow,
        state: PagingState,
    ) -> Result<Result<(QueryResult, PagingStateResponse), ExecutionError>, StoreError> {
        let _permit = self.permit().await?;
        Ok(self.session.execute_single_page(stmt, values, state).await)
    }
}

#[async_trait]
impl ProjectionStore for ScyllaStore {
    async fn apply(&self, batch: &[Envelope]) -> Result<u64, StoreError> {
        // Every record is checked before anything is written (the plan refuses the batch).
        WritePlan::build(batch, &self.policy, Timestamp::now(), &Default::default())?;
        // Erasures first, then the rest of the batch without what they cover (`super::erase`).
        let (erased, remaining, marks) = self.apply_erasures(batch).await?;
        let marks = &*marks;
        let batch: &[Envelope] = remaining.as_deref().unwrap_or(batch);
        // Which events the batch leaves kept decides the TTL of their rows (one read per device).
        let (kept, stored) = self.kept_after(batch).await?;
        let plan = WritePlan::build(batch, &self.policy, Timestamp::now(), &kept)?;
        let s = &self.statements;
        let mut jobs: Vec<BoxFuture<'_, Result<(), StoreError>>> = Vec::new();
        jobs.extend(
            plan.event_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_event, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.segment_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_segment, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.mapping_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_mapping, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.device_writes().into_iter().map(|c| Box::pin(self.write(&s.insert_device, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.digest_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_digest, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.home_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_segment_home, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.usage_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_usage, c)) as BoxFuture<'_, _>),
        );
        jobs.extend(
            plan.deletion_chunks().into_iter().map(|c| Box::pin(self.write(&s.insert_deletion, c)) as BoxFuture<'_, _>),
        );
        let changes = subscription_writes(batch);
        let letters = dead_letter_writes(batch);
        let changed = (changes.len() + letters.len()) as u64;
        jobs.extend(
            letters.into_iter().map(|v| Box::pin(self.write(&s.insert_dead_letter, vec![v])) as BoxFuture<'_, _>),
        );
        jobs.extend(
            changes.into_iter().map(|v| Box::pin(self.write(&s.insert_subscription, vec![v])) as BoxFuture<'_, _>),
        );
        stream::iter(jobs).buffer_unordered(self.max_concurrency).try_collect::<Vec<()>>().await?;
        let exported = self.write_exports(batch).await?;
        // The keeps, then the rows of the events they keep or let go, with their new TTLs.
        self.write_keeps(&plan).await?;
        self.rewrite_kept(&plan, &kept, &stored).await?;
        // Only once every row is written: recount each hour of events the batch touched and
        // write the number read, which wins only if it is the largest ever written for that
        // hour (`infra/cql/schema.cql`, event_counts). Nothing here is incremented, so a retry,
        // a replay or another projector doing the same can never count an event twice.
        let counts = stream::iter(plan.count_buckets())
            .map(|bucket| async move {
                let (from, to) = bucket_range(bucket.2);
                let key: RecountKey<'_> = (bucket.0.as_str(), bucket.1, from, to);
                let (events, newest, days) =
                    self.query_opt::<RecountRow>(&s.recount, key).await?.unwrap_or((0, None, None));
                let days = longest_plan([days], &self.policy);
                let mut row = count_row(&bucket, events, newest, days, Timestamp::now());
                if let Some(row) = &mut row {
                    row.5 = after_erasure(row.5, row.2, row.3, marks.get(&row.0).copied());
                }
                Ok::<_, StoreError>(row)
            })
            .buffer_unordered(self.max_concurrency)
            .try_filter_map(|row| futures::future::ready(Ok(row)))
            .try_collect::<Vec<CountValues>>()
            .await?;
        stream::iter(count_chunks(counts))
            .map(|chunk| self.write(&s.insert_count, chunk))
            .buffer_unordered(self.max_concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        // The hours the batch deleted in: their deleted rows, recounted and kept the same way.
        stream::iter(plan.deleted_buckets())
            .map(|bucket| async move {
                let (from, to) = bucket_range(bucket.2);
                let key: RecountKey<'_> = (bucket.0.as_str(), bucket.1, from, to);
                let rows = self.query_all::<DeletedRecountRow>(&s.recount_deleted, key).await?;
                let deleted = rows.iter().filter(|(d, _)| *d == Some(true)).count() as i64;
                let days = longest_plan(rows.iter().map(|r| r.1), &self.policy);
                match deleted_count_row(&bucket, deleted, days, Timestamp::now()) {
                    Some(mut row) => {
                        row.5 = after_erasure(row.5, row.2, row.3, marks.get(&row.0).copied());
                        self.write(&s.insert_deleted_count, vec![row]).await
                    }
                    None => Ok(()),
                }
            })
            .buffer_unordered(self.max_concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        // The hours the batch wrote segments and snapshots into: their bytes, summed and kept
        // the same way (`usage_counts`).
        self.recount_usage(plan.usage_buckets(), marks).await?;
        // Then the objects each deletion leaves to no live event, and the hours of usage they
        // free (`usage_counts.freed`).
        let mut purged = 0u64;
        let mut freed = Vec::new();
        for deletion in plan.deleted_events() {
            purged += self.list_purges(deletion, &mut freed).await?;
        }
        // And the segments of the batch whose every known event is deleted, at once.
        let looks: Vec<BoxFuture<'_, _>> =
            plan.mapped_segments().into_iter().map(|segment| Box::pin(self.purge_orphaned(segment)) as _).collect();
        let orphaned = stream::iter(looks).buffer_unordered(self.max_concurrency).try_collect::<Vec<_>>().await?;
        for (n, bucket) in orphaned {
            purged += n;
            freed.extend(bucket);
        }
        freed.sort();
        freed.dedup();
        self.recount_usage(freed, marks).await?;
        Ok(erased + plan.rows + changed + purged + exported)
    }

    async fn exports(
        &self,
        cid: &DeviceId,
        before: Option<&ExportId>,
        limit: u32,
    ) -> Result<Vec<ExportView>, StoreError> {
        self.export_list(cid, before, limit).await
    }

    async fn export(&self, cid: &DeviceId, id: &ExportId) -> Result<Option<ExportView>, StoreError> {
        self.export_one(cid, id).await
    }

    async fn pending_exports(&self, limit: u32) -> Result<Vec<ExportView>, StoreError> {
        self.export_pending(limit).await
    }

    async fn purges(&self, limit: u32) -> Result<Vec<Purge>, StoreError> {
        // One small partition (deletions are rare, and confirmed purges leave it).
        let rows = self.query_all::<PurgeRow>(&self.statements.purges, (PURGES_BUCKET,)).await?;
        rows.into_iter()
            .take(limit as usize)
            .map(|(cid, day, key)| {
                Ok(Purge {
                    cid: DeviceId::parse(&cid).map_err(other)?,
                    day: u32::try_from(day).ok().and_then(Day::from_number).ok_or_else(|| other("bad day in store"))?,
                    key,
                })
            })
            .collect()
    }

    async fn purged(&self, done: &[Purge]) -> Result<(), StoreError> {
        for p in done {
            self.run(&self.statements.delete_purge, (PURGES_BUCKET, p.cid.as_str(), day_key(p.day), p.key.as_str()))
                .await?;
        }
        Ok(())
    }

    async fn dead_letters(&self, subscription: &SubscriptionId, limit: u32) -> Result<Vec<DeadLetterView>, StoreError> {
        let rows = self.query_all::<DeadLetterRow>(&self.statements.dead_letters, (subscription.as_str(),)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, dead_at, body) in rows {
            let Some(body) = body else { continue };
            out.push(DeadLetterView {
                letter: serde_json::from_str(&body).map_err(other)?,
                dead_at: Timestamp(dead_at),
            });
        }
        out.sort_by(|a, b| a.dead_at.cmp(&b.dead_at).then_with(|| a.letter.webhook_id.cmp(&b.letter.webhook_id)));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, StoreError> {
        let rows = self.query_all::<SubscriptionRow>(&self.statements.subscriptions, (SUBSCRIPTIONS_BUCKET,)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, changed_at, body) in rows {
            let Some(body) = body else { continue };
            out.push(SubscriptionView {
                subscription: serde_json::from_str(&body).map_err(other)?,
                changed_at: Timestamp(changed_at),
            });
        }
        Ok(out)
    }

    async fn quarantine(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        let now = Timestamp::now();
        for q in records {
            let Some(day) = self.policy.offset.day_of(q.quarantined_at) else { continue };
            // Kept a retention after it was set aside; at least a day, whatever the clock says.
            let ttl = ttl_secs(self.policy.expires_at(q.quarantined_at), now).unwrap_or(86_400);
            let values: QuarantineValues = (
                day_key(day),
                q.position.partition,
                q.position.offset,
                q.key.clone(),
                q.value.clone(),
                q.reason.clone(),
                q.quarantined_at.millis(),
                ttl,
            );
            self.run(&self.statements.insert_quarantine, values).await?;
        }
        Ok(())
    }

    async fn quarantined(&self, limit: u32) -> Result<Vec<Quarantined>, StoreError> {
        // One small partition per day of retention (plus a day either side for clock skew).
        let today = self.policy.offset.today();
        let days: Vec<Day> = (-1..=i64::from(self.policy.retention_days) + 1).map(|i| today.add_days(-i)).collect();
        let mut out: Vec<Quarantined> =
            stream::iter(days)
                .map(|day| async move {
                    self.query_all::<QuarantineRow>(&self.statements.quarantined, (day_key(day),)).await
                })
                .buffer_unordered(self.max_concurrency)
                .try_collect::<Vec<Vec<QuarantineRow>>>()
                .await?
                .into_iter()
                .flatten()
                .map(|(partition, offset, key, value, reason, at)| Quarantined {
                    position: Position { partition, offset },
                    key,
                    value,
                    reason,
                    quarantined_at: Timestamp(at),
                })
                .collect();
        out.sort_by_key(|q| q.position);
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn release(&self, records: &[Quarantined]) -> Result<(), StoreError> {
        for q in records {
            let Some(day) = self.policy.offset.day_of(q.quarantined_at) else { continue };
            let key = (day_key(day), q.position.partition, q.position.offset);
            self.run(&self.statements.release, key).await?;
        }
        Ok(())
    }

    async fn kept(&self, cid: &DeviceId, after: Option<&EventId>, limit: u32) -> Result<Vec<EventView>, StoreError> {
        self.kept_events(cid, after, limit).await
    }

    async fn kept_reports(&self, cursor: Option<&[u8]>) -> Result<KeptPage, StoreError> {
        self.restate_kept(cursor).await
    }

    async fn calendar(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        // Events less deleted ones (schema.cql, event_counts).
        self.kept_per_day(&self.statements.day_counts, cid, from, to).await
    }

    async fn usage(&self, cid: &DeviceId, from: Day, to: Day) -> Result<Vec<(Day, u64)>, StoreError> {
        // Bytes stored less bytes freed (schema.cql, usage_counts).
        self.kept_per_day(&self.statements.day_usage, cid, from, to).await
    }

    async fn usage_total(&self) -> Result<u64, StoreError> {
        // Every (device, day, hour) register, page by page (a metric's read, not a request's).
        let mut stmt = self.statements.usage_scan.clone();
        stmt.set_page_size(5_000);
        let mut state = PagingState::start();
        let mut total = 0i64;
        loop {
            let (result, next) = self.page_once(&stmt, (), state).await?.map_err(exec_error)?;
            let rows = result.into_rows_result().map_err(other)?;
            for row in rows.rows::<CountRow>().map_err(other)? {
                let (stored, freed) = row.map_err(other)?;
                total = total.saturating_add(stored.unwrap_or(0) - freed.unwrap_or(0));
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(total.max(0).unsigned_abs()),
                ControlFlow::Continue(s) => state = s,
            }
        }
    }

    async fn day_page(
        &self,
        cid: &DeviceId,
        day: Day,
        event_type: Option<&EventType>,
        limit: u32,
        cursor: Option<&[u8]>,
    ) -> Result<DayPage, StoreError> {
        let binding = cursor_binding(cid, day, event_type);
        let mut state = match cursor {
            Some(c) => PagingState::new_from_raw_bytes(decode_cursor(c, binding)?),
            None => PagingState::start(),
        };
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let base = if event_type.is_some() { &self.statements.page_type } else { &self.statements.page };
        let (cid, day) = (cid.as_str(), day_key(day));
        let mut events = Vec::with_capacity(limit);
        // The plan each event was written under: an un-kept one past it is left out.
        let mut plans = std::collections::HashMap::new();
        for round in 0..MAX_PAGE_ROUNDS {
            let mut stmt = base.clone();
            let want = i32::try_from(limit - events.len()).unwrap_or(i32::MAX).max(1);
            stmt.set_page_size(want);
            let answer = match event_type {
                Some(t) => {
                    let key: DayTypeKey<'_> = (cid, day, t.as_str());
                    self.page_once(&stmt, key, state.clone()).await?
                }
                None => {
                    let key: DayKey<'_> = (cid, day);
                    self.page_once(&stmt, key, state.clone()).await?
                }
            };
            let (result, next) = answer.map_err(|e| {
                if cursor.is_some() && round == 0 && is_bad_paging_state(&e) {
                    StoreError::BadCursor
                } else {
                    exec_error(e)
                }
            })?;
            let rows = result.into_rows_result().map_err(other)?;
            for row in rows.rows::<EventReadRow>().map_err(other)? {
                // A deleted event's row stays as its mark: skipped, like another type's.
                if let Some((row, days)) = live_event(row.map_err(other)?) {
                    let view = event_view(row, self.policy.offset)?;
                    plans.insert(view.event_id.as_str().to_owned(), days);
                    events.push(view);
                }
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => {
                    self.mark_kept(cid, &mut events, &plans).await?;
                    return Ok(DayPage { events, next: None });
                }
                ControlFlow::Continue(s) => state = s,
            }
            if events.len() >= limit {
                break;
            }
        }
        let next = state.as_bytes_slice().map(|b| encode_cursor(binding, b));
        self.mark_kept(cid, &mut events, &plans).await?;
        Ok(DayPage { events, next })
    }

    async fn event_page(
        &self,
        id: &EventId,
        after: Option<u32>,
        limit: u32,
    ) -> Result<Option<EventDetail>, StoreError> {
        let cid = id.device().as_str();
        let day = day_key(id.day());
        let s = &self.statements;
        let event_key: EventKey<'_> = (cid, day, id.triggered_at().millis(), id.as_str());
        let mappings_key: ClusteringKey<'_> = (cid, day, id.as_str());
        let (event, mappings) = futures::try_join!(
            self.query_opt::<EventReadRow>(&s.event, event_key),
            self.query_all::<MappingRow>(&s.mappings, mappings_key),
        )?;
        let Some((event, days)) = event.and_then(live_event) else { return Ok(None) };
        let mut event = event_view(event, self.policy.offset)?;
        let marks = self.keep_marks(cid).await?;
        if marks.gone(id, days, &self.policy, Timestamp::now()) {
            return Ok(None);
        }
        event.kept = marks.kept(id);
        // Mappings come in index order, at most MAX_SEGMENTS_PER_EVENT small rows (validation
        // caps the index): the page is cut here, and only its segments are read.
        let after = after.map_or(-1, i64::from);
        let limit = limit.max(1) as usize;
        let mut mappings: Vec<MappingRow> = mappings.into_iter().filter(|m| i64::from(m.0) > after).collect();
        let next_index = if mappings.len() > limit {
            mappings.truncate(limit);
            mappings.last().map(|m| to_u32("idx", m.0.into())).transpose()?
        } else {
            None
        };
        // A segment whose own report has not arrived yet is left out until it does.
        let segments = stream::iter(mappings)
            .map(|m| async move {
                let key: ClusteringKey<'_> = (cid, m.1, m.2.as_str());
                let segment = self.query_opt::<SegmentRow>(&s.segment, key).await?;
                segment.map(|seg| segment_view(m, seg)).transpose()
            })
            .buffered(self.max_concurrency)
            .try_collect::<Vec<Option<SegmentView>>>()
            .await?
            .into_iter()
            .flatten()
            .collect();
        Ok(Some(EventDetail { event, segments, next_index }))
    }

    async fn digest(&self, cid: &DeviceId, day: Day) -> Result<Option<DigestView>, StoreError> {
        let key: DayKey<'_> = (cid.as_str(), day_key(day));
        let row = self.query_opt::<DigestRow>(&self.statements.digest, key).await?;
        row.map(|(segment_id, size, duration_ms)| {
            Ok(DigestView {
                date: day,
                segment_id: SegmentId::parse(&segment_id).map_err(other)?,
                size: to_u64("size", size)?,
                duration_ms: to_u32("duration_ms", duration_ms)?,
            })
        })
        .transpose()
    }

    /// Rows expire by TTL counted from their trigger time; nothing is left to drop.
    async fn utc_offset(&self, cid: &DeviceId) -> Result<Option<DayOffset>, StoreError> {
        let row: Option<DeviceRow> = self.query_opt(&self.statements.device, (cid.as_str(),)).await?;
        Ok(row.and_then(|(minutes, _)| DayOffset::from_minutes(minutes)))
    }

    /// The `devices` row lives as long as the start it comes from (its TTL), so its plan is
    /// that start's while it is inside it.
    async fn plan(&self, cid: &DeviceId) -> Result<Option<u32>, StoreError> {
        let row: Option<DeviceRow> = self.query_opt(&self.statements.device, (cid.as_str(),)).await?;
        Ok(row.and_then(|(_, days)| days).and_then(|d| u32::try_from(d).ok()))
    }

    async fn drop_expired(&self, _oldest_kept: Day) -> Result<u64, StoreError> {
        Ok(0)
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.session
            .query_unpaged("SELECT key FROM system.local WHERE key = 'local'", &[])
            .await
            .map(|_| ())
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn backend(&self) -> &'static str {
        "scylla"
    }
}
