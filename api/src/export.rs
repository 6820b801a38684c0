//! The owner's copy (docs/viewer-api.md, Exports): `POST /v1/devices/{cid}/exports` appends the
//! owner's request to the log (202 once durable); the export worker (`daybook run`) writes the
//! archive to the object store and appends its completion; `GET /v1/devices/{cid}/exports` and
//! `GET /v1/devices/{cid}/exports/{export_id}` read the state, with a presigned GET of the
//! archive once it is ready (video never flows through the api). Every route needs a token that
//! may manage the device.
//!
//! The rate limit (`--max-exports-per-camera-per-day`) is checked here, as the keep cap is: the
//! exports the store lists as asked for in the last 24 hours, overlaid with the ones this
//! process appended in that time that the store does not show yet, under one lock. Several api
//! processes each check alone: a camera can pass the limit by at most one export per other
//! process, asked for in the same instant. Past it: 429 `export_limit` with `Retry-After` (when
//! the oldest export counted leaves the 24 hours).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use schemas::{DeviceId, ExportId, ExportOutcome, ExportRequested, LocalTime, Report, Timestamp};
use seams::web::{parse_json, ApiError, ErrorCode};
use seams::{ExportView, ObjectKey};

use crate::dto::{ExportAccepted, ExportJson, ExportList, ExportQuery, ExportRequest};
use crate::Api;

/// The window the rate limit counts exports in.
const DAY_MS: i64 = 86_400_000;
/// Exports per page of the listing without `?limit=`, and at most.
const DEFAULT_EXPORT_PAGE: u32 = 20;
const MAX_EXPORT_PAGE: u32 = 100;

/// Exports this process appended in the last 24 hours, per device: (id, when).
#[derive(Debug, Default)]
pub(crate) struct Appended(futures::lock::Mutex<HashMap<DeviceId, Vec<(ExportId, Timestamp)>>>);

/// A fresh export id for a request received at `now`: its low bits from a random (v4) UUID, as
/// ingest draws segment ids.
fn new_id(now: Timestamp) -> ExportId {
    ExportId::generate(now, uuid::Uuid::new_v4().as_u64_pair().1)
}

/// Asks for an archive of the camera's events triggered on its days `from` to `to` (both
/// included, at most 31, inside retention): the request is appended to the log and answered
/// once durable with the export's id; the export worker then writes the archive. 422
/// `invalid_range` for a reversed, too long or out-of-retention range, 429 `export_limit` past
/// `--max-exports-per-camera-per-day` (with `Retry-After`).
#[utoipa::path(post, path = "/v1/devices/{cid}/exports", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    request_body = ExportRequest,
    responses((status = 202, body = ExportAccepted), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn request_export(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ExportAccepted>), ApiError> {
    let cid = api.inner.auth.manager(&headers, &cid)?;
    let request: ExportRequest = parse_json(&body)?;
    let now = Timestamp::now();
    let policy = &api.inner.config.policy;
    policy.check_export_range(request.from, request.to, now).map_err(|e| ApiError::invalid(e.code, e.message))?;
    let cap = api.inner.config.max_exports_per_camera_per_day;
    let mut appended = api.inner.exports.0.lock().await;
    let since = now.plus_millis(-DAY_MS);
    appended.retain(|_, mine| {
        mine.retain(|(_, at)| *at > since);
        !mine.is_empty()
    });
    let stored = api.inner.store.exports(&cid, None, cap.saturating_add(1)).await?;
    let mut counted: HashMap<ExportId, Timestamp> =
        stored.into_iter().filter(|v| v.requested_at > since).map(|v| (v.export_id, v.requested_at)).collect();
    for (id, at) in appended.get(&cid).into_iter().flatten() {
        counted.insert(id.clone(), *at);
    }
    if counted.len() >= cap as usize {
        let oldest = counted.values().min().copied().unwrap_or(now);
        let wait_ms = (oldest.millis() + DAY_MS - now.millis()).max(1_000);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ExportLimit,
            format!("device {cid} was sent {} exports in the last 24 hours, the most a camera may be", counted.len()),
        );
        e.retry_after = Some(Duration::from_millis(wait_ms as u64));
        return Err(e);
    }
    let export_id = new_id(now);
    let report = ExportRequested { cid: cid.clone(), export_id: export_id.clone(), from: request.from, to: request.to };
    let received_at = api.append_owner_report(Report::ExportRequested(report)).await?;
    appended.entry(cid.clone()).or_default().push((export_id.clone(), received_at));
    tracing::info!(device = %cid, export = %export_id, "export accepted");
    Ok((StatusCode::ACCEPTED, Json(ExportAccepted { accepted: true, export_id, state: "pending" })))
}

