//! The device endpoints.

use std::cell::Cell;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use schemas::owner::{MAX_PLAN_DAYS, MIN_PLAN_DAYS};
use schemas::{
    DigestReported, Envelope, EventEnded, EventId, EventStarted, LocalTime, PlanSet, Report, SegmentId,
    SegmentReported, TimePolicy, Timestamp, ZoneRule,
};
use seams::auth::Device;
use seams::metric::{Kind, Metric, Unit};
use seams::web::{parse_json, read_body, ApiError, ErrorBody, ErrorCode};
use seams::{LogError, LogRecord, ObjectKey};
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use utoipa::OpenApi;

use crate::breaker::Admit;
use crate::dto::*;
use crate::Ingest;

pub(crate) const INGEST_REPORTS_ACCEPTED_TOTAL: Metric = Metric {
    name: "daybook_ingest_reports_accepted_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Device reports appended durably to the log and acknowledged (201/202); a batch counts each of its reports.",
};

pub(crate) const INGEST_REFUSED_LOG_DOWN_TOTAL: Metric = Metric {
    name: "daybook_ingest_refused_log_down_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Reports refused at once with 503 log_unavailable because the log was known to be down (nothing was stored).",
};

pub(crate) const INGEST_APPEND_SECONDS: Metric = Metric {
    name: "daybook_ingest_append_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Time the log took to confirm (or fail) the append of one request's reports.",
};

pub(crate) const INGEST_CLOCK_SKEW_REPORTS_TOTAL: Metric = Metric {
    name: "daybook_ingest_clock_skew_reports_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Reports whose device clock was ahead of the server's by more than --future-tolerance-secs \
           (kept, filed by the server's time, answered with clock_skew_ms).",
};

