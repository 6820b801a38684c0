//! What every Kafka client shares: its librdkafka config, its logs forwarded to
//! `tracing`, and the error helpers.

use std::fmt;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use seams::metric::{Kind, Metric};
use seams::LogError;

use super::config::KafkaConfig;

pub const KAFKA_REQUEST_TIMEOUTS_TOTAL: Metric = Metric {
    name: "daybook_kafka_request_timeouts_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["client"],
    help: "Kafka: requests to a broker that timed out in flight (librdkafka `REQTMOUT`: produce requests for the \
           producer, fetches and commits for a consumer), by client (producer, consumer); the client retries them.",
};

/// Which client a context belongs to (the `client` label of its metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Producer,
    Consumer,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

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
    // librdkafka reports request timeouts (`REQTMOUT`) as warnings: they must reach the log
    // callback (which counts them) even when the process logs errors only.
    if matches!(
        cc.log_level,
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error
    ) {
        cc.set_log_level(RDKafkaLogLevel::Warning);
    }
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

/// The number of requests a librdkafka `REQTMOUT` line reports timed out: it reads
/// "Timed out N in-flight, N retry-queued, N out-queue, N partially-sent requests"; the
/// in-flight ones are those the broker did not answer in time.
fn timed_out_in_flight(message: &str) -> Option<u64> {
    let rest = message.trim_start().strip_prefix("Timed out ")?;
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("in-flight").then(|| n.parse().ok()).flatten()
}

/// Forwards librdkafka's logs and errors to `tracing`, counting request timeouts.
pub(super) fn forward_log(role: Role, level: RDKafkaLogLevel, fac: &str, message: &str) {
    if fac == "REQTMOUT" {
        if let Some(n) = timed_out_in_flight(message).filter(|n| *n > 0) {
            metrics::counter!(KAFKA_REQUEST_TIMEOUTS_TOTAL.name, "client" => role.as_str()).increment(n);
        }
    }
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
        forward_log(Role::Producer, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeout_lines_are_counted_by_their_in_flight_requests() {
        assert_eq!(
            timed_out_in_flight("Timed out 2 in-flight, 0 retry-queued, 0 out-queue, 0 partially-sent requests"),
            Some(2)
        );
        assert_eq!(timed_out_in_flight("Timed out FetchRequest in flight (after 60001ms, timeout #0)"), None);
        assert_eq!(timed_out_in_flight("Connection refused"), None);
    }
}
