//! `daybook-bench notify`: webhook delivery latency at a steady rate of event starts.
//!
//! The all-in-one (`serve`, as `daybook run`, notifier inside) runs in its own process; the
//! receivers run in this one, on keep-alive connections (axum over loopback). Each good
//! receiver records, per delivery, the time from the report's `received_at` (in the body, as
//! stamped by ingest) to its arrival, and the distinct `webhook-id`s it saw. With
//! `--bad-receivers`, a receiver that hangs, one that answers 500 forever, one that answers
//! 410 and one that slow-drips its answer's body get their own subscriptions beside the good
//! ones. The server's resident memory is sampled every second (it must stay flat whatever the
//! receivers do). Writes `result.json`.
//! The receivers are `crate::hooks`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http::header::HeaderValue;
use http::Method;
use infra::{LogUrl, StoreUrl};
use schemas::{DeviceId, Timestamp};
use seams::auth::Auth;
use serde::Serialize;

use crate::burst::{at_utc_offset, bar, latencies, percentile_ms, server_args, tempfile_dir, wait_notifier, Server};
use crate::cpu;
use crate::hooks::{receiver, subscribe, Mode, Receiver};
use crate::load::{self, LoadConfig, Prepared};

#[derive(Debug, Args)]
pub(crate) struct NotifyArgs {
    /// Event starts per second, offered open loop.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Seconds of load (the first `--warmup-s` are not measured).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// Subscriptions to every event start, each with its own receiver.
    #[arg(long, default_value_t = 3)]
    subscriptions: usize,
    /// Devices posting the starts.
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Also a hanging, a 500-forever, a 410 and a slow-drip receiver, each subscribed.
    #[arg(long)]
    bad_receivers: bool,
    /// Where result.json goes.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Report log of the server under test.
    #[arg(long = "log", default_value = "embedded")]
    log: LogUrl,
    /// Projection store of the server under test.
    #[arg(long = "store", default_value = "embedded")]
    store: StoreUrl,
}

/// `result.json` (its keys are a contract).
#[derive(Debug, Serialize)]
struct NotifyResult {
    rate_per_s: u64,
    seconds: u64,
    subscriptions: usize,
    bad_receivers: bool,
    starts_sent: usize,
    starts_accepted: usize,
    accept_p99_ms: f64,
    /// Deliveries the good receivers should get (accepted starts × good subscriptions), and
    /// the distinct webhook ids they got.
    expected_deliveries: usize,
    delivered_distinct: usize,
    /// Deliveries (repeats included) arriving after the warm-up, all good receivers together:
    /// from `received_at` to arrival at the receiver, ms.
    measured_deliveries: usize,
    delivery_p50_ms: f64,
    delivery_p99_ms: f64,
    delivery_p999_ms: f64,
    delivery_max_ms: f64,
    /// From the end of the load to the last expected delivery, ms.
    caught_up_after_load_ms: f64,
    /// The server's CPU per accepted start over the load and its delivery, µs.
    server_cpu_us_per_start: Option<f64>,
    /// The server's resident memory: after the warm-up, the highest after it, at the end.
    rss_after_warmup_mib: f64,
    rss_peak_after_warmup_mib: f64,
    rss_end_mib: f64,
    /// Resident memory every second from the start of the load, MiB.
    rss_mib: Vec<f64>,
    log: String,
    store: String,
}

/// Event starts, motion and person in turn, from `devices` devices, each with its own id.
pub(crate) fn starts(auth: &Auth, devices: usize, n: usize, prefix: &str) -> Vec<Prepared> {
    let now = Timestamp::now();
    let tokens: Vec<HeaderValue> = (0..devices)
        .map(|d| {
            let cid = DeviceId::parse(&format!("{prefix}-{d:05}")).expect("valid id");
            HeaderValue::from_str(&format!("Bearer {}", auth.device_token(&cid, Duration::from_secs(6 * 3600))))
                .expect("header")
        })
        .collect();
    (0..n)
        .map(|i| {
            let d = i % devices;
            let cid = DeviceId::parse(&format!("{prefix}-{d:05}")).expect("valid id");
            let kind = if i % 2 == 0 { "motion" } else { "person" };
            // Distinct instants per device: every start is its own event.
            let triggered = now.plus_millis(-3_600_000 + (i / devices) as i64 * 10);
            Prepared {
                method: Method::POST,
                path: format!("/v1/devices/{cid}/events"),
                auth: tokens[d].clone(),
                body: Bytes::from(
                    serde_json::json!({"type": kind, "triggered_at": at_utc_offset(triggered)}).to_string(),
                ),
            }
        })
        .collect()
}

