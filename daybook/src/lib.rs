//! The daybook application: every service of the pipeline, composed from a [`Config`].
//!
//! [`Application::build`] opens the engines the config names (see [`resolve`]) and binds the
//! listeners; [`Application::run_until_stopped`] serves until shutdown. The `daybook` binary
//! is [`cli`] over this; tests build the same [`Application`] in-process on port 0. How the
//! pieces fit is in the README's "Layout" section.

mod app;
pub mod audit;
pub mod backup;
pub mod cli;
mod config;
pub mod erasure;
pub mod export;
mod http;
mod in_use;
pub mod metric_catalog;
pub mod notify;
mod ops;
mod priority;
pub mod rebuild;
pub mod resolve;
pub mod secrets;

pub use app::{shutdown_signal, Application, Backends};
pub use config::{Config, HttpLimits, IngestLimits, LogConfig, Role, S3Settings, StoreConfig};
pub use metric_catalog::metrics_reference;

/// The metrics this crate emits (see [`seams::metric`]); [`metric_catalog`] gathers every
/// crate's list.
pub const METRICS: &[seams::metric::Metric] = &[
    ops::HTTP_REQUESTS_TOTAL,
    ops::HTTP_REQUEST_SECONDS,
    http::HTTP_CONNECTIONS,
    http::HTTP_CONNECTIONS_REFUSED_TOTAL,
    http::HTTP_CONNECTIONS_EVICTED_TOTAL,
    http::HTTP_BODY_TIMEOUTS_TOTAL,
    ops::API_DEADLINE_EXCEEDED_TOTAL,
    backup::schedule::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS,
    backup::schedule::BACKUP_DURATION_SECONDS,
    backup::schedule::BACKUP_BYTES,
    backup::schedule::BACKUP_FAILURES_TOTAL,
    backup::BACKUP_PRUNE_PROBLEMS_TOTAL,
    backup::ship::REPLICA_SHIPPED_OFFSET,
    backup::ship::REPLICA_LAG_SECONDS,
    backup::ship::REPLICA_SHIP_DELAY_SECONDS,
    backup::ship::REPLICA_LAST_SUCCESS_TIMESTAMP_SECONDS,
    backup::ship::REPLICA_FAILURES_TOTAL,
    backup::ship::REPLICA_BYTES_TOTAL,
    backup::trial::BACKUP_VERIFY_LAST_SUCCESS_TIMESTAMP_SECONDS,
    backup::trial::BACKUP_VERIFY_FAILURES_TOTAL,
    backup::trial::BACKUP_VERIFY_SKIPPED_TOTAL,
    backup::trial::BACKUP_VERIFY_DURATION_SECONDS,
    audit::AUDIT_WRITE_FAILURES_TOTAL,
    app::OBJECTS_EXPIRED_TOTAL,
    app::OBJECTS_PURGED_TOTAL,
    app::KEPT_COPIES_TOTAL,
    app::STORAGE_BYTES,
    export::EXPORTS_TOTAL,
    export::EXPORT_SECONDS,
    export::EXPORT_BYTES_TOTAL,
    notify::deliver::NOTIFY_DELIVERED_TOTAL,
    notify::deliver::NOTIFY_FAILED_TOTAL,
    notify::deliver::NOTIFY_SKIPPED_TOTAL,
    notify::deliver::NOTIFY_LAG_RECORDS,
    notify::deliver::NOTIFY_OLDEST_UNDELIVERED_SECONDS,
    notify::deliver::NOTIFY_DEAD_LETTERS_TOTAL,
    notify::deliver::NOTIFY_HELD_RECORDS,
    notify::deliver::NOTIFY_FAILING,
    notify::deliver::NOTIFY_LATENCY_SECONDS,
];
