//! The HTTP error contract shared by ingest and api: every error is
//! `{"error": {"code": "...", "message": "..."}}` with the status docs/device-api.md names,
//! mapped here in one place.

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use schemas::ErrorCode;

use crate::metric::{Kind, Metric};
use crate::{BlobError, LogError, StoreError};

pub const HTTP_ERRORS_TOTAL: Metric = Metric {
    name: "daybook_http_errors_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["code"],
    help: "Error answers sent in the {\"error\": {\"code\", \"message\"}} contract, by code \
           (e.g. log_unavailable, log_full, overloaded, store_unavailable, rate_limited, unauthorized, forbidden).",
};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message (lowercase, no trailing punctuation).
    pub message: String,
    /// `Retry-After`, for 429 and 503.
    pub retry_after: Option<Duration>,
}

/// The JSON body of an error.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code: always one of the values listed.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An answer with any status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    /// 400: the request itself is unusable.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401: no valid token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }
    /// 403: a valid token that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    /// 404: nothing stored under that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    /// 422: well-formed, but breaks a rule.
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 429 with a Retry-After.
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, message)
        }
    }
    /// 503 with a jittered Retry-After around `base` (±50 %), so retrying devices spread out
    /// instead of coming back in the same second.
    pub fn unavailable(code: ErrorCode, message: impl Into<String>, base: Duration) -> Self {
        Self { retry_after: Some(jitter(base)), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }
}

/// `base` ± 50 %, at least one second (Retry-After has whole-second resolution).
fn jitter(base: Duration) -> Duration {
    let ms = base.as_millis().max(1000) as u64;
    Duration::from_millis(fastrand::u64(ms / 2..=ms + ms / 2).max(1000))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(HTTP_ERRORS_TOTAL.name, "code" => self.code.as_str()).increment(1);
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(d) = self.retry_after {
            let secs = d.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Full { retry_after } => {
                Self::unavailable(ErrorCode::LogFull, "the log is taking no more reports right now", retry_after)
            }
            LogError::Timeout(m) => Self::unavailable(
                ErrorCode::LogTimeout,
                format!("the log did not confirm in time: {m}"),
                Duration::from_secs(2),
            ),
            LogError::Unavailable(m) => Self::unavailable(
                ErrorCode::LogUnavailable,
                format!("the log is unavailable: {m}"),
                Duration::from_secs(2),
            ),
            LogError::Closed => {
                Self::unavailable(ErrorCode::ShuttingDown, "the service is shutting down", Duration::from_secs(2))
            }
            LogError::Other(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => {
                Self::bad_request(ErrorCode::InvalidCursor, "the cursor is not valid for this query")
            }
            StoreError::Unavailable(m) => Self::unavailable(
                ErrorCode::StoreUnavailable,
                format!("the store is unavailable: {m}"),
                Duration::from_secs(2),
            ),
            StoreError::Other(m) | StoreError::Rejected { reason: m, .. } => {
                tracing::error!(error = %m, "store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal store error")
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Invalid(m) => Self::invalid(ErrorCode::InvalidUpload, m),
            BlobError::Unavailable(m) => {
                Self::unavailable(ErrorCode::ObjectStoreUnavailable, m, Duration::from_secs(2))
            }
        }
    }
}

impl From<schemas::Invalid> for ApiError {
    fn from(e: schemas::Invalid) -> Self {
        Self::invalid(e.code, e.message)
    }
}

/// Parses `bytes` as `T` in the error contract (unlike `axum::Json`): malformed JSON 400,
/// well-formed but invalid (wrong types, bad ids) 422.
///
/// A number with a zero fraction (`10.0`) is an integer, as JSON Schema (and so the OpenAPI
/// document) counts it: a body refused only for one is parsed again with such numbers as
/// integers. The usual body pays nothing for it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let classify = |e: serde_json::Error| match e.classify() {
        serde_json::error::Category::Data => invalid_data(&e),
        _ => ApiError::bad_request(ErrorCode::MalformedJson, e.to_string()),
    };
    match serde_json::from_slice(bytes) {
        Err(e) if e.is_data() && e.to_string().contains("floating point") => {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(classify)?;
            integral_floats(&mut value);
            serde_json::from_value(value).map_err(classify)
        }
        parsed => parsed.map_err(classify),
    }
}

/// 422 for JSON of the wrong shape: `invalid_event_id` when what is wrong is an event id
/// (as for one in a path), else `invalid`.
pub fn invalid_data(e: &serde_json::Error) -> ApiError {
    let message = e.to_string();
    let code = if message.starts_with("invalid event id") { ErrorCode::InvalidEventId } else { ErrorCode::Invalid };
    ApiError::invalid(code, message)
}

/// Rewrites every number with a zero fraction within ±2^53 (`10.0`) as an integer (`10`):
/// JSON Schema's `integer` includes them, serde's integer types do not.
pub fn integral_floats(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
            {
                *n = if f < 0.0 { (f as i64).into() } else { (f as u64).into() };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats),
        Value::Object(map) => map.values_mut().for_each(integral_floats),
        _ => {}
    }
}

/// Reads the whole body, mapping the body limit to 413.
pub async fn read_body(req: Request) -> Result<bytes::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                "the request body is larger than allowed",
            )
        } else {
            ApiError::bad_request(ErrorCode::UnreadableBody, rejection.body_text())
        }
    })
}
