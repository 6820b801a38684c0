//! Request and response bodies of the device API (the JSON contract).

use schemas::{Day, EndStatus, EventId, EventMapping, EventType, LocalTime, Media, SegmentId, Timestamp};
use seams::PresignedRequest;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/devices/{cid}/events`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventStartRequest {
    /// What triggered the event (`motion`, `sound`, `person`, …).
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event fired (RFC 3339 with the camera's UTC offset, which decides the
    /// event's day; `Z`: the device's configured zone, else `--day-offset`).
    pub triggered_at: LocalTime,
    /// Exact size of the snapshot image in bytes (at most the server's snapshot limit, 2 MiB
    /// by default). Signed into `snapshot_upload`: the object store refuses a PUT of any other
    /// length. Devices should always send it; without it only the embedded S3 endpoint caps
    /// the upload. Ignored in batches (they carry no upload URLs).
    /// (`maximum` is the server's `--max-snapshot-bytes`, set when the document is served.)
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2097152)]
    pub snapshot_size: Option<u64>,
}

/// `POST /v1/devices/{cid}/events/{event_id}/end`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventEndRequest {
    /// When it ended (RFC 3339 with the camera's UTC offset).
    pub ended_at: LocalTime,
    /// `complete` or `aborted`.
    pub status: EndStatus,
}

/// `POST /v1/devices/{cid}/segments/uploads` and `/digests/uploads`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// Exact size of the object to upload, in bytes.
    #[schema(minimum = 1, maximum = 5368709120.0)]
    pub content_length: u64,
    /// MIME type (`video/mp4`, `video/mp2t`, …): starts with `video/` or
    /// `application/octet-stream`; printable ASCII without `"`, `,` or `\`; at most 100 bytes.
    #[schema(
        pattern = r"^(video/|application/octet-stream)[\x20\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]*$",
        min_length = 6,
        max_length = 100
    )]
    pub content_type: String,
}

/// `POST /v1/devices/{cid}/segments`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentRequest {
    /// The id issued with the upload URL.
    pub segment_id: SegmentId,
    /// Bytes.
    #[schema(minimum = 1, maximum = 5368709120.0)]
    pub size: u64,
    /// First frame's time (RFC 3339 with the camera's UTC offset: the segment's local day).
    pub started_at: LocalTime,
    /// Length in milliseconds.
    #[schema(minimum = 1, maximum = 86400000)]
    pub duration_ms: u32,
    /// Encoding.
    pub media: Media,
    /// Keyframe byte offsets, strictly ascending, each below `size`.
    #[serde(default)]
    #[schema(max_items = 4096)]
    pub keyframes: Option<Vec<u64>>,
    /// Which events this segment holds parts of (each event once).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub events: Vec<EventMapping>,
}

/// `POST /v1/devices/{cid}/digests`
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestRequest {
    /// The day the digest condenses.
    pub date: Day,
    /// The id issued with the upload URL.
    pub segment_id: SegmentId,
    /// Bytes.
    #[schema(minimum = 1, maximum = 5368709120.0)]
    pub size: u64,
    /// Length in milliseconds.
    #[schema(minimum = 1, maximum = 86400000)]
    pub duration_ms: u32,
}

/// One item of `POST /v1/devices/{cid}/reports`: any report above. On the wire the item's
/// variant is its `kind` field (`event_start`, `event_end`, `segment`, `digest`): a contract
/// name, not to be confused with the event type (`type`) or the report kind (`daybook.type`).
///
/// Its OpenAPI schema is a `oneOf` of four object schemas (`BatchEventStart`, `BatchEventEnd`,
/// `BatchSegment`, `BatchDigest`) with the discriminator `kind`: each is the schema of the
/// single report's body plus the `kind` property, built from that body's schema so the two
/// cannot drift apart.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BatchItem {
    /// As `POST …/events` (`snapshot_size` is ignored: batches carry no upload URLs).
    EventStart(EventStartRequest),
    /// As `POST …/events/{event_id}/end`, with the event id inline.
    EventEnd(BatchEventEnd),
    /// As `POST …/segments`.
    Segment(SegmentRequest),
    /// As `POST …/digests`.
    Digest(DigestRequest),
}

/// An event end in a batch: [`EventEndRequest`] with the event id inline.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchEventEnd {
    /// The event.
    pub event_id: EventId,
    /// When it ended (RFC 3339 with the camera's UTC offset).
    pub ended_at: LocalTime,
    /// `complete` or `aborted`.
    pub status: EndStatus,
}

