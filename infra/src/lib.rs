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
pub mod urls;
pub mod s3;
pub mod s3_server;
#[cfg(feature = "scylla")]
pub mod scylla;
mod sqlite;

pub use urls::{LogUrl, StoreUrl};
