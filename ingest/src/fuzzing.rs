//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz); not an API. Each runs the code a
//! device route runs on its body — parsing, building the report, validating it — without HTTP,
//! auth, rate limits or the log. `now` is passed in so a fuzz run is reproducible.

use schemas::{EventId, Report, Timestamp};
use seams::auth::Device;
use seams::web::{parse_json, ApiError, ErrorCode};

use crate::dto::*;
use crate::routes::{check_upload, split_batch};
use crate::Ingest;

/// The device endpoints that take a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST …/events`
    StartEvent,
    /// `POST …/events/{event_id}/end` (the path's event id is passed alongside)
    EndEvent,
    /// `POST …/segments/uploads`
    SegmentUpload,
    /// `POST …/segments`
    ReportSegment,
    /// `POST …/digests/uploads`
    DigestUpload,
    /// `POST …/digests`
    ReportDigest,
}

impl Route {
    /// Every route, for picking one from a fuzz input byte.
    pub const ALL: [Route; 6] = [
        Route::StartEvent,
        Route::EndEvent,
        Route::SegmentUpload,
        Route::ReportSegment,
        Route::DigestUpload,
        Route::ReportDigest,
    ];
}

/// `body` as `route` handles it: the report it would append (uploads: none), or the error it
/// would answer.
pub fn device_body(
    ingest: &Ingest,
    device: &Device,
    route: Route,
    path_event_id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<Option<Report>, ApiError> {
    let report = match route {
        Route::StartEvent => {
            let body: EventStartRequest = parse_json(body)?;
            let max_snapshot = ingest.inner.config.max_snapshot_bytes;
            if body.snapshot_size.is_some_and(|n| n == 0 || n > max_snapshot) {
                return Err(ApiError::invalid(
                    ErrorCode::InvalidSize,
                    format!("snapshot_size must be 1..={max_snapshot}"),
                ));
            }
            ingest.event_started(device, body, now)?
        }
        Route::EndEvent => {
            let body: EventEndRequest = parse_json(body)?;
            let event_id = EventId::parse(path_event_id)
                .map_err(|e| ApiError::invalid(ErrorCode::InvalidEventId, e.to_string()))?;
            ingest.event_ended(device, event_id, body.ended_at, body.status)
        }
        Route::SegmentUpload | Route::DigestUpload => {
            let body: UploadRequest = parse_json(body)?;
            check_upload(&body, &["video/", "application/octet-stream"])?;
            return Ok(None);
        }
        Route::ReportSegment => ingest.segment_reported(device, parse_json(body)?),
        Route::ReportDigest => ingest.digest_reported(device, parse_json(body)?),
    };
    ingest.validate(device, &report, now)?;
    if route == Route::ReportDigest {
        ingest.inner.admission.check_digest_slot(&device.cid, now)?;
    }
    Ok(Some(report))
}

/// A `POST …/reports` body as the route handles it: split into at most `max_items` items (JSON
/// array or NDJSON), then each built and validated — the reports it would append, and the
/// per-item results it would answer.
pub fn batch(
    ingest: &Ingest,
    device: &Device,
    body: &[u8],
    max_items: usize,
    now: Timestamp,
) -> Result<(Vec<Report>, Vec<ItemResult>), ApiError> {
    let items = split_batch(body, max_items)?;
    Ok(ingest.batch_reports(device, items, now))
}
