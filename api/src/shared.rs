//! What the viewer routes share: an event as viewers see it, the owner's changes (the event a
//! managing token names, the report appended to the log), the answer to a bad query.

use axum::http::HeaderMap;
use schemas::{DeviceId, Envelope, EventId, LocalTime, Report, Timestamp};
use seams::web::{ApiError, ErrorCode};
use seams::{EventView, LogRecord, ObjectKey};

use crate::dto::EventJson;
use crate::Api;

pub(crate) fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidQuery, e.to_string())
}

impl Api {
    /// A presigned GET of `key`.
    pub(crate) async fn url(&self, key: &ObjectKey) -> Result<String, ApiError> {
        Ok(self.inner.signer.presign_get(key, self.inner.config.url_ttl).await?.url)
    }

    /// The event `event_id` names, if the token may manage its device and the event is
    /// served: its device, its id, whether it is kept. (Authenticated before the id is looked
    /// at, so a stranger learns nothing from 422 vs 404.)
    pub(crate) async fn managed_event(
        &self,
        headers: &HeaderMap,
        event_id: &str,
    ) -> Result<(DeviceId, EventId, bool), ApiError> {
        self.inner.auth.verify(headers)?;
        let id = EventId::parse(event_id).map_err(|e| ApiError::invalid(ErrorCode::InvalidEventId, e.to_string()))?;
        let cid = self.inner.auth.manager(headers, id.device().as_str())?;
        let Some(detail) = self.inner.store.event_page(&id, None, 1).await? else {
            return Err(ApiError::not_found(format!("no event {id}")));
        };
        Ok((cid, id, detail.event.kept))
    }

    /// Validates one of the owner's reports and appends it to the log; returns once it is
    /// durable, with the time it was received at.
    pub(crate) async fn append_owner_report(&self, report: Report) -> Result<Timestamp, ApiError> {
        let now = Timestamp::now();
        report.validate(&self.inner.config.policy, now).map_err(|e| ApiError::invalid(e.code, e.message))?;
        let log = self.inner.log.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                ErrorCode::LogUnavailable,
                "this process cannot append to the log: send the owner's changes to one that ingests",
                std::time::Duration::from_secs(2),
            )
        })?;
        (log.0)(LogRecord::of(&Envelope { report, received_at: now })).await?;
        Ok(now)
    }

    pub(crate) async fn event_json(&self, e: &EventView) -> Result<EventJson, ApiError> {
        Ok(EventJson {
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            triggered_at: LocalTime::at(e.triggered_at, e.utc_offset),
            ended_at: e.ended_at.map(|t| LocalTime::at(t, e.utc_offset)),
            utc_offset: e.utc_offset,
            clock_skew_ms: e.clock_skew_ms,
            duration_ms: e.duration_ms(),
            status: e.status.as_str(),
            kept: e.kept,
            snapshot_url: self.url(&ObjectKey::snapshot(&e.event_id)).await?,
        })
    }
}