mod batch_schema {
    use utoipa::openapi::schema::{
        Discriminator, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
    };
    use utoipa::openapi::{Ref, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    use super::{BatchEventEnd, BatchItem, DigestRequest, EventStartRequest, SegmentRequest};

    /// (tag, component name, schema of the other fields) of each variant.
    fn variants() -> [(&'static str, &'static str, RefOr<Schema>); 4] {
        [
            ("event_start", "BatchEventStart", EventStartRequest::schema()),
            ("event_end", "BatchEventEnd", BatchEventEnd::schema()),
            ("segment", "BatchSegment", SegmentRequest::schema()),
            ("digest", "BatchDigest", DigestRequest::schema()),
        ]
    }

    /// `body` with the required property `kind` = `tag`.
    fn tagged(tag: &str, body: RefOr<Schema>) -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut object)) = body else { unreachable!("request bodies are object schemas") };
        let kind = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([tag]))
            .description(Some("Which report the item is."));
        object.properties.insert("kind".into(), kind.into());
        object.required.insert(0, "kind".into());
        if tag == "event_start" {
            // Ignored in batches, so any size (or none) is accepted there.
            let size = ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Integer, Type::Null]))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .description(Some("Ignored in batches (they carry no upload URLs)."));
            object.properties.insert("snapshot_size".into(), size.into());
        }
        RefOr::T(Schema::Object(object))
    }

    impl PartialSchema for BatchItem {
        fn schema() -> RefOr<Schema> {
            let mut one_of = OneOfBuilder::new();
            let mut mapping = Vec::new();
            for (tag, name, _) in variants() {
                one_of = one_of.item(Ref::from_schema_name(name));
                mapping.push((tag, format!("#/components/schemas/{name}")));
            }
            one_of
                .discriminator(Some(Discriminator::with_mapping("kind", mapping)))
                .description(Some("A report, tagged by `kind`."))
                .into()
        }
    }

    impl ToSchema for BatchItem {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            for (tag, name, body) in variants() {
                schemas.push((name.into(), tagged(tag, body)));
            }
            EventStartRequest::schemas(schemas);
            BatchEventEnd::schemas(schemas);
            SegmentRequest::schemas(schemas);
            DigestRequest::schemas(schemas);
        }
    }
}

/// A presigned request the device makes itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Upload {
    /// `PUT` (uploads) or `GET` (downloads).
    pub method: String,
    /// The presigned URL.
    pub url: String,
    /// Headers to send exactly as given (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    /// When the URL stops working (at most 15 minutes out).
    pub expires_at: Timestamp,
}

impl From<PresignedRequest> for Upload {
    fn from(p: PresignedRequest) -> Self {
        Self { method: p.method, url: p.url, headers: p.headers.into_iter().collect(), expires_at: p.expires_at }
    }
}

/// `201` of `POST …/events`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventStartResponse {
    /// The event's id (starts with the trigger day `YYYYMMDD`).
    pub event_id: EventId,
    /// Where to PUT the snapshot image (`image/jpeg`).
    pub snapshot_upload: Upload,
    /// Present when `triggered_at` was ahead of the server's clock by more than the future
    /// tolerance: by how much, in milliseconds. Correct the clock; the event is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

/// `201` of `POST …/segments/uploads`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentUploadResponse {
    /// The id to report the segment under.
    pub segment_id: SegmentId,
    /// Where to PUT it.
    pub upload: Upload,
}

/// A device's nightly digest slot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Slot {
    /// Start of the slot.
    pub start: Timestamp,
    /// End of the slot.
    pub end: Timestamp,
}

/// `201` of `POST …/digests/uploads`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DigestUploadResponse {
    /// The id to report the digest under.
    pub segment_id: SegmentId,
    /// Where to PUT it.
    pub upload: Upload,
    /// When this device should upload next night's digest.
    pub window: Slot,
}

/// `202` of report endpoints.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `true`: the report is durable in the log.
    pub accepted: bool,
    /// Present when the report's time was ahead of the server's clock by more than the
    /// future tolerance: by how much, in milliseconds. Correct the clock; the report is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

/// One item's outcome in a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResult {
    /// Position in the batch.
    pub index: usize,
    /// 201/202 when stored, else the status the item alone would have got.
    pub status: u16,
    /// For event starts: the event id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// As in a single report's answer: the camera's clock skew, when beyond the tolerance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<seams::web::ErrorDetail>,
}

/// `200` of `POST …/reports`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResponse {
    /// Items stored.
    pub accepted: usize,
    /// Items refused.
    pub rejected: usize,
    /// One per item, in order.
    pub results: Vec<ItemResult>,
}
