//! `daybook-bench sustain`: an ordinary evening at a steady rate. It first saturates the bare
//! no-op server (the machine's ceiling, as `burst` does), then offers a fraction of that rate as
//! an open-loop stream of mixed device reports — event starts (with a snapshot size), their
//! segments, their ends and a nightly digest, from many devices — to the all-in-one on the
//! embedded default, while a viewer reads 30-day calendars and day pages at a modest rate.
//! Latency is measured from each request's *scheduled* send time (no coordinated omission).
//! The same schedule also runs against the bare no-op server, for the CPU and latency floor.
//! Writes `result.json` and `sustain.png` (latency over time).
//!
//! CPU: every server runs in its own child process (`burst::Server`); its user + system time
//! comes from `/proc/<pid>/stat` (`crate::cpu`), so the generator's CPU is never counted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http::header::HeaderValue;
use http::Method;
use indicatif::ProgressBar;
use infra::{LogUrl, StoreUrl};
use schemas::{DayOffset, DeviceId, EventId, EventType, Timestamp};
use seams::auth::Auth;
use serde::Serialize;

use crate::burst::{
    accepted_per_s, at_utc_offset, bar, latencies, percentile_ms, sampler, scrape, server_args, tempfile_dir, Getter,
    Server, PROJECTED,
};
use crate::chart;
use crate::cpu::{self, opt};
use crate::load::{self, LoadConfig, Outcome, Prepared};

#[derive(Debug, Args)]
pub(crate) struct SustainArgs {
    /// Offered write rate, as a fraction of the bare no-op server's ceiling measured first.
    #[arg(long, default_value_t = 0.5)]
    fraction: f64,
    /// Seconds of steady load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Where result.json and sustain.png go.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Devices reporting; each sends every `devices`-th request of the stream in turn.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Viewer reads per second during the load (30-day calendars and day pages, alternately).
    #[arg(long, default_value_t = 20)]
    read_rps: u64,
    /// Keep-alive connections of the write generator (the viewer uses 4 more).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Seconds of closed-loop saturation for the bare-HTTP ceiling.
    #[arg(long, default_value_t = 3)]
    bare_secs: u64,
    /// Report log of the server under test.
    #[arg(long = "log", default_value = "embedded")]
    log: LogUrl,
    /// Projection store of the server under test.
    #[arg(long = "store", default_value = "embedded")]
    store: StoreUrl,
}

/// What one write request reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    Segment(u8),
    End,
    Digest,
}

/// A device's digest is its report number `DIGEST_AT` (0-based, right after its first event);
/// every other report belongs to an event cycle: start, two segments, end.
const DIGEST_AT: usize = 4;

/// The `p`-th report (0-based) of one device: its kind and the device's event number.
fn report_at(p: usize) -> (Kind, usize) {
    if p == DIGEST_AT {
        return (Kind::Digest, 0);
    }
    let q = if p > DIGEST_AT { p - 1 } else { p };
    let kind = match q % 4 {
        0 => Kind::Start,
        1 => Kind::Segment(0),
        2 => Kind::Segment(1),
        _ => Kind::End,
    };
    (kind, q / 4)
}

/// What a request reports: kind, device index, the device's event number.
#[derive(Debug, Clone, Copy)]
struct Item {
    kind: Kind,
    device: usize,
    event: usize,
}

/// The write stream: request `i` comes from device `i % devices`, as its `i / devices`-th report.
struct Workload {
    requests: Arc<Vec<Prepared>>,
    items: Vec<Item>,
    cids: Vec<DeviceId>,
    /// Event ids by (device, event number).
    event_ids: HashMap<(usize, usize), String>,
    /// The day of each device's first event (its day page).
    first_day: Vec<Option<String>>,
    digest_date: String,
}

fn segment_id(device: usize, event: usize, s: u8) -> String {
    format!("sg-{device}-{event}-{s}")
}

fn digest_id(device: usize) -> String {
    format!("dg-{device}")
}

