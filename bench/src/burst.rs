//! `daybook-bench burst`: the midnight burst, measured against the direct baseline and against
//! the machine's bare-HTTP ceiling, in one invocation. Writes `result.json` and `burst.png`.
//!
//! Rate and cost: each server under test (pipeline, direct baseline, bare no-op) runs in its
//! own child process, so its CPU (user + system, `/proc/<pid>/stat`, see `crate::cpu`) is read
//! before and after it serves the *same* burst schedule from the *same* generator — the
//! generator's own CPU, in this process, is never counted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http::header::HeaderValue;
use http::Method;
use indicatif::{ProgressBar, ProgressStyle};
use infra::{LogUrl, StoreUrl};
use schemas::{DayOffset, DeviceId, Timestamp};
use seams::auth::Auth;
use serde::Serialize;

use crate::chart::{self, Sample};
use crate::cpu::{self, opt};
use crate::load::{self, LoadConfig, Outcome, Prepared};

#[derive(Debug, Args)]
pub(crate) struct BurstArgs {
    /// Devices, one digest report each.
    #[arg(long, default_value_t = 100_000)]
    devices: usize,
    /// The burst arrives within this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
    /// Where result.json and burst.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Report log of the server under test.
    #[arg(long = "log", default_value = "embedded")]
    log: LogUrl,
    /// Projection store of the server under test (and of the direct baseline).
    #[arg(long = "store", default_value = "embedded")]
    store: StoreUrl,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Background traffic (event starts and ends) in requests per second, alongside the burst.
    #[arg(long, default_value_t = 200)]
    background_rps: u64,
    /// How long the direct baseline may take before unfinished requests count as failed.
    #[arg(long, default_value_t = 30)]
    direct_budget_s: u64,
    /// Seconds of closed-loop saturation for the bare-HTTP ceiling.
    #[arg(long, default_value_t = 3)]
    bare_secs: u64,
    /// Skip the direct baseline (its fields are then null).
    #[arg(long)]
    skip_direct: bool,
    /// Ship to this repository while serving (`run --replicate-to`; repeatable; `s3://…` takes
    /// its endpoint and credentials from DAYBOOK_BACKUP_S3_ENDPOINT and the AWS variables):
    /// the run then reports each record's time from append to stored in the first one.
    #[arg(long)]
    replicate_to: Vec<String>,
    /// With `--log kafka://…`: also run the same burst on the embedded log in this invocation
    /// (`ratio_vs_embedded`, `cpu_ratio_vs_embedded`, its own projection time).
    #[arg(long)]
    with_embedded: bool,
    /// The projector's ceiling on store rows per second (`--max-rows-per-s` of the server;
    /// 0: unpaced). The projection cannot finish before rows ÷ this.
    #[arg(long, default_value_t = 25_000)]
    max_rows_per_s: u64,
    /// Subscribe a receiver (in this process) to `person` event starts before the burst; the
    /// background traffic has them. The run then reports when the receiver had every accepted
    /// one (`notify_caught_up_ms`, after the burst's end).
    #[arg(long)]
    subscribe_person: bool,
    /// With `--log kafka://…`: how many times the raw read and the replay of the run's records
    /// run, in turn (their medians are reported: one replay varies by 2× here).
    #[arg(long, default_value_t = 3)]
    replays: usize,
    /// With `--log kafka://…`: seconds to wait after the burst's projection before the raw read
    /// and the replays (to see whether the broker reads back a burst it just took slower).
    #[arg(long, default_value_t = 0)]
    replay_after_s: u64,
    /// The Kafka broker's process, whose CPU is reported beside the server's (default: the
    /// process listening on the first broker's port on this machine, if any).
    #[arg(long)]
    broker_pid: Option<u32>,
}

