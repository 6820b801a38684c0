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
        api.inner.store.calendar(&window.cid, window.from, window.to),
        api.inner.store.usage(&window.cid, window.from, window.to)
    )?;
    let of = |figures: &[(Day, u64)], date: Day| figures.iter().find(|(d, _)| *d == date).map_or(0, |c| c.1);
    let days =
        window.days().map(|date| CalendarDay { date, events: of(&counts, date), bytes: of(&used, date) }).collect();
    let months = window.months();
    Ok(Json(Calendar { utc_offset: window.utc_offset, today: window.today, plan_days: window.plan_days, months, days }))
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
    let used = api.inner.store.usage(&window.cid, window.from, window.to).await?;
    let days: Vec<UsageDay> = window
        .days()
        .map(|date| UsageDay { date, bytes: used.iter().find(|(d, _)| *d == date).map_or(0, |c| c.1) })
        .collect();
    let bytes = days.iter().map(|d| d.bytes).sum();
    Ok(Json(Usage { utc_offset: window.utc_offset, today: window.today, plan_days: window.plan_days, bytes, days }))
}

/// The days a calendar or usage query covers, in the camera's days.
struct Window {
    cid: DeviceId,
    utc_offset: DayOffset,
    today: Day,
    /// The device's plan (days of history).
    plan_days: u32,
    /// The window, `from..=to`.
    from: Day,
    to: Day,
}

impl Window {
    /// Authorizes a viewer of `cid` and checks `?month=` (a month the plan reaches) or else
    /// `?days=` (1..=the device's plan, default 30 or the plan if shorter).
    async fn of(
        api: &Api,
        headers: &HeaderMap,
        cid: &str,
        query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<Self, ApiError> {
        let cid = api.inner.auth.viewer(headers, cid)?;
        let Query(q) = query.map_err(bad_query)?;
        let (utc_offset, plan) = futures::try_join!(api.camera_offset(&cid), async {
            Ok::<_, ApiError>(api.inner.store.plan(&cid).await?)
        })?;
        let plan_days = plan.unwrap_or(api.inner.config.policy.retention_days);
        let today = utc_offset.today();
        // The oldest day the plan still holds (a day is kept until its last instant is past).
        let oldest = today.add_days(-(i64::from(plan_days) - 1));
        // A month, when given, is the window (`days` is then not read).
        let (from, to) = match (q.days, q.month.as_deref()) {
            (_, Some(month)) => {
                check_month(month)?;
                // `YYYY-MM` strings order as their months do.
                if month < &oldest.to_string()[..7] {
                    return Err(ApiError::invalid(
                        ErrorCode::PastRetention,
                        format!("month {month} is before the device's {plan_days}-day plan"),
                    ));
                }
                if month > &today.to_string()[..7] {
                    return Err(ApiError::invalid(ErrorCode::InFuture, format!("month {month} has not begun")));
                }
                let (first, last) = month_days(month)?;
                (first.max(oldest), last.min(today))
            }
            (days, None) => {
                let days = days.unwrap_or(30.min(plan_days));
                if days == 0 {
                    return Err(ApiError::bad_request(ErrorCode::InvalidQuery, "days must be at least 1"));
                }
                if days > plan_days {
                    return Err(ApiError::invalid(
                        ErrorCode::PastRetention,
                        format!("days {days} reach past the device's {plan_days}-day plan"),
                    ));
                }
                (today.add_days(-(i64::from(days) - 1)), today)
            }
        };
        Ok(Self { cid, utc_offset, today, plan_days, from, to })
    }

    /// Every day of the window, newest first.
    fn days(&self) -> impl Iterator<Item = Day> + '_ {
        (0..=self.to.days_since(self.from)).map(|i| self.to.add_days(-i))
    }

    /// The months the plan spans, newest first (`YYYY-MM`).
    fn months(&self) -> Vec<String> {
        let oldest = self.today.add_days(-(i64::from(self.plan_days) - 1));
        let mut months: Vec<String> = Vec::new();
        let mut day = self.today;
        while day >= oldest {
            let month = day.to_string()[..7].to_owned();
            if months.last() != Some(&month) {
                months.push(month);
            }
            day = day.add_days(-1);
        }
        months
    }
}

/// 400 unless `month` is `YYYY-MM` (month 01 to 12).
fn check_month(month: &str) -> Result<(), ApiError> {
    let b = month.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() == 7
        && b[4] == b'-'
        && digits(0..4)
        && digits(5..7)
        && (1..=12).contains(&month[5..].parse::<u32>().unwrap_or(0))
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(ErrorCode::InvalidQuery, format!("month {month:?} is not YYYY-MM")))
    }
}

/// The first and last day of `month` (`YYYY-MM`, checked by [`check_month`]).
fn month_days(month: &str) -> Result<(Day, Day), ApiError> {
    let bad = || ApiError::bad_request(ErrorCode::InvalidQuery, format!("month {month:?} is not YYYY-MM"));
    let (year, number) = month.split_once('-').ok_or_else(bad)?;
    let (year, number): (i32, u32) = (year.parse().map_err(|_| bad())?, number.parse().map_err(|_| bad())?);
    let first = Day::parse(&format!("{year:04}-{number:02}-01")).map_err(|_| bad())?;
    let next = match number {
        12 => Day::parse(&format!("{:04}-01-01", year + 1)),
        _ => Day::parse(&format!("{year:04}-{:02}-01", number + 1)),
    };
    // December 9999 ends the calendar.
    let last = next.map_or(first.add_days(30), |n| n.add_days(-1));
    Ok((first, last))
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
        let event = &detail.event;
        async move {
            Ok::<_, ApiError>(SegmentJson {
                url: api.event_object_url(&ObjectKey::segment(&cid, &s.segment_id), event).await?,
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
