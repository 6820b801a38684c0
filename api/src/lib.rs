//! api: the viewer API (BRIEF §5). It reads projections only — never the log — and signs
//! GET URLs so video is downloaded straight from object storage.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::future::try_join_all;
use schemas::{Day, DeviceId, EventId, EventType, Media, SegmentId, TimePolicy, Timestamp};
use seams::auth::Auth;
use seams::web::{ApiError, ErrorBody};
use seams::{BlobSigner, EventView, ObjectKey, ProjectionStore};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

mod web;

/// Settings of the viewer API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Day boundary and retention (the calendar never reaches past retention).
    pub policy: TimePolicy,
    /// Default page size of the day page.
    pub default_limit: u32,
    /// Largest page size a viewer may ask for.
    pub max_limit: u32,
    /// Lifetime of presigned GET URLs (at most 15 minutes).
    pub url_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { policy: TimePolicy::default(), default_limit: 10, max_limit: 100, url_ttl: Duration::from_secs(10 * 60) }
    }
}

/// The viewer API's state.
#[derive(Debug, Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ProjectionStore>,
    signer: Arc<dyn BlobSigner>,
    auth: Auth,
    config: ApiConfig,
}

impl Api {
    /// Builds the service.
    pub fn new(store: Arc<dyn ProjectionStore>, signer: Arc<dyn BlobSigner>, auth: Auth, config: ApiConfig) -> Self {
        Self { inner: Arc::new(Inner { store, signer, auth, config }) }
    }

    async fn url(&self, key: &ObjectKey) -> Result<String, ApiError> {
        Ok(self.inner.signer.presign_get(key, self.inner.config.url_ttl).await?.url)
    }

    async fn event_json(&self, e: &EventView) -> Result<EventJson, ApiError> {
        Ok(EventJson {
            event_id: e.event_id.clone(),
            kind: e.kind.clone(),
            triggered_at: e.triggered_at,
            ended_at: e.ended_at,
            duration_ms: e.duration_ms(),
            status: e.status.as_str(),
            snapshot_url: self.url(&ObjectKey::snapshot(&e.event_id)).await?,
        })
    }
}

/// The viewer API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(calendar, day_events, event_detail, digest),
    components(schemas(ErrorBody)),
    tags((name = "viewers", description = "Viewer API: calendar, events, playback"))
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The viewer routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/devices/{cid}/calendar", get(calendar))
        .route("/v1/devices/{cid}/events", get(day_events))
        .route("/v1/events/{event_id}", get(event_detail))
        .route("/v1/devices/{cid}/digests/{date}", get(digest))
        .with_state(api)
        .merge(web::router())
}

/// `?days=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CalendarQuery {
    /// Days in the window, today included (default 30, at most the retention).
    pub days: Option<u32>,
}

/// One calendar day.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarDay {
    /// The day.
    pub date: Day,
    /// Events triggered that day.
    pub events: u64,
}

/// The calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct Calendar {
    /// Every day of the window, newest first, days without events included.
    pub days: Vec<CalendarDay>,
}

fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_query", e.to_string())
}

/// Event counts per day.
#[utoipa::path(get, path = "/v1/devices/{cid}/calendar", tag = "viewers",
    params(("cid" = String, Path, description = "device id"), CalendarQuery),
    responses((status = 200, body = Calendar), (status = "4XX", body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn calendar(
    State(api): State<Api>,
    Path(cid): Path<String>,
    headers: HeaderMap,
    query: Result<Query<CalendarQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Calendar>, ApiError> {
    let cid = api.inner.auth.viewer(&headers, &cid)?;
    let Query(q) = query.map_err(bad_query)?;
    let policy = api.inner.config.policy;
    let days = q.days.unwrap_or(30);
    if days == 0 || days > policy.retention_days {
        return Err(ApiError::bad_request("invalid_query", format!("days must be 1..={}", policy.retention_days)));
    }
    let today = policy.offset.today();
    let from = today.add_days(-(i64::from(days) - 1));
    let counts = api.inner.store.calendar(&cid, from, today).await?;
    let days = (0..i64::from(days))
        .map(|i| {
            let date = today.add_days(-i);
            let events = counts.iter().find(|(d, _)| *d == date).map_or(0, |c| c.1);
            CalendarDay { date, events }
        })
        .collect();
    Ok(Json(Calendar { days }))
}

/// `?date=&type=&limit=&cursor=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Only events of this type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Page size (default 10, capped).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An event as viewers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    /// Id.
    pub event_id: EventId,
    /// Type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it fired.
    pub triggered_at: Timestamp,
    /// When it ended, once reported.
    pub ended_at: Option<Timestamp>,
    /// `ended_at - triggered_at`, once ended.
    pub duration_ms: Option<i64>,
    /// `open`, `complete` or `aborted`.
    pub status: &'static str,
    /// Presigned GET of the snapshot image.
    pub snapshot_url: String,
}

/// A page of a day's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// In trigger order.
    pub events: Vec<EventJson>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// What a cursor carries: the store's position, bound to the query it came from so it cannot
/// be replayed against another device, day or filter.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    c: String,
    d: String,
    k: Option<String>,
    s: String,
}

fn encode_cursor(cid: &DeviceId, day: Day, kind: Option<&EventType>, store: &[u8]) -> String {
    let c = Cursor {
        c: cid.to_string(),
        d: day.to_string(),
        k: kind.map(ToString::to_string),
        s: URL_SAFE_NO_PAD.encode(store),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("cursor serializes"))
}

fn decode_cursor(text: &str, cid: &DeviceId, day: Day, kind: Option<&EventType>) -> Result<Vec<u8>, ApiError> {
    let invalid = || ApiError::bad_request("invalid_cursor", "the cursor is not valid for this query");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if c.c != cid.as_str() || c.d != day.to_string() || c.k.as_deref() != kind.map(EventType::as_str) {
        return Err(invalid());
    }
    URL_SAFE_NO_PAD.decode(c.s).map_err(|_| invalid())
}

/// One page of a day's events, in trigger order.
#[utoipa::path(get, path = "/v1/devices/{cid}/events", tag = "viewers",
    params(("cid" = String, Path, description = "device id"), EventsQuery),
    responses((status = 200, body = EventsPage), (status = "4XX", body = ErrorBody)),
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
    let kind = q.kind.as_deref().filter(|k| !k.is_empty()).map(EventType::parse).transpose().map_err(bad_query)?;
    let cfg = &api.inner.config;
    let limit = q.limit.unwrap_or(cfg.default_limit).clamp(1, cfg.max_limit);
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| decode_cursor(c, &cid, day, kind.as_ref()))
        .transpose()?;
    let page = api.inner.store.day_page(&cid, day, kind.as_ref(), limit, cursor.as_deref()).await?;
    let events = try_join_all(page.events.iter().map(|e| api.event_json(e))).await?;
    let next_cursor = page.next.map(|s| encode_cursor(&cid, day, kind.as_ref(), &s));
    Ok(Json(EventsPage { events, next_cursor }))
}

