//! Where the cluster is and how to talk to it: the `scylla://` URL, the consistency level,
//! and the store's tuning.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ::scylla::statement::Consistency;

const DEFAULT_PORT: u16 = 9042;

/// Consistency level of every read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScyllaConsistency {
    /// `ONE`
    One,
    /// `TWO`
    Two,
    /// `THREE`
    Three,
    /// `QUORUM`
    Quorum,
    /// `ALL`
    All,
    /// `LOCAL_QUORUM` (the default)
    #[default]
    LocalQuorum,
    /// `EACH_QUORUM` (writes only; reads fall back to `LOCAL_QUORUM`)
    EachQuorum,
    /// `LOCAL_ONE`
    LocalOne,
}

impl ScyllaConsistency {
    const ALL: [Self; 8] = [
        Self::One,
        Self::Two,
        Self::Three,
        Self::Quorum,
        Self::All,
        Self::LocalQuorum,
        Self::EachQuorum,
        Self::LocalOne,
    ];

    /// The CQL name (`LOCAL_QUORUM`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::One => "ONE",
            Self::Two => "TWO",
            Self::Three => "THREE",
            Self::Quorum => "QUORUM",
            Self::All => "ALL",
            Self::LocalQuorum => "LOCAL_QUORUM",
            Self::EachQuorum => "EACH_QUORUM",
            Self::LocalOne => "LOCAL_ONE",
        }
    }

    pub(super) fn driver(self) -> Consistency {
        match self {
            Self::One => Consistency::One,
            Self::Two => Consistency::Two,
            Self::Three => Consistency::Three,
            Self::Quorum => Consistency::Quorum,
            Self::All => Consistency::All,
            Self::LocalQuorum => Consistency::LocalQuorum,
            Self::EachQuorum => Consistency::EachQuorum,
            Self::LocalOne => Consistency::LocalOne,
        }
    }

    /// For reads: `EACH_QUORUM` is a write-only level.
    pub(super) fn for_reads(self) -> Self {
        if self == Self::EachQuorum {
            Self::LocalQuorum
        } else {
            self
        }
    }
}

impl FromStr for ScyllaConsistency {
    type Err = String;
    /// Case-insensitive, `-` or `_`: `local_quorum`, `LOCAL-QUORUM`, `one`.
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        Self::ALL.into_iter().find(|c| c.as_str() == norm).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown consistency level {s:?}: want one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for ScyllaConsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tuning for [`ScyllaStore`].
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Consistency of every statement (default `LOCAL_QUORUM`).
    pub consistency: ScyllaConsistency,
    /// Client-side timeout of one request, retries included (default 10 s).
    pub request_timeout: Duration,
    /// Most requests this store has in flight at once (default 256).
    pub max_concurrency: usize,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        Self {
            consistency: ScyllaConsistency::LocalQuorum,
            request_timeout: Duration::from_secs(10),
            max_concurrency: 256,
        }
    }
}

/// A parsed `scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaUrl {
    /// Contact points, `HOST:PORT` (port 9042 when the URL gives none).
    pub nodes: Vec<String>,
    /// The keyspace (lower case).
    pub keyspace: String,
}

impl ScyllaUrl {
    /// Parses and validates the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let want = "want scylla://HOST:PORT[,HOST:PORT…]/KEYSPACE";
        let rest = url.strip_prefix("scylla://").ok_or_else(|| format!("{url:?}: {want}"))?;
        let (hosts, keyspace) = rest.split_once('/').ok_or_else(|| format!("{url:?} names no keyspace: {want}"))?;
        let keyspace = keyspace.to_ascii_lowercase();
        let valid_keyspace = (1..=48).contains(&keyspace.len())
            && keyspace.starts_with(|c: char| c.is_ascii_alphabetic())
            && keyspace.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_keyspace {
            return Err(format!("{url:?}: keyspace {keyspace:?} must be 1 to 48 of a-z 0-9 _, starting with a letter"));
        }
        let mut nodes = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            nodes.push(with_port(host).map_err(|e| format!("{url:?}: {e}"))?);
        }
        if nodes.is_empty() {
            return Err(format!("{url:?} names no host: {want}"));
        }
        Ok(Self { nodes, keyspace })
    }
}

/// `host` → `host:9042`, `host:1234` kept, `[::1]` → `[::1]:9042`.
fn with_port(host: &str) -> Result<String, String> {
    let port = if let Some(v6) = host.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| format!("unclosed [ in host {host:?}"))?;
        if addr.is_empty() {
            return Err(format!("empty host {host:?}"));
        }
        match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| format!("bad host {host:?}"))?),
        }
    } else {
        match host.split_once(':') {
            None => None,
            Some(("", _)) => return Err(format!("empty host {host:?}")),
            Some((_, p)) => Some(p),
        }
    };
    match port {
        None => Ok(format!("{host}:{DEFAULT_PORT}")),
        Some(p) if p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(host.to_owned()),
        Some(p) => Err(format!("bad port {p:?} in host {host:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports() {
        let u = ScyllaUrl::parse("scylla://scylla1:9042,scylla2,[::1],[fe80::1]:19042/Daybook").unwrap();
        assert_eq!(u.nodes, vec!["scylla1:9042", "scylla2:9042", "[::1]:9042", "[fe80::1]:19042"]);
        assert_eq!(u.keyspace, "daybook");
        let u = ScyllaUrl::parse("scylla://127.0.0.1:9042/daybook_test_1_2_3").unwrap();
        assert_eq!((u.nodes.len(), u.keyspace.as_str()), (1, "daybook_test_1_2_3"));
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "",
            "scylla://",
            "scylla://host",
            "scylla:///ks",
            "scylla://host/",
            "scylla://host/1ks",
            "scylla://host/ks-x",
            "scylla://host/ks;DROP",
            "scylla://host:0/ks",
            "scylla://host:x/ks",
            "scylla://host:99999/ks",
            "scylla://:9042/ks",
            "scylla://[::1/ks",
            "scylla://[::1]x/ks",
            "cassandra://host/ks",
            "scylla://host/ks/extra",
        ] {
            assert!(ScyllaUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("scylla://h/{}", "k".repeat(49));
        assert!(ScyllaUrl::parse(&long).is_err());
    }

    #[test]
    fn consistency_levels_parse() {
        assert_eq!(ScyllaConsistency::default(), ScyllaConsistency::LocalQuorum);
        assert_eq!("local_quorum".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::LocalQuorum);
        assert_eq!("LOCAL-ONE".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::LocalOne);
        assert_eq!(" quorum ".parse::<ScyllaConsistency>().unwrap(), ScyllaConsistency::Quorum);
        assert!("serial".parse::<ScyllaConsistency>().is_err());
        for c in ScyllaConsistency::ALL {
            assert_eq!(c.to_string().parse::<ScyllaConsistency>().unwrap(), c);
        }
        assert_eq!(ScyllaConsistency::EachQuorum.for_reads(), ScyllaConsistency::LocalQuorum);
    }
}
