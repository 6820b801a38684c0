//! Where the log lives: the `kafka://` URL, and librdkafka properties from the
//! environment or a file.

use std::fmt;
use std::path::Path;

use seams::LogError;

/// Environment variables with this prefix become librdkafka properties.
pub const ENV_PREFIX: &str = "DAYBOOK_KAFKA_";

/// Where the log lives: brokers, topic and extra librdkafka properties.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `HOST:PORT` list.
    pub brokers: String,
    /// The report topic.
    pub topic: String,
    /// Extra librdkafka properties applied to every client (producer, consumers, admin).
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Property values may be secrets (sasl.password, ssl.key.password): keys only.
        let keys: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("properties", &keys)
            .finish()
    }
}

fn bad_url(url: &str, why: &str) -> LogError {
    LogError::Other(format!("bad kafka url {url:?} ({why}): want kafka://HOST:PORT[,HOST:PORT…]/TOPIC"))
}

fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl KafkaConfig {
    /// A config for `topic` on `brokers`, without extra properties.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), topic: topic.into(), properties: Vec::new() }
    }

    /// Parses `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`.
    pub fn from_url(url: &str) -> Result<Self, LogError> {
        let rest = url.strip_prefix("kafka://").ok_or_else(|| bad_url(url, "scheme is not kafka://"))?;
        let (hosts, topic) = rest.split_once('/').ok_or_else(|| bad_url(url, "no topic"))?;
        if !valid_topic(topic) {
            return Err(bad_url(url, "topic must be 1-249 characters of a-z A-Z 0-9 . _ -"));
        }
        let mut brokers = Vec::new();
        for host in hosts.split(',') {
            let host = host.trim();
            let (name, port) = host.rsplit_once(':').ok_or_else(|| bad_url(url, "a broker has no port"))?;
            if name.is_empty() || name.contains('/') || name.contains('@') {
                return Err(bad_url(url, "a broker has no host"));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad_url(url, "a broker port is not a number in 1-65535"));
            }
            brokers.push(host);
        }
        Ok(Self::new(brokers.join(","), topic))
    }

    /// Adds one librdkafka property (later ones win).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Adds librdkafka properties (later ones win), e.g. from [`properties_from_env`].
    pub fn with_properties(mut self, properties: impl IntoIterator<Item = (String, String)>) -> Self {
        self.properties.extend(properties);
        self
    }

    /// The URL this config was parsed from (without properties).
    pub fn url(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }
}

/// librdkafka properties from `DAYBOOK_KAFKA_<PROP>` environment variables: the rest of
/// the name lowercased, `_` → `.` (`DAYBOOK_KAFKA_SASL_MECHANISMS=PLAIN` →
/// `sasl.mechanisms=PLAIN`). Sorted by property name. `DAYBOOK_KAFKA_CONFIG` is daybook's
/// own setting (the properties file), not a property.
pub fn properties_from_env() -> Vec<(String, String)> {
    properties_from_vars(std::env::vars())
}

/// [`properties_from_env`] over any set of variables.
pub fn properties_from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let prop = name.strip_prefix(ENV_PREFIX)?;
            (!prop.is_empty() && prop != "CONFIG").then(|| (prop.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    out.sort();
    out
}

/// librdkafka properties from a file of `key=value` lines; blank lines and lines starting
/// with `#` are skipped, whitespace around keys and values is trimmed.
pub fn properties_from_file(path: impl AsRef<Path>) -> Result<Vec<(String, String)>, LogError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| LogError::Other(format!("cannot read kafka properties {}: {e}", path.display())))?;
    parse_properties(&text).map_err(|e| LogError::Other(format!("kafka properties {}: {e}", path.display())))
}

fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| format!("line {}: expected key=value", n + 1))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {}: empty key", n + 1));
        }
        out.push((key.to_owned(), value.trim().to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parses() {
        let c = KafkaConfig::from_url("kafka://127.0.0.1:9092,broker-2:9093/daybook.reports").unwrap();
        assert_eq!(c.brokers, "127.0.0.1:9092,broker-2:9093");
        assert_eq!(c.topic, "daybook.reports");
        assert_eq!(c.url(), "kafka://127.0.0.1:9092,broker-2:9093/daybook.reports");
        let c = KafkaConfig::from_url("kafka://[::1]:9092/t").unwrap();
        assert_eq!(c.brokers, "[::1]:9092");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "kafka:/h:1/t",
            "http://h:1/t",
            "kafka://h:1",
            "kafka://h:1/",
            "kafka://h/t",
            "kafka://:1/t",
            "kafka://h:x/t",
            "kafka://h:0/t",
            "kafka://h:1,/t",
            "kafka://h:1/a/b",
            "kafka://h:1/a b",
        ] {
            let err = KafkaConfig::from_url(url).unwrap_err().to_string();
            assert!(err.contains("bad kafka url"), "{url}: {err}");
        }
    }

    #[test]
    fn env_vars_become_properties() {
        let vars = [
            ("DAYBOOK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("DAYBOOK_KAFKA_SASL_USERNAME", "u"),
            ("DAYBOOK_LOG", "kafka://h:1/t"),
            ("DAYBOOK_KAFKA_", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            properties_from_vars(vars),
            vec![("sasl.username".to_owned(), "u".to_owned()), ("security.protocol".to_owned(), "SASL_SSL".to_owned())]
        );
    }

    #[test]
    fn property_files_parse() {
        let props = parse_properties("# comment\n\nsecurity.protocol = SASL_SSL\nsasl.password=a=b\n").unwrap();
        assert_eq!(
            props,
            vec![("security.protocol".into(), "SASL_SSL".into()), ("sasl.password".into(), "a=b".into())]
        );
        assert!(parse_properties("nonsense").unwrap_err().contains("line 1"));
    }

    #[test]
    fn debug_hides_property_values() {
        let c = KafkaConfig::new("h:1", "t").with_property("sasl.password", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
