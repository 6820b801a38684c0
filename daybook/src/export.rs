//! The export worker (docs/viewer-api.md, Exports): runs beside the projector in `daybook run`,
//! finds the exports asked for and not completed (`ProjectionStore::pending_exports`, at start
//! and every few seconds), writes each one's archive into the object store and appends its
//! completion (`schemas::ExportCompleted`) to the log.
//!
//! The archive is a tar at `exports/{cid}/{export_id}.tar`: first `index.json` (the export, and
//! every event triggered on its days as the viewer API describes it, each with its snapshot and
//! segments: their object keys, their paths in the archive, or `"missing": true` for an object
//! the store no longer has), then each object present, as stored, under `objects/{key}`. It is
//! streamed from the object store back into it by an S3 multipart upload in parts of
//! [`ExportSettings::part_size`]: the worker holds one part at a time (and the index), whatever
//! the size of the export. The archive goes through the same S3 client configuration the rest
//! of daybook uses — the embedded endpoint or an external bucket alike.
//!
//! Idempotent: the key is the export's, so two workers (or a redo) write the same object and the
//! same completion; a worker stopped mid-upload leaves the export pending, and whoever takes it
//! next aborts the stale multipart uploads of its key first. An export that fails
//! [`MAX_ATTEMPTS`] times in a row, tried again after a pause that doubles each time (the object
//! store or the store unavailable for about a quarter of an hour), or that cannot
//! succeed (more than [`MAX_EXPORT_EVENTS`] events), completes as failed with the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use schemas::{Day, Envelope, ExportCompleted, ExportId, ExportOutcome, LocalTime, Report, Timestamp};
use seams::metric::{Kind, Metric, Unit};
use seams::{EventView, ExportView, LogRecord, ObjectKey, ProjectionStore, ReportLog, SegmentView};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Exports completed, by outcome (`ready`, `failed`).
pub(crate) const EXPORTS_TOTAL: Metric = Metric {
    name: "daybook_exports_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["outcome"],
    help: "Exports the export worker completed, by outcome (ready: the archive is in the object store; failed).",
};

/// Time to build and upload one archive.
pub(crate) const EXPORT_SECONDS: Metric = Metric {
    name: "daybook_export_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Time the export worker took to write one archive (ready exports).",
};

/// Bytes of archives written.
pub(crate) const EXPORT_BYTES_TOTAL: Metric = Metric {
    name: "daybook_export_bytes_total",
    kind: Kind::Counter,
    unit: Some(Unit::Bytes),
    labels: &[],
    help: "Bytes of export archives the export worker wrote to the object store.",
};

/// Most events one export may hold (the index is built in memory).
pub const MAX_EXPORT_EVENTS: usize = 20_000;
/// Failed attempts in a row after which an export completes as failed: with the pause doubling
/// from one poll after each (up to [`MAX_RETRY_PAUSE`]), about a quarter of an hour of an outage.
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest pause before an export that failed is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(300);
/// S3's smallest part but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// How long an export this process completed is not taken again while the store catches up.
const DONE_FOR: Duration = Duration::from_secs(600);
/// Exports read per round.
const PER_ROUND: u32 = 16;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// How long a completed export is kept (its `expires_at`: completion + this).
    pub ttl: Duration,
    /// Bytes per uploaded part (at least [`MIN_PART_SIZE`]): the worker's buffer.
    pub part_size: usize,
    /// Pause between rounds.
    pub poll: Duration,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(7 * 86_400), part_size: 8 * 1024 * 1024, poll: Duration::from_secs(3) }
    }
}

/// The worker's engines.
#[derive(Clone)]
pub struct ExportWorker {
    /// Where it reads pending exports and the events.
    pub store: Arc<dyn ProjectionStore>,
    /// Where it appends completions.
    pub log: Arc<dyn ReportLog>,
    /// The object store.
    pub s3: aws_sdk_s3::Client,
    /// The bucket.
    pub bucket: String,
    /// Its settings.
    pub settings: ExportSettings,
}

impl std::fmt::Debug for ExportWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportWorker").field("bucket", &self.bucket).field("settings", &self.settings).finish()
    }
}

