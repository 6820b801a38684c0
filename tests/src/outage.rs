//! What outage tests share: devices reporting under load as real cameras do, an outside ledger
//! of every answer, and the check that every acknowledged report is listed exactly once.
//!
//! A device sends one event start at a time and retries the *same* report (same trigger time,
//! so the same event id) until it is acknowledged or refused for good, waiting the server's
//! Retry-After (at most 2 s) after a 503 and half a second after no answer at all (a refused
//! connection, a reset). A retry of a report that was stored before its 503 or before a crash
//! must not list it twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One HTTP answer a device got.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    /// How long the answer took.
    pub took: Duration,
    pub status: u16,
    /// Whether it carried a Retry-After.
    pub retry_after: bool,
    /// The error code of an error answer.
    pub code: Option<String>,
}

/// What the devices saw.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Event ids acknowledged (201), per device.
    pub accepted: BTreeMap<String, BTreeSet<String>>,
    /// Every HTTP answer.
    pub answers: Vec<Answer>,
    /// Requests that got no HTTP answer (when, and why).
    pub unanswered: Vec<(Instant, String)>,
    /// Reports acknowledged on a retry, after a 503 or no answer at all: the ones a server may
    /// have stored before its failed answer, which must not be listed twice.
    pub acknowledged_on_retry: usize,
    /// Every request, answered or not, with the report it carried: what a test needs to tell
    /// which reports were never acknowledged (and must not be listed).
    pub attempts: Vec<Attempt>,
}

/// One request a device sent: which report it carried and what came of it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub cid: String,
    /// The event start's `triggered_at` as sent (RFC 3339, `Z`, milliseconds; type `motion`):
    /// with the device it determines the event id, the same on every retry.
    pub triggered_at: String,
    /// The HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    /// The event id of an acknowledged (201) start.
    pub event_id: Option<String>,
    /// The error answer's message, or why no answer came.
    pub message: Option<String>,
    /// When it was sent, and when its answer (if any) came.
    pub sent: Instant,
    pub answered: Option<Instant>,
}

impl Ledger {
    /// Every acknowledged id.
    pub fn total(&self) -> usize {
        self.accepted.values().map(BTreeSet::len).sum()
    }

    /// Answers to requests sent in `[from, to)`.
    pub fn sent_between(&self, from: Instant, to: Instant) -> Vec<&Answer> {
        self.answers.iter().filter(|a| a.sent >= from && a.sent < to).collect()
    }
}

/// Devices reporting until stopped.
#[derive(Debug)]
pub struct Load {
    ledger: Arc<Mutex<Ledger>>,
    base: Arc<RwLock<String>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts one task per `(cid, token)` sending event starts to `base`, pausing `pause`
    /// between acknowledged reports.
    pub fn start(base: &str, devices: Vec<(String, String)>, pause: Duration) -> Self {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let base = Arc::new(RwLock::new(base.to_owned()));
        let (stop, stopped) = watch::channel(false);
        // A client per device would cost a connection pool each; one shared is what a fleet
        // behind one NAT looks like anyway. 10 s: a camera's own timeout.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let tasks = devices
            .into_iter()
            .enumerate()
            .map(|(i, (cid, token))| {
                let (client, base, ledger, stopped) = (client.clone(), base.clone(), ledger.clone(), stopped.clone());
                tokio::spawn(async move {
                    // Spread the devices' first reports over the pause.
                    let offset = pause.mul_f64((i % 97) as f64 / 97.0);
                    tokio::time::sleep(offset).await;
                    let mut report: Option<String> = None;
                    let mut attempts = 0u32;
                    while !*stopped.borrow() {
                        let triggered_at = report.get_or_insert_with(|| {
                            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        });
                        attempts += 1;
                        let url = format!("{}/v1/devices/{cid}/events", base.read().expect("base lock"));
                        let sent = Instant::now();
                        let resp = client
                            .post(url)
                            .bearer_auth(&token)
                            .json(&json!({"type": "motion", "triggered_at": triggered_at}))
                            .send()
                            .await;
                        let took = sent.elapsed();
                        let wait = match resp {
                            Ok(resp) => {
                                let status = resp.status().as_u16();
                                let retry_after = resp
                                    .headers()
                                    .get("retry-after")
                                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                                let body: Value = resp.json().await.unwrap_or(Value::Null);
                                let code = body["error"]["code"].as_str().map(str::to_owned);
                                let mut l = ledger.lock().expect("ledger lock");
                                l.answers.push(Answer { sent, took, status, retry_after: retry_after.is_some(), code });
                                let mut event_id = None;
                                if status == 201 {
                                    let id = body["event_id"].as_str().expect("an event id").to_owned();
                                    l.accepted.entry(cid.clone()).or_default().insert(id.clone());
                                    event_id = Some(id);
                                    if attempts > 1 {
                                        l.acknowledged_on_retry += 1;
                                    }
                                }
                                l.attempts.push(Attempt {
                                    cid: cid.clone(),
                                    triggered_at: triggered_at.clone(),
                                    status: Some(status),
                                    event_id,
                                    message: body["error"]["message"].as_str().map(str::to_owned),
                                    sent,
                                    answered: Some(sent + took),
                                });
                                if status < 500 {
                                    // Acknowledged, or refused for good (a test's own assertions
                                    // catch the unexpected): the next report.
                                    report = None;
                                    attempts = 0;
                                    pause
                                } else {
                                    Duration::from_millis(retry_after.map_or(500, |s| (s * 1000).min(2000)))
                                }
                            }
                            Err(e) => {
                                let mut l = ledger.lock().expect("ledger lock");
                                l.unanswered.push((sent, e.to_string()));
                                l.attempts.push(Attempt {
                                    cid: cid.clone(),
                                    triggered_at: triggered_at.clone(),
                                    status: None,
                                    event_id: None,
                                    message: Some(e.to_string()),
                                    sent,
                                    answered: None,
                                });
                                Duration::from_millis(500)
                            }
                        };
                        tokio::time::sleep(wait).await;
                    }
                })
            })
            .collect();
        Self { ledger, base, stop, tasks }
    }

