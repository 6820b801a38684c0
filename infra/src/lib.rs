//! The engines behind daybook's seams, and the URLs that name them ([`urls`]; the
//! `daybook` crate's `resolve` opens the engine a URL names).
//!
//! | seam | embedded default | distributed |
//! |---|---|---|
//! | [`seams::ReportLog`] | [`embedded_log::EmbeddedLog`] (segment files, group commit) | [`kafka::KafkaLog`] |
//! | [`seams::ProjectionStore`] | [`embedded_store::EmbeddedStore`] (SQLite) | [`scylla::ScyllaStore`] |
//! | [`seams::BlobSigner`] | [`s3::S3Signer`] against [`s3_server`] | [`s3::S3Signer`] against S3/MinIO |

pub mod embedded_log;
pub mod embedded_store;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod s3;
pub mod s3_server;
#[cfg(feature = "scylla")]
pub mod scylla;
mod sqlite;
pub mod urls;

pub use urls::{LogUrl, StoreUrl};

/// The metrics this crate emits (see [`seams::metric`]): the embedded log's, and Kafka's when
/// the `kafka` feature is on (the `daybook` crate always turns it on).
pub const METRICS: &[seams::metric::Metric] = &[
    embedded_log::LOG_QUEUE_RECORDS,
    embedded_log::LOG_REJECTED_TOTAL,
    embedded_log::LOG_COMMIT_ERRORS_TOTAL,
    embedded_log::LOG_COMMIT_SECONDS,
    embedded_log::LOG_GROUP_COMMIT_RECORDS,
    embedded_log::LOG_GROUP_COMMIT_REQUESTS,
    embedded_log::LOG_GROUPS_EXPIRED_TOTAL,
    embedded_log::LOG_GROUPS_LAGGING,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_INFLIGHT,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_PRODUCE_SECONDS,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_DELIVERY_ERRORS_TOTAL,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_CONSUMER_LAG,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_REBALANCES_TOTAL,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_POLL_BATCH_RECORDS,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_COMMITS_IGNORED_TOTAL,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_RECORDS_WITHOUT_HEADERS_TOTAL,
    #[cfg(feature = "kafka")]
    kafka::KAFKA_REQUEST_TIMEOUTS_TOTAL,
];