fn workload(auth: &Auth, devices: usize, n: usize) -> Workload {
    let devices = devices.max(1);
    // Events were triggered half an hour ago, a second apart per device (all in the past).
    let base = Timestamp::now().plus_millis(-30 * 60_000);
    let digest_date = DayOffset::default().today().add_days(-1).to_string();
    let motion = EventType::parse("motion").expect("valid type");
    let media = serde_json::json!({"codec": "h264", "width": 1920, "height": 1080, "fps": 15.0});
    let cids: Vec<DeviceId> = (0..devices).map(|d| DeviceId::parse(&format!("ev-{d:06}")).expect("valid id")).collect();
    let tokens: Vec<HeaderValue> = cids
        .iter()
        .map(|cid| {
            HeaderValue::from_str(&format!("Bearer {}", auth.device_token(cid, Duration::from_secs(6 * 3600))))
                .expect("token is a header value")
        })
        .collect();
    let mut event_ids = HashMap::new();
    let mut first_day = vec![None; devices];
    let mut requests = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let (device, p) = (i % devices, i / devices);
        let (kind, event) = report_at(p);
        let cid = &cids[device];
        let triggered = base.plus_millis(event as i64 * 1000);
        let id = event_ids
            .entry((device, event))
            .or_insert_with(|| {
                let id = EventId::new(cid, &motion, triggered, DayOffset::default()).expect("valid id");
                first_day[device].get_or_insert_with(|| id.day().to_string());
                id.to_string()
            })
            .clone();
        let (path, body) = match kind {
            Kind::Start => (
                format!("/v1/devices/{cid}/events"),
                serde_json::json!({"type": "motion", "triggered_at": at_utc_offset(triggered), "snapshot_size": 120_000}),
            ),
            Kind::Segment(s) => (
                format!("/v1/devices/{cid}/segments"),
                serde_json::json!({
                    "segment_id": segment_id(device, event, s), "size": 2_000_000,
                    "started_at": at_utc_offset(triggered.plus_millis(i64::from(s) * 10_000)), "duration_ms": 10_000,
                    "media": media, "events": [{"event_id": id, "index": s, "start_offset": 0, "end_offset": 2_000_000}],
                }),
            ),
            Kind::End => (
                format!("/v1/devices/{cid}/events/{id}/end"),
                serde_json::json!({"ended_at": at_utc_offset(triggered.plus_millis(20_000)), "status": "complete"}),
            ),
            Kind::Digest => (
                format!("/v1/devices/{cid}/digests"),
                serde_json::json!({"date": digest_date, "segment_id": digest_id(device), "size": 4_000_000 + device, "duration_ms": 60_000}),
            ),
        };
        requests.push(Prepared {
            method: Method::POST,
            path,
            auth: tokens[device].clone(),
            body: Bytes::from(body.to_string()),
        });
        items.push(Item { kind, device, event });
    }
    // Digest-only devices never had an event id; their day page is today's.
    Workload { requests: Arc::new(requests), items, cids, event_ids, first_day, digest_date }
}

/// The viewer: `rps` reads a second for `seconds`, alternately a 30-day calendar and a day
/// page (10 events) of one of the first 200 devices. Returns the requests, their schedule and
/// which are calendars.
fn viewer(auth: &Auth, w: &Workload, rps: u64, seconds: u64) -> (Arc<Vec<Prepared>>, Vec<Duration>, Vec<bool>) {
    let n = (rps * seconds) as usize;
    let today = DayOffset::default().today().to_string();
    let watched = w.cids.len().min(200);
    let mut reqs = Vec::with_capacity(n);
    let mut schedule = Vec::with_capacity(n);
    let mut calendar = Vec::with_capacity(n);
    for i in 0..n {
        let d = (i / 2) % watched.max(1);
        let cid = &w.cids[d];
        let token = HeaderValue::from_str(&format!(
            "Bearer {}",
            auth.viewer_token(std::slice::from_ref(cid), Duration::from_secs(6 * 3600))
        ))
        .expect("header");
        let is_calendar = i % 2 == 0;
        let path = if is_calendar {
            format!("/v1/devices/{cid}/calendar?days=30")
        } else {
            let date = w.first_day[d].as_deref().unwrap_or(&today);
            format!("/v1/devices/{cid}/events?date={date}&limit=10")
        };
        reqs.push(Prepared { method: Method::GET, path, auth: token, body: Bytes::new() });
        schedule.push(Duration::from_secs_f64(i as f64 / rps.max(1) as f64));
        calendar.push(is_calendar);
    }
    (Arc::new(reqs), schedule, calendar)
}