    /// Points the devices at another server (a restarted process on a new port).
    pub fn retarget(&self, base: &str) {
        *self.base.write().expect("base lock") = base.to_owned();
    }

    /// Runs `f` on the ledger as it is now.
    pub fn peek<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        f(&self.ledger.lock().expect("ledger lock"))
    }

    /// Acknowledged reports so far.
    pub fn acknowledged(&self) -> usize {
        self.peek(Ledger::total)
    }

    /// When the first report sent at or after `t` was acknowledged (its answer's arrival).
    pub fn first_acknowledged_after(&self, t: Instant) -> Option<Instant> {
        self.peek(|l| l.answers.iter().filter(|a| a.sent >= t && a.status == 201).map(|a| a.sent + a.took).min())
    }

    /// When the first report sent at or after `t` was refused (5xx), if one was.
    pub fn first_refused_after(&self, t: Instant) -> Option<Instant> {
        self.peek(|l| l.answers.iter().filter(|a| a.sent >= t && a.status >= 500).map(|a| a.sent).min())
    }

    /// How long after `t` the first report was acknowledged, waiting for it; fails the test
    /// when none was within `within` (acceptance did not resume).
    pub async fn wait_acknowledged_after(&self, t: Instant, within: Duration) -> Duration {
        loop {
            if let Some(at) = self.first_acknowledged_after(t) {
                return at.duration_since(t);
            }
            assert!(t.elapsed() < within, "no report accepted within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every device (each finishes the request in hand) and returns the ledger.
    pub async fn stop(self) -> Ledger {
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await.expect("a device task");
        }
        std::mem::take(&mut *self.ledger.lock().expect("ledger lock"))
    }
}

/// Every event id listed for `cid` on `date` (`YYYY-MM-DD`), following the pages.
pub async fn listed(http: &reqwest::Client, base: &str, viewer: &str, cid: &str, date: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("date", date.to_owned()), ("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let resp = http
            .get(format!("{base}/v1/devices/{cid}/events"))
            .query(&q)
            .bearer_auth(viewer)
            .send()
            .await
            .expect("a listing answer");
        assert_eq!(resp.status(), 200, "listing {cid} on {date}");
        let page: Value = resp.json().await.expect("a JSON page");
        ids.extend(
            page["events"].as_array().expect("events").iter().map(|e| e["event_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

/// Waits until every acknowledged id is listed (on its own day), and fails the test if one
/// is listed twice or is still missing after `within`. Checks 8 devices at a time. Returns how
/// long the wait took.
pub async fn assert_listed_exactly_once(
    base: &str,
    viewer: &str,
    accepted: &BTreeMap<String, BTreeSet<String>>,
    within: Duration,
) -> Duration {
    let http = reqwest::Client::new();
    let began = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut checks = tokio::task::JoinSet::new();
    for (cid, ids) in accepted {
        // An event id starts with its day, `YYYYMMDD.`.
        let mut days: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for id in ids {
            let d = &id[..8];
            days.entry(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])).or_default().insert(id.clone());
        }
        let (http, base, viewer, cid, permits) =
            (http.clone(), base.to_owned(), viewer.to_owned(), cid.clone(), permits.clone());
        checks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            for (date, expected) in days {
                loop {
                    let ids = listed(&http, &base, &viewer, &cid, &date).await;
                    let unique: BTreeSet<&String> = ids.iter().collect();
                    assert_eq!(unique.len(), ids.len(), "{cid} on {date}: an event listed twice");
                    let missing: Vec<&String> = expected.iter().filter(|id| !unique.contains(id)).collect();
                    if missing.is_empty() {
                        break;
                    }
                    assert!(
                        began.elapsed() < within,
                        "{cid} on {date}: {} acknowledged events never listed, e.g. {:?}",
                        missing.len(),
                        &missing[..missing.len().min(5)]
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        if let Err(e) = done {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    began.elapsed()
}
