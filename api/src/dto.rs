//! Query strings and response bodies of the viewer API (the JSON contract).

use schemas::SegmentId;
use schemas::{Day, DayOffset, EventId, EventType, LocalTime, Media};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `?days=` or `?month=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// Days in the window, today included (default 30, or the device's plan if shorter): at
    /// most the device's plan (`plan_days` of the answer; more is 422 `past_retention`).
    /// `maximum` is the longest plan or the server's `--retention-days`, set when the document
    /// is served.
    #[param(minimum = 1, maximum = 365, nullable = false)]
    pub days: Option<u32>,
    /// A month instead (`YYYY-MM`, one of the answer's `months`): its days inside the device's
    /// plan, up to today. A month wholly before the plan is 422 `past_retention`, one after
    /// today 422 `in_future`. With a month, `days` is not read.
    #[param(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", nullable = false)]
    pub month: Option<String>,
}

/// One calendar day.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarDay {
    /// The day.
    pub date: Day,
    /// Events triggered that day.
    pub events: u64,
    /// Storage used that day: bytes of the segments that started that day, as the camera
    /// reported them (see `GET /v1/devices/{cid}/usage`).
    pub bytes: u64,
}

/// The calendar, in the camera's local days.
#[derive(Debug, Serialize, ToSchema)]
pub struct Calendar {
    /// The camera's UTC offset the days are counted in (the one it reported with its latest
    /// event, else the deployment's `--day-offset`): label times with it.
    pub utc_offset: DayOffset,
    /// The camera's today.
    pub today: Day,
    /// Days of history the device's plan keeps (its token's `retention_days`, else the
    /// deployment's retention): how far back the calendar reaches.
    pub plan_days: u32,
    /// The months the plan spans (`YYYY-MM`, newest first): what `?month=` pages through.
    pub months: Vec<String>,
    /// Every day of the window, newest first, days without events included.
    pub days: Vec<CalendarDay>,
}

/// Storage used on one day.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageDay {
    /// The day (the camera's local date).
    pub date: Day,
    /// Bytes of the segments that started that day and are still stored, as reported.
    pub bytes: u64,
}

/// A camera's storage used, per day of the window (the camera's local days).
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The camera's UTC offset the days are counted in (as the calendar's).
    pub utc_offset: DayOffset,
    /// The camera's today.
    pub today: Day,
    /// Days of history the device's plan keeps (as the calendar's).
    pub plan_days: u32,
    /// The sum over the window: what the camera stores now, if the window is the retention.
    pub bytes: u64,
    /// Every day of the window, newest first, days without any included.
    pub days: Vec<UsageDay>,
}

/// `?date=&type=&limit=&cursor=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The day, `YYYY-MM-DD` (the camera's local date).
    #[param(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub date: String,
    /// Only events of this type (empty: every type).
    #[serde(rename = "type")]
    #[param(pattern = "^[a-z0-9_]{0,32}$", max_length = 32, nullable = false)]
    pub event_type: Option<String>,
    /// Page size (default 10; 0 counts as 1, above 100 is capped at 100).
    #[param(minimum = 0, maximum = 4294967295.0, format = Int64, nullable = false)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque; empty: the first page). A cursor this
    /// query did not hand out is refused with 400 `invalid_cursor`.
    #[param(nullable = false)]
    pub cursor: Option<String>,
}

/// Most segments one event detail page holds (`?limit=` above it is capped).
pub const MAX_SEGMENTS_PAGE: u32 = 200;
/// Segments per event detail page without `?limit=`.
pub const DEFAULT_SEGMENTS_PAGE: u32 = 50;

/// `?limit=&cursor=` of an event's detail: pages of its segments.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventDetailQuery {
    /// Segments per page (default 50; 0 counts as 1, above 200 is capped at 200).
    #[param(minimum = 0, maximum = 4294967295.0, format = Int64, nullable = false)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque; empty: the first page). A cursor this
    /// event did not hand out is refused with 400 `invalid_cursor`.
    #[param(nullable = false)]
    pub cursor: Option<String>,
}

/// An event as viewers see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventJson {
    /// Id.
    pub event_id: EventId,
    /// What triggered it (`motion`, `sound`, …).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it fired (RFC 3339 at the camera's offset; the camera's claim if its clock ran
    /// ahead: see `clock_skew_ms`).
    pub triggered_at: LocalTime,
    /// When it ended, once reported (at the same offset).
    pub ended_at: Option<LocalTime>,
    /// The camera's UTC offset at the trigger: the event's day is its local date.
    pub utc_offset: DayOffset,
    /// Present when the camera's clock was ahead of the server's by more than the tolerance
    /// at the start: by how much. The event is then filed by the server's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
    /// `ended_at - triggered_at`, once ended.
    pub duration_ms: Option<i64>,
    /// `open`, `complete` or `aborted`.
    pub status: &'static str,
    /// Whether the owner keeps it past retention (`PUT /v1/events/{event_id}/keep`).
    pub kept: bool,
    /// Presigned GET of the snapshot image.
    pub snapshot_url: String,
}

