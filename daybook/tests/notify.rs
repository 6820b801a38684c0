//! Notifications end to end, against the binary and a receiver written with the official
//! `standardwebhooks` Python package (tests/python/receiver.py), which verifies every
//! signature: a receiver down under load, then back, gets every matching report, in order per
//! device; so does one whose notifier is killed (-9) five times during delivery. The ledger of
//! acknowledged reports (the device API's 201s) equals the receiver's set.
//!
//! Short by default (scripts/test); `DAYBOOK_NOTIFY_DEVICES=200 DAYBOOK_NOTIFY_DOWN_S=60` for
//! the full load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::client::Http;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The receiver process; killed on drop.
struct Receiver(Child);

impl Receiver {
    fn start(secret: &str, ledger: &Path, port: u16, mode: &str) -> Self {
        let python = std::env::var("DAYBOOK_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/receiver.py");
        let mut child = Command::new(python)
            .args([script, "--secret", secret, "--ledger", ledger.to_str().unwrap(), "--port", &port.to_string()])
            .args(["--mode", mode])
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn ledger(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Adds a subscription to `url` for event starts of type `person`; its `whsec_` secret.
fn subscribe(d: &str, url: &str) -> String {
    let out = DAYBOOK.output(
        &["subscriptions", "add", "--data-dir", d, "--notify-allow-http", "--url", url]
            .into_iter()
            .chain(["--type", "person", "--kind", "event_started"])
            .collect::<Vec<_>>(),
        &[],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

/// Devices posting event starts: every fourth one a `motion` (filtered out), the rest `person`.
struct Fleet {
    devices: Vec<(String, Http)>,
    /// Per device, the `person` starts acknowledged (201), in order.
    acked: BTreeMap<String, Vec<String>>,
    sent: i64,
}

impl Fleet {
    fn new(d: &str, base: &str, n: u64) -> Self {
        let devices = (0..n)
            .map(|i| {
                let cid = format!("cam-{i:03}");
                let token = DAYBOOK.token(&["device", &cid, "--data-dir", d]);
                (cid, Http::new(base, &token))
            })
            .collect();
        Self { devices, acked: BTreeMap::new(), sent: 0 }
    }

    /// One event start from every device, all at once.
    async fn round(&mut self) {
        let at = (Utc::now() - chrono::Duration::minutes(10) + chrono::Duration::milliseconds(self.sent))
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        self.sent += 1;
        let kind = if self.sent % 4 == 0 { "motion" } else { "person" };
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
            if kind == "person" {
                self.acked.entry(cid).or_default().push(body["event_id"].as_str().unwrap().to_owned());
            }
        }
    }

    /// Waits until the receiver holds every acknowledged `person` start, then checks that it
    /// holds nothing else, that every signature verified, and the order per device.
    fn check_delivered(&self, path: &Path, within: Duration) {
        let want: BTreeSet<&str> = self.acked.values().flatten().map(String::as_str).collect();
        let deadline = Instant::now() + within;
        let lines = loop {
            let lines = ledger(path);
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

const FAST_RETRIES: [&str; 4] = ["--notify-retry-base-ms", "200", "--notify-retry-max-s", "2"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_under_load_gets_everything_in_order_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"));
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let mut fleet = Fleet::new(d, server.http(), env_or("DAYBOOK_NOTIFY_DEVICES", 20));

    let receiver = Receiver::start(&secret, &path, port, "ok");
    for _ in 0..4 {
        fleet.round().await;
    }
    drop(receiver);
    let down = Duration::from_secs(env_or("DAYBOOK_NOTIFY_DOWN_S", 6));
    let until = Instant::now() + down;
    while Instant::now() < until {
        fleet.round().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    for _ in 0..4 {
        fleet.round().await;
    }
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_notifier_five_times_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The notifier in its own process beside `run` (on the same embedded log and store).
    let server = DAYBOOK.run_in(d, &["--no-notify"]);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"));
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    let mut fleet = Fleet::new(d, server.http(), env_or("DAYBOOK_NOTIFY_DEVICES", 20));
    let notify = |d: &str| {
        let mut args = vec!["notify", "--data-dir", d, "--metrics-addr", "127.0.0.1:0"];
        args.extend_from_slice(&FAST_RETRIES);
        DAYBOOK.start(&args, &[])
    };
    for _ in 0..5 {
        let notifier = notify(d);
        for _ in 0..3 {
            fleet.round().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        notifier.kill();
        fleet.round().await;
    }
    let notifier = notify(d);
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(notifier.stop().success());
    assert!(server.stop().success());
}
