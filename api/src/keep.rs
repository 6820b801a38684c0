//! Keeping events past retention (docs/viewer-api.md, Keeping an event): `PUT` and `DELETE
//! /v1/events/{event_id}/keep` append the owner's keep or un-keep to the log (202 once
//! durable), `GET /v1/devices/{cid}/kept` lists the kept events.
//!
//! The cap (`--max-kept-per-device`) is checked here, before the keep is appended: the kept
//! events the store holds, overlaid with the keeps and un-keeps this process appended that the
//! store does not show yet (kept for at most [`PENDING_FOR`]), all under one lock, so one api
//! process never lets a device pass the cap, however many keeps it is sent at once. Several api
//! processes each check alone: a device can pass the cap by at most one keep per other
//! process, sent in the same instant. A keep past the cap is refused with 409 `kept_limit`;
//! re-keeping a kept event is always accepted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::future::try_join_all;
use schemas::{DeviceId, EventId, EventKept, EventUnkept, Report};
use seams::web::{ApiError, ErrorCode};

use crate::dto::{KeepAccepted, KeptList, KeptQuery};
use crate::Api;

/// How long a keep or un-keep this process appended counts before the store shows it.
const PENDING_FOR: Duration = Duration::from_secs(60);
/// Kept events per page of the listing without `?limit=`, and at most.
const DEFAULT_KEPT_PAGE: u32 = 50;
const MAX_KEPT_PAGE: u32 = 200;

/// A keep or un-keep this process appended: (event, kept, when).
type Appended = (EventId, bool, Instant);

/// Keeps and un-keeps appended by this process, per device.
#[derive(Debug, Default)]
pub(crate) struct Pending(futures::lock::Mutex<HashMap<DeviceId, Vec<Appended>>>);

/// Keeps an event past retention (a viewer token with scope `manage` for its device): the keep
/// is appended to the log and answered once durable; the event, its segments and its snapshot
/// outlive retention until un-kept. 404 when the event is not served, 409 `kept_limit` when
/// the device has `--max-kept-per-device` kept events already, 422 `past_retention` when the
/// event is past retention (an event must be kept before it expires).
#[utoipa::path(put, path = "/v1/events/{event_id}/keep", tag = "viewers",
    params(("event_id" = inline(EventId), Path, description = "event id")),
    responses((status = 202, body = KeepAccepted), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn keep_event(
    State(api): State<Api>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<KeepAccepted>), ApiError> {
    let (cid, id, already) = api.managed_event(&headers, &event_id).await?;
    let cap = api.inner.config.max_kept_per_device;
    let mut pending = api.inner.pending.0.lock().await;
    let mine = pending.entry(cid.clone()).or_default();
    if !already {
        let stored = api.inner.store.kept(&cid, None, cap.saturating_add(1)).await?;
        let mut kept: HashSet<EventId> = stored.into_iter().map(|e| e.event_id).collect();
        mine.retain(|(e, k, at)| at.elapsed() < PENDING_FOR && kept.contains(e) != *k);
        for (e, k, _) in mine.iter() {
            if *k {
                kept.insert(e.clone());
            } else {
                kept.remove(e);
            }
        }
        if !kept.contains(&id) && kept.len() >= cap as usize {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::KeptLimit,
                format!("device {cid} has {} kept events, the most a device may keep: un-keep one first", kept.len()),
            ));
        }
    }
    api.append_owner_report(Report::EventKept(EventKept { cid, event_id: id.clone() })).await?;
    mine.push((id.clone(), true, Instant::now()));
    tracing::info!(event = %id, "event keep accepted");
    Ok((StatusCode::ACCEPTED, Json(KeepAccepted { accepted: true, event_id: id, kept: true })))
}

/// Lets a kept event go (a viewer token with scope `manage` for its device): the un-keep is
/// appended to the log and answered once durable; the event then expires by the normal rule —
/// at once if it is past retention. 404 when the event is not served.
#[utoipa::path(delete, path = "/v1/events/{event_id}/keep", tag = "viewers",
    params(("event_id" = inline(EventId), Path, description = "event id")),
    responses((status = 202, body = KeepAccepted), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn unkeep_event(
    State(api): State<Api>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<KeepAccepted>), ApiError> {
    let (cid, id, _) = api.managed_event(&headers, &event_id).await?;
    let mut pending = api.inner.pending.0.lock().await;
    api.append_owner_report(Report::EventUnkept(EventUnkept { cid: cid.clone(), event_id: id.clone() })).await?;
    // Only the last minute's matter (as for keeps): older ones go, so repeated un-keeps of a
    // device never grow its list.
    let mine = pending.entry(cid).or_default();
    mine.retain(|(_, _, at)| at.elapsed() < PENDING_FOR);
    mine.push((id.clone(), false, Instant::now()));
    tracing::info!(event = %id, "event un-keep accepted");
    Ok((StatusCode::ACCEPTED, Json(KeepAccepted { accepted: true, event_id: id, kept: false })))
}

/// The device's kept events, ascending by id, past retention included.
#[utoipa::path(get, path = "/v1/devices/{cid}/kept", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), KeptQuery),
    responses((status = 200, body = KeptList), (status = "4XX", body = seams::web::ErrorBody), (status = 503, body = seams::web::ErrorBody)),
    security(("viewer_token" = [])))]
pub(crate) async fn kept_events(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<KeptQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<KeptList>, ApiError> {
    let cid = api.inner.auth.viewer(&headers, &cid)?;
    let Query(q) = query.map_err(crate::shared::bad_query)?;
    let limit = q.limit.unwrap_or(DEFAULT_KEPT_PAGE).clamp(1, MAX_KEPT_PAGE);
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| match EventId::parse(c) {
            Ok(id) if id.device() == &cid => Ok(id),
            _ => Err(ApiError::bad_request(ErrorCode::InvalidCursor, "the cursor is not valid for this query")),
        })
        .transpose()?;
    let mut kept = api.inner.store.kept(&cid, after.as_ref(), limit + 1).await?;
    let more = kept.len() > limit as usize;
    kept.truncate(limit as usize);
    let next_cursor = if more { kept.last().map(|e| e.event_id.as_str().to_owned()) } else { None };
    let events = try_join_all(kept.iter().map(|e| api.event_json(e))).await?;
    Ok(Json(KeptList { events, next_cursor }))
}