/// The device API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(start_event, end_event, segment_upload, report_segment, digest_upload, report_digest, report_batch),
    components(schemas(ErrorBody)),
    modifiers(&BatchBounds),
    tags((name = "devices", description = "Device API: reports and upload URLs"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// States the batch body's item bounds, which the server enforces (`[]` is 400, item
/// [`MAX_BATCH_ITEMS`](crate::MAX_BATCH_ITEMS)` + 1` is 413): `minItems`/`maxItems` of the
/// array schema of `POST …/reports` (the annotation cannot say them).
#[derive(Debug)]
struct BatchBounds;

impl utoipa::Modify for BatchBounds {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Schema;
        use utoipa::openapi::RefOr;
        let post = doc.paths.paths.get_mut("/v1/devices/{cid}/reports").and_then(|p| p.post.as_mut());
        let body = post.and_then(|op| op.request_body.as_mut());
        for content in body.into_iter().flat_map(|b| b.content.values_mut()) {
            if let Some(RefOr::T(Schema::Array(array))) = content.schema.as_mut() {
                array.min_items = Some(1);
                array.max_items = Some(crate::MAX_BATCH_ITEMS);
            }
        }
    }
}

/// The device routes, with the request body limit applied.
pub fn router(ingest: Ingest) -> Router {
    let limit = ingest.inner.config.max_body_bytes;
    Router::new()
        .route("/v1/devices/{cid}/events", post(start_event))
        .route("/v1/devices/{cid}/events/{event_id}/end", post(end_event))
        .route("/v1/devices/{cid}/segments/uploads", post(segment_upload))
        .route("/v1/devices/{cid}/segments", post(report_segment))
        .route("/v1/devices/{cid}/digests/uploads", post(digest_upload))
        .route("/v1/devices/{cid}/digests", post(report_digest))
        .route("/v1/devices/{cid}/reports", post(report_batch))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(ingest)
}

impl Ingest {
    /// Auth (401/403), then the device's rate (429), then the body (400/413/422).
    async fn admit<T: serde::de::DeserializeOwned>(&self, cid: &str, req: Request) -> Result<(Device, T), ApiError> {
        let device = self.inner.auth.device(req.headers(), cid)?;
        self.inner.admission.check_rate(&device.cid)?;
        let body = read_body(req).await?;
        Ok((device, parse_json(&body)?))
    }

    /// Validates (against `device`'s plan: a report older than it is past retention), and
    /// returns the camera's clock skew if it is beyond the tolerance (counted in a metric
    /// without a device label; the device learns it from the answer).
    pub(crate) fn validate(&self, device: &Device, report: &Report, now: Timestamp) -> Result<Option<i64>, ApiError> {
        let policy = &TimePolicy { retention_days: self.retention_days(device), ..self.inner.config.policy };
        report.validate(policy, now).map_err(ApiError::from)?;
        let skew = report.clock_skew_ms(policy, now);
        if skew.is_some() {
            metrics::counter!(INGEST_CLOCK_SKEW_REPORTS_TOTAL.name).increment(1);
        }
        Ok(skew)
    }

    /// The plan change to put on the log before `device`'s reports, if its token's plan differs
    /// from the last one ingest put there for it (a device it does not remember: only if its
    /// token carries one, so a deployment without plans never writes one). A device back on the
    /// deployment's retention gets a change to it, when that is a plan's length.
    fn plan_change(&self, device: &Device) -> Option<Report> {
        let last = self.inner.plans.get(&device.cid);
        let changed = match last {
            Some(last) => last != device.retention_days,
            None => device.retention_days.is_some(),
        };
        let retention_days = self.retention_days(device);
        let plan = (MIN_PLAN_DAYS..=MAX_PLAN_DAYS).contains(&retention_days);
        (changed && plan).then(|| Report::PlanSet(PlanSet { cid: device.cid.clone(), retention_days }))
    }

    /// Days `device`'s reports are kept: its token's plan, else the deployment's retention.
    fn retention_days(&self, device: &Device) -> u32 {
        device.retention_days.unwrap_or(self.inner.config.policy.retention_days)
    }

    /// How the day of a timestamp sent without an offset is decided for `device`.
    fn zones(&self, device: &Device) -> ZoneRule {
        ZoneRule { zone: device.zone, fallback: self.inner.config.policy.offset }
    }

    /// Appends `reports` of `device`, each carrying its plan (docs/data-model.md, Plans), and
    /// returns once the log holds all of them durably — or refuses
    /// with 503 `log_unavailable` at once while the log is known to be down, or after the
    /// request deadline when the log does not confirm in time.
    async fn append(&self, device: &Device, reports: Vec<Report>) -> Result<(), ApiError> {
        let _inflight = self.inner.admission.reserve(reports.len())?;
        let n = reports.len();
        let breaker = &self.inner.breaker;
        if breaker.admit() == Admit::Refuse {
            metrics::counter!(INGEST_REFUSED_LOG_DOWN_TOTAL.name).increment(n as u64);
            return Err(ApiError::unavailable(
                ErrorCode::LogUnavailable,
                "the report log is unavailable; nothing was stored: retry after the Retry-After",
                Duration::from_secs(2),
            ));
        }
        let received_at = Timestamp::now();
        let retention = Some(self.retention_days(device));
        // A plan change goes first, with the same key: before the device's reports it applies to.
        let plan_change = self.plan_change(device);
        let records = plan_change
            .clone()
            .into_iter()
            .chain(reports)
            .map(|report| LogRecord::of(&Envelope::new(report, received_at).with_retention(retention)))
            .collect::<Vec<_>>();
        let started = Instant::now();
        let deadline = breaker.deadline();
        let result = match tokio::time::timeout(deadline, self.inner.log.append(records)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(LogError::Timeout(format!("no confirmation within {} ms", deadline.as_millis()))),
        };
        metrics::histogram!(INGEST_APPEND_SECONDS.name).record(started.elapsed().as_secs_f64());
        match result {
            Ok(_) => {
                breaker.succeeded();
                if plan_change.is_some() {
                    self.inner.plans.insert(device.cid.clone(), device.retention_days);
                }
                metrics::counter!(INGEST_REPORTS_ACCEPTED_TOTAL.name).increment(n as u64);
                Ok(())
            }
            Err(e @ (LogError::Unavailable(_) | LogError::Timeout(_))) => {
                tracing::warn!(error = %e, reports = n, "append failed");
                breaker.failed(&e.to_string());
                Err(ApiError::unavailable(
                    ErrorCode::LogUnavailable,
                    format!("{e}; the reports may still be stored: retrying them is safe"),
                    Duration::from_secs(2),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, reports = n, "append failed");
                Err(e.into())
            }
        }
    }

    /// Validates one report, appends it durably and answers 202.
    async fn accept(
        &self,
        device: &Device,
        report: Report,
        now: Timestamp,
    ) -> Result<(StatusCode, Json<Accepted>), ApiError> {
        let clock_skew_ms = self.validate(device, &report, now)?;
        self.append(device, vec![report]).await?;
        Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true, clock_skew_ms })))
    }

    async fn upload(&self, key: &ObjectKey, content_type: &str, len: Option<u64>) -> Result<Upload, ApiError> {
        Ok(self.inner.signer.presign_put(key, content_type, len, self.inner.config.url_ttl).await?.into())
    }

    pub(crate) fn event_started(
        &self,
        device: &Device,
        r: EventStartRequest,
        now: Timestamp,
    ) -> Result<Report, ApiError> {
        let utc_offset = self.zones(device).offset_of(r.triggered_at);
        let at = r.triggered_at.at;
        let legacy = r.triggered_at.offset.is_none() && device.zone.is_none();
        let (event_id, clock_skew_ms) =
            self.inner.config.policy.start_id(&device.cid, &r.event_type, at, utc_offset, legacy, now)?;
        Ok(Report::EventStarted(EventStarted {
            cid: device.cid.clone(),
            event_id,
            event_type: r.event_type,
            triggered_at: at,
            utc_offset,
            clock_skew_ms,
            snapshot_size: r.snapshot_size,
        }))
    }

    pub(crate) fn event_ended(
        &self,
        device: &Device,
        event_id: EventId,
        ended_at: LocalTime,
        status: schemas::EndStatus,
    ) -> Report {
        Report::EventEnded(EventEnded {
            cid: device.cid.clone(),
            event_id,
            ended_at: ended_at.at,
            utc_offset: self.zones(device).offset_of(ended_at),
            status,
        })
    }

    pub(crate) fn segment_reported(&self, device: &Device, r: SegmentRequest) -> Report {
        Report::SegmentReported(SegmentReported {
            cid: device.cid.clone(),
            segment_id: r.segment_id,
            size: r.size,
            started_at: r.started_at.at,
            utc_offset: self.zones(device).offset_of(r.started_at),
            duration_ms: r.duration_ms,
            media: r.media,
            keyframes: r.keyframes.unwrap_or_default(),
            events: r.events,
        })
    }

    pub(crate) fn digest_reported(&self, device: &Device, r: DigestRequest) -> Report {
        // A date names no instant: its offset is the configured zone's at the day's noon.
        let noon = self.inner.config.policy.offset.start_of(r.date).plus_millis(12 * 3_600_000);
        Report::DigestReported(DigestReported {
            cid: device.cid.clone(),
            utc_offset: self.zones(device).offset_at(noon),
            date: r.date,
            segment_id: r.segment_id,
            size: r.size,
            duration_ms: r.duration_ms,
        })
    }

    /// A batch's items as reports, each validated on its own: the reports to append, and one
    /// result per item in order (what `POST …/reports` answers).
    pub(crate) fn batch_reports(
        &self,
        device: &Device,
        items: Vec<Result<BatchItem, ApiError>>,
        now: Timestamp,
    ) -> (Vec<Report>, Vec<ItemResult>) {
        let mut results = Vec::with_capacity(items.len());
        let mut reports = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let outcome = item.and_then(|item| {
                let (report, status) = match item {
                    // No upload is signed in a batch, so no snapshot is counted either.
                    BatchItem::EventStart(r) => {
                        (self.event_started(device, EventStartRequest { snapshot_size: None, ..r }, now)?, 201)
                    }
                    BatchItem::EventEnd(BatchEventEnd { event_id, ended_at, status }) => {
                        (self.event_ended(device, event_id, ended_at, status), 202)
                    }
                    BatchItem::Segment(r) => (self.segment_reported(device, r), 202),
                    BatchItem::Digest(r) => (self.digest_reported(device, r), 202),
                };
                let skew = self.validate(device, &report, now)?;
                if matches!(report, Report::DigestReported(_)) {
                    self.inner.admission.check_digest_slot(&device.cid, now)?;
                }
                Ok((report, status, skew))
            });
            match outcome {
                Ok((report, status, clock_skew_ms)) => {
                    let event_id = match &report {
                        Report::EventStarted(r) => Some(r.event_id.clone()),
                        _ => None,
                    };
                    reports.push(report);
                    results.push(ItemResult { index, status, event_id, clock_skew_ms, error: None });
                }
                Err(e) => results.push(ItemResult {
                    index,
                    status: e.status.as_u16(),
                    event_id: None,
                    clock_skew_ms: None,
                    error: Some(seams::web::ErrorDetail { code: e.code, message: e.message }),
                }),
            }
        }
        (reports, results)
    }
}

