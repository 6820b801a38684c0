//! The Kafka broker dies under load and comes back: a tansu broker of this test's own is
//! killed with SIGKILL for 15 s while devices keep reporting, then restarted on the same
//! storage. Every answer arrives within the request deadline (503 `log_unavailable` with a
//! Retry-After during the outage), acceptance resumes by itself, the all-in-one never exits,
//! and every report answered 201 is projected and listed exactly once.
//!
//! Starts its broker with `scripts/start-tansu.sh` (the tansu binary from `TANSU_BIN`, or
//! `~/.cache/daybook/tools/bin/tansu` as `scripts/test` installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infra::LogUrl;
use serde_json::{json, Value};
use tests::app::spawn_app_with;

const DEVICES: usize = 60;
const OUTAGE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(5);

struct Broker {
    port: u16,
    storage: String,
    pid: Option<u32>,
}

impl Broker {
    fn start(port: u16, storage: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/start-tansu.sh");
        let out = Command::new(script)
            .arg(port.to_string())
            .env("TANSU_STORAGE", storage)
            .env("TANSU_LOG", format!("{}/tansu-outage-{port}.log", std::env::temp_dir().display()))
            .output()
            .expect("run scripts/start-tansu.sh");
        assert!(out.status.success(), "tansu did not start: {}", String::from_utf8_lossy(&out.stderr));
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse().expect("a pid");
        Self { port, storage: storage.to_owned(), pid: Some(pid) }
    }

    fn kill9(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            // Wait until the port is closed, so the restart binds it again.
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn restart(&mut self) {
        let again = Self::start(self.port, &self.storage);
        self.pid = again.pid;
        std::mem::forget(again);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What the devices saw.
#[derive(Default)]
struct Ledger {
    /// Event ids answered 201, per device.
    accepted: BTreeMap<String, BTreeSet<String>>,
    /// (sent at, latency, status, has Retry-After) of every answer.
    answers: Vec<(Instant, Duration, u16, bool)>,
    /// Requests that got no HTTP answer at all (the client's own 10 s timeout, a reset).
    unanswered: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_answered_within_the_deadline_and_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let storage = format!("sqlite:///{}/tansu.db", data.path().display());
    let mut broker = Broker::start(port, &storage);
    let url = format!("kafka://127.0.0.1:{port}/outage");
    let bin = env!("CARGO_BIN_EXE_daybook");
    let created = Command::new(bin).args(["topic", "create", "--log", &url, "--partitions", "3"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));

    let app = spawn_app_with(|c| {
        c.log.url = LogUrl::Kafka(url.clone());
        c.ingest.request_timeout = DEADLINE;
        c.ingest.device_rate_per_s = 1000;
        c.ingest.device_burst = 1000;
    })
    .await;
    let devices: Vec<(String, String)> = (0..DEVICES)
        .map(|i| {
            let cid = format!("cam-o{i}");
            let token = app.device_token(&cid);
            (cid, token)
        })
        .collect();
    let cids: Vec<&str> = devices.iter().map(|d| d.0.as_str()).collect();
    let viewer = app.viewer_token(&cids);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (stop_load, load_stopped) = tokio::sync::watch::channel(false);
    // Devices as real cameras behave: one request at a time, a 10 s client timeout, and a
    // retry after the server's Retry-After (at most 2 s, to keep the pressure on). Idle
    // connections are dropped after 5 s, before the server's 10 s keep-alive limit closes
    // them: otherwise a request sent on a connection the server is closing at that instant
    // is reset (HTTP/1.1's keep-alive race, which no server can close from its side).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut load = Vec::new();
    for (cid, token) in devices.clone() {
        let (client, base, ledger, stopped) = (client.clone(), app.http.clone(), ledger.clone(), load_stopped.clone());
        load.push(tokio::spawn(async move {
            while !*stopped.borrow() {
                let sent = Instant::now();
                let triggered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let resp = client
                    .post(format!("{base}/v1/devices/{cid}/events"))
                    .bearer_auth(&token)
                    .json(&json!({"type": "motion", "triggered_at": triggered_at}))
                    .send()
                    .await;
                let took = sent.elapsed();
                let pause = match resp {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let retry_after =
                            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        let mut l = ledger.lock().unwrap();
                        l.answers.push((sent, took, status, retry_after.is_some()));
                        if status == 201 {
                            let id = body["event_id"].as_str().expect("an event id").to_owned();
                            l.accepted.entry(cid.clone()).or_default().insert(id);
                        }
                        Duration::from_millis(retry_after.map_or(200, |s| (s * 1000).min(2000)))
                    }
                    Err(e) => {
                        ledger.lock().unwrap().unanswered.push(format!("{e:?}"));
                        Duration::from_millis(500)
                    }
                };
                tokio::time::sleep(pause).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed = Instant::now();
    broker.kill9();
    tokio::time::sleep(OUTAGE).await;
    broker.restart();
    let restarted = Instant::now();
    // Acceptance resumes by itself.
    let resumed = loop {
        let first_after =
            ledger.lock().unwrap().answers.iter().find(|a| a.0 >= restarted && a.2 == 201).map(|a| a.0 + a.1);
        if let Some(at) = first_after {
            break at.duration_since(restarted);
        }
        assert!(restarted.elapsed() < Duration::from_secs(90), "no report accepted 90 s after the broker came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_load.send(true).unwrap();
    for task in load {
        task.await.unwrap();
    }

    let l = std::mem::take(&mut *ledger.lock().unwrap());
    let during: Vec<_> = l.answers.iter().filter(|a| a.0 >= killed && a.0 < restarted).collect();
    let longest = l.answers.iter().map(|a| a.1).max().unwrap();
    let longest_during = during.iter().map(|a| a.1).max().unwrap_or_default();
    let refused = during.iter().filter(|a| a.2 == 503).count();
    let total: usize = l.accepted.values().map(BTreeSet::len).sum();
    eprintln!(
        "outage figures: {} answers ({} during the {} s outage, {refused} of them 503), longest answer {longest:?} \
         (during the outage {longest_during:?}), acceptance resumed {resumed:?} after the restart, {total} events \
         accepted, {} requests unanswered",
        l.answers.len(),
        during.len(),
        OUTAGE.as_secs(),
        l.unanswered.len(),
    );
    assert!(l.unanswered.is_empty(), "every request got an HTTP answer: {:?}", l.unanswered);
    assert!(longest <= DEADLINE + Duration::from_secs(2), "an answer took {longest:?}");
    assert!(refused > 0, "the outage was seen");
    for a in &l.answers {
        assert!(matches!(a.2, 201 | 503), "unexpected status {}", a.2);
        assert!(a.2 != 503 || a.3, "every 503 carries a Retry-After");
    }

    // Every 201 is projected and listed exactly once (reports answered 503 may be listed
    // too: the log may have stored them after the deadline).
    tests::outage::assert_listed_exactly_once(&app.http, &viewer, &l.accepted, Duration::from_secs(120)).await;
    assert!(!app.has_exited(), "the all-in-one kept running through the outage");
    app.stop().await;
}
