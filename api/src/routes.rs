//! The viewer endpoints.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use futures::future::try_join_all;
use schemas::{Day, DayOffset, DeviceErased, DeviceId, EventDeleted, EventId, EventType, LocalTime, Report};
use seams::web::{ApiError, ErrorBody, ErrorCode};
use seams::ObjectKey;
use utoipa::OpenApi;

use crate::cursor::{decode_cursor, encode_cursor};
use crate::dto::*;
use crate::shared::bad_query;
use crate::{export, keep, Api};

impl Api {
    /// The camera's current UTC offset: the one of its latest event start, else
    /// `--day-offset`. Reads count days in it, so a viewer anywhere sees the camera's days.
    async fn camera_offset(&self, cid: &DeviceId) -> Result<DayOffset, ApiError> {
        Ok(self.inner.store.utc_offset(cid).await?.unwrap_or(self.inner.config.policy.offset))
    }
}

/// The viewer API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(
        calendar,
        usage,
        day_events,
        event_detail,
        delete_event,
        erase_device,
        digest,
        keep::keep_event,
        keep::unkeep_event,
        keep::kept_events,
        export::request_export,
        export::list_exports,
        export::get_export
    ),
    components(schemas(ErrorBody)),
    tags((name = "viewers", description = "Viewer API: calendar, events, playback"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The viewer routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/devices/{cid}/calendar", get(calendar))
        .route("/v1/devices/{cid}/usage", get(usage))
        .route("/v1/devices/{cid}/events", get(day_events))
        .route("/v1/events/{event_id}", get(event_detail).delete(delete_event))
        .route("/v1/devices/{cid}/digests/{date}", get(digest))
        .route("/v1/devices/{cid}", axum::routing::delete(erase_device))
        .route("/v1/events/{event_id}/keep", put(keep::keep_event).delete(keep::unkeep_event))
        .route("/v1/devices/{cid}/kept", get(keep::kept_events))
        .route("/v1/devices/{cid}/exports", get(export::list_exports).post(export::request_export))
        .route("/v1/devices/{cid}/exports/{export_id}", get(export::get_export))
        .with_state(api)
        .merge(crate::web::router())
}

/// Event counts and storage used per day.
#[utoipa::path(get, path = "/v1/devices/{cid}/calendar", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), CalendarQuery),
    responses((status = 200, body = Calendar), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn calendar(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Calendar>, ApiError> {
    let window = Window::of(&api, &headers, &cid, query).await?;
    let (counts, used) = futures::try_join!(
        api.inner.store.calendar(&window.cid, window.from, window.today),
        api.inner.store.usage(&window.cid, window.from, window.today)
    )?;
    let of = |figures: &[(Day, u64)], date: Day| figures.iter().find(|(d, _)| *d == date).map_or(0, |c| c.1);
    let days =
        window.days().map(|date| CalendarDay { date, events: of(&counts, date), bytes: of(&used, date) }).collect();
    Ok(Json(Calendar { utc_offset: window.utc_offset, today: window.today, days }))
}

/// Storage used per day: bytes of the camera's segments as it reported them, each counted once
/// on the day it started, until it expires or a deletion leaves it to no event
/// (docs/viewer-api.md).
#[utoipa::path(get, path = "/v1/devices/{cid}/usage", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), CalendarQuery),
    responses((status = 200, body = Usage), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn usage(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Usage>, ApiError> {
    let window = Window::of(&api, &headers, &cid, query).await?;
    let used = api.inner.store.usage(&window.cid, window.from, window.today).await?;
    let days: Vec<UsageDay> = window
        .days()
        .map(|date| UsageDay { date, bytes: used.iter().find(|(d, _)| *d == date).map_or(0, |c| c.1) })
        .collect();
    let bytes = days.iter().map(|d| d.bytes).sum();
    Ok(Json(Usage { utc_offset: window.utc_offset, today: window.today, bytes, days }))
}

/// The days a calendar or usage query covers, in the camera's days.
struct Window {
    cid: DeviceId,
    utc_offset: DayOffset,
    today: Day,
    from: Day,
    days: u32,
}

impl Window {
    /// Authorizes a viewer of `cid` and checks `?days=` (1..=retention, default 30).
    async fn of(
        api: &Api,
        headers: &HeaderMap,
        cid: &str,
        query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<Self, ApiError> {
        let cid = api.inner.auth.viewer(headers, cid)?;
        let Query(q) = query.map_err(bad_query)?;
        let policy = api.inner.config.policy;
        let days = q.days.unwrap_or(30);
        if days == 0 || days > policy.retention_days {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("days must be 1..={}", policy.retention_days),
            ));
        }
        let utc_offset = api.camera_offset(&cid).await?;
        let today = utc_offset.today();
        let from = today.add_days(-(i64::from(days) - 1));
        Ok(Self { cid, utc_offset, today, from, days })
    }

    /// Every day of the window, newest first.
    fn days(&self) -> impl Iterator<Item = Day> + '_ {
        (0..i64::from(self.days)).map(|i| self.today.add_days(-i))
    }
}

/// One page of a day's events, in trigger order.
#[utoipa::path(get, path = "/v1/devices/{cid}/events", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), EventsQuery),
    responses((status = 200, body = EventsPage), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn day_events(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let cid = api.inner.auth.viewer(&headers, &cid)?;
    let Query(q) = query.map_err(bad_query)?;
    let day = Day::parse(&q.date).map_err(bad_query)?;
    let event_type =
        q.event_type.as_deref().filter(|t| !t.is_empty()).map(EventType::parse).transpose().map_err(bad_query)?;
    let cfg = &api.inner.config;
    let limit = q.limit.unwrap_or(cfg.default_limit).clamp(1, cfg.max_limit);
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c, &cid, day, event_type.as_ref()))
        .transpose()?;
    let page = api.inner.store.day_page(&cid, day, event_type.as_ref(), limit, cursor.as_deref()).await?;
    let events = try_join_all(page.events.iter().map(|e| api.event_json(e))).await?;
    let next_cursor = page.next.map(|s| encode_cursor(&cid, day, event_type.as_ref(), &s));
    let utc_offset = api.camera_offset(&cid).await?;
    Ok(Json(EventsPage { utc_offset, events, next_cursor }))
}

/// One event and a page of its segments (in index order), with presigned GET URLs.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "viewers",
    params(("event_id" = inline(EventId), Path, description = "event id"), EventDetailQuery),
    responses((status = 200, body = EventDetailJson), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn event_detail(
    State(api): State<Api>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventDetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventDetailJson>, ApiError> {
    // Authenticate before looking at the id, so a stranger learns nothing from 422 vs 404.
    api.inner.auth.verify(&headers)?;
    let id = EventId::parse(&event_id).map_err(|e| ApiError::invalid(ErrorCode::InvalidEventId, e.to_string()))?;
    api.inner.auth.viewer(&headers, id.device().as_str())?;
    let Query(q) = query.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(DEFAULT_SEGMENTS_PAGE).clamp(1, MAX_SEGMENTS_PAGE);
    // The cursor is the index of the last segment served (opaque to clients).
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<u32>()
                .map_err(|_| ApiError::bad_request(ErrorCode::InvalidCursor, "the cursor is not valid for this query"))
        })
        .transpose()?;
    let detail = api
        .inner
        .store
        .event_page(&id, after, limit)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let next_cursor = detail.next_index.map(|i| i.to_string());
    let event = api.event_json(&detail.event).await?;
    let offset = detail.event.utc_offset;
    let segments = try_join_all(detail.segments.into_iter().map(|s| {
        let api = api.clone();
        let cid = id.device().clone();
        async move {
            Ok::<_, ApiError>(SegmentJson {
                url: api.url(&ObjectKey::segment(&cid, &s.segment_id)).await?,
                segment_id: s.segment_id,
                index: s.index,
                size: s.size,
                start_offset: s.start_offset,
                end_offset: s.end_offset,
                started_at: LocalTime::at(s.started_at, offset),
                duration_ms: s.duration_ms,
                media: s.media,
                keyframes: s.keyframes,
            })
        }
    }))
    .await?;
    Ok(Json(EventDetailJson { event, segments, next_cursor }))
}

/// Deletes an event (a viewer token with scope `manage` for its device): the deletion is
/// appended to the log, and answered once durable; the event leaves the day page, the calendar
/// and its detail once the deletion is projected, and its snapshot and the segments no other
/// event maps are deleted from the object store (docs/viewer-api.md). 404 when the event is not
/// served (never was, or is deleted already).
#[utoipa::path(delete, path = "/v1/events/{event_id}", tag = "viewers",
    params(("event_id" = inline(EventId), Path, description = "event id")),
    responses((status = 202, body = DeletionAccepted), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn delete_event(
    State(api): State<Api>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<DeletionAccepted>), ApiError> {
    let (cid, id, _) = api.managed_event(&headers, &event_id).await?;
    api.append_owner_report(Report::EventDeleted(EventDeleted { cid, event_id: id.clone() })).await?;
    tracing::info!(event = %id, "event deletion accepted");
    Ok((StatusCode::ACCEPTED, Json(DeletionAccepted { accepted: true, event_id: id })))
}

/// Erases a device (a viewer token with scope `manage` for it): the erasure is appended to the
/// log and answered once durable; once it is projected, nothing the device reported before it
/// is served, its objects are deleted from the object store, and its device tokens issued
/// before it are refused (docs/viewer-api.md, Erasing a device). Erasing a device again, or one
/// with nothing stored, is accepted the same.
#[utoipa::path(delete, path = "/v1/devices/{cid}", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id")),
    responses((status = 202, body = ErasureAccepted), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn erase_device(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<ErasureAccepted>), ApiError> {
    let cid = api.inner.auth.manager(&headers, &cid)?;
    api.append_owner_report(Report::DeviceErased(DeviceErased { cid: cid.clone() })).await?;
    tracing::info!(device = %cid, "device erasure accepted");
    Ok((StatusCode::ACCEPTED, Json(ErasureAccepted { accepted: true, cid })))
}

/// The device's digest of one day.
#[utoipa::path(get, path = "/v1/devices/{cid}/digests/{date}", tag = "viewers",
    params(("cid" = inline(schemas::DeviceId), Path, description = "device id"), ("date" = inline(Day), Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = DigestJson), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn digest(
    State(api): State<Api>,
    Path((cid, date)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<DigestJson>, ApiError> {
    let cid = api.inner.auth.viewer(&headers, &cid)?;
    let day = Day::parse(&date).map_err(bad_query)?;
    let d =
        api.inner.store.digest(&cid, day).await?.ok_or_else(|| ApiError::not_found(format!("no digest for {day}")))?;
    Ok(Json(DigestJson {
        url: api.url(&ObjectKey::digest(&cid, &d.segment_id)).await?,
        date: d.date,
        segment_id: d.segment_id,
        size: d.size,
        duration_ms: d.duration_ms,
    }))
}