pub(crate) fn check_upload(r: &UploadRequest, allowed: &[&str]) -> Result<(), ApiError> {
    if r.content_length == 0 || r.content_length > schemas::report::MAX_OBJECT_SIZE {
        return Err(ApiError::invalid(
            ErrorCode::InvalidSize,
            format!("content_length must be 1..={}", schemas::report::MAX_OBJECT_SIZE),
        ));
    }
    // A MIME type is visible ASCII without separators that could break a signed header.
    let printable =
        r.content_type.bytes().all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b',' && b != b'\\');
    if !printable || !allowed.iter().any(|p| r.content_type.starts_with(p)) || r.content_type.len() > 100 {
        return Err(ApiError::invalid(
            ErrorCode::InvalidContentType,
            format!("content_type must start with one of {allowed:?}"),
        ));
    }
    Ok(())
}

fn new_segment_id(ingest: &Ingest) -> SegmentId {
    SegmentId::generate(ingest.inner.config.policy.offset.today(), uuid::Uuid::new_v4().as_u128())
}

/// Open an event.
///
/// The same (device, type, triggered_at) always gets the same `event_id`. The answer carries a
/// presigned PUT for the snapshot image, to upload before any video; with `snapshot_size` the
/// PUT is signed for exactly that many bytes.
#[utoipa::path(post, path = "/v1/devices/{cid}/events", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = EventStartRequest,
    responses((status = 201, body = EventStartResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn start_event(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<EventStartResponse>), ApiError> {
    let (device, body): (_, EventStartRequest) = ingest.admit(&cid, req).await?;
    let max_snapshot = ingest.inner.config.max_snapshot_bytes;
    let snapshot_size = body.snapshot_size;
    if snapshot_size.is_some_and(|n| n == 0 || n > max_snapshot) {
        return Err(ApiError::invalid(ErrorCode::InvalidSize, format!("snapshot_size must be 1..={max_snapshot}")));
    }
    let now = Timestamp::now();
    let report = ingest.event_started(&device, body, now)?;
    let clock_skew_ms = ingest.validate(&device, &report, now)?;
    let Report::EventStarted(started) = &report else { unreachable!("built above") };
    let event_id = started.event_id.clone();
    let snapshot_upload = ingest.upload(&ObjectKey::snapshot(&event_id), "image/jpeg", snapshot_size).await?;
    ingest.append(&device, vec![report]).await?;
    Ok((StatusCode::CREATED, Json(EventStartResponse { event_id, snapshot_upload, clock_skew_ms })))
}

/// Close an event.
#[utoipa::path(post, path = "/v1/devices/{cid}/events/{event_id}/end", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), ("event_id" = inline(EventId), Path, description = "event id (its date is checked beyond the pattern: `20260230…` is 422 `invalid_event_id`)")),
    request_body = EventEndRequest,
    responses((status = 202, body = Accepted), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn end_event(
    State(ingest): State<Ingest>,
    Path((cid, event_id)): Path<(String, String)>,
    req: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (device, body): (_, EventEndRequest) = ingest.admit(&cid, req).await?;
    let event_id =
        EventId::parse(&event_id).map_err(|e| ApiError::invalid(ErrorCode::InvalidEventId, e.to_string()))?;
    let report = ingest.event_ended(&device, event_id, body.ended_at, body.status);
    ingest.accept(&device, report, Timestamp::now()).await
}

/// Get a presigned PUT for a new segment.
#[utoipa::path(post, path = "/v1/devices/{cid}/segments/uploads", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = UploadRequest,
    responses((status = 201, body = SegmentUploadResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn segment_upload(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<SegmentUploadResponse>), ApiError> {
    let (device, body): (_, UploadRequest) = ingest.admit(&cid, req).await?;
    let cid = device.cid;
    check_upload(&body, &["video/", "application/octet-stream"])?;
    let segment_id = new_segment_id(&ingest);
    let upload =
        ingest.upload(&ObjectKey::segment(&cid, &segment_id), &body.content_type, Some(body.content_length)).await?;
    Ok((StatusCode::CREATED, Json(SegmentUploadResponse { segment_id, upload })))
}

/// Report an uploaded segment and which events it holds parts of.
#[utoipa::path(post, path = "/v1/devices/{cid}/segments", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = SegmentRequest,
    responses((status = 202, body = Accepted), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn report_segment(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (device, body): (_, SegmentRequest) = ingest.admit(&cid, req).await?;
    let report = ingest.segment_reported(&device, body);
    ingest.accept(&device, report, Timestamp::now()).await
}

/// Get a presigned PUT for a digest, and this device's upload slot for next night.
#[utoipa::path(post, path = "/v1/devices/{cid}/digests/uploads", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = UploadRequest,
    responses((status = 201, body = DigestUploadResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn digest_upload(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<DigestUploadResponse>), ApiError> {
    let (device, body): (_, UploadRequest) = ingest.admit(&cid, req).await?;
    let cid = device.cid;
    check_upload(&body, &["video/", "application/octet-stream"])?;
    let segment_id = new_segment_id(&ingest);
    let upload =
        ingest.upload(&ObjectKey::digest(&cid, &segment_id), &body.content_type, Some(body.content_length)).await?;
    let (start, end) = ingest.inner.admission.digest_slot(&cid, Timestamp::now());
    Ok((StatusCode::CREATED, Json(DigestUploadResponse { segment_id, upload, window: Slot { start, end } })))
}

/// Report an uploaded digest. Outside the device's slot it is admitted only while the log has
/// headroom; otherwise 429 with a Retry-After pointing into the slot.
#[utoipa::path(post, path = "/v1/devices/{cid}/digests", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = DigestRequest,
    responses((status = 202, body = Accepted), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn report_digest(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (device, body): (_, DigestRequest) = ingest.admit(&cid, req).await?;
    let now = Timestamp::now();
    let report = ingest.digest_reported(&device, body);
    // Invalid (422) before out of slot (429): a device must not retry a report that can never pass.
    let clock_skew_ms = ingest.validate(&device, &report, now)?;
    ingest.inner.admission.check_digest_slot(&device.cid, now)?;
    ingest.append(&device, vec![report]).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted: true, clock_skew_ms })))
}

/// Report a backlog in one request.
///
/// The body is a JSON array, or NDJSON (one item per line), of 1 to 1000 items tagged by `kind`
/// (`event_start`, `event_end`, `segment`, `digest`). Valid items are appended together and
/// acknowledged together; each item gets its own result: a line that is not JSON is a 400
/// item, a JSON value that is not a valid report a 422 item. A body in which nothing is JSON —
/// neither a JSON array nor NDJSON with at least one line of JSON (`\x00`, a page of HTML,
/// every line garbage) — holds no item and is refused whole with 400 `malformed_json`, as are
/// a malformed array and an empty batch (`[]`, or only blank lines); item 1001 is 413
/// `too_many_items`.
#[utoipa::path(post, path = "/v1/devices/{cid}/reports", tag = "devices",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body(content = Vec<BatchItem>, description = "JSON array or NDJSON"),
    responses((status = 200, body = BatchResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("device_token" = [])))]
async fn report_batch(
    State(ingest): State<Ingest>,
    Path(cid): Path<String>,
    req: Request,
) -> Result<Json<BatchResponse>, ApiError> {
    let device = ingest.inner.auth.device(req.headers(), &cid)?;
    let cid = device.cid.clone();
    ingest.inner.admission.check_rate(&cid)?;
    let body = read_body(req).await?;
    let items = split_batch(&body, ingest.inner.config.max_batch_items)?;
    let (reports, results) = ingest.batch_reports(&device, items, Timestamp::now());
    let accepted = reports.len();
    if accepted > 0 {
        ingest.append(&device, reports).await?;
    }
    Ok(Json(BatchResponse { accepted, rejected: results.len() - accepted, results }))
}

fn too_many_items(max: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooManyItems, format!("a batch holds at most {max} items"))
}

/// A JSON array, or NDJSON: each item parsed on its own, so one bad item fails alone. Parsing
/// stops at item `max + 1` (413), so the work and memory of a request are bounded by the item
/// cap, not by the body size.
pub(crate) fn split_batch(body: &[u8], max: usize) -> Result<Vec<Result<BatchItem, ApiError>>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let over = Cell::new(false);
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = CappedItems { max, over: &over }.deserialize(&mut de).and_then(|items| de.end().map(|()| items));
        return match parsed {
            Ok(items) if items.is_empty() => Err(empty_batch()),
            Ok(items) => Ok(items),
            Err(_) if over.get() => Err(too_many_items(max)),
            Err(e) => Err(ApiError::bad_request(ErrorCode::MalformedJson, e.to_string())),
        };
    }
    let lines = || body.split(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty());
    let mut items = Vec::new();
    for line in lines() {
        if items.len() == max {
            return Err(too_many_items(max));
        }
        items.push(parse_json(line));
    }
    if items.is_empty() {
        return Err(empty_batch());
    }
    if items.iter().all(Result::is_err) {
        let mut values = lines().map(json_value);
        if let Some(Err(first)) = values.next() {
            if values.all(|v| v.is_err()) {
                return Err(ApiError::bad_request(
                    ErrorCode::MalformedJson,
                    format!(
                        "the body is neither a JSON array nor NDJSON with a line of JSON: nothing in it is a \
                         report (first line: {first})"
                    ),
                ));
            }
        }
    }
    Ok(items)
}

/// Whether `line` is one well-formed JSON value, of any shape (and if not, why).
fn json_value(line: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).map(drop)
}

