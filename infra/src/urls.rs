//! The URLs that name the engines: `--log embedded | kafka://…`, `--store embedded |
//! scylla://…` (parsed here; opened by the `daybook` crate's `resolve`).

use std::fmt;
use std::str::FromStr;

/// Which report log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogUrl {
    /// The embedded segment log in the data directory.
    Embedded,
    /// `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`
    Kafka(String),
}

/// Which projection store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// The embedded SQLite store in the data directory.
    Embedded,
    /// `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`
    Scylla(String),
}

impl FromStr for LogUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" | "embedded://" => Ok(Self::Embedded),
            s if s.starts_with("kafka://") => Ok(Self::Kafka(s.to_owned())),
            s => Err(format!("unknown log {s:?}: want `embedded` or `kafka://HOST:PORT[,HOST:PORT…]/TOPIC`")),
        }
    }
}

impl FromStr for StoreUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" | "embedded://" => Ok(Self::Embedded),
            s if s.starts_with("scylla://") => Ok(Self::Scylla(s.to_owned())),
            s => Err(format!("unknown store {s:?}: want `embedded` or `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`")),
        }
    }
}

impl fmt::Display for LogUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Kafka(u) => f.write_str(u),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Scylla(u) => f.write_str(u),
        }
    }
}
