//! Every machine-readable error code daybook answers with, in one place. The HTTP services
//! send them as `{"error": {"code": …}}` (docs/device-api.md); report validation
//! ([`crate::Invalid`]) uses the same codes, so a device sees one vocabulary.

use serde::{Deserialize, Serialize};

/// A machine-readable error code. The wire form is the snake_case name
/// (`ErrorCode::PastRetention` is `"past_retention"`); new codes may be added, existing ones
/// never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: the body could not be read.
    UnreadableBody,
    /// 413: the body is larger than allowed.
    BodyTooLarge,
    /// 413: a batch holds more items than allowed.
    TooManyItems,
    /// 422: well-formed JSON of the wrong shape (types, missing fields, bad ids inside).
    Invalid,
    /// 400: a query string the viewer API cannot use.
    InvalidQuery,
    /// 400: a cursor that is not one this query handed out.
    InvalidCursor,
    /// 422: a device id in the path that is not one.
    InvalidDeviceId,
    /// 422: an event id that is malformed or does not match its device, type and trigger time.
    InvalidEventId,
    /// 422: a trigger time no event id can be made from.
    InvalidTriggerTime,
    /// 422: an upload's content type is not allowed.
    InvalidContentType,
    /// 422: the object store refused to sign the upload.
    InvalidUpload,
    /// 422: an object size outside what a segment or digest may be.
    InvalidSize,
    /// 422: a duration outside what a segment or digest may last.
    InvalidDuration,
    /// 422: media fields (codec, dimensions, fps, audio rate) out of range.
    InvalidMedia,
    /// 422: keyframe offsets not strictly ascending below the size, or too many.
    InvalidKeyframes,
    /// 422: a segment maps into too many events, or into one twice.
    InvalidMapping,
    /// 422: an event's byte range lies outside the segment.
    InvalidOffsets,
    /// 422: an event ends before it started.
    EndedBeforeStart,
    /// 422: the report's time is older than the retention.
    PastRetention,
    /// 422: the report's time is further in the future than clocks may drift.
    InFuture,
    /// 422: the event belongs to another device.
    ForeignEvent,
    /// 401: no token, or a forged or expired one.
    Unauthorized,
    /// 403: the token may not act on this device.
    Forbidden,
    /// 404: nothing stored under that name.
    NotFound,
    /// 429: the device is sending too fast, or a digest came outside its slot without headroom.
    RateLimited,
    /// 503: too many reports are waiting on the log.
    Overloaded,
    /// 503: the log takes no more reports right now.
    LogFull,
    /// 503: the log did not confirm in time.
    LogTimeout,
    /// 503: the log is unreachable.
    LogUnavailable,
    /// 503: the projection store is unreachable.
    StoreUnavailable,
    /// 503: the object store is unreachable.
    ObjectStoreUnavailable,
    /// 503: the service is shutting down.
    ShuttingDown,
    /// 503: the server is at its connection limit and every connection is inside a request.
    TooManyConnections,
    /// 409: the device already has as many kept events as a device may (`--max-kept-per-device`).
    KeptLimit,
    /// 429: the device was sent as many exports as it may be in a day
    /// (`--max-exports-per-camera-per-day`); `Retry-After` says when the next one is allowed.
    ExportLimit,
    /// 422: an export's date range is reversed, too long, or outside retention.
    InvalidRange,
    /// 500: a bug or an engine failure a retry will not fix.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 38] = [
        Self::MalformedJson,
        Self::UnreadableBody,
        Self::BodyTooLarge,
        Self::TooManyItems,
        Self::Invalid,
        Self::InvalidQuery,
        Self::InvalidCursor,
        Self::InvalidDeviceId,
        Self::InvalidEventId,
        Self::InvalidTriggerTime,
        Self::InvalidContentType,
        Self::InvalidUpload,
        Self::InvalidSize,
        Self::InvalidDuration,
        Self::InvalidMedia,
        Self::InvalidKeyframes,
        Self::InvalidMapping,
        Self::InvalidOffsets,
        Self::EndedBeforeStart,
        Self::PastRetention,
        Self::InFuture,
        Self::ForeignEvent,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::RateLimited,
        Self::Overloaded,
        Self::LogFull,
        Self::LogTimeout,
        Self::LogUnavailable,
        Self::StoreUnavailable,
        Self::ObjectStoreUnavailable,
        Self::ShuttingDown,
        Self::TooManyConnections,
        Self::KeptLimit,
        Self::ExportLimit,
        Self::InvalidRange,
        Self::Internal,
    ];

    /// The wire form, as serde writes it (also the `code` label of error metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::UnreadableBody => "unreadable_body",
            Self::BodyTooLarge => "body_too_large",
            Self::TooManyItems => "too_many_items",
            Self::Invalid => "invalid",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidDeviceId => "invalid_device_id",
            Self::InvalidEventId => "invalid_event_id",
            Self::InvalidTriggerTime => "invalid_trigger_time",
            Self::InvalidContentType => "invalid_content_type",
            Self::InvalidUpload => "invalid_upload",
            Self::InvalidSize => "invalid_size",
            Self::InvalidDuration => "invalid_duration",
            Self::InvalidMedia => "invalid_media",
            Self::InvalidKeyframes => "invalid_keyframes",
            Self::InvalidMapping => "invalid_mapping",
            Self::InvalidOffsets => "invalid_offsets",
            Self::EndedBeforeStart => "ended_before_start",
            Self::PastRetention => "past_retention",
            Self::InFuture => "in_future",
            Self::ForeignEvent => "foreign_event",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::LogFull => "log_full",
            Self::LogTimeout => "log_timeout",
            Self::LogUnavailable => "log_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::ObjectStoreUnavailable => "object_store_unavailable",
            Self::ShuttingDown => "shutting_down",
            Self::TooManyConnections => "too_many_connections",
            Self::KeptLimit => "kept_limit",
            Self::ExportLimit => "export_limit",
            Self::InvalidRange => "invalid_range",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_is_the_wire_form_and_codes_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), code);
            assert!(seen.insert(code.as_str()), "{code:?} twice");
        }
    }
}
