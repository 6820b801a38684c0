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

    /// A presigned GET of `key`, an object of event `e`: of its kept copy when `e` is kept and
    /// past retention on an external bucket (the bucket's lifecycle rule may have deleted the
    /// original; [`crate::ApiConfig::kept_copies`]).
    pub(crate) async fn event_object_url(&self, key: &ObjectKey, e: &EventView) -> Result<String, ApiError> {
        self.url(&object_to_serve(&self.inner.config, key, e, Timestamp::now())).await
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
    /// durable, with the time it was received at. An event is inside retention while inside its
    /// device's plan (or the deployment's retention, if longer: an event written before a
    /// downgrade is still served).
    pub(crate) async fn append_owner_report(&self, report: Report) -> Result<Timestamp, ApiError> {
        let now = Timestamp::now();
        let mut policy = self.inner.config.policy;
        if let Some(cid) = report.cid() {
            if let Some(days) = self.inner.store.plan(cid).await? {
                policy.retention_days = policy.retention_days.max(days);
            }
        }
        report.validate(&policy, now).map_err(|e| ApiError::invalid(e.code, e.message))?;
        let log = self.inner.log.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                ErrorCode::LogUnavailable,
                "this process cannot append to the log: send the owner's changes to one that ingests",
                std::time::Duration::from_secs(2),
            )
        })?;
        (log.0)(LogRecord::of(&Envelope::new(report, now))).await?;
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
            snapshot_url: self.event_object_url(&ObjectKey::snapshot(&e.event_id), e).await?,
        })
    }
}

/// The object viewers are given for `key`, an object of event `e`, at `now`: its kept copy when
/// objects live on an external bucket and `e` is kept and past retention, else `key` itself.
fn object_to_serve(config: &crate::ApiConfig, key: &ObjectKey, e: &EventView, now: Timestamp) -> ObjectKey {
    let policy = &config.policy;
    let past = policy.expires_at(e.event_id.filed_at(policy.offset)) <= now;
    if config.kept_copies && e.kept && past {
        key.kept_copy()
    } else {
        key.clone()
    }
}

#[cfg(test)]
mod tests {
    use schemas::{DayOffset, DeviceId, EventType};
    use seams::EventStatus;

    use super::*;

    #[test]
    fn a_kept_event_past_retention_is_served_from_its_copy_on_an_external_bucket() {
        let at = Timestamp::now().plus_millis(-86_400_000);
        let id = EventId::new(
            &DeviceId::parse("cam-1").unwrap(),
            &EventType::parse("motion").unwrap(),
            at,
            DayOffset::default(),
        )
        .unwrap();
        let e = |kept| EventView {
            event_id: id.clone(),
            event_type: EventType::parse("motion").unwrap(),
            triggered_at: at,
            ended_at: None,
            status: EventStatus::Open,
            utc_offset: DayOffset::default(),
            clock_skew_ms: None,
            kept,
        };
        let key = ObjectKey::snapshot(&id);
        let external = crate::ApiConfig { kept_copies: true, ..crate::ApiConfig::default() };
        let embedded = crate::ApiConfig::default();
        let inside = Timestamp::now();
        let past = external.policy.expires_at(at).plus_millis(1);
        let copy = format!("kept/{}", key.as_str());
        assert_eq!(object_to_serve(&external, &key, &e(true), past).as_str(), copy);
        for (config, kept, now) in
            [(&external, true, inside), (&external, false, past), (&embedded, true, past), (&embedded, false, inside)]
        {
            assert_eq!(object_to_serve(config, &key, &e(kept), now), key, "kept {kept}, at {now}");
        }
    }
}