/// How many requests of each kind.
#[derive(Debug, Default, Serialize)]
struct Mix {
    event_starts: usize,
    segments: usize,
    event_ends: usize,
    digests: usize,
}

impl Mix {
    fn of<'a>(items: impl Iterator<Item = &'a Item>) -> Self {
        let mut m = Self::default();
        for it in items {
            match it.kind {
                Kind::Start => m.event_starts += 1,
                Kind::Segment(_) => m.segments += 1,
                Kind::End => m.event_ends += 1,
                Kind::Digest => m.digests += 1,
            }
        }
        m
    }
}

/// `result.json` of the sustained run (its keys are a contract).
#[derive(Debug, Serialize)]
struct SustainResult {
    fraction: f64,
    seconds: u64,
    devices: usize,
    /// The bare no-op server's closed-loop ceiling, requests/s.
    bare_http_per_s: f64,
    /// `fraction × bare_http_per_s`: the write rate offered, open loop.
    offered_rate_per_s: f64,
    reports_offered: usize,
    mix: Mix,
    accepted: usize,
    /// Accepted reports per second, from the first scheduled send to the last acceptance.
    sustained_rate_per_s: f64,
    sustained_p50_ms: f64,
    sustained_p99_ms: f64,
    sustained_p999_ms: f64,
    sustained_max_ms: f64,
    /// Writes not accepted in the end (any final non-2xx, connection errors, unresolved).
    errors: usize,
    errors_5xx: usize,
    unresolved: usize,
    retries: u64,
    answers_by_status: HashMap<String, usize>,
    /// Accepted reports the viewer API does not show once projection is complete.
    lost: usize,
    read_rps: u64,
    reads_offered: usize,
    reads_ok: usize,
    read_errors: usize,
    read_p50_ms: f64,
    /// Calendars and day pages together, under the write load.
    read_p99_ms: f64,
    calendar_p99_ms: f64,
    day_page_p99_ms: f64,
    /// The all-in-one's cost per accepted report from the load's start until every accepted
    /// report is projected (the viewer's reads and the 100 ms `/metrics` scrapes included),
    /// beside the bare no-op server's per answered request of the same schedule.
    #[serde(flatten)]
    cost: cpu::Cost,
    /// The bare no-op server's latency under the same schedule.
    bare_accept_p99_ms: f64,
    bare_accepted_per_s: f64,
    /// From the last acceptance until every accepted report is projected.
    projection_complete_ms: f64,
    peak_rss_mib: f64,
    log: String,
    store: String,
    connections: usize,
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg.to_owned());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