/// A page of a day's events (a camera-local day).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    /// The camera's current UTC offset (each event also carries its own).
    pub utc_offset: DayOffset,
    /// In trigger order.
    pub events: Vec<EventJson>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
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
    /// First frame's time (at the event's offset).
    pub started_at: LocalTime,
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
    /// Segments in index order (one page of them: at most `limit`).
    pub segments: Vec<SegmentJson>,
    /// Pass as `cursor` for the next page of segments; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A day's digest.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestJson {
    /// The day (the camera's local date).
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

/// `202` of `DELETE /v1/events/{event_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionAccepted {
    /// Always `true`: the deletion is durable in the log; reads stop serving the event once it
    /// is projected.
    pub accepted: bool,
    /// The event.
    #[schema(value_type = String)]
    pub event_id: EventId,
}

/// `202` of `DELETE /v1/devices/{cid}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureAccepted {
    /// Always `true`: the erasure is durable in the log; reads stop serving the device's data
    /// once it is projected.
    pub accepted: bool,
    /// The device.
    #[schema(value_type = String)]
    pub cid: schemas::DeviceId,
}

/// `202` of `PUT` and `DELETE /v1/events/{event_id}/keep`.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeepAccepted {
    /// Always `true`: the keep or un-keep is durable in the log; reads show it once it is
    /// projected.
    pub accepted: bool,
    /// The event.
    #[schema(value_type = String)]
    pub event_id: EventId,
    /// `true` for a keep, `false` for an un-keep.
    pub kept: bool,
}

/// `?limit=&cursor=` of `GET /v1/devices/{cid}/kept`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeptQuery {
    /// Events per page (default 50; 0 counts as 1, above 200 is capped at 200).
    #[param(minimum = 0, maximum = 4294967295.0, format = Int64, nullable = false)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page). Anything else is refused
    /// with 400 `invalid_cursor`.
    #[param(nullable = false)]
    pub cursor: Option<String>,
}

/// A page of a device's kept events.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeptList {
    /// Ascending by event id (so by day), past retention included.
    pub events: Vec<EventJson>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// The body of `POST /v1/devices/{cid}/exports`: the camera's local days to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The first day (`YYYY-MM-DD`), inside retention.
    pub from: Day,
    /// The last day, at most 30 days after `from`, not after the camera's today.
    pub to: Day,
}

/// `202` of `POST /v1/devices/{cid}/exports`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAccepted {
    /// Always `true`: the request is durable in the log; the export is listed once projected.
    pub accepted: bool,
    /// The export (`GET /v1/devices/{cid}/exports/{export_id}`).
    #[schema(value_type = String)]
    pub export_id: schemas::ExportId,
    /// Always `pending`.
    pub state: &'static str,
}

/// One export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJson {
    /// The export.
    #[schema(value_type = String)]
    pub export_id: schemas::ExportId,
    /// The first day asked for.
    pub from: Day,
    /// The last day asked for.
    pub to: Day,
    /// `pending` (the worker has not finished it), `ready` (download it) or `failed` (see
    /// `reason`). An expired export is no longer listed.
    #[schema(pattern = "^(pending|ready|failed)$")]
    pub state: &'static str,
    /// When it was asked for (UTC).
    pub requested_at: LocalTime,
    /// When the worker finished it; `null` while pending.
    pub completed_at: Option<LocalTime>,
    /// When it (and its archive) expires.
    pub expires_at: LocalTime,
    /// The archive's size, once ready.
    pub bytes: Option<u64>,
    /// Events in the archive, once ready.
    pub events: Option<u32>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Presigned GET of the archive (a tar: `index.json`, then the objects), once ready; valid
    /// for `--url-ttl`.
    pub download_url: Option<String>,
}

/// `?limit=&cursor=` of `GET /v1/devices/{cid}/exports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Exports per page (default 20; 0 counts as 1, above 100 is capped at 100).
    #[param(minimum = 0, maximum = 4294967295.0, format = Int64, nullable = false)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page). Anything not an export id is
    /// refused with 400 `invalid_cursor`.
    #[param(nullable = false)]
    pub cursor: Option<String>,
}

/// A page of a camera's exports.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportList {
    /// Newest first.
    pub exports: Vec<ExportJson>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}
