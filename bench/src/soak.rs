//! `daybook-bench soak`: millions of single-report requests against the all-in-one with
//! nobody scraping `/metrics`, sampling the server's resident memory every interval — memory
//! must stay flat once caches are warm (it grew ≈ 45 bytes per request while histogram
//! samples waited for a scrape). Writes `result.json`; prints one JSON line per interval.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http::header::HeaderValue;
use http::Method;
use schemas::{DeviceId, Timestamp};
use seams::auth::Auth;
use serde::Serialize;

use crate::burst::{server_args, tempfile_dir, Server};
use crate::load::{self, LoadConfig, Prepared};

#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// Reports to send (one per request, event starts).
    #[arg(long, default_value_t = 5_000_000)]
    reports: u64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 5)]
    interval_s: u64,
    /// Distinct devices reporting (each re-sends the same few events: the store stays small,
    /// so what grows, if anything, is per-request state).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Keep-alive connections of the closed-loop generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Where result.json goes.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
}

/// One memory sample.
#[derive(Debug, Clone, Serialize)]
struct RssSample {
    t_s: f64,
    reports_accepted: u64,
    rss_mib: f64,
}

/// `result.json` of the soak.
#[derive(Debug, Serialize)]
struct SoakResult {
    reports_accepted: u64,
    duration_s: f64,
    accepted_per_s: f64,
    rss_first_mib: f64,
    /// Resident memory once the first quarter of the reports is in (caches warm).
    rss_warm_mib: f64,
    rss_last_mib: f64,
    peak_rss_mib: f64,
    /// Growth from warm to last, in bytes per report sent in between.
    growth_bytes_per_report_after_warmup: f64,
    interval_s: u64,
    connections: usize,
    devices: usize,
    samples: Vec<RssSample>,
}

fn requests(auth: &Auth, devices: usize) -> Arc<Vec<Prepared>> {
    let now = Timestamp::now();
    let mut reqs = Vec::new();
    for d in 0..devices.max(1) {
        let cid = DeviceId::parse(&format!("soak-{d:05}")).expect("valid id");
        let token = HeaderValue::from_str(&format!("Bearer {}", auth.device_token(&cid, Duration::from_secs(86_400))))
            .expect("header");
        for e in 0..4 {
            let triggered = now.plus_millis(-3_600_000 - (d * 4 + e) as i64);
            let body = serde_json::json!({"type": "motion", "triggered_at": triggered.to_string()});
            reqs.push(Prepared {
                method: Method::POST,
                path: format!("/v1/devices/{cid}/events"),
                auth: token.clone(),
                body: Bytes::from(body.to_string()),
            });
        }
    }
    Arc::new(reqs)
}

pub(crate) async fn run(a: SoakArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let auth = Auth::new(secret.as_bytes());
    let dir = tempfile_dir("soak")?;
    let mut args = server_args(&dir, &infra::LogUrl::Embedded, &infra::StoreUrl::Embedded, false);
    // Requests are limited by the machine, not by the per-device limiter.
    args.extend(["--device-rate", "100000000", "--device-burst", "100000000"].map(String::from));
    let server = Server::start(&args, &secret)?;
    let config = LoadConfig {
        addr: server.http,
        connections: a.connections,
        timeout: Duration::from_secs(10),
        max_retries: 0,
        max_backoff: Duration::from_secs(1),
        deadline: Duration::from_secs(3600),
    };
    let reqs = requests(&auth, a.devices);
    let start = Instant::now();
    let mut accepted = 0u64;
    let mut samples = vec![RssSample { t_s: 0.0, reports_accepted: 0, rss_mib: server.rss_mib() }];
    println!("{}", serde_json::to_string(&samples[0])?);
    while accepted < a.reports {
        let interval = Instant::now();
        let rate = load::saturate(config.clone(), reqs.clone(), Duration::from_secs(a.interval_s)).await;
        accepted += (rate * interval.elapsed().as_secs_f64()).round() as u64;
        let sample =
            RssSample { t_s: start.elapsed().as_secs_f64(), reports_accepted: accepted, rss_mib: server.rss_mib() };
        println!("{}", serde_json::to_string(&sample)?);
        samples.push(sample);
    }
    let duration_s = start.elapsed().as_secs_f64();
    let warm = samples.iter().find(|s| s.reports_accepted >= a.reports / 4).unwrap_or(&samples[0]).clone();
    let last = samples.last().expect("samples").clone();
    let result = SoakResult {
        reports_accepted: accepted,
        duration_s,
        accepted_per_s: accepted as f64 / duration_s,
        rss_first_mib: samples[0].rss_mib,
        rss_warm_mib: warm.rss_mib,
        rss_last_mib: last.rss_mib,
        peak_rss_mib: server.peak_rss_mib(),
        growth_bytes_per_report_after_warmup: (last.rss_mib - warm.rss_mib) * 1024.0 * 1024.0
            / (last.reports_accepted.saturating_sub(warm.reports_accepted)).max(1) as f64,
        interval_s: a.interval_s,
        connections: a.connections,
        devices: a.devices,
        samples,
    };
    let path = a.out.join("result.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    eprintln!(
        "soak: {} reports in {:.0} s ({:.0}/s); RSS {:.0} MiB at start, {:.0} MiB warm, {:.0} MiB at the end ({:.1} bytes/report after warm-up); {}",
        result.reports_accepted,
        duration_s,
        result.accepted_per_s,
        result.rss_first_mib,
        result.rss_warm_mib,
        result.rss_last_mib,
        result.growth_bytes_per_report_after_warmup,
        path.display()
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