/// The camera's exports not expired, newest first.
#[utoipa::path(get, path = "/v1/devices/{cid}/exports", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), ExportQuery),
    responses((status = 200, body = ExportList), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn list_exports(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExportList>, ApiError> {
    let cid = api.inner.auth.manager(&headers, &cid)?;
    let Query(q) = query.map_err(crate::shared::bad_query)?;
    let limit = q.limit.unwrap_or(DEFAULT_EXPORT_PAGE).clamp(1, MAX_EXPORT_PAGE);
    let before = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            ExportId::parse(c)
                .map_err(|_| ApiError::bad_request(ErrorCode::InvalidCursor, "the cursor is not valid for this query"))
        })
        .transpose()?;
    let mut views = api.inner.store.exports(&cid, before.as_ref(), limit + 1).await?;
    let more = views.len() > limit as usize;
    views.truncate(limit as usize);
    let next_cursor = if more { views.last().map(|v| v.export_id.as_str().to_owned()) } else { None };
    let mut exports = Vec::with_capacity(views.len());
    for v in &views {
        exports.push(api.export_json(v).await?);
    }
    Ok(Json(ExportList { exports, next_cursor }))
}

/// One export: its state, and once ready a presigned GET URL of its archive (`--url-ttl`).
/// 404 when the camera has no such export (never asked for, not projected yet, or expired).
#[utoipa::path(get, path = "/v1/devices/{cid}/exports/{export_id}", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"),
           ("export_id" = inline(ExportId), Path, description = "export id")),
    responses((status = 200, body = ExportJson), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn get_export(
    State(api): State<Api>,
    Path((cid, export_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ExportJson>, ApiError> {
    let cid = api.inner.auth.manager(&headers, &cid)?;
    let id = ExportId::parse(&export_id).map_err(|e| ApiError::invalid(ErrorCode::Invalid, e.to_string()))?;
    match api.inner.store.export(&cid, &id).await? {
        Some(v) => Ok(Json(api.export_json(&v).await?)),
        None => Err(ApiError::not_found(format!("no export {id} of device {cid}"))),
    }
}

impl Api {
    async fn export_json(&self, v: &ExportView) -> Result<ExportJson, ApiError> {
        let utc = schemas::DayOffset::default();
        let (state, bytes, events, reason, download_url) = match &v.outcome {
            None => ("pending", None, None, None, None),
            Some(ExportOutcome::Ready { bytes, events, .. }) => {
                let url = self.url(&ObjectKey::export(&v.cid, &v.export_id)).await?;
                ("ready", Some(*bytes), Some(*events), None, Some(url))
            }
            Some(ExportOutcome::Failed { reason }) => ("failed", None, None, Some(reason.clone()), None),
        };
        Ok(ExportJson {
            export_id: v.export_id.clone(),
            from: v.from,
            to: v.to,
            state,
            requested_at: LocalTime::at(v.requested_at, utc),
            completed_at: v.completed_at.map(|t| LocalTime::at(t, utc)),
            expires_at: LocalTime::at(v.expires_at, utc),
            bytes,
            events,
            reason,
            download_url,
        })
    }
}
