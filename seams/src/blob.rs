//! The blob signer: devices upload and viewers download video straight from object storage.

use std::time::Duration;

use async_trait::async_trait;
use schemas::{DeviceId, EventId, ExportId, SegmentId, Timestamp};

/// Longest a presigned URL may live.
pub const MAX_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// An object key the server built; devices never choose keys. Every key names its device
/// (`devices/{cid}/…`, or `exports/{cid}/…` for the owner's archives), so a URL signed for one
/// device cannot reach another's objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// `devices/{cid}/segments/{segment_id}`
    pub fn segment(cid: &DeviceId, id: &SegmentId) -> Self {
        Self(format!("devices/{cid}/segments/{id}"))
    }
    /// `devices/{cid}/snapshots/{event_id}.jpg`
    pub fn snapshot(id: &EventId) -> Self {
        Self(format!("devices/{}/snapshots/{id}.jpg", id.device()))
    }
    /// `devices/{cid}/digests/{segment_id}`
    pub fn digest(cid: &DeviceId, id: &SegmentId) -> Self {
        Self(format!("devices/{cid}/digests/{id}"))
    }
    /// `kept/` + this key: where a kept event's object is copied on an external bucket, whose
    /// lifecycle rule expires `devices/` by age (docs/data-model.md, Keeping events).
    pub fn kept_copy(&self) -> Self {
        Self(format!("{KEPT_PREFIX}{}", self.0))
    }
    /// `exports/{cid}/{export_id}.tar`: the owner's export archive (`schemas::export`).
    pub fn export(cid: &DeviceId, id: &ExportId) -> Self {
        Self(schemas::export::archive_key(cid, id))
    }
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where kept events' objects are copied to on an external bucket ([`ObjectKey::kept_copy`]).
pub const KEPT_PREFIX: &str = "kept/";

/// A request the holder may make without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// `PUT` or `GET`.
    pub method: String,
    /// The signed URL.
    pub url: String,
    /// Headers the request must carry exactly (they are part of the signature).
    pub headers: Vec<(String, String)>,
    /// When the signature stops being accepted.
    pub expires_at: Timestamp,
}

/// Why signing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    /// Bad input (ttl out of range, …).
    #[error("invalid presign request: {0}")]
    Invalid(String),
    /// The object store is unreachable (health) or the signer is misconfigured.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

/// Signs URLs for a bucket.
///
/// Contract (checked by `conformance::blob` against a real S3-protocol server):
/// * a PUT through `presign_put`'s URL and headers stores the object; a GET through
///   `presign_get`'s URL returns it;
/// * a URL whose signature, key or expiry was altered, or that has expired, is refused (403);
/// * `ttl` is at most [`MAX_URL_TTL`].
#[async_trait]
pub trait BlobSigner: Send + Sync + std::fmt::Debug {
    /// A PUT of `content_type` to `key`; of exactly `content_length` bytes when given.
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        ttl: Duration,
    ) -> Result<PresignedRequest, BlobError>;

    /// A GET of `key`.
    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedRequest, BlobError>;

    /// Whether the bucket is reachable with the configured credentials.
    async fn health(&self) -> Result<(), BlobError>;
}

/// Refuses a ttl above [`MAX_URL_TTL`] or of zero.
pub fn check_ttl(ttl: Duration) -> Result<(), BlobError> {
    if ttl.is_zero() || ttl > MAX_URL_TTL {
        return Err(BlobError::Invalid(format!("url ttl {ttl:?} must be within (0, 15min]")));
    }
    Ok(())
}