pub(crate) async fn run(a: SustainArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.fraction > 0.0 && a.fraction.is_finite(), "--fraction must be positive");
    anyhow::ensure!(a.seconds > 0, "--seconds must be positive");
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let auth = Auth::new(secret.as_bytes());
    let load = LoadConfig {
        addr: "127.0.0.1:0".parse()?,
        connections: a.connections,
        timeout: Duration::from_secs(10),
        max_retries: 8,
        max_backoff: Duration::from_secs(2),
        deadline: Duration::from_secs(a.seconds + 60),
    };
    let lead = Duration::from_millis(500);

    // 1. The ceiling: the bare no-op server saturated (as `burst` measures it).
    let bare_server = Server::start(&["noop".into()], &secret)?;
    let probe = workload(&auth, a.devices, 20_000);
    let pb = spinner("bare http ceiling");
    let cfg = LoadConfig { addr: bare_server.http, ..load.clone() };
    let ceiling = load::saturate(cfg.clone(), probe.requests.clone(), Duration::from_secs(a.bare_secs)).await;
    pb.finish_and_clear();
    drop(probe);
    let offered = ceiling * a.fraction;
    let n = (offered * a.seconds as f64).round() as usize;
    anyhow::ensure!(n > 0, "the bare ceiling was {ceiling:.0}/s: nothing to offer");
    eprintln!("bare ceiling {ceiling:.0}/s; offering {offered:.0}/s for {} s ({n} reports) …", a.seconds);
    let w = workload(&auth, a.devices, n);
    let schedule: Vec<Duration> = (0..n).map(|i| Duration::from_secs_f64(i as f64 / offered)).collect();

    // 2. The same schedule against the bare server: the floor of CPU and latency at this rate.
    let start = Instant::now() + lead;
    let pb = bar(n as u64, "bare");
    let span = bare_server.cpu_span();
    let bare_outcomes =
        load::open_loop(cfg, w.requests.clone(), schedule.clone(), start, |k| pb.set_position(k as u64)).await;
    let bare_spent = span.spent();
    pb.finish();
    bare_server.stop();

    // 3. The pipeline, with the viewer alongside.
    let dir = tempfile_dir("sustain")?;
    let server = Server::start(&server_args(&dir, &a.log, &a.store, false), &secret)?;
    let cfg = LoadConfig { addr: server.http, ..load.clone() };
    let (read_reqs, read_schedule, read_is_calendar) = viewer(&auth, &w, a.read_rps, a.seconds);
    let reads_offered = read_reqs.len();
    let start = Instant::now() + lead;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let samples = sampler(server.http, start, stop_rx);
    let span = server.cpu_span();
    let reader = {
        let cfg = LoadConfig { connections: 4, max_retries: 0, ..cfg.clone() };
        tokio::spawn(load::open_loop(cfg, read_reqs, read_schedule, start, |_| {}))
    };
    let pb = bar(n as u64, "daybook");
    let outcomes = load::open_loop(cfg, w.requests.clone(), schedule, start, |k| pb.set_position(k as u64)).await;
    pb.finish();
    let load_end = outcomes.iter().filter(|o| o.accepted()).map(|o| o.done).max().unwrap_or_default();
    let reads = reader.await?;
    let accepted = outcomes.iter().filter(|o| o.accepted()).count();
    let pb = bar(accepted as u64, "projected");
    let projection_done = loop {
        let projected = scrape(server.http, &[PROJECTED]).await.get(PROJECTED).copied().unwrap_or(0.0);
        pb.set_position(projected as u64);
        if projected >= accepted as f64 {
            break start.elapsed();
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(a.seconds + 300), "projection did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    pb.finish();
    let pipeline_spent = span.spent();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    let samples = samples.await?;
    let lost = count_lost(&server, &auth, &w, &outcomes).await?;
    let peak_rss_mib = server.peak_rss_mib();
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);

    let h = latencies(&outcomes);
    let mut by_status = HashMap::new();
    for o in &outcomes {
        *by_status.entry(o.status.to_string()).or_insert(0) += 1;
    }
    let unresolved = n - outcomes.len();
    if unresolved > 0 {
        by_status.insert("unresolved".into(), unresolved);
    }
    let read_h = latencies(&reads);
    let calendar: Vec<Outcome> = reads.iter().filter(|o| read_is_calendar[o.idx]).copied().collect();
    let day_page: Vec<Outcome> = reads.iter().filter(|o| !read_is_calendar[o.idx]).copied().collect();
    let reads_ok = reads.iter().filter(|o| o.accepted()).count();
    let bare_accepted = bare_outcomes.iter().filter(|o| o.accepted()).count();
    let cost = cpu::Cost::of(pipeline_spent, accepted, bare_spent, bare_accepted);
    let result = SustainResult {
        fraction: a.fraction,
        seconds: a.seconds,
        devices: a.devices,
        bare_http_per_s: ceiling,
        offered_rate_per_s: offered,
        reports_offered: n,
        mix: Mix::of(w.items.iter()),
        accepted,
        sustained_rate_per_s: accepted_per_s(&outcomes),
        sustained_p50_ms: percentile_ms(&h, 0.5),
        sustained_p99_ms: percentile_ms(&h, 0.99),
        sustained_p999_ms: percentile_ms(&h, 0.999),
        sustained_max_ms: h.max() as f64 / 1000.0,
        errors: n - accepted,
        errors_5xx: outcomes.iter().filter(|o| o.status >= 500).count(),
        unresolved,
        retries: outcomes.iter().map(|o| u64::from(o.retries)).sum(),
        answers_by_status: by_status,
        lost,
        read_rps: a.read_rps,
        reads_offered,
        reads_ok,
        read_errors: reads_offered - reads_ok,
        read_p50_ms: percentile_ms(&read_h, 0.5),
        read_p99_ms: percentile_ms(&read_h, 0.99),
        calendar_p99_ms: percentile_ms(&latencies(&calendar), 0.99),
        day_page_p99_ms: percentile_ms(&latencies(&day_page), 0.99),
        cost,
        bare_accept_p99_ms: percentile_ms(&latencies(&bare_outcomes), 0.99),
        bare_accepted_per_s: accepted_per_s(&bare_outcomes),
        projection_complete_ms: projection_done.saturating_sub(load_end).as_secs_f64() * 1000.0,
        peak_rss_mib,
        log: a.log.to_string(),
        store: a.store.to_string(),
        connections: a.connections,
    };
    let json = serde_json::to_string_pretty(&result)?;
    std::fs::write(a.out.join("result.json"), &json)?;
    let series = series(&outcomes, &calendar, &day_page, &samples);
    chart::draw_sustain(&a.out.join("sustain.png"), &series, &caption(&result))?;
    println!("{json}");
    eprintln!("{}", summary(&result));
    eprintln!("wrote {} and {}", a.out.join("result.json").display(), a.out.join("sustain.png").display());
    Ok(())
}

