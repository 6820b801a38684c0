//! An open-loop HTTP load generator: requests are sent on a fixed schedule whatever the server
//! does, over a pool of keep-alive HTTP/1.1 connections, and latency is measured from the
//! *scheduled* send time — so a server that stalls is charged for the queue it causes (no
//! coordinated omission). Hand-rolled on hyper's client connection because no crate offers an
//! embeddable open-loop generator with per-request schedules and Retry-After handling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// One request, prepared ahead so that sending costs as little as possible.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) auth: HeaderValue,
    pub(crate) body: Bytes,
}

/// What happened to one request (after its retries).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    /// Index into the request list.
    pub(crate) idx: usize,
    /// When it was scheduled, from the run's start.
    pub(crate) scheduled: Duration,
    /// When its last answer came, from the run's start.
    pub(crate) done: Duration,
    /// The last status (0: connection error or timeout).
    pub(crate) status: u16,
    /// Retries after 429/503/errors.
    pub(crate) retries: u32,
}

impl Outcome {
    pub(crate) fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub(crate) struct LoadConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: usize,
    /// Per-attempt timeout.
    pub(crate) timeout: Duration,
    /// Most retries of one request (429/503 honour Retry-After, capped at `max_backoff`).
    pub(crate) max_retries: u32,
    pub(crate) max_backoff: Duration,
    /// Stop waiting for answers after this long (unfinished requests count as failed).
    pub(crate) deadline: Duration,
}

#[derive(Debug)]
struct Job {
    idx: usize,
    scheduled: Instant,
    retries: u32,
}

/// Sends `requests[i]` at `start + schedule[i]`, returns every resolved outcome (in completion
/// order) and calls `progress` with the number resolved so far. Requests still unresolved at
/// the deadline are left out (the caller counts them as failed).
pub(crate) async fn open_loop(
    config: LoadConfig,
    requests: Arc<Vec<Prepared>>,
    schedule: Vec<Duration>,
    start: Instant,
    progress: impl Fn(usize),
) -> Vec<Outcome> {
    let n = requests.len();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let (retry_tx, mut retry_rx) = mpsc::unbounded_channel::<(Job, Duration)>();
    let mut workers = Vec::with_capacity(config.connections);
    for _ in 0..config.connections.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        workers.push(tx);
        tokio::spawn(worker(config.clone(), requests.clone(), rx, done_tx.clone(), retry_tx.clone(), start));
    }
    drop((done_tx, retry_tx));
    let workers = Arc::new(workers);

    // The scheduler hands each request to a connection at its time, never waiting for answers.
    let sched_workers = workers.clone();
    let scheduler = tokio::spawn(async move {
        for (idx, at) in schedule.into_iter().enumerate() {
            let when = start + at;
            if when > Instant::now() {
                tokio::time::sleep_until(when.into()).await;
            }
            let _ = sched_workers[idx % sched_workers.len()].send(Job { idx, scheduled: when, retries: 0 });
        }
    });

    let mut outcomes = Vec::with_capacity(n);
    let deadline = tokio::time::sleep_until((start + config.deadline).into());
    tokio::pin!(deadline);
    while outcomes.len() < n {
        tokio::select! {
            Some(o) = done_rx.recv() => {
                outcomes.push(o);
                progress(outcomes.len());
            }
            Some((job, after)) = retry_rx.recv() => {
                let workers = workers.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = workers[fastrand::usize(..workers.len())].send(job);
                });
            }
            () = &mut deadline => break,
        }
    }
    scheduler.abort();
    outcomes
}

async fn connect(addr: SocketAddr) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

async fn worker(
    config: LoadConfig,
    requests: Arc<Vec<Prepared>>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    done: mpsc::UnboundedSender<Outcome>,
    retry: mpsc::UnboundedSender<(Job, Duration)>,
    start: Instant,
) {
    let host = HeaderValue::from_str(&config.addr.to_string()).expect("address is a header value");
    let json = HeaderValue::from_static("application/json");
    let mut sender = None;
    while let Some(job) = jobs.recv().await {
        let p = &requests[job.idx];
        if sender.is_none() {
            sender = connect(config.addr).await;
        }
        let mut status = 0u16;
        let mut retry_after = None;
        if let Some(s) = sender.as_mut() {
            let req = Request::builder()
                .method(p.method.clone())
                .uri(p.path.as_str())
                .header(HOST, host.clone())
                .header(AUTHORIZATION, p.auth.clone())
                .header(CONTENT_TYPE, json.clone())
                .body(Full::new(p.body.clone()))
                .expect("valid request");
            let attempt = async {
                s.ready().await.ok()?;
                let resp = s.send_request(req).await.ok()?;
                let status = resp.status().as_u16();
                let ra = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                resp.into_body().collect().await.ok()?;
                Some((status, ra))
            };
            match tokio::time::timeout(config.timeout, attempt).await {
                Ok(Some((st, ra))) => {
                    status = st;
                    retry_after = ra;
                }
                _ => sender = None, // broken or timed out: a fresh connection for the next one
            }
        }
        let retryable = status == 0 || status == 429 || status == 503;
        if retryable && job.retries < config.max_retries {
            // Honour Retry-After as a device would (capped, so the run ends).
            let after =
                retry_after.unwrap_or(Duration::from_millis(200 * u64::from(job.retries + 1))).min(config.max_backoff);
            let _ = retry.send((Job { retries: job.retries + 1, ..job }, after));
            continue;
        }
        let _ = done.send(Outcome {
            idx: job.idx,
            scheduled: job.scheduled.duration_since(start),
            done: start.elapsed(),
            status,
            retries: job.retries,
        });
    }
}

/// Closed loop at saturation for `duration`: every connection sends back to back. Returns
/// completed requests per second (the machine's ceiling for this handler).
pub(crate) async fn saturate(config: LoadConfig, requests: Arc<Vec<Prepared>>, duration: Duration) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..config.connections.max(1) {
        let (config, requests) = (config.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, mut done_rx) = mpsc::unbounded_channel();
            let (retry_tx, _retry_rx) = mpsc::unbounded_channel();
            let config = LoadConfig { max_retries: 0, ..config };
            tokio::spawn(worker(config, requests.clone(), rx, done_tx, retry_tx, start));
            let mut ok = 0u64;
            let mut i = c;
            while start.elapsed() < duration {
                if tx.send(Job { idx: i % requests.len(), scheduled: Instant::now(), retries: 0 }).is_err() {
                    break;
                }
                match done_rx.recv().await {
                    Some(o) if o.accepted() => ok += 1,
                    Some(_) => {}
                    None => break,
                }
                i += 7919;
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / start.elapsed().as_secs_f64()
}