/// A batch without items, in either form (`[]`, or a body of blank lines): 400.
fn empty_batch() -> ApiError {
    ApiError::bad_request(ErrorCode::MalformedJson, "empty batch")
}

/// Visits a JSON array element by element, converting each to a [`BatchItem`] on its own, and
/// fails (setting `over`) at the element past `max` without reading further.
struct CappedItems<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedItems<'_> {
    type Value = Vec<Result<BatchItem, ApiError>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CappedItems<'_> {
    type Value = Vec<Result<BatchItem, ApiError>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an array of at most {} items", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(mut value) = seq.next_element::<serde_json::Value>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many items"));
            }
            seams::web::integral_floats(&mut value);
            items.push(serde_json::from_value(value).map_err(|e| seams::web::invalid_data(&e)));
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_as_array_or_ndjson() {
        let item = r#"{"kind":"event_start","type":"motion","triggered_at":"2026-11-22T00:00:00Z"}"#;
        let arr = format!("[{item},{item}]");
        assert_eq!(split_batch(arr.as_bytes(), 10).unwrap().len(), 2);
        let nd = format!("{item}\n\n{item}\nnot json\n");
        let items = split_batch(nd.as_bytes(), 10).unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        assert_eq!(items[2].as_ref().unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(split_batch(b"[1,", 10).is_err());
        assert!(split_batch(b"  ", 10).is_err());
        assert_eq!(split_batch(b"[1,2,3]", 2).unwrap_err().code, ErrorCode::TooManyItems);
        assert_eq!(split_batch(b"[1,2]", 2).unwrap().len(), 2);
        assert_eq!(split_batch(b"1\n2\n3", 2).unwrap_err().code, ErrorCode::TooManyItems);
    }

    /// Found by `fuzz/` (target `batch`): an empty JSON array was answered 200 with no
    /// results, where an empty NDJSON body is 400 `malformed_json` — the same empty batch got
    /// two answers depending on its encoding.
    #[test]
    fn fuzz_batch_an_empty_json_array_is_refused_like_an_empty_ndjson_body() {
        for body in [&b"[]"[..], b"[\n ]", b" [ ] ", b"", b"\n \n"] {
            let e = split_batch(body, 10).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson), "{body:?}");
        }
    }

    /// Item 12 (b), found by schemathesis: a body in which nothing is JSON (`\x00`, or NDJSON
    /// whose every line is garbage) was answered 200 with one per-item 400, as if it held a
    /// report. It is refused whole, as a malformed array is; a body with one line of JSON
    /// keeps its per-item results.
    #[test]
    fn a_body_in_which_nothing_is_json_is_refused_whole() {
        for body in [&b"\x00"[..], b"\xff\xfe", b"garbage", b"not json\n{\"kind\":\n]\n", b"<html>\n</html>\n", b"{} x"]
        {
            let e = split_batch(body, 10).expect_err(&format!("{body:?} is refused whole"));
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, ErrorCode::MalformedJson), "{body:?}");
            assert!(e.message.contains("nothing in it is a report"), "{}", e.message);
        }
        // One JSON value among garbage: per-item results, the value's of its own shape.
        let items = split_batch(b"garbage\n{\"kind\":\"nope\"}\n\x00\n", 10).unwrap();
        let codes: Vec<_> = items.iter().map(|i| i.as_ref().map(|_| ()).unwrap_err().code).collect();
        assert_eq!(codes, vec![ErrorCode::MalformedJson, ErrorCode::Invalid, ErrorCode::MalformedJson]);
        assert_eq!(split_batch(b"1\n\x00", 10).unwrap().len(), 2);
    }

    /// Item 12 (a): the batch body's schema states the bounds the server enforces (`[]` is
    /// 400, item `MAX_BATCH_ITEMS + 1` is 413), in this crate's own document.
    #[test]
    fn the_openapi_document_states_the_batch_item_bounds() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let post = &doc["paths"]["/v1/devices/{cid}/reports"]["post"];
        let content = post["requestBody"]["content"].as_object().unwrap();
        assert!(!content.is_empty());
        for (media, body) in content {
            let schema = &body["schema"];
            assert_eq!(schema["type"], "array", "{media}: {schema}");
            assert_eq!(schema["minItems"], 1, "{media}: {schema}");
            assert_eq!(schema["maxItems"], crate::MAX_BATCH_ITEMS, "{media}: {schema}");
        }
        assert_eq!(crate::IngestConfig::default().max_batch_items, crate::MAX_BATCH_ITEMS);
        let array = |n: usize| format!("[{}1]", "1,".repeat(n - 1));
        let max = crate::MAX_BATCH_ITEMS;
        assert_eq!(split_batch(array(max).as_bytes(), max).unwrap().len(), max);
        assert_eq!(split_batch(array(max + 1).as_bytes(), max).unwrap_err().code, ErrorCode::TooManyItems);
        assert_eq!(split_batch(b"[]", max).unwrap_err().status, StatusCode::BAD_REQUEST);
        let description = post["description"].as_str().unwrap_or_default();
        assert!(description.contains("refused whole"), "{description}");
    }

    #[test]
    fn the_openapi_document_lists_every_error_code() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let listed = doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().cloned().unwrap_or_default();
        let all: Vec<_> = ErrorCode::ALL.iter().map(|c| serde_json::Value::from(c.as_str())).collect();
        assert_eq!(listed, all, "{:#}", doc["components"]["schemas"]);
        assert_eq!(
            doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["$ref"],
            "#/components/schemas/ErrorCode"
        );
    }
}