fn caption(r: &SustainResult) -> String {
    format!(
        "{:.0}/s offered ({:.2} of bare {:.0}/s) for {} s: {:.0}/s accepted, p50 {:.1} ms, p99 {:.1} ms, {} errors, {} lost; reads p99 {:.1} ms; CPU {} µs/report ({}x bare)",
        r.offered_rate_per_s,
        r.fraction,
        r.bare_http_per_s,
        r.seconds,
        r.sustained_rate_per_s,
        r.sustained_p50_ms,
        r.sustained_p99_ms,
        r.errors,
        r.lost,
        r.read_p99_ms,
        opt(r.cost.cpu_us_per_report, 1),
        opt(r.cost.cpu_ratio_vs_bare, 2),
    )
}

fn summary(r: &SustainResult) -> String {
    format!(
        "sustain: {:.0}/s offered ({} × bare ceiling {:.0}/s) for {} s, {} reports ({} starts, {} segments, {} ends, {} digests)\n\
         writes: {:.0}/s accepted, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} errors ({} 5xx, {} unresolved), {} retries, {} lost\n\
         reads: {} of {} ok, p99 {:.1} ms (calendar {:.1} ms, day page {:.1} ms)\n\
         cost: server CPU {} µs/report (pipeline), {} µs/request (bare no-op, same schedule: p99 {:.1} ms) — {}x bare\n{}",
        r.offered_rate_per_s,
        r.fraction,
        r.bare_http_per_s,
        r.seconds,
        r.reports_offered,
        r.mix.event_starts,
        r.mix.segments,
        r.mix.event_ends,
        r.mix.digests,
        r.sustained_rate_per_s,
        r.sustained_p50_ms,
        r.sustained_p99_ms,
        r.sustained_max_ms,
        r.errors,
        r.errors_5xx,
        r.unresolved,
        r.retries,
        r.lost,
        r.reads_ok,
        r.reads_offered,
        r.read_p99_ms,
        r.calendar_p99_ms,
        r.day_page_p99_ms,
        opt(r.cost.cpu_us_per_report, 1),
        opt(r.cost.bare_cpu_us_per_request, 1),
        r.bare_accept_p99_ms,
        opt(r.cost.cpu_ratio_vs_bare, 2),
        r.cost.switches_line(),
    )
}

/// Latency bucket width of the chart, seconds.
const BUCKET_S: f64 = 0.25;

fn latency_points(outcomes: &[Outcome]) -> Vec<(f64, f64)> {
    outcomes
        .iter()
        .filter(|o| o.accepted())
        .map(|o| (o.scheduled.as_secs_f64(), o.done.saturating_sub(o.scheduled).as_secs_f64() * 1000.0))
        .collect()
}

