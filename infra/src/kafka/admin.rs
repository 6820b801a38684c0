//! Topic administration.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::RDKafkaErrorCode;
use seams::LogError;

use super::client::{client_config, failed, LogContext};
use super::config::KafkaConfig;

/// Creates `config.topic` with `partitions` and `replication` (and `retention.ms` when
/// given). A topic that exists already counts as success.
pub async fn create_topic(
    config: &KafkaConfig,
    partitions: i32,
    replication: i32,
    retention_ms: Option<i64>,
) -> Result<(), LogError> {
    if partitions < 1 || replication < 1 {
        return Err(LogError::Other("partitions and replication must be at least 1".into()));
    }
    let cc = client_config(config, &[], &[])?;
    let admin: AdminClient<LogContext> =
        AdminClient::from_config_and_context(&cc, LogContext).map_err(|e| failed("kafka admin client", e))?;
    let retention = retention_ms.map(|ms| ms.to_string());
    let mut topic = NewTopic::new(&config.topic, partitions, TopicReplication::Fixed(replication));
    if let Some(ms) = &retention {
        topic = topic.set("retention.ms", ms);
    }
    // acks=all waits for the in-sync replicas; with 3 replicas, 2 must have a record before it
    // is acknowledged, so one broker can fail without losing an acknowledged report.
    let min_insync = replication.min(2).to_string();
    if replication > 1 {
        topic = topic.set("min.insync.replicas", &min_insync);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics([&topic], &opts).await.map_err(|e| failed("cannot create kafka topic", e))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions, replication, ?retention_ms, "kafka topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::info!(topic = %name, "kafka topic exists already");
            }
            Err((name, code)) => {
                return Err(LogError::Unavailable(format!("cannot create kafka topic {name}: {code}")));
            }
        }
    }
    Ok(())
}
