//! Shared by the notification tests: the receiver (tests/python/receiver.py, verifying with
//! the official `standardwebhooks` package), a fleet of devices posting event starts, and the
//! check that the receiver got exactly the acknowledged reports, in order per device.

#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::client::Http;
use tests::process::Bin;

pub const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

/// Fast retries, and receivers on loopback over http (refused by default).
pub const FAST_RETRIES: [&str; 6] =
    ["--notify-retry-base-ms", "200", "--notify-retry-max-s", "2", "--notify-allow-private", "--notify-allow-http"];

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The receiver process; killed on drop.
pub struct Receiver(Child);

impl Receiver {
    pub fn start(secret: &str, ledger: &Path, port: u16, mode: &str) -> Self {
        Self::start_with(secret, ledger, port, mode, &[])
    }

    pub fn start_with(secret: &str, ledger: &Path, port: u16, mode: &str, extra: &[&str]) -> Self {
        let python = std::env::var("DAYBOOK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/receiver.py");
        let mut child = Command::new(python)
            .args([script, "--secret", secret, "--ledger", ledger.to_str().unwrap(), "--port", &port.to_string()])
            .args(["--mode", mode])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with standardwebhooks (DAYBOOK_TEST_PYTHON)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert!(line.contains("port"), "the receiver did not start: {line:?} (pip install standardwebhooks)");
        Self(child)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn ledger(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Adds a subscription to `url` for event starts of type `person`; its `whsec_` secret.
pub fn subscribe(d: &str, url: &str, extra: &[&str]) -> String {
    let mut args =
        vec!["subscriptions", "add", "--data-dir", d, "--notify-allow-http", "--notify-allow-private", "--url", url];
    args.extend_from_slice(&["--type", "person", "--kind", "event_started"]);
    args.extend_from_slice(extra);
    let out = DAYBOOK.output(&args, &[]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

/// Devices posting event starts: every fourth one a `motion` (filtered out), the rest `person`.
pub struct Fleet {
    pub devices: Vec<(String, Http)>,
    /// Per device, the `person` starts acknowledged (201), in order.
    pub acked: BTreeMap<String, Vec<String>>,
    /// Event ids posted before the subscription was known to be reading (probes): ignored.
    pub probes: BTreeSet<String>,
    pub sent: i64,
}

impl Fleet {
    pub fn new(d: &str, base: &str, n: u64) -> Self {
        let devices = (0..n)
            .map(|i| {
                let cid = format!("cam-{i:03}");
                let token = DAYBOOK.token(&["device", &cid, "--data-dir", d]);
                (cid, Http::new(base, &token))
            })
            .collect();
        Self { devices, acked: BTreeMap::new(), probes: BTreeSet::new(), sent: 0 }
    }

    /// One event start from every device, all at once.
    pub async fn round(&mut self) {
        self.post(false).await;
    }

    /// Posts `person` starts until the receiver at `ledger` got one: the subscription reads
    /// (a Kafka group starts at the end when it first joins). They are left out of the check.
    pub async fn probe(&mut self, path: &Path, within: Duration) {
        let deadline = Instant::now() + within;
        while ledger(path).is_empty() {
            assert!(Instant::now() < deadline, "no delivery within {within:?}");
            self.post(true).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn post(&mut self, probe: bool) {
        let at = (Utc::now() - chrono::Duration::minutes(10) + chrono::Duration::milliseconds(self.sent))
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        self.sent += 1;
        let kind = if self.sent % 4 == 0 && !probe { "motion" } else { "person" };
        let posts = self.devices.iter().map(|(cid, dev)| {
            let at = at.clone();
            async move {
                let (status, body) =
                    dev.post(&format!("/v1/devices/{cid}/events"), &json!({"type": kind, "triggered_at": at})).await;
                (cid.clone(), status, body)
            }
        });
        for (cid, status, body) in futures::future::join_all(posts).await {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            if probe {
                self.probes.insert(body["event_id"].as_str().unwrap().to_owned());
            } else if kind == "person" {
                self.acked.entry(cid).or_default().push(body["event_id"].as_str().unwrap().to_owned());
            }
        }
    }

    /// Waits until the receiver holds every acknowledged `person` start, then checks that it
    /// holds nothing else, that every signature verified, and the order per device.
    pub fn check_delivered(&self, path: &Path, within: Duration) {
        let want: BTreeSet<&str> = self.acked.values().flatten().map(String::as_str).collect();
        let deadline = Instant::now() + within;
        let lines = loop {
            let lines: Vec<Value> = ledger(path)
                .into_iter()
                .filter(|l| !l["event_id"].as_str().is_some_and(|e| self.probes.contains(e)))
                .collect();
            let have: BTreeSet<&str> = lines.iter().filter_map(|l| l["event_id"].as_str()).collect();
            if want.iter().all(|w| have.contains(w)) {
                break lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} acknowledged reports delivered within {within:?}",
                want.iter().filter(|w| have.contains(*w)).count(),
                want.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(lines.iter().all(|l| l.get("bad_signature").is_none()), "a signature did not verify");
        let have: BTreeSet<&str> = lines.iter().filter_map(|l| l["event_id"].as_str()).collect();
        assert_eq!(have, want, "the receiver's set equals the acknowledged ledger (nothing filtered out arrived)");
        // Per device, first deliveries come in the order the device's reports were acknowledged.
        let mut firsts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for l in &lines {
            let id = l["id"].as_str().unwrap();
            assert!(id.starts_with("msg_"), "{id}");
            if seen.insert(id) {
                firsts.entry(l["cid"].as_str().unwrap()).or_default().push(l["event_id"].as_str().unwrap());
            }
            assert_eq!(l["links"]["event"], format!("/v1/events/{}", l["event_id"].as_str().unwrap()));
        }
        for (cid, acked) in &self.acked {
            let got: Vec<&str> = firsts.get(cid.as_str()).cloned().unwrap_or_default();
            let got: Vec<&str> = got.into_iter().filter(|e| !self.probes.contains(*e)).collect();
            assert_eq!(got, acked.iter().map(String::as_str).collect::<Vec<_>>(), "order of {cid}");
        }
        // Duplicates are the same report under the same id (receivers de-duplicate by it).
        let mut by_id: BTreeMap<&str, &str> = BTreeMap::new();
        for l in &lines {
            let (id, ev) = (l["id"].as_str().unwrap(), l["event_id"].as_str().unwrap());
            assert_eq!(*by_id.entry(id).or_insert(ev), ev, "one webhook-id, one report");
        }
    }
}