fn series(
    writes: &[Outcome],
    calendar: &[Outcome],
    day_page: &[Outcome],
    samples: &[crate::chart::Sample],
) -> chart::SustainSeries {
    let buckets = bucket_quantiles(latency_points(writes), BUCKET_S, &[0.5, 0.99, 1.0]);
    let pick = |k: usize| buckets.iter().map(|(t, q)| (*t, q[k])).collect::<Vec<_>>();
    // Counts per bucket, scaled to per second.
    let rate = |times: Vec<f64>| {
        let mut counts: HashMap<i64, f64> = HashMap::new();
        for t in times {
            *counts.entry((t / BUCKET_S).floor() as i64).or_insert(0.0) += 1.0 / BUCKET_S;
        }
        let mut v: Vec<(f64, f64)> = counts.into_iter().map(|(b, c)| (b as f64 * BUCKET_S, c)).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let mut stored = Vec::new();
    // Over 1 s of samples (ten 100 ms scrapes): the projector writes in batches, so 100 ms
    // differences would be all spikes.
    for s in samples.windows(11) {
        let dt = (s[10].t - s[0].t).max(1e-3);
        stored.push((s[10].t, (s[10].projected - s[0].projected) / dt));
    }
    chart::SustainSeries {
        p50: pick(0),
        p99: pick(1),
        max: pick(2),
        calendar: latency_points(calendar),
        day_page: latency_points(day_page),
        offered: rate(writes.iter().map(|o| o.scheduled.as_secs_f64()).collect()),
        accepted: rate(writes.iter().filter(|o| o.accepted()).map(|o| o.done.as_secs_f64()).collect()),
        projected: stored,
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted values, nearest rank: the smallest value with at
/// least `q` of them at or below it (`q = 1` is the maximum). `None` when empty.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Groups `(t, value)` points into buckets of `width` by `t` and returns, for every non-empty
/// bucket in time order, its start and the quantiles `qs` of its values.
fn bucket_quantiles(points: Vec<(f64, f64)>, width: f64, qs: &[f64]) -> Vec<(f64, Vec<f64>)> {
    let mut buckets: std::collections::BTreeMap<i64, Vec<f64>> = std::collections::BTreeMap::new();
    for (t, v) in points {
        buckets.entry((t / width).floor() as i64).or_default().push(v);
    }
    buckets
        .into_iter()
        .map(|(b, mut vs)| {
            vs.sort_by(f64::total_cmp);
            (b as f64 * width, qs.iter().map(|q| quantile(&vs, *q).unwrap_or(0.0)).collect())
        })
        .collect()
}

/// Reads every accepted report back through the viewer API once everything is projected:
/// one `GET /v1/events/{id}` per event with any accepted report (the event must be there,
/// `complete` if its end was accepted, listing each accepted segment), one digest GET per
/// accepted digest. Returns the accepted reports not found.
async fn count_lost(server: &Server, auth: &Auth, w: &Workload, outcomes: &[Outcome]) -> anyhow::Result<usize> {
    #[derive(Default, Clone, Copy)]
    struct Seen {
        start: bool,
        end: bool,
        segments: [bool; 2],
    }
    let mut events: HashMap<(usize, usize), Seen> = HashMap::new();
    let mut digests = Vec::new();
    for o in outcomes.iter().filter(|o| o.accepted()) {
        let it = w.items[o.idx];
        let seen = || Seen::default();
        match it.kind {
            Kind::Start => events.entry((it.device, it.event)).or_insert_with(seen).start = true,
            Kind::End => events.entry((it.device, it.event)).or_insert_with(seen).end = true,
            Kind::Segment(s) => {
                events.entry((it.device, it.event)).or_insert_with(seen).segments[usize::from(s)] = true
            }
            Kind::Digest => digests.push(it.device),
        }
    }
    enum Check {
        Event(usize, usize, Seen),
        Digest(usize),
    }
    let mut checks: Vec<Check> = events.into_iter().map(|((d, e), s)| Check::Event(d, e, s)).collect();
    checks.extend(digests.into_iter().map(Check::Digest));
    let pb = bar(checks.len() as u64, "verify");
    let checks = Arc::new(checks);
    let w = Arc::new((w.cids.clone(), w.event_ids.clone(), w.digest_date.clone()));
    let next = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (checks, w, next, lost, auth, addr, pb) =
            (checks.clone(), w.clone(), next.clone(), lost.clone(), auth.clone(), server.http, pb.clone());
        tasks.push(tokio::spawn(async move {
            let (cids, event_ids, digest_date) = &*w;
            let mut getter = Getter::new(addr);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(check) = checks.get(i) else { break };
                let device = match check {
                    Check::Event(d, ..) | Check::Digest(d) => *d,
                };
                let cid = &cids[device];
                let token = HeaderValue::from_str(&format!(
                    "Bearer {}",
                    auth.viewer_token(std::slice::from_ref(cid), Duration::from_secs(600))
                ))
                .expect("header");
                let missing = match check {
                    Check::Event(d, e, seen) => {
                        let id = &event_ids[&(*d, *e)];
                        let wanted = usize::from(seen.start)
                            + usize::from(seen.end)
                            + seen.segments.iter().filter(|s| **s).count();
                        match getter.get(&format!("/v1/events/{id}?limit=200"), Some(&token)).await {
                            Err(_) => wanted,
                            Ok(body) => {
                                let mut m = usize::from(seen.end && !body.contains("\"status\":\"complete\""));
                                for (s, accepted) in seen.segments.iter().enumerate() {
                                    let sid = segment_id(*d, *e, s as u8);
                                    m += usize::from(*accepted && !body.contains(&format!("\"segment_id\":\"{sid}\"")));
                                }
                                m
                            }
                        }
                    }
                    Check::Digest(d) => {
                        match getter.get(&format!("/v1/devices/{cid}/digests/{digest_date}"), Some(&token)).await {
                            Ok(body) if body.contains(&format!("\"segment_id\":\"{}\"", digest_id(*d))) => 0,
                            _ => 1,
                        }
                    }
                };
                lost.fetch_add(missing, Ordering::Relaxed);
                pb.inc(1);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    pb.finish();
    Ok(lost.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
        // 0.99 of 10 values: the 10th (9.9 rounds up), not the 9th.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&ten, 0.99), Some(10.0));
    }

    #[test]
    fn bucket_quantiles_groups_by_time_in_order() {
        let points = vec![(0.30, 5.0), (0.01, 3.0), (0.10, 1.0), (0.20, 2.0), (0.27, 9.0), (1.0, 4.0)];
        let b = bucket_quantiles(points, 0.25, &[0.5, 1.0]);
        assert_eq!(b, vec![(0.0, vec![2.0, 3.0]), (0.25, vec![5.0, 9.0]), (1.0, vec![4.0, 4.0])]);
        assert!(bucket_quantiles(Vec::new(), 0.25, &[0.5]).is_empty());
    }

    #[test]
    fn each_device_sends_event_cycles_and_one_digest() {
        let seq: Vec<(Kind, usize)> = (0..14).map(report_at).collect();
        assert_eq!(seq[0], (Kind::Start, 0));
        assert_eq!(seq[1], (Kind::Segment(0), 0));
        assert_eq!(seq[2], (Kind::Segment(1), 0));
        assert_eq!(seq[3], (Kind::End, 0));
        assert_eq!(seq[DIGEST_AT], (Kind::Digest, 0));
        assert_eq!(seq[DIGEST_AT + 1], (Kind::Start, 1));
        assert_eq!(seq[DIGEST_AT + 4], (Kind::End, 1));
        assert_eq!(seq[DIGEST_AT + 5], (Kind::Start, 2));
        assert_eq!((0..1000).map(report_at).filter(|r| r.0 == Kind::Digest).count(), 1);
    }

    #[test]
    fn the_workload_interleaves_devices_and_names_valid_ids() {
        let auth = Auth::new(b"0123456789abcdef0123456789abcdef");
        let w = workload(&auth, 3, 40);
        assert_eq!(w.requests.len(), 40);
        assert_eq!((w.items[4].device, w.items[4].kind), (1, Kind::Segment(0)));
        let m = Mix::of(w.items.iter());
        assert_eq!(m.event_starts + m.segments + m.event_ends + m.digests, 40);
        assert_eq!(m.digests, 3);
        let end = w.items.iter().position(|i| i.kind == Kind::End).expect("an end");
        let id = &w.event_ids[&(w.items[end].device, w.items[end].event)];
        assert!(EventId::parse(id).is_ok());
        // The start states its offset, so the server gives it the id its end and segments name.
        assert!(id.ends_with("+0000.motion"), "{id}");
        let start = std::str::from_utf8(&w.requests[0].body).expect("utf-8");
        assert!(start.contains("+00:00\""), "{start}");
        assert_eq!(w.requests[end].path, format!("/v1/devices/{}/events/{id}/end", w.cids[w.items[end].device]));
        assert!(w.first_day.iter().all(Option::is_some));
    }
}