/// Runs until `shutdown`: every [`ExportSettings::poll`], the pending exports, one at a time.
pub async fn run(worker: ExportWorker, mut shutdown: watch::Receiver<bool>) {
    let mut done: HashMap<ExportId, Instant> = HashMap::new();
    // Per export that failed: the attempts in a row, and when it may be tried again.
    let mut attempts: HashMap<ExportId, (u32, Instant)> = HashMap::new();
    loop {
        done.retain(|_, at| at.elapsed() < DONE_FOR);
        let pending = tokio::select! {
            r = worker.store.pending_exports(PER_ROUND) => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        match pending {
            Ok(pending) => {
                for export in pending {
                    let waiting = attempts.get(&export.export_id).is_some_and(|(_, next)| Instant::now() < *next);
                    if done.contains_key(&export.export_id) || waiting {
                        continue;
                    }
                    let started = Instant::now();
                    let attempt = tokio::select! {
                        a = worker.export(&export) => a,
                        _ = shutdown.wait_for(|v| *v) => return,
                    };
                    let outcome = match attempt {
                        Ok(outcome) => outcome,
                        // An engine failed: tried again after a pause that doubles (up to
                        // MAX_ATTEMPTS in a row).
                        Err(e) => {
                            let (n, next) = attempts.entry(export.export_id.clone()).or_insert((0, Instant::now()));
                            *n += 1;
                            let pause = worker.settings.poll.saturating_mul(1 << (*n - 1).min(16)).min(MAX_RETRY_PAUSE);
                            *next = Instant::now() + pause;
                            tracing::warn!(export = %export.export_id, attempt = *n, error = %format!("{e:#}"), "export failed");
                            if *n < MAX_ATTEMPTS {
                                continue;
                            }
                            ExportOutcome::Failed { reason: truncate(format!("{e:#}")) }
                        }
                    };
                    match worker.complete(&export, outcome.clone()).await {
                        Ok(()) => {
                            attempts.remove(&export.export_id);
                            done.insert(export.export_id.clone(), Instant::now());
                            let label = match &outcome {
                                ExportOutcome::Ready { bytes, .. } => {
                                    metrics::histogram!(EXPORT_SECONDS.name).record(started.elapsed().as_secs_f64());
                                    metrics::counter!(EXPORT_BYTES_TOTAL.name).increment(*bytes);
                                    "ready"
                                }
                                ExportOutcome::Failed { .. } => "failed",
                            };
                            metrics::counter!(EXPORTS_TOTAL.name, "outcome" => label).increment(1);
                            tracing::info!(export = %export.export_id, device = %export.cid, outcome = label, "export completed");
                        }
                        Err(e) => {
                            tracing::warn!(export = %export.export_id, error = %format!("{e:#}"), "appending an export's completion failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the pending exports failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(worker.settings.poll) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

fn truncate(mut reason: String) -> String {
    if reason.len() > schemas::export::MAX_EXPORT_REASON {
        let mut end = schemas::export::MAX_EXPORT_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// One object the archive holds: its key, and its size if the object store has it.
struct Object {
    key: String,
    size: Option<u64>,
}

impl Object {
    fn json(&self) -> Value {
        match self.size {
            Some(bytes) => json!({"key": self.key, "path": format!("objects/{}", self.key), "bytes": bytes}),
            None => json!({"key": self.key, "missing": true}),
        }
    }
}

impl ExportWorker {
    /// Appends `export`'s completion with `outcome`; returns once it is durable.
    async fn complete(&self, export: &ExportView, outcome: ExportOutcome) -> anyhow::Result<()> {
        let now = Timestamp::now();
        let report = Report::ExportCompleted(ExportCompleted {
            cid: export.cid.clone(),
            export_id: export.export_id.clone(),
            requested_at: export.requested_at,
            from: export.from,
            to: export.to,
            outcome,
            expires_at: now.plus_millis(self.settings.ttl.as_millis() as i64),
        });
        self.log.append(vec![LogRecord::of(&Envelope::new(report, now))]).await?;
        Ok(())
    }

    /// The events of `export`'s days with all their segments, in day and trigger order; `None`
    /// when there are more than [`MAX_EXPORT_EVENTS`].
    async fn events(&self, export: &ExportView) -> anyhow::Result<Option<Vec<(EventView, Vec<SegmentView>)>>> {
        let mut out = Vec::new();
        let mut day: Day = export.from;
        while day <= export.to {
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                let page = self.store.day_page(&export.cid, day, None, 100, cursor.as_deref()).await?;
                for e in page.events {
                    if out.len() == MAX_EXPORT_EVENTS {
                        return Ok(None);
                    }
                    // Gone since the page was read (deleted, erased): left out.
                    if let Some(detail) = self.store.event(&e.event_id).await? {
                        out.push((detail.event, detail.segments));
                    }
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            day = day.add_days(1);
        }
        Ok(Some(out))
    }

    /// The size of `key` in the bucket, `None` when it is not there.
    async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.s3.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(anyhow::anyhow!("HEAD {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    /// Builds and uploads `export`'s archive.
    async fn export(&self, export: &ExportView) -> anyhow::Result<ExportOutcome> {
        let Some(events) = self.events(export).await? else {
            return Ok(ExportOutcome::Failed {
                reason: format!("more than {MAX_EXPORT_EVENTS} events: ask for fewer days"),
            });
        };
        let mut objects: Vec<Object> = Vec::new();
        let mut index_events = Vec::with_capacity(events.len());
        for (event, segments) in &events {
            let snapshot = Object {
                key: ObjectKey::snapshot(&event.event_id).as_str().to_owned(),
                size: self.size(ObjectKey::snapshot(&event.event_id).as_str()).await?,
            };
            let snapshot_json = snapshot.json();
            objects.push(snapshot);
            let mut segments_json = Vec::with_capacity(segments.len());
            for s in segments {
                let key = ObjectKey::segment(&export.cid, &s.segment_id).as_str().to_owned();
                let object = match objects.iter().find(|o| o.key == key) {
                    Some(o) => o.json(),
                    None => {
                        let o = Object { size: self.size(&key).await?, key };
                        let j = o.json();
                        objects.push(o);
                        j
                    }
                };
                segments_json.push(json!({
                    "segment_id": s.segment_id.as_str(),
                    "index": s.index,
                    "size": s.size,
                    "start_offset": s.start_offset,
                    "end_offset": s.end_offset,
                    "started_at": LocalTime::at(s.started_at, event.utc_offset),
                    "duration_ms": s.duration_ms,
                    "media": s.media,
                    "keyframes": s.keyframes,
                    "object": object,
                }));
            }
            index_events.push(json!({
                "event_id": event.event_id.as_str(),
                "event_type": event.event_type.as_str(),
                "triggered_at": LocalTime::at(event.triggered_at, event.utc_offset),
                "ended_at": event.ended_at.map(|t| LocalTime::at(t, event.utc_offset)),
                "utc_offset": event.utc_offset,
                "status": event.status.as_str(),
                "duration_ms": event.duration_ms(),
                "kept": event.kept,
                "snapshot": snapshot_json,
                "segments": segments_json,
            }));
        }
        let index = serde_json::to_vec_pretty(&json!({
            "export_id": export.export_id.as_str(),
            "cid": export.cid.as_str(),
            "from": export.from,
            "to": export.to,
            "requested_at": LocalTime::at(export.requested_at, schemas::DayOffset::default()),
            "events": index_events,
        }))?;
        let key = ObjectKey::export(&export.cid, &export.export_id);
        let mut upload = Upload::start(&self.s3, &self.bucket, key.as_str(), self.settings.part_size).await?;
        match self.write_archive(&mut upload, &index, &objects).await {
            Ok(()) => {
                let bytes = upload.finish().await?;
                Ok(ExportOutcome::Ready { key: key.as_str().to_owned(), bytes, events: events.len() as u32 })
            }
            Err(e) => {
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// Writes the archive's entries into `upload`: the index, then every object present.
    async fn write_archive(&self, upload: &mut Upload<'_>, index: &[u8], objects: &[Object]) -> anyhow::Result<()> {
        let mut headers = tar::Builder::new(Vec::new());
        let mut entry = |path: &str, size: u64| -> std::io::Result<Vec<u8>> {
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            headers.append_data(&mut header, path, std::io::empty())?;
            Ok(std::mem::take(headers.get_mut()))
        };
        upload.write(&entry("index.json", index.len() as u64)?).await?;
        upload.write(index).await?;
        upload.pad().await?;
        for object in objects {
            let Some(size) = object.size else { continue };
            let mut body = match self.s3.get_object().bucket(&self.bucket).key(&object.key).send().await {
                Ok(got) => got.body,
                Err(e) => {
                    return Err(anyhow::anyhow!("GET {}: {}", object.key, aws_sdk_s3::error::DisplayErrorContext(e)))
                }
            };
            upload.write(&entry(&format!("objects/{}", object.key), size)?).await?;
            let mut written = 0u64;
            while let Some(chunk) = body.try_next().await.with_context(|| format!("reading {}", object.key))? {
                written += chunk.len() as u64;
                if written > size {
                    anyhow::bail!("{} changed while it was exported", object.key);
                }
                upload.write(&chunk).await?;
            }
            if written != size {
                anyhow::bail!("{} changed while it was exported", object.key);
            }
            upload.pad().await?;
        }
        // The two zero blocks that end an archive.
        upload.write(&headers.into_inner()?).await?;
        Ok(())
    }
}

/// A multipart upload of one object, in parts of `part_size` bytes: holds at most one part.
#[derive(Debug)]
pub struct Upload<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    key: &'a str,
    upload_id: String,
    part_size: usize,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
    written: u64,
    /// The largest the buffer grew (it never reallocates: its capacity is one part).
    peak: usize,
}

impl<'a> Upload<'a> {
    /// Aborts the multipart uploads of `key` left by an earlier attempt, then starts one.
    pub async fn start(
        s3: &'a aws_sdk_s3::Client,
        bucket: &'a str,
        key: &'a str,
        part_size: usize,
    ) -> anyhow::Result<Upload<'a>> {
        let part_size = part_size.max(MIN_PART_SIZE);
        match s3.list_multipart_uploads().bucket(bucket).prefix(key).send().await {
            Ok(listed) => {
                for stale in listed.uploads().iter().filter(|u| u.key() == Some(key)) {
                    if let Some(id) = stale.upload_id() {
                        let _ = s3.abort_multipart_upload().bucket(bucket).key(key).upload_id(id).send().await;
                        tracing::info!(key, "aborted a stale upload of an export");
                    }
                }
            }
            // An object store without the listing: its own expiry of incomplete uploads cleans up.
            Err(e) => {
                tracing::debug!(key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "cannot list multipart uploads")
            }
        }
        let created = s3
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/x-tar")
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("starting the upload of {key}: {}", aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
        let upload_id = created.upload_id().context("the object store gave no upload id")?.to_owned();
        Ok(Upload {
            s3,
            bucket,
            key,
            upload_id,
            part_size,
            buffer: Vec::with_capacity(part_size),
            parts: Vec::new(),
            written: 0,
            peak: 0,
        })
    }

    /// Appends `bytes`, uploading every part that fills.
    pub async fn write(&mut self, mut bytes: &[u8]) -> anyhow::Result<()> {
        while !bytes.is_empty() {
            let take = bytes.len().min(self.part_size - self.buffer.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            self.peak = self.peak.max(self.buffer.len());
            self.written += take as u64;
            bytes = &bytes[take..];
            if self.buffer.len() == self.part_size {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Zeroes up to the next 512-byte block (a tar entry's end).
    async fn pad(&mut self) -> anyhow::Result<()> {
        let rest = (512 - (self.written % 512) as usize) % 512;
        self.write(&[0u8; 512][..rest]).await
    }

    async fn send_part(&mut self) -> anyhow::Result<()> {
        let number = self.parts.len() as i32 + 1;
        // The part leaves the buffer (no copy); the next one fills a fresh one once it is sent.
        let part = std::mem::take(&mut self.buffer);
        let body = ByteStream::from(part);
        let sent = self
            .s3
            .upload_part()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("part {number} of {}: {}", self.key, aws_sdk_s3::error::DisplayErrorContext(e))
            })?;
        self.parts
            .push(CompletedPart::builder().part_number(number).set_e_tag(sent.e_tag().map(str::to_owned)).build());
        self.buffer = Vec::with_capacity(self.part_size);
        Ok(())
    }

    /// Uploads the last part and completes the object; returns its size.
    pub async fn finish(mut self) -> anyhow::Result<u64> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.send_part().await?;
        }
        let parts = CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build();
        self.s3
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("completing {}: {}", self.key, aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(self.written)
    }

    /// Gives the upload up (its parts are deleted).
    pub async fn abort(self) {
        let _ =
            self.s3.abort_multipart_upload().bucket(self.bucket).key(self.key).upload_id(&self.upload_id).send().await;
    }

    /// Parts uploaded so far.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The most bytes the upload held at once.
    pub fn peak(&self) -> usize {
        self.peak
    }
}
