//! What every Kafka client shares: its librdkafka config, its logs forwarded to
//! `tracing`, and the error helpers.

use std::fmt;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use seams::LogError;

use super::config::KafkaConfig;

/// Timeout of metadata, watermark and committed-offset requests.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a client config: defaults, then the user's properties, then what the contract
/// needs (which the user may not change). Public so tools beside daybook (the burst
/// benchmark's raw producer) talk to the broker with exactly the settings daybook uses.
pub fn client_config(
    config: &KafkaConfig,
    defaults: &[(&str, &str)],
    fixed: &[(&str, String)],
) -> Result<ClientConfig, LogError> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers);
    cc.set("client.id", "daybook");
    for (k, v) in defaults {
        cc.set(*k, *v);
    }
    for (k, v) in &config.properties {
        if k == "bootstrap.servers" {
            return Err(LogError::Other("kafka property bootstrap.servers is set by the log url".into()));
        }
        if k == "group.id" {
            return Err(LogError::Other("kafka property group.id is set by the consumer group name".into()));
        }
        if let Some((_, want)) = fixed.iter().find(|(f, _)| f == k) {
            if !(v.eq_ignore_ascii_case(want) || (want == "all" && v == "-1")) {
                return Err(LogError::Other(format!(
                    "kafka property {k} must be {want}, daybook's guarantees depend on it"
                )));
            }
        }
        cc.set(k, v);
    }
    for (k, v) in fixed {
        cc.set(*k, v);
    }
    Ok(cc)
}

pub(super) fn unavailable(e: impl fmt::Display) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// [`LogError::Unavailable`] saying what failed.
pub(super) fn failed(what: &str, e: impl fmt::Display) -> LogError {
    LogError::Unavailable(format!("{what}: {e}"))
}

pub(super) fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Forwards librdkafka's logs and errors to `tracing`.
pub(super) fn forward_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
    }
}

pub(super) fn forward_error(error: &KafkaError, reason: &str) {
    tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
}

/// The context of producers and admin clients: logs through `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct LogContext;

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}