/// `result.json` (its keys are a contract).
#[derive(Debug, Serialize)]
struct BurstResult {
    devices: usize,
    window_ms: u64,
    reports_sent: usize,
    accepted: usize,
    lost: usize,
    errors_5xx: usize,
    answers_by_status: HashMap<String, usize>,
    retries: u64,
    accept_p50_ms: f64,
    accept_p99_ms: f64,
    accept_p999_ms: f64,
    accept_max_ms: f64,
    projection_complete_ms: f64,
    /// The server's `--max-rows-per-s` (0: unpaced).
    max_rows_per_s: u64,
    /// Store rows the projector wrote for the run.
    projection_rows: f64,
    /// What pacing alone allows the projection: rows ÷ `max_rows_per_s` + 1 s, ms (the
    /// projection target is ≤ max(5 s, this) after the burst).
    pacing_limit_ms: Option<f64>,
    pipeline_accepted_per_s: f64,
    direct_accepted_per_s: Option<f64>,
    direct_accepted: Option<usize>,
    direct_accept_p99_ms: Option<f64>,
    ratio_vs_direct: Option<f64>,
    bare_http_per_s: f64,
    ratio_vs_bare_http: f64,
    peak_rss_mib: f64,
    store_rows_per_s: f64,
    background_sent: usize,
    background_accepted: usize,
    /// Embedded log: mean records per group commit (one fsync each) during the run.
    group_commit_mean_records: Option<f64>,
    /// Embedded log: number of group commits during the run.
    group_commits: Option<f64>,
    /// With `--log kafka://…`: the same reports produced straight to the broker by a plain
    /// rdkafka producer (idempotent, acks=all), records/s.
    kafka_raw_produce_per_s: Option<f64>,
    /// Its p99 delivery latency.
    kafka_raw_produce_p99_ms: Option<f64>,
    /// `pipeline_accepted_per_s / kafka_raw_produce_per_s`.
    ratio_vs_kafka_raw: Option<f64>,
    /// With Kafka: the run's records (the topic up to its watermarks after the run) read by a
    /// raw rdkafka consumer with the projectors' settings, seconds from assignment to the last.
    kafka_raw_consume_s: Option<f64>,
    kafka_raw_consume_records: Option<u64>,
    /// The same read from its first record (the fetch pipeline without its start-up).
    kafka_raw_consume_after_first_s: Option<f64>,
    /// The same records projected again by a fresh all-in-one (new group, empty store,
    /// unpaced) from the filled topic: seconds from its group's assignment to the last one.
    kafka_replay_projection_s: Option<f64>,
    /// That projector's store writes' own time (sum of `daybook_projector_write_seconds`).
    kafka_replay_store_apply_s: Option<f64>,
    kafka_replay_records: Option<u64>,
    /// `kafka_replay_projection_s / max(kafka_raw_consume_s, kafka_replay_store_apply_s)`.
    kafka_replay_ratio_vs_bound: Option<f64>,
    /// That replay's server CPU per record, µs.
    kafka_replay_cpu_us_per_record: Option<f64>,
    /// With `--replays N`, the raw read and the replay run N times in turn (the `kafka_raw_*`
    /// and `kafka_replay_*` figures above are their medians): each run's seconds.
    kafka_raw_consume_runs_s: Vec<f64>,
    kafka_replay_runs_s: Vec<f64>,
    /// Each replay's progress: (ms since its assignment, records projected) at each change.
    kafka_replay_progress: Vec<Vec<(f64, u64)>>,
    /// The broker's process, and its CPU per accepted report over the run's span (the same
    /// span as `cpu_us_per_report`; the broker is another process and not in that figure).
    broker_pid: Option<u32>,
    broker_cpu_us_per_report: Option<f64>,
    /// With `--with-embedded`: the same burst on the embedded log in the same invocation.
    embedded_accepted_per_s: Option<f64>,
    embedded_accepted: Option<usize>,
    embedded_lost: Option<usize>,
    embedded_cpu_us_per_report: Option<f64>,
    embedded_projection_complete_ms: Option<f64>,
    embedded_accept_p99_ms: Option<f64>,
    /// `pipeline_accepted_per_s / embedded_accepted_per_s`.
    ratio_vs_embedded: Option<f64>,
    /// `cpu_us_per_report / embedded_cpu_us_per_report`.
    cpu_ratio_vs_embedded: Option<f64>,
    /// The all-in-one's cost per accepted report from the burst's start until every accepted
    /// report is projected (ingest, log, projector and the 100 ms `/metrics` scrapes; the
    /// background events count as reports too), beside the bare no-op server's per answered
    /// request of the same burst schedule.
    #[serde(flatten)]
    cost: cpu::Cost,
    /// The direct baseline's CPU per accepted report, µs, over its run (null when skipped).
    direct_cpu_us_per_report: Option<f64>,
    /// Accept p99 of the bare no-op server under the same burst schedule.
    bare_accept_p99_ms: f64,
    /// Bare no-op answers (2xx) to the burst schedule, and their rate (first send to last answer).
    bare_accepted: usize,
    bare_accepted_per_s: f64,
    /// Raw CPU seconds behind the direct baseline's figure.
    direct_cpu_s: Option<f64>,
    log: String,
    store: String,
    connections: usize,
    /// With `--replicate-to`: the repositories, and over every record of the run, the time
    /// from its append to its piece being stored in the first one (p50, p99, max, seconds).
    replicate_to: Vec<String>,
    replica_delay_p50_s: Option<f64>,
    replica_delay_p99_s: Option<f64>,
    replica_delay_max_s: Option<f64>,
    /// With `--subscribe-person`: accepted `person` starts of the background traffic, and
    /// when the receiver had every one of them, ms after the burst's end.
    subscribed_person: bool,
    notify_expected: Option<usize>,
    notify_caught_up_ms: Option<f64>,
}

/// A server under test: this binary again (`serve` or `noop`) as a child process.
pub(crate) struct Server {
    child: Child,
    pub(crate) http: SocketAddr,
}

/// A server's CPU time measured over a span: `Server::cpu_span`, then `used`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSpan {
    pid: u32,
    at_start: Duration,
    switches_at_start: u64,
}

impl CpuSpan {
    /// CPU the server has used since the span began.
    pub(crate) fn used(&self) -> Duration {
        crate::cpu::process_cpu(self.pid).saturating_sub(self.at_start)
    }

    /// CPU and context switches (`cpu::context_switches`) since the span began.
    pub(crate) fn spent(&self) -> cpu::Spent {
        let switches = cpu::context_switches(self.pid).saturating_sub(self.switches_at_start);
        cpu::Spent { cpu: self.used(), switches }
    }
}

impl Server {
    pub(crate) fn start(args: &[String], secret: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("own executable")?;
        let mut child = Command::new(exe)
            .args(args)
            .env("DAYBOOK_TOKEN_SECRET", secret)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start server")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("server said {line:?}"))?;
        let http = v["http"].as_str().context("no http address")?.parse()?;
        Ok(Self { child, http })
    }

    /// Starts measuring the server process's CPU (user + system) from now.
    pub(crate) fn cpu_span(&self) -> CpuSpan {
        let pid = self.child.id();
        CpuSpan { pid, at_start: crate::cpu::process_cpu(pid), switches_at_start: crate::cpu::context_switches(pid) }
    }

