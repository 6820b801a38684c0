//! The seams between daybook's services and the engines behind them.
//!
//! Each seam is one trait with its contract written on it, and one conformance suite (feature
//! `conformance`) that every implementation runs:
//!
//! * [`ReportLog`] — append durably, read from a committed position, commit (embedded, Kafka);
//! * [`ProjectionStore`] — idempotent batch apply and the viewer queries (embedded, ScyllaDB);
//! * [`BlobSigner`] — presigned PUT/GET for server-built, device-scoped keys (S3).
//!
//! It also holds what both HTTP services share: bearer-token [`auth`] and the JSON error
//! contract in [`web`].
//!
//! Services (`ingest`, `projector`, `api`) depend on these traits only; the engines live in
//! the `infra` crate, so no client type leaks into domain logic.

pub mod auth;
pub mod blob;
pub mod faults;
pub mod log;
pub mod metric;
pub mod store;
pub mod web;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use blob::{BlobError, BlobSigner, ObjectKey, PresignedRequest};
pub use log::{Consumed, LogConsumer, LogError, LogRecord, Position, ReportLog};
pub use store::{export_purges, kept_objects, oldest_object_day, restate};
pub use store::{
    DayPage, DeadLetterView, DigestView, EventDetail, EventStatus, EventView, ExportView, KeptEvent, KeptPage,
    KeptReports, ProjectionStore, Purge, Quarantined, SegmentView, StoreError, SubscriptionView,
};

/// The metrics this crate emits ([`metric`]).
pub const METRICS: &[metric::Metric] = &[web::HTTP_ERRORS_TOTAL];