/// A segment of an event, with a presigned GET.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentJson {
    /// Id.
    pub segment_id: SegmentId,
    /// Position within the event.
    pub index: u32,
    /// Presigned GET.
    pub url: String,
    /// Bytes.
    pub size: u64,
    /// First byte of the event in this segment.
    pub start_offset: u64,
    /// End byte (exclusive) of the event in this segment.
    pub end_offset: u64,
    /// First frame's time.
    pub started_at: Timestamp,
    /// Length.
    pub duration_ms: u32,
    /// Encoding.
    pub media: Media,
    /// Keyframe byte offsets.
    pub keyframes: Vec<u64>,
}

/// An event with its segments.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetailJson {
    /// The event.
    #[serde(flatten)]
    pub event: EventJson,
    /// Segments in index order.
    pub segments: Vec<SegmentJson>,
}

/// One event and its segments, with presigned GET URLs.
#[utoipa::path(get, path = "/v1/events/{event_id}", tag = "viewers",
    params(("event_id" = String, Path, description = "event id")),
    responses((status = 200, body = EventDetailJson), (status = "4XX", body = ErrorBody)),
    security(("viewer_token" = [])))]
async fn event_detail(
    State(api): State<Api>,
    Path(event_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<EventDetailJson>, ApiError> {
    // Authenticate before looking at the id, so a stranger learns nothing from 422 vs 404.
    api.inner.auth.verify(&headers)?;
    let id = EventId::parse(&event_id).map_err(|e| ApiError::invalid("invalid_event_id", e.to_string()))?;
    api.inner.auth.viewer(&headers, id.device().as_str())?;
    let detail = api.inner.store.event(&id).await?.ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    let event = api.event_json(&detail.event).await?;
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
                started_at: s.started_at,
                duration_ms: s.duration_ms,
                media: s.media,
                keyframes: s.keyframes,
            })
        }
    }))
    .await?;
    Ok(Json(EventDetailJson { event, segments }))
}

/// A day's digest.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestJson {
    /// The day.
    pub date: Day,
    /// Object id.
    pub segment_id: SegmentId,
    /// Bytes.
    pub size: u64,
    /// Length.
    pub duration_ms: u32,
    /// Presigned GET.
    pub url: String,
}

/// The device's digest of one day.
#[utoipa::path(get, path = "/v1/devices/{cid}/digests/{date}", tag = "viewers",
    params(("cid" = String, Path, description = "device id"), ("date" = String, Path, description = "YYYY-MM-DD")),
    responses((status = 200, body = DigestJson), (status = "4XX", body = ErrorBody)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_bound_to_their_query() {
        let a = DeviceId::parse("a").unwrap();
        let b = DeviceId::parse("b").unwrap();
        let day = Day::parse("2026-11-22").unwrap();
        let c = encode_cursor(&a, day, None, b"pos");
        assert_eq!(decode_cursor(&c, &a, day, None).unwrap(), b"pos");
        assert!(decode_cursor(&c, &b, day, None).is_err());
        assert!(decode_cursor(&c, &a, day.add_days(1), None).is_err());
        assert!(decode_cursor(&c, &a, day, Some(&EventType::parse("motion").unwrap())).is_err());
        assert!(decode_cursor("garbage!", &a, day, None).is_err());
    }
}