    /// Peak resident set (VmHWM) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Current resident set (VmRSS) in MiB.
    pub(crate) fn rss_mib(&self) -> f64 {
        crate::cpu::rss_mib(self.child.id())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sums every sample of the named metrics in a Prometheus text page.
pub(crate) async fn scrape(addr: SocketAddr, names: &[&str]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let Ok(body) = http_get(addr, "/metrics", None).await else { return out };
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.rsplit_once(' ') {
            Some(kv) => kv,
            None => continue,
        };
        let name = key.split('{').next().unwrap_or(key);
        if names.contains(&name) {
            *out.entry(name.to_owned()).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    out
}

async fn http_get(addr: SocketAddr, path: &str, auth: Option<&HeaderValue>) -> anyhow::Result<String> {
    Getter::new(addr).get(path, auth).await
}

/// GETs over one kept-alive connection (reconnecting after errors).
pub(crate) struct Getter {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Empty<Bytes>>>,
}

impl Getter {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    pub(crate) async fn get(&mut self, path: &str, auth: Option<&HeaderValue>) -> anyhow::Result<String> {
        use http_body_util::{BodyExt, Empty};
        if self.sender.is_none() {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        let mut req = http::Request::get(path).header(http::header::HOST, self.addr.to_string());
        if let Some(a) = auth {
            req = req.header(http::header::AUTHORIZATION, a.clone());
        }
        let result = async {
            sender.ready().await?;
            let resp = sender.send_request(req.body(Empty::<Bytes>::new())?).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::ensure!(status.is_success(), "GET {path}: {status}");
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// Waits until the server's notifier reads the log for each of `n` subscriptions (each has
/// reported its lag).
pub(crate) async fn wait_notifier(addr: SocketAddr, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = Getter::new(addr).get("/metrics", None).await.unwrap_or_default();
        let ready = body.lines().filter(|l| l.starts_with("daybook_notify_lag_records{")).count();
        if ready >= n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the notifier took up {ready} of {n} subscriptions in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) const ACCEPTED: &str = "daybook_ingest_reports_accepted_total";
pub(crate) const PROJECTED: &str = "daybook_projector_reports_total";
pub(crate) const ROWS: &str = "daybook_projector_rows_total";
const REBALANCES: &str = "daybook_kafka_rebalances_total";

pub(crate) fn sampler(
    addr: SocketAddr,
    start: Instant,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !*stop.borrow() {
            tick.tick().await;
            let m = scrape(addr, &[ACCEPTED, PROJECTED, ROWS]).await;
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            samples.push(Sample {
                t: start.elapsed().as_secs_f64(),
                accepted: get(ACCEPTED),
                projected: get(PROJECTED),
                rows: get(ROWS),
            });
        }
        samples
    })
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

struct Fleet {
    requests: Arc<Vec<Prepared>>,
    cids: Vec<DeviceId>,
    date: String,
}

/// Every device's digest report for yesterday.
fn digest_fleet(auth: &Auth, n: usize) -> Fleet {
    let date = DayOffset::default().today().add_days(-1).to_string();
    let mut cids = Vec::with_capacity(n);
    let requests = (0..n)
        .map(|i| {
            let cid = DeviceId::parse(&format!("dev-{i:07}")).expect("valid id");
            let token = auth.device_token(&cid, Duration::from_secs(6 * 3600));
            let body = serde_json::json!({"date": date, "segment_id": format!("dg-{i}"), "size": 4_000_000 + i, "duration_ms": 60_000});
            let p = Prepared {
                method: Method::POST,
                path: format!("/v1/devices/{cid}/digests"),
                auth: HeaderValue::from_str(&format!("Bearer {token}")).expect("token is a header value"),
                body: Bytes::from(body.to_string()),
            };
            cids.push(cid);
            p
        })
        .collect();
    Fleet { requests: Arc::new(requests), cids, date }
}

/// The fleet's digest reports as the log records ingest would append.
fn fleet_records(fleet: &Fleet) -> Vec<seams::LogRecord> {
    let date = schemas::Day::parse(&fleet.date).expect("valid date");
    fleet
        .cids
        .iter()
        .enumerate()
        .map(|(i, cid)| {
            let report = schemas::Report::DigestReported(schemas::DigestReported {
                cid: cid.clone(),
                date,
                utc_offset: schemas::DayOffset::default(),
                segment_id: schemas::SegmentId::parse(&format!("dg-{i}")).expect("valid id"),
                size: 4_000_000 + i as u64,
                duration_ms: 60_000,
            });
            seams::LogRecord::of(&schemas::Envelope::new(report, Timestamp::now()))
        })
        .collect()
}

/// A time as RFC 3339 with an explicit `+00:00` offset, not `Z`: a start sent as `Z` gets the
/// version 1 id (no offset), while `EventId::new(…, DayOffset::default())` — the id the ends,
/// segments and checks name — is the `+0000` form the server gives a start that states its
/// offset (docs/data-model.md).
pub(crate) fn at_utc_offset(t: Timestamp) -> String {
    let s = t.to_string();
    match s.strip_suffix('Z') {
        Some(head) => format!("{head}+00:00"),
        None => s,
    }
}

/// Requests, their schedule, and what each one reports (device, event id, is-an-end).
type Background = (Arc<Vec<Prepared>>, Vec<Duration>, Vec<(DeviceId, String, bool)>);

/// The event type of the background's request `i` (its start at even `i`, its end after it):
/// every other event is a person (what a `--subscribe-person` run delivers).
fn background_type(i: usize) -> &'static str {
    if (i / 2).is_multiple_of(2) {
        "person"
    } else {
        "motion"
    }
}

/// Daytime background: event starts (person and motion in turn), then their ends, from 1000
/// other devices.
fn background(auth: &Auth, rps: u64, seconds: u64) -> Background {
    let n = (rps * seconds) as usize;
    let mut reqs = Vec::with_capacity(n);
    let mut schedule = Vec::with_capacity(n);
    let mut ids = Vec::new();
    let now = Timestamp::now();
    for i in 0..n {
        let cid = DeviceId::parse(&format!("bg-{:04}", (i / 2) % 1000)).expect("valid id");
        let token =
            HeaderValue::from_str(&format!("Bearer {}", auth.device_token(&cid, Duration::from_secs(6 * 3600))))
                .expect("header");
        let triggered = now.plus_millis(-60_000 - (i / 2) as i64);
        let type_name = background_type(i);
        let kind = schemas::EventType::parse(type_name).expect("valid type");
        let id = schemas::EventId::new(&cid, &kind, triggered, DayOffset::default()).expect("valid id");
        let (path, body) = if i % 2 == 0 {
            (
                format!("/v1/devices/{cid}/events"),
                serde_json::json!({"type": type_name, "triggered_at": at_utc_offset(triggered)}),
            )
        } else {
            (
                format!("/v1/devices/{cid}/events/{id}/end"),
                serde_json::json!({"ended_at": at_utc_offset(now), "status": "complete"}),
            )
        };
        ids.push((cid, id.to_string(), i % 2 == 1));
        reqs.push(Prepared { method: Method::POST, path, auth: token, body: Bytes::from(body.to_string()) });
        schedule.push(Duration::from_secs_f64(i as f64 / rps.max(1) as f64));
    }
    (Arc::new(reqs), schedule, ids)
}

pub(crate) fn percentile_ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Latency histogram (µs) of accepted outcomes, from their scheduled send time.
pub(crate) fn latencies(outcomes: &[Outcome]) -> hdrhistogram::Histogram<u64> {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
    for o in outcomes.iter().filter(|o| o.accepted()) {
        h.saturating_record(o.done.saturating_sub(o.scheduled).as_micros() as u64);
    }
    h
}

/// Accepted per second over the burst: from its first scheduled send to its last acceptance.
pub(crate) fn accepted_per_s(outcomes: &[Outcome]) -> f64 {
    let ok: Vec<_> = outcomes.iter().filter(|o| o.accepted()).collect();
    let first = outcomes.iter().map(|o| o.scheduled).min().unwrap_or_default();
    let last = ok.iter().map(|o| o.done).max().unwrap_or_default();
    let span = last.saturating_sub(first).as_secs_f64().max(1e-3);
    ok.len() as f64 / span
}

pub(crate) async fn run(a: BurstArgs) -> anyhow::Result<()> {
    burst(a).await
}

struct Phase {
    outcomes: Vec<Outcome>,
    samples: Vec<Sample>,
}

/// `serve` (the all-in-one, as `daybook run`) on port 0 in `dir`; `--direct` for the baseline.
pub(crate) fn server_args(dir: &Path, log: &LogUrl, store: &StoreUrl, direct: bool) -> Vec<String> {
    let mut v: Vec<String> =
        ["serve", "--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"].map(String::from).to_vec();
    if direct {
        v.push("--direct".into());
    }
    v.extend([
        "--data-dir".into(),
        dir.display().to_string(),
        "--log".into(),
        log.to_string(),
        "--store".into(),
        store.to_string(),
    ]);
    v
}

/// One run of the all-in-one on `log` under the burst (with background traffic alongside),
/// up to every accepted report projected and read back.
struct PipelineRun {
    phase: Phase,
    bg_outcomes: Vec<Outcome>,
    burst_end: Duration,
    projection_done: Duration,
    spent: cpu::Spent,
    /// The broker's CPU over the same span (Kafka, when its process was found).
    broker_cpu: Option<Duration>,
    lost: usize,
    peak_rss_mib: f64,
    group_commits: Option<f64>,
    group_commit_mean_records: Option<f64>,
    /// Store rows written by the end of the projection.
    rows: f64,
    /// With `--subscribe-person`: the accepted person starts, and when the receiver had them
    /// all (after the burst's end).
    notified: Option<(usize, Duration)>,
}

impl PipelineRun {
    fn accepted(&self) -> usize {
        self.phase.outcomes.iter().filter(|o| o.accepted()).count()
    }

    fn background_accepted(&self) -> usize {
        self.bg_outcomes.iter().filter(|o| o.accepted()).count()
    }

    fn cpu_us_per_report(&self) -> Option<f64> {
        cpu::us_per(self.spent.cpu, self.accepted() + self.background_accepted())
    }

    fn projection_complete_ms(&self) -> f64 {
        self.projection_done.saturating_sub(self.burst_end).as_secs_f64() * 1000.0
    }
}

/// The shared inputs of every run of one invocation.
struct Setup<'a> {
    a: &'a BurstArgs,
    secret: &'a str,
    auth: &'a Auth,
    fleet: &'a Fleet,
    schedule: &'a [Duration],
    load: &'a LoadConfig,
    lead: Duration,
}

/// The broker's process when `log` is Kafka: `--broker-pid`, else whoever listens on the
/// first broker's port here.
fn broker_pid(a: &BurstArgs, log: &LogUrl) -> Option<u32> {
    let LogUrl::Kafka(url) = log else { return None };
    a.broker_pid.or_else(|| {
        let config = infra::kafka::KafkaConfig::from_url(url).ok()?;
        let first = config.brokers.split(',').next()?;
        let port: u16 = first.rsplit_once(':')?.1.parse().ok()?;
        cpu::listening_pid(port)
    })
}

async fn pipeline(s: &Setup<'_>, log: &LogUrl, label: &str) -> anyhow::Result<PipelineRun> {
    let a = s.a;
    let dir = tempfile_dir("daybook")?;
    let mut args = server_args(&dir, log, &a.store, false);
    args.extend(["--max-rows-per-s".into(), a.max_rows_per_s.to_string()]);
    for to in &a.replicate_to {
        args.extend(["--replicate-to".into(), to.clone()]);
    }
    if a.subscribe_person {
        args.extend(["--notify-allow-http".into(), "--notify-allow-private".into()]);
    }
    let server = Server::start(&args, s.secret)?;
    let receiver = match a.subscribe_person {
        true => {
            let r = crate::hooks::Receiver::good().await?;
            crate::hooks::subscribe(&dir, &r.url(), &["--kind", "event_started", "--type", "person"])?;
            wait_notifier(server.http, 1).await?;
            Some(r)
        }
        false => None,
    };
    let cfg = LoadConfig { addr: server.http, ..s.load.clone() };
    let (bg_reqs, bg_schedule, bg_ids) = background(s.auth, a.background_rps, a.window_ms.div_ceil(1000).max(1));
    let start = Instant::now() + s.lead;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let samples = sampler(server.http, start, stop_rx);
    let bg = {
        let cfg = LoadConfig { connections: 8, deadline: Duration::from_secs(60), ..cfg.clone() };
        tokio::spawn(load::open_loop(cfg, bg_reqs, bg_schedule, start, |_| {}))
    };
    let pb = bar(a.devices as u64, label);
    let broker = broker_pid(a, log);
    let broker_at_start = broker.map(cpu::process_cpu);
    let span = server.cpu_span();
    let outcomes = load::open_loop(cfg.clone(), s.fleet.requests.clone(), s.schedule.to_vec(), start, |n| {
        pb.set_position(n as u64)
    })
    .await;
    pb.finish();
    let burst_end = outcomes.iter().map(|o| o.done).max().unwrap_or_default();
    let bg_outcomes = bg.await?;
    // Every accepted report (burst and background) must become queryable.
    let want =
        (outcomes.iter().filter(|o| o.accepted()).count() + bg_outcomes.iter().filter(|o| o.accepted()).count()) as f64;
    let pb = bar(want as u64, "projected");
    let projection_done = loop {
        let m = scrape(server.http, &[PROJECTED]).await;
        let projected = m.get(PROJECTED).copied().unwrap_or(0.0);
        pb.set_position(projected as u64);
        if projected >= want {
            break start.elapsed();
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(300), "projection did not complete in 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    pb.finish();
    // The pipeline's cost: everything it did for these reports up to their projection (the
    // verification reads below are not part of it).
    let spent = span.spent();
    let broker_cpu = broker.zip(broker_at_start).map(|(pid, at)| cpu::process_cpu(pid).saturating_sub(at));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let samples = samples.await?;
    let gc =
        scrape(server.http, &["daybook_log_group_commit_records_sum", "daybook_log_group_commit_records_count", ROWS])
            .await;
    let group_commits = gc.get("daybook_log_group_commit_records_count").copied().filter(|n| *n > 0.0);
    let group_commit_mean_records =
        group_commits.map(|n| gc.get("daybook_log_group_commit_records_sum").copied().unwrap_or(0.0) / n);
    let rows = gc.get(ROWS).copied().unwrap_or(0.0);
    let notified = match &receiver {
        Some(r) => {
            let want = bg_outcomes
                .iter()
                .filter(|o| o.accepted() && o.idx % 2 == 0 && background_type(o.idx) == "person")
                .count();
            let deadline = Instant::now() + Duration::from_secs(120);
            while r.distinct() < want {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} of {want} person starts notified in 120 s",
                    r.distinct()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let last = r.last_arrival().map_or(Duration::ZERO, |t| t.saturating_duration_since(start));
            Some((want, last))
        }
        None => None,
    };
    let lost = count_lost(&server, s.auth, s.fleet, &outcomes, &bg_ids, &bg_outcomes).await?;
    let peak_rss_mib = server.peak_rss_mib();
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(PipelineRun {
        phase: Phase { outcomes, samples },
        bg_outcomes,
        burst_end,
        projection_done,
        spent,
        broker_cpu,
        lost,
        peak_rss_mib,
        group_commits,
        group_commit_mean_records,
        rows,
        notified,
    })
}

/// What the Kafka path's projection is compared with: the topic's records read raw, and the
/// same records projected by a fresh projector from the start of the filled topic, unpaced.
#[derive(Debug, Clone)]
struct KafkaReplay {
    raw: crate::raw::RawConsume,
    /// From the fresh projector's partition assignment to every record projected.
    projection_s: f64,
    /// Its store writes' own time (sum of `daybook_projector_write_seconds`).
    store_apply_s: f64,
    records: u64,
    cpu_us_per_record: Option<f64>,
    /// (ms since the assignment, records projected), at each change.
    progress: Vec<(f64, u64)>,
}

/// Reads the records the Kafka run left in the topic (`until`: the watermarks after it) raw,
/// then projects them again with a fresh all-in-one (a new consumer group, an empty store,
/// unpaced, read-ahead as configured) and times that from its group's assignment.
async fn kafka_replay_once(
    s: &Setup<'_>,
    url: &str,
    until: &std::collections::HashMap<i32, i64>,
) -> anyhow::Result<KafkaReplay> {
    let config = infra::kafka::KafkaConfig::from_url(url)?.with_properties(infra::kafka::properties_from_env());
    let pb = ProgressBar::new_spinner();
    pb.set_message("raw kafka consume");
    pb.enable_steady_tick(Duration::from_millis(100));
    let raw = crate::raw::raw_consume(&config, until).await?;
    pb.finish_and_clear();
    let records: i64 = until.values().sum();
    let dir = tempfile_dir("prefilled")?;
    let mut args = server_args(&dir, &LogUrl::Kafka(url.to_owned()), &s.a.store, false);
    let group = format!("bench-prefilled-{}", uuid::Uuid::new_v4().simple());
    args.extend(["--max-rows-per-s".into(), "0".into(), "--group".into(), group]);
    let server = Server::start(&args, s.secret)?;
    let span = server.cpu_span();
    let pb = bar(records as u64, "replay");
    let started = Instant::now();
    let mut assigned = None;
    let mut progress: Vec<(f64, u64)> = Vec::new();
    let done = loop {
        let m = scrape(server.http, &[PROJECTED, REBALANCES]).await;
        if assigned.is_none() && m.get(REBALANCES).copied().unwrap_or(0.0) > 0.0 {
            assigned = Some(Instant::now());
        }
        let projected = m.get(PROJECTED).copied().unwrap_or(0.0);
        pb.set_position(projected as u64);
        if let Some(at) = assigned {
            if progress.last().is_none_or(|p| p.1 != projected as u64) {
                progress.push((at.elapsed().as_secs_f64() * 1000.0, projected as u64));
            }
        }
        if projected >= records as f64 {
            break Instant::now();
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(300), "replay did not complete in 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    pb.finish();
    let cpu = span.used();
    let m = scrape(server.http, &["daybook_projector_write_seconds_sum"]).await;
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(KafkaReplay {
        raw,
        projection_s: done.duration_since(assigned.unwrap_or(started)).as_secs_f64(),
        store_apply_s: m.get("daybook_projector_write_seconds_sum").copied().unwrap_or(0.0),
        records: records as u64,
        cpu_us_per_record: cpu::us_per(cpu, records as usize),
        progress,
    })
}

/// [`kafka_replay_once`] `--replays` times (the raw read and the replay in turn; one replay
/// of the same records varied by 2× here): each run's figures, and their medians.
async fn kafka_replay(
    s: &Setup<'_>,
    url: &str,
    until: &std::collections::HashMap<i32, i64>,
) -> anyhow::Result<(KafkaReplay, Vec<KafkaReplay>)> {
    let mut runs = Vec::new();
    for _ in 0..s.a.replays.max(1) {
        runs.push(kafka_replay_once(s, url, until).await?);
    }
    let median = |f: &dyn Fn(&KafkaReplay) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mid = KafkaReplay {
        raw: crate::raw::RawConsume {
            records: runs[0].raw.records,
            seconds: median(&|r| r.raw.seconds),
            after_first_s: median(&|r| r.raw.after_first_s),
        },
        projection_s: median(&|r| r.projection_s),
        store_apply_s: median(&|r| r.store_apply_s),
        records: runs[0].records,
        cpu_us_per_record: runs
            .iter()
            .all(|r| r.cpu_us_per_record.is_some())
            .then(|| median(&|r| r.cpu_us_per_record.unwrap_or(0.0))),
        progress: Vec::new(),
    };
    Ok((mid, runs))
}

async fn burst(a: BurstArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let auth = Auth::new(secret.as_bytes());
    eprintln!("preparing {} device reports …", a.devices);
    let fleet = digest_fleet(&auth, a.devices);
    let window = Duration::from_millis(a.window_ms);
    let schedule: Vec<Duration> = (0..a.devices).map(|i| window.mul_f64(i as f64 / a.devices.max(1) as f64)).collect();
    let load = LoadConfig {
        addr: "127.0.0.1:0".parse()?,
        connections: a.connections,
        timeout: Duration::from_secs(10),
        max_retries: 8,
        max_backoff: Duration::from_secs(2),
        deadline: Duration::from_secs(120),
    };
    let lead = Duration::from_millis(500);
    let setup = Setup { a: &a, secret: &secret, auth: &auth, fleet: &fleet, schedule: &schedule, load: &load, lead };

    // 1. daybook on the log under test, with background traffic alongside.
    let label = match &a.log {
        LogUrl::Kafka(_) => "kafka",
        _ => "daybook",
    };
    let run = pipeline(&setup, &a.log, label).await?;
    let daybook = &run.phase;
    let projection_done = run.projection_done;
    let delays = match a.replicate_to.first() {
        Some(to) => {
            let s3 = daybook::backup::S3Options {
                endpoint: std::env::var("DAYBOOK_BACKUP_S3_ENDPOINT").ok(),
                region: std::env::var("DAYBOOK_BACKUP_S3_REGION").ok(),
            };
            let to = to.clone();
            let d = tokio::task::spawn_blocking(move || daybook::backup::ship::ship_delays(&to, None, &s3)).await??;
            let mut v: Vec<f64> = d.into_values().collect();
            v.sort_by(f64::total_cmp);
            anyhow::ensure!(!v.is_empty(), "nothing was shipped");
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            Some((q(0.5), q(0.99), v[v.len() - 1]))
        }
        None => None,
    };

    // 1b. With Kafka: the broker's own ceilings for the same reports, without daybook — the
    //     run's records read back raw and projected again from the filled topic, then the
    //     same reports produced raw — and, when asked, the embedded path under the same burst.
    let (kafka_raw, replay) = match &a.log {
        LogUrl::Kafka(url) => {
            let config = infra::kafka::KafkaConfig::from_url(url)?.with_properties(infra::kafka::properties_from_env());
            let until = crate::raw::high_watermarks(&config).await?;
            if a.replay_after_s > 0 {
                eprintln!("waiting {} s before the replays …", a.replay_after_s);
                tokio::time::sleep(Duration::from_secs(a.replay_after_s)).await;
            }
            let (replay, replay_runs) = kafka_replay(&setup, url, &until).await?;
            let records = fleet_records(&fleet);
            let pb = ProgressBar::new_spinner();
            pb.set_message("raw kafka produce");
            pb.enable_steady_tick(Duration::from_millis(100));
            let r = crate::raw::raw_produce(&config, &records).await?;
            pb.finish_and_clear();
            (Some(r), Some((replay, replay_runs)))
        }
        _ => (None, None),
    };
    let (replay, replay_runs) = match replay {
        Some((mid, runs)) => (Some(mid), runs),
        None => (None, Vec::new()),
    };
    let embedded = if a.with_embedded && matches!(a.log, LogUrl::Kafka(_)) {
        Some(pipeline(&setup, &LogUrl::Embedded, "embedded").await?)
    } else {
        None
    };

    // 2. The direct baseline on the same store: every request writes the store before answering.
    let direct = if a.skip_direct {
        None
    } else {
        let dir = tempfile_dir("direct")?;
        let server = Server::start(&server_args(&dir, &LogUrl::Embedded, &a.store, true), &secret)?;
        let cfg = LoadConfig { addr: server.http, deadline: Duration::from_secs(a.direct_budget_s), ..load.clone() };
        let start = Instant::now() + lead;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let samples = sampler(server.http, start, stop_rx);
        let pb = bar(a.devices as u64, "direct");
        let span = server.cpu_span();
        let outcomes =
            load::open_loop(cfg, fleet.requests.clone(), schedule.clone(), start, |n| pb.set_position(n as u64)).await;
        let direct_cpu = span.used();
        pb.finish();
        let _ = stop_tx.send(true);
        let samples = samples.await?;
        server.stop();
        let _ = std::fs::remove_dir_all(&dir);
        Some((Phase { outcomes, samples }, direct_cpu))
    };
    let (direct, direct_cpu) = match direct {
        Some((phase, cpu)) => (Some(phase), Some(cpu)),
        None => (None, None),
    };

    // 3. The bare HTTP no-op handler: first the same burst schedule from the same generator
    //    (its CPU per request and its accept p99: the floor of what any server pays), then
    //    saturated with the same requests (the machine's ceiling).
    let (bare, bare_outcomes, bare_spent) = {
        let server = Server::start(&["noop".into()], &secret)?;
        let cfg = LoadConfig { addr: server.http, ..load.clone() };
        let start = Instant::now() + lead;
        let pb = bar(a.devices as u64, "bare");
        let span = server.cpu_span();
        let outcomes = load::open_loop(cfg.clone(), fleet.requests.clone(), schedule.clone(), start, |n| {
            pb.set_position(n as u64)
        })
        .await;
        let bare_spent = span.spent();
        pb.finish();
        let pb = ProgressBar::new_spinner();
        pb.set_message("bare http ceiling");
        pb.enable_steady_tick(Duration::from_millis(100));
        let per_s = load::saturate(cfg, fleet.requests.clone(), Duration::from_secs(a.bare_secs)).await;
        pb.finish_and_clear();
        server.stop();
        (per_s, outcomes, bare_spent)
    };

    let h = latencies(&daybook.outcomes);
    let accepted = run.accepted();
    let mut by_status = HashMap::new();
    for o in &daybook.outcomes {
        *by_status.entry(o.status.to_string()).or_insert(0) += 1;
    }
    let unresolved = a.devices - daybook.outcomes.len();
    if unresolved > 0 {
        by_status.insert("unresolved".into(), unresolved);
    }
    let pipeline = accepted_per_s(&daybook.outcomes);
    let direct_per_s = direct.as_ref().map(|d| accepted_per_s(&d.outcomes));
    let rows = rows_per_s(&daybook.samples, projection_done);
    let background_accepted = run.background_accepted();
    let direct_accepted = direct.as_ref().map(|d| d.outcomes.iter().filter(|o| o.accepted()).count());
    let bare_accepted = bare_outcomes.iter().filter(|o| o.accepted()).count();
    let cost = cpu::Cost::of(run.spent, accepted + background_accepted, bare_spent, bare_accepted);
    let embedded_per_s = embedded.as_ref().map(|e| accepted_per_s(&e.phase.outcomes));
    let embedded_cpu = embedded.as_ref().and_then(PipelineRun::cpu_us_per_report);
    let broker_cpu_us_per_report = run.broker_cpu.and_then(|c| cpu::us_per(c, accepted + background_accepted));
    let result = BurstResult {
        devices: a.devices,
        window_ms: a.window_ms,
        reports_sent: a.devices,
        accepted,
        lost: run.lost,
        errors_5xx: daybook.outcomes.iter().filter(|o| o.status >= 500).count(),
        answers_by_status: by_status,
        retries: daybook.outcomes.iter().map(|o| u64::from(o.retries)).sum(),
        accept_p50_ms: percentile_ms(&h, 0.5),
        accept_p99_ms: percentile_ms(&h, 0.99),
        accept_p999_ms: percentile_ms(&h, 0.999),
        accept_max_ms: h.max() as f64 / 1000.0,
        projection_complete_ms: run.projection_complete_ms(),
        max_rows_per_s: a.max_rows_per_s,
        projection_rows: run.rows,
        pacing_limit_ms: (a.max_rows_per_s > 0).then(|| (run.rows / a.max_rows_per_s as f64 + 1.0) * 1000.0),
        pipeline_accepted_per_s: pipeline,
        direct_accepted_per_s: direct_per_s,
        direct_accepted,
        direct_accept_p99_ms: direct.as_ref().map(|d| percentile_ms(&latencies(&d.outcomes), 0.99)),
        ratio_vs_direct: direct_per_s.map(|d| pipeline / d.max(1e-9)),
        bare_http_per_s: bare,
        ratio_vs_bare_http: pipeline / bare.max(1e-9),
        peak_rss_mib: run.peak_rss_mib,
        store_rows_per_s: rows,
        background_sent: run.bg_outcomes.len(),
        background_accepted,
        group_commit_mean_records: run.group_commit_mean_records,
        group_commits: run.group_commits,
        kafka_raw_produce_per_s: kafka_raw.map(|r| r.0),
        kafka_raw_produce_p99_ms: kafka_raw.map(|r| r.1.as_secs_f64() * 1000.0),
        ratio_vs_kafka_raw: kafka_raw.map(|r| pipeline / r.0.max(1e-9)),
        kafka_raw_consume_s: replay.as_ref().map(|r| r.raw.seconds),
        kafka_raw_consume_records: replay.as_ref().map(|r| r.raw.records),
        kafka_raw_consume_after_first_s: replay.as_ref().map(|r| r.raw.after_first_s),
        kafka_replay_projection_s: replay.as_ref().map(|r| r.projection_s),
        kafka_replay_store_apply_s: replay.as_ref().map(|r| r.store_apply_s),
        kafka_replay_records: replay.as_ref().map(|r| r.records),
        kafka_replay_ratio_vs_bound: replay
            .as_ref()
            .map(|r| r.projection_s / r.raw.seconds.max(r.store_apply_s).max(1e-9)),
        kafka_replay_cpu_us_per_record: replay.as_ref().and_then(|r| r.cpu_us_per_record),
        kafka_raw_consume_runs_s: replay_runs.iter().map(|r| r.raw.seconds).collect(),
        kafka_replay_runs_s: replay_runs.iter().map(|r| r.projection_s).collect(),
        kafka_replay_progress: replay_runs.iter().map(|r| r.progress.clone()).collect(),
        broker_pid: broker_pid(&a, &a.log),
        broker_cpu_us_per_report,
        embedded_accepted_per_s: embedded_per_s,
        embedded_accepted: embedded.as_ref().map(PipelineRun::accepted),
        embedded_lost: embedded.as_ref().map(|e| e.lost),
        embedded_cpu_us_per_report: embedded_cpu,
        embedded_projection_complete_ms: embedded.as_ref().map(PipelineRun::projection_complete_ms),
        embedded_accept_p99_ms: embedded.as_ref().map(|e| percentile_ms(&latencies(&e.phase.outcomes), 0.99)),
        ratio_vs_embedded: embedded_per_s.map(|e| pipeline / e.max(1e-9)),
        cpu_ratio_vs_embedded: cpu::ratio(cost.cpu_us_per_report, embedded_cpu),
        cost,
        direct_cpu_us_per_report: direct_cpu.zip(direct_accepted).and_then(|(c, n)| cpu::us_per(c, n)),
        bare_accept_p99_ms: percentile_ms(&latencies(&bare_outcomes), 0.99),
        bare_accepted,
        bare_accepted_per_s: accepted_per_s(&bare_outcomes),
        direct_cpu_s: direct_cpu.map(|c| c.as_secs_f64()),
        log: a.log.to_string(),
        store: a.store.to_string(),
        connections: a.connections,
        replicate_to: a.replicate_to.clone(),
        replica_delay_p50_s: delays.map(|d| d.0),
        replica_delay_p99_s: delays.map(|d| d.1),
        replica_delay_max_s: delays.map(|d| d.2),
        subscribed_person: a.subscribe_person,
        notify_expected: run.notified.map(|n| n.0),
        notify_caught_up_ms: run.notified.map(|n| n.1.saturating_sub(run.burst_end).as_secs_f64() * 1000.0),
    };
    let json = serde_json::to_string_pretty(&result)?;
    std::fs::write(a.out.join("result.json"), &json)?;
    let main_title = match &a.log {
        LogUrl::Kafka(_) => "kafka: acknowledged once the brokers have it, projected in batches",
        _ => "daybook: log-acknowledged, projected in batches",
    };
    let main_series = daybook.series();
    let embedded_series = embedded.as_ref().map(|e| e.phase.series());
    let direct_series = direct.as_ref().map(Phase::series);
    let mut panels: Vec<(&str, &chart::Series)> = vec![(main_title, &main_series)];
    if let Some(e) = &embedded_series {
        panels.push(("embedded: the same burst on the embedded log, same invocation", e));
    }
    if let Some(d) = &direct_series {
        panels.push(("direct (no log): every request writes the store", d));
    }
    chart::draw(&a.out.join("burst.png"), &panels, &result_caption(&result))?;
    println!("{json}");
    eprintln!("{}", summary(&result));
    eprintln!("wrote {} and {}", a.out.join("result.json").display(), a.out.join("burst.png").display());
    Ok(())
}

/// The human summary printed after the JSON.
fn summary(r: &BurstResult) -> String {
    format!(
        "burst: {} digests in {} ms, {} accepted ({} lost, {} 5xx), accept p50 {:.1} ms p99 {:.1} ms\n\
         rate: pipeline {:.0}/s, direct {}/s, bare http {:.0}/s (ceiling; {:.2}x)\n\
         cost: server CPU {} µs/report (pipeline), {} µs/report (direct), {} µs/request (bare no-op) — {}x bare; \
         bare accept p99 {:.1} ms under the same schedule\n{}\n{}",
        r.devices,
        r.window_ms,
        r.accepted,
        r.lost,
        r.errors_5xx,
        r.accept_p50_ms,
        r.accept_p99_ms,
        r.pipeline_accepted_per_s,
        opt(r.direct_accepted_per_s, 0),
        r.bare_http_per_s,
        r.ratio_vs_bare_http,
        opt(r.cost.cpu_us_per_report, 1),
        opt(r.direct_cpu_us_per_report, 1),
        opt(r.cost.bare_cpu_us_per_request, 1),
        opt(r.cost.cpu_ratio_vs_bare, 2),
        r.bare_accept_p99_ms,
        r.cost.switches_line(),
        kafka_lines(r),
    )
}

/// The Kafka lines of the human summary (empty on the embedded log).
fn kafka_lines(r: &BurstResult) -> String {
    if r.kafka_raw_produce_per_s.is_none() {
        return format!("projection complete {:.0} ms after the burst", r.projection_complete_ms);
    }
    format!(
        "kafka: ingest {:.0}/s = {}x embedded ({}/s), {}x raw produce ({}/s); CPU {} µs/report = {}x embedded ({} µs), \
         broker {} µs/report\n\
         projection complete {:.0} ms after the burst (embedded {} ms; pacing limit {} ms); \
         replay of {} records: {} s vs raw consume {} s and store apply {} s = {}x the bound",
        r.pipeline_accepted_per_s,
        opt(r.ratio_vs_embedded, 2),
        opt(r.embedded_accepted_per_s, 0),
        opt(r.ratio_vs_kafka_raw, 2),
        opt(r.kafka_raw_produce_per_s, 0),
        opt(r.cost.cpu_us_per_report, 1),
        opt(r.cpu_ratio_vs_embedded, 2),
        opt(r.embedded_cpu_us_per_report, 1),
        opt(r.broker_cpu_us_per_report, 1),
        r.projection_complete_ms,
        opt(r.embedded_projection_complete_ms, 0),
        opt(r.pacing_limit_ms, 0),
        r.kafka_replay_records.unwrap_or(0),
        opt(r.kafka_replay_projection_s, 2),
        opt(r.kafka_raw_consume_s, 2),
        opt(r.kafka_replay_store_apply_s, 2),
        opt(r.kafka_replay_ratio_vs_bound, 2),
    )
}

fn result_caption(r: &BurstResult) -> String {
    format!(
        "{} digests in {} ms on {}: accepted {} (lost {}, 5xx {}), p99 {:.1} ms, pipeline {:.0}/s vs direct {}/s, embedded {}/s, bare http {:.0}/s; CPU {} µs/report ({}x bare); projected {:.0} ms after",
        r.devices,
        r.window_ms,
        r.log,
        r.accepted,
        r.lost,
        r.errors_5xx,
        r.accept_p99_ms,
        r.pipeline_accepted_per_s,
        r.direct_accepted_per_s.map_or("-".into(), |d| format!("{d:.0}")),
        opt(r.embedded_accepted_per_s, 0),
        r.bare_http_per_s,
        opt(r.cost.cpu_us_per_report, 1),
        opt(r.cost.cpu_ratio_vs_bare, 2),
        r.projection_complete_ms,
    )
}

/// Rows written per second between the burst's start and the projection's completion.
fn rows_per_s(samples: &[Sample], done: Duration) -> f64 {
    let done = done.as_secs_f64();
    let first = samples.iter().find(|s| s.t >= 0.0).copied().unwrap_or_default();
    let last = samples.iter().rev().find(|s| s.t <= done + 0.1).copied().unwrap_or_default();
    let span = (last.t - first.t).max(1e-3);
    (last.rows - first.rows) / span
}

impl Phase {
    fn series(&self) -> chart::Series {
        chart::Series::from_phase(&self.outcomes, &self.samples)
    }
}

pub(crate) fn tempfile_dir(what: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("daybook-bench-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Queries the API for every accepted report: a digest must be readable for each accepted
/// device, and each accepted background event must show its start (and end).
async fn count_lost(
    server: &Server,
    auth: &Auth,
    fleet: &Fleet,
    outcomes: &[Outcome],
    bg_ids: &[(DeviceId, String, bool)],
    bg_outcomes: &[Outcome],
) -> anyhow::Result<usize> {
    let mut checks: Vec<(DeviceId, String, Option<bool>)> = outcomes
        .iter()
        .filter(|o| o.accepted())
        .map(|o| {
            let cid = fleet.cids[o.idx].clone();
            let path = format!("/v1/devices/{cid}/digests/{}", fleet.date);
            (cid, path, None)
        })
        .collect();
    for o in bg_outcomes.iter().filter(|o| o.accepted()) {
        let (cid, id, is_end) = &bg_ids[o.idx];
        checks.push((cid.clone(), format!("/v1/events/{id}"), Some(*is_end)));
    }
    let pb = bar(checks.len() as u64, "verify");
    let checks = Arc::new(checks);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lost = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (checks, next, lost, auth, addr, pb) =
            (checks.clone(), next.clone(), lost.clone(), auth.clone(), server.http, pb.clone());
        tasks.push(tokio::spawn(async move {
            let mut getter = Getter::new(addr);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((cid, path, end)) = checks.get(i) else { break };
                let token = HeaderValue::from_str(&format!(
                    "Bearer {}",
                    auth.viewer_token(std::slice::from_ref(cid), Duration::from_secs(600))
                ))
                .expect("header");
                let ok = match getter.get(path, Some(&token)).await {
                    Ok(body) => match end {
                        Some(true) => body.contains("\"status\":\"complete\""),
                        _ => true,
                    },
                    Err(_) => false,
                };
                if !ok {
                    lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                pb.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    pb.finish();
    Ok(lost.load(std::sync::atomic::Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_utc_offset_states_the_offset_and_matches_the_id_the_checks_name() {
        let t = Timestamp::parse_rfc3339("2026-12-01T07:30:00.000Z").expect("valid time");
        assert_eq!(at_utc_offset(t), "2026-12-01T07:30:00.000+00:00");
        let cid = DeviceId::parse("cam-1").expect("valid id");
        let id =
            schemas::EventId::new(&cid, &schemas::EventType::parse("motion").expect("type"), t, DayOffset::default())
                .expect("valid id");
        assert_eq!(id.to_string(), "20261201.cam-1.1796110200000+0000.motion");
    }
}
