//! Webhook receivers inside the benchmark process, and subscribing them: what
//! `daybook-bench notify` and `burst --subscribe-person` deliver to. Hand-written here rather
//! than the Python `standardwebhooks` receiver the tests use: the figure is the notifier's,
//! and a receiver must not be the slower party.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use schemas::Timestamp;

/// What a receiver does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Ok,
    Hang,
    Fail500,
    Gone,
    /// Answers 200 at once, then sends its body a byte a second, forever.
    Drip,
}

#[derive(Default)]
pub(crate) struct Seen {
    /// Microseconds from `received_at` to arrival, arrivals after `measure_from`.
    latencies: Vec<u64>,
    ids: HashSet<String>,
    last_arrival: Option<Instant>,
}

pub(crate) struct Receiver {
    pub(crate) mode: Mode,
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    /// A good receiver (2xx at once) that times nothing.
    pub(crate) async fn good() -> anyhow::Result<Self> {
        receiver(Mode::Ok, Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX))).await
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Distinct webhook ids received so far.
    pub(crate) fn distinct(&self) -> usize {
        self.seen.lock().expect("not poisoned").ids.len()
    }

    /// Microseconds from `received_at` to arrival of the deliveries timed so far.
    pub(crate) fn latencies_us(&self) -> Vec<u64> {
        self.seen.lock().expect("not poisoned").latencies.clone()
    }

    pub(crate) fn last_arrival(&self) -> Option<Instant> {
        self.seen.lock().expect("not poisoned").last_arrival
    }
}

/// Starts a receiver on loopback; arrivals before `measure_from` (ms since the epoch) are
/// counted but not timed.
pub(crate) async fn receiver(mode: Mode, measure_from: Arc<std::sync::atomic::AtomicI64>) -> anyhow::Result<Receiver> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = (seen.clone(), measure_from);
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (seen, measure_from) = state.clone();
        async move {
            match mode {
                Mode::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return StatusCode::OK.into_response();
                }
                Mode::Fail500 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                Mode::Gone => return StatusCode::GONE.into_response(),
                Mode::Drip => {
                    let drip = futures::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Some((Ok::<_, std::convert::Infallible>(Bytes::from_static(b" ")), ()))
                    });
                    return (StatusCode::OK, axum::body::Body::from_stream(drip)).into_response();
                }
                Mode::Ok => {}
            }
            let now = Timestamp::now().millis();
            let received = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::from_value::<Timestamp>(v["data"]["received_at"].clone()).ok());
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mut s = seen.lock().expect("not poisoned");
            let from = measure_from.load(std::sync::atomic::Ordering::Relaxed);
            if let Some(received) = received.filter(|r| r.millis() >= from) {
                s.latencies.push(((now - received.millis()).max(0) as u64) * 1000);
            }
            if let Some(id) = id {
                s.ids.insert(id);
            }
            s.last_arrival = Some(Instant::now());
            StatusCode::NO_CONTENT.into_response()
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Receiver { mode, addr, seen })
}

/// `daybook-bench subscriptions add …` against the server's data directory (handed over to the
/// running process through its inbox, as `daybook subscriptions add` is); returns the id.
pub(crate) fn subscribe(dir: &Path, url: &str, filters: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("own executable")?;
    let out = std::process::Command::new(exe)
        .args(["subscriptions", "add", "--url", url, "--data-dir"])
        .arg(dir)
        .args(["--notify-allow-http", "--notify-allow-private"])
        .args(filters)
        .output()
        .context("subscriptions add")?;
    anyhow::ensure!(out.status.success(), "subscriptions add: {}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).context("subscriptions add output")?;
    Ok(line["subscription_id"].as_str().context("no subscription id")?.to_owned())
}
