//! The HTTP error contract shared by ingest and api: every error is
//! `{"error": {"code": "...", "message": "..."}}` with the status README.md (Contracts) names,
//! mapped here in one place.

use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{BlobError, LogError, StoreError};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
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
    /// Machine-readable code (`malformed_json`, `forbidden`, `past_retention`, …).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 422.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    /// 429 with a Retry-After.
    pub fn rate_limited(message: impl Into<String>, retry_after: Duration) -> Self {
        Self { retry_after: Some(retry_after), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message) }
    }
    /// 503 with a jittered Retry-After around `base` (±50 %), so retrying devices spread out
    /// instead of coming back in the same second.
    pub fn unavailable(code: &'static str, message: impl Into<String>, base: Duration) -> Self {
        Self { retry_after: Some(jitter(base)), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }
}

/// `base` ± 50 %, at least one second (Retry-After has whole-second resolution).
pub fn jitter(base: Duration) -> Duration {
    let ms = base.as_millis().max(1000) as u64;
    Duration::from_millis(fastrand::u64(ms / 2..=ms + ms / 2).max(1000))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("daybook_http_errors_total", "code" => self.code).increment(1);
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
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
                Self::unavailable("log_full", "the log is taking no more reports right now", retry_after)
            }
            LogError::Timeout(m) => Self::unavailable(
                "log_timeout",
                format!("the log did not confirm in time: {m}"),
                Duration::from_secs(2),
            ),
            LogError::Unavailable(m) => {
                Self::unavailable("log_unavailable", format!("the log is unavailable: {m}"), Duration::from_secs(2))
            }
            LogError::Closed => {
                Self::unavailable("shutting_down", "the service is shutting down", Duration::from_secs(2))
            }
            LogError::Other(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BadCursor => Self::bad_request("invalid_cursor", "the cursor is not valid for this query"),
            StoreError::Unavailable(m) => {
                Self::unavailable("store_unavailable", format!("the store is unavailable: {m}"), Duration::from_secs(2))
            }
            StoreError::Other(m) => {
                tracing::error!(error = %m, "store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal store error")
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Invalid(m) => Self::invalid("invalid_upload", m),
            BlobError::Unavailable(m) => Self::unavailable("object_store_unavailable", m, Duration::from_secs(2)),
        }
    }
}

impl From<schemas::Invalid> for ApiError {
    fn from(e: schemas::Invalid) -> Self {
        Self::invalid(e.code, e.message)
    }
}

/// A JSON body. Unlike `axum::Json` it answers in the error contract: malformed JSON 400,
/// well-formed but invalid (wrong types, bad ids) 422, over the body limit 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

/// Parses `bytes` as `T` with the status rules of [`JsonBody`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid("invalid", e.to_string()),
        _ => ApiError::bad_request("malformed_json", e.to_string()),
    })
}

/// Reads the whole body, mapping the body limit to 413.
pub async fn read_body(req: Request) -> Result<bytes::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is larger than allowed")
        } else {
            ApiError::bad_request("unreadable_body", rejection.body_text())
        }
    })
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req).await?;
        parse_json(&bytes).map(Self)
    }
}