pub(crate) async fn run(a: NotifyArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let auth = Auth::new(secret.as_bytes());
    let dir = tempfile_dir("notify")?;
    let mut args = server_args(&dir, &a.log, &a.store, false);
    args.extend(["--notify-allow-http".into(), "--notify-allow-private".into()]);
    let server = Server::start(&args, &secret)?;

    let measure_from = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let mut receivers = Vec::new();
    for _ in 0..a.subscriptions {
        receivers.push(receiver(Mode::Ok, measure_from.clone()).await?);
    }
    if a.bad_receivers {
        for mode in [Mode::Hang, Mode::Fail500, Mode::Gone, Mode::Drip] {
            receivers.push(receiver(mode, measure_from.clone()).await?);
        }
    }
    for r in &receivers {
        subscribe(&dir, &r.url(), &["--kind", "event_started"])?;
    }
    wait_notifier(server.http, receivers.len()).await?;

    let n = (a.rate * a.seconds) as usize;
    let requests = Arc::new(starts(&auth, a.devices, n, "nt"));
    let schedule: Vec<Duration> = (0..n).map(|i| Duration::from_secs_f64(i as f64 / a.rate as f64)).collect();
    let cfg = LoadConfig {
        addr: server.http,
        connections: 64,
        timeout: Duration::from_secs(10),
        max_retries: 8,
        max_backoff: Duration::from_secs(2),
        deadline: Duration::from_secs(a.seconds + 60),
    };
    let lead = Duration::from_millis(300);
    let start = Instant::now() + lead;
    let warm_until = Timestamp::now().millis() + (lead + Duration::from_secs(a.warmup_s)).as_millis() as i64;
    measure_from.store(warm_until, std::sync::atomic::Ordering::Relaxed);

    // Resident memory every second from the start of the load until caught up.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pid = server.pid();
    let rss = tokio::spawn(async move {
        let mut v = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while !*stop_rx.borrow() {
            tick.tick().await;
            v.push(crate::cpu::rss_mib(pid));
        }
        v
    });
    let span = server.cpu_span();
    let pb = bar(n as u64, "starts");
    let outcomes = load::open_loop(cfg, requests, schedule, start, |k| pb.set_position(k as u64)).await;
    pb.finish();
    let load_end = Instant::now();
    let accepted = outcomes.iter().filter(|o| o.accepted()).count();
    let good: Vec<&Receiver> = receivers.iter().filter(|r| r.mode == Mode::Ok).collect();
    let expected = accepted * good.len();
    let distinct = || good.iter().map(|r| r.distinct()).sum::<usize>();
    let pb = bar(expected as u64, "delivered");
    let deadline = Instant::now() + Duration::from_secs(120);
    while distinct() < expected && Instant::now() < deadline {
        pb.set_position(distinct() as u64);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pb.finish();
    let cpu_used = span.used();
    let _ = stop_tx.send(true);
    let rss_mib = rss.await?;
    let last = good.iter().filter_map(|r| r.last_arrival()).max();
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    for r in &good {
        for us in r.latencies_us() {
            h.saturating_record(us.max(1));
        }
    }
    let warm_index = (a.warmup_s as usize).min(rss_mib.len().saturating_sub(1));
    let delivered = distinct();
    let result = NotifyResult {
        rate_per_s: a.rate,
        seconds: a.seconds,
        subscriptions: a.subscriptions,
        bad_receivers: a.bad_receivers,
        starts_sent: n,
        starts_accepted: accepted,
        accept_p99_ms: percentile_ms(&latencies(&outcomes), 0.99),
        expected_deliveries: expected,
        delivered_distinct: delivered,
        measured_deliveries: h.len() as usize,
        delivery_p50_ms: percentile_ms(&h, 0.5),
        delivery_p99_ms: percentile_ms(&h, 0.99),
        delivery_p999_ms: percentile_ms(&h, 0.999),
        delivery_max_ms: h.max() as f64 / 1000.0,
        caught_up_after_load_ms: last.map_or(0.0, |t| t.saturating_duration_since(load_end).as_secs_f64() * 1000.0),
        server_cpu_us_per_start: cpu::us_per(cpu_used, accepted),
        rss_after_warmup_mib: rss_mib.get(warm_index).copied().unwrap_or(0.0),
        rss_peak_after_warmup_mib: rss_mib.iter().skip(warm_index).copied().fold(0.0, f64::max),
        rss_end_mib: rss_mib.last().copied().unwrap_or(0.0),
        rss_mib,
        log: a.log.to_string(),
        store: a.store.to_string(),
    };
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let json = serde_json::to_string_pretty(&result)?;
    std::fs::write(a.out.join("result.json"), &json)?;
    println!("{json}");
    anyhow::ensure!(delivered >= expected, "only {delivered} of {expected} deliveries arrived within 120 s");
    Ok(())
}
