//! Hot-path micro-benchmarks of the embedded engines.
//!
//! * `log_group_commit/{1,64,1024}`: that many tokio tasks each appending single ~160-byte
//!   records to an [`EmbeddedLog`]; records/s, plus the mean group-commit size (records per
//!   fsync) read from the `daybook_log_group_commit_records` histogram.
//! * `log_commit_linger`: not a criterion timing — an open-loop load (appends at a fixed rate,
//!   each from its own task, as device requests arrive) on a log with the group-commit window
//!   off and on, in the same run: the process's CPU per record (all threads, from
//!   `/proc/self/task/*/schedstat`), commits per second and append latency p50/p99.
//! * `log_head_reader`: the head as a process that does not append finds it (a `daybook
//!   projector` beside `daybook ingest` reads its lag so once a second) with a 60 MiB newest
//!   segment: it reads the head the writer publishes in `log/HEAD` (28 bytes), whatever the
//!   segment's size. (A log no writer of this release opened has no `HEAD`: the newest segment
//!   is scanned, the first time whole, then from where the last scan stopped.)
//! * `store_apply/{4096,16384}`: [`EmbeddedStore::apply`] of 4096- and 16384-envelope batches
//!   (60 % starts, 20 % ends, 15 % segments with one mapping, 5 % digests; 1000 devices; last 2
//!   days); rows/s. `store_apply_bulk/16384`: the same into a store opened for a bulk load
//!   ([`OpenMode::BulkLoad`], as `daybook rebuild` fills its scratch file).
//! * `store_read_1m/{calendar,day_page_first,day_page_next}`: reads against a store holding
//!   1,000,000 events (2000 devices × 500 events over 30 days), plus p50/p99/p99.9 of 10,000
//!   random calls each. The store is built once and cached under
//!   `$CARGO_TARGET_DIR/bench-data/` (keyed by [`READ_FIXTURE`]); delete it to rebuild.
//! * `calendar_volume/{per_day_2000,per_day_10}`: the 30-day calendar of a device with
//!   ≈ 2 000 events per day (60 000 over 30 days) and of one with 10 per day, in one store
//!   that also holds 100 other devices at 10 per day (built fresh in a scratch directory,
//!   a few seconds), plus p50/p99/p99.9 of 5,000 calls each. For comparison the same run times
//!   `count(*)` over the day partitions — the calendar's query before it read the per-day
//!   counts (issue 11) — on the same file.
//!
//! `cargo bench -p infra --bench embedded`

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use infra::embedded_log::{EmbeddedLog, EmbeddedLogConfig};
use infra::embedded_store::{EmbeddedStore, OpenMode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use schemas::{Day, DayOffset, DeviceId, Envelope, TimePolicy, Timestamp};
use seams::{LogRecord, ProjectionStore, ReportLog};
use tokio::runtime::Runtime;

mod common;
use common::{cid, ended, rows_of, started, ApplyMix, DAY_MS, KINDS};

/// Bump when the read fixture's shape or the store's schema changes: the cache is keyed by it.
const READ_FIXTURE: &str = "store-1m-v1";
const READ_DEVICES: usize = 2000;
const READ_EVENTS_PER_DEVICE: usize = 500;
const READ_DAYS: i64 = 30;
const LATENCY_CALLS: usize = 10_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// `$CARGO_TARGET_DIR`, or the target dir this bench binary was built into.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("bench executable path");
    // <target>/<profile>/deps/embedded-<hash>
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"))
}

/// Scratch space on the same disk as the cache (not a tmpfs `/tmp`, where fsync is free).
fn scratch() -> tempfile::TempDir {
    let base = target_dir().join("bench-data");
    std::fs::create_dir_all(&base).expect("bench-data dir");
    tempfile::Builder::new().prefix("scratch-").tempdir_in(base).expect("scratch dir")
}

fn metrics() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other metrics recorder in the bench");
        snapshotter
    })
}

/// Drains the recorder: every histogram value recorded since the last call, by metric name.
fn drain_histograms(snapshotter: &Snapshotter) -> std::collections::HashMap<String, Vec<f64>> {
    let mut out = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Histogram(values) = value {
            out.entry(key.key().name().to_owned())
                .or_insert_with(Vec::new)
                .extend(values.into_iter().map(|v| v.into_inner()));
        }
    }
    out
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

fn quantile(xs: &mut [f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// (a) group commit

fn log_record(i: u64) -> LogRecord {
    // ~160 bytes on the wire: key + report kind + a value the size of a small encoded envelope.
    let mut value = vec![0u8; 128];
    value[..8].copy_from_slice(&i.to_le_bytes());
    LogRecord { key: format!("acme-cam-{:06}", i % 100_000), report_kind: "event_started".into(), schema: 1, value }
}

fn log_group_commit(c: &mut Criterion) {
    let snapshotter = metrics();
    let rt = runtime();
    let mut g = c.benchmark_group("log_group_commit");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    for tasks in [1usize, 64, 1024] {
        let dir = scratch();
        let log = EmbeddedLog::open(&dir.path().join("log"), EmbeddedLogConfig::default()).expect("open log");
        drain_histograms(snapshotter);
        let mut appended = 0u64;
        g.bench_with_input(BenchmarkId::from_parameter(tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                // Every task stays busy for the whole sample, so `tasks` appends are always in
                // flight; the time is scaled back to `iters` records.
                let per_task = iters.div_ceil(tasks as u64).max(1);
                let total = per_task * tasks as u64;
                appended += total;
                let elapsed = rt.block_on(async {
                    let started = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|t| {
                            let log = log.clone();
                            tokio::spawn(async move {
                                for i in 0..per_task {
                                    log.append(vec![log_record(t as u64 * per_task + i)]).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.expect("appender task");
                    }
                    started.elapsed()
                });
                elapsed.mul_f64(iters as f64 / total as f64)
            })
        });
        rt.block_on(log.shutdown()).expect("log shutdown");
        let mut h = drain_histograms(snapshotter);
        let mut sizes = h.remove("daybook_log_group_commit_records").unwrap_or_default();
        let commit_s = h.remove("daybook_log_commit_seconds").unwrap_or_default();
        if !sizes.is_empty() {
            let records: f64 = sizes.iter().sum();
            println!(
                "log_group_commit/{tasks}: {} records in {} commits: mean group-commit size {:.1} records/fsync \
                 (p50 {:.0}, p99 {:.0}, max {:.0}); mean commit time {:.2} ms (appended by the bench: {appended})",
                records,
                sizes.len(),
                mean(&sizes),
                quantile(&mut sizes, 0.5),
                quantile(&mut sizes, 0.99),
                quantile(&mut sizes, 1.0),
                mean(&commit_s) * 1e3,
            );
        }
    }
    g.finish();
}

/// CPU time of every thread of this process so far (ns), from the scheduler's statistics.
fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The group-commit window off and on, under the same open-loop load (see the module docs).
fn log_commit_linger(_c: &mut Criterion) {
    let snapshotter = metrics();
    let rt = runtime();
    const SECONDS: u64 = 4;
    for rate in [2_000u64, 8_000] {
        for linger_us in [0u64, 1000] {
            let dir = scratch();
            let config = EmbeddedLogConfig { commit_linger: Duration::from_micros(linger_us), ..Default::default() };
            let log = EmbeddedLog::open(&dir.path().join("log"), config).expect("open log");
            rt.block_on(log.append(vec![log_record(0)])).expect("first append");
            drain_histograms(snapshotter);
            let (cpu0, started) = (process_cpu_ns(), Instant::now());
            let latencies = rt.block_on(async {
                let total = rate * SECONDS;
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.min(1000)));
                let per_tick = (rate / 1000).max(1);
                let mut tasks = Vec::with_capacity(total as usize);
                let mut sent = 0;
                while sent < total {
                    tick.tick().await;
                    for _ in 0..per_tick {
                        let log = log.clone();
                        sent += 1;
                        let i = sent;
                        tasks.push(tokio::spawn(async move {
                            let t = Instant::now();
                            log.append(vec![log_record(i)]).await.expect("append");
                            t.elapsed()
                        }));
                    }
                }
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                for t in tasks {
                    h.record(t.await.expect("append task").as_micros() as u64).expect("record");
                }
                h
            });
            let (cpu, wall) = (process_cpu_ns() - cpu0, started.elapsed());
            rt.block_on(log.shutdown()).expect("log shutdown");
            let commits = drain_histograms(snapshotter).remove("daybook_log_group_commit_records").unwrap_or_default();
            let n = latencies.len();
            println!(
                "log_commit_linger/rate_{rate}/linger_{linger_us}us: {n} appends in {:.2} s: {:.1} µs CPU per record, \
                 {:.0} commits/s ({:.1} records per fsync), latency p50 {:.2} ms p99 {:.2} ms",
                wall.as_secs_f64(),
                cpu as f64 / 1e3 / n as f64,
                commits.len() as f64 / wall.as_secs_f64(),
                n as f64 / commits.len().max(1) as f64,
                latencies.value_at_quantile(0.5) as f64 / 1e3,
                latencies.value_at_quantile(0.99) as f64 / 1e3,
            );
        }
    }
}

fn log_head_reader(c: &mut Criterion) {
    let rt = runtime();
    let dir = scratch();
    let path = dir.path().join("log");
    let writer = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).expect("open log");
    // ≈ 60 MiB of ~200-byte frames: the newest segment a little before it rolls (at 64 MiB).
    let per_batch = 4096;
    let batches = (60 << 20) / (200 * per_batch);
    rt.block_on(async {
        for b in 0..batches {
            let base = (b * per_batch) as u64;
            writer.append((0..per_batch as u64).map(|i| log_record(base + i)).collect()).await.expect("append");
        }
    });
    let reader = EmbeddedLog::open(&path, EmbeddedLogConfig::default()).expect("open reader");
    let started = Instant::now();
    let head = rt.block_on(reader.head()).expect("head");
    let whole = started.elapsed();
    let mut next = (batches * per_batch) as u64;
    let mut group = c.benchmark_group("log_head_reader");
    group.bench_function("after_100_more_records", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(writer.append((0..100).map(|i| log_record(next + i)).collect())).expect("append");
                next += 100;
                let t = Instant::now();
                rt.block_on(reader.head()).expect("head");
                spent += t.elapsed();
            }
            spent
        })
    });
    group.finish();
    eprintln!(
        "log_head_reader: first call ({} records in the newest segment): {:.1} ms",
        head - 1,
        whole.as_secs_f64() * 1000.0
    );
    rt.block_on(writer.shutdown()).expect("shutdown");
}

// ---------------------------------------------------------------------------------------------
// (b) store apply

fn store_apply(c: &mut Criterion) {
    // 4096: a short burst's batch; 16384: the projector's default batch bound when it has lag.
    for batch in [4096, 16_384] {
        store_apply_at(c, batch, OpenMode::Durable);
    }
    // The rebuild's scratch file.
    store_apply_at(c, 16_384, OpenMode::BulkLoad);
}

#[allow(non_snake_case)] // BATCH reads as the constant it is within one run
fn store_apply_at(c: &mut Criterion, BATCH: usize, mode: OpenMode) {
    let rt = runtime();
    let dir = scratch();
    let store =
        EmbeddedStore::open_with(&dir.path().join("store.db"), TimePolicy::default(), mode).expect("open store");
    let name = match mode {
        OpenMode::Durable => "store_apply",
        OpenMode::BulkLoad => "store_apply_bulk",
    };
    let mut mix = ApplyMix::new();
    // Seed events for the first ends and segments to refer to.
    let first = mix.batch(BATCH);
    rt.block_on(store.apply(&first)).expect("apply");
    // Every batch of the mix writes about as many rows (its phase in the 20-cycle moves it by a
    // row or two).
    let rows_per_batch = rows_of(&first);

    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(rows_per_batch));
    let (mut rows, mut spent) = (0u64, Duration::ZERO);
    g.bench_function(BenchmarkId::from_parameter(BATCH), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let batch = mix.batch(BATCH);
                let started = Instant::now();
                let written = rt.block_on(store.apply(&batch)).expect("apply");
                elapsed += started.elapsed();
                assert_eq!(written, rows_of(&batch), "every row of the mix is live");
                rows += written;
            }
            spent += elapsed;
            elapsed
        })
    });
    g.finish();
    if rows > 0 {
        println!(
            "{name}/{BATCH}: ~{rows_per_batch} rows per batch of {BATCH} envelopes; {rows} rows in {:.2} s \
             (warm-up included) = {:.0} rows/s, {:.0} envelopes/s",
            spent.as_secs_f64(),
            rows as f64 / spent.as_secs_f64(),
            rows as f64 / spent.as_secs_f64() * BATCH as f64 / rows_per_batch as f64,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (c) reads at 1M events

struct ReadFixture {
    rt: Runtime,
    store: Arc<EmbeddedStore>,
    /// The build day: the fixture's 30 days end here (reads never filter on retention).
    anchor: Day,
    devices: Vec<DeviceId>,
}

fn read_fixture() -> &'static ReadFixture {
    static FIXTURE: OnceLock<ReadFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = runtime();
        let dir = target_dir().join("bench-data").join(READ_FIXTURE);
        if !dir.join("anchor").exists() {
            build_read_fixture(&rt, &dir);
        }
        let anchor = std::fs::read_to_string(dir.join("anchor")).expect("anchor file");
        let anchor = Day::from_number(anchor.trim().parse().expect("anchor day number")).expect("anchor day");
        let store = EmbeddedStore::open(&dir.join("store.db"), TimePolicy::default()).expect("open 1M store");
        println!("store_read_1m: fixture {} (days {} ..= {anchor})", dir.display(), anchor.add_days(-(READ_DAYS - 1)));
        ReadFixture { rt, store, anchor, devices: (0..READ_DEVICES).map(cid).collect() }
    })
}

fn build_read_fixture(rt: &Runtime, dir: &Path) {
    let building = dir.with_extension("building");
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).expect("fixture dir");
    let started_at = Instant::now();
    let now = Timestamp::now();
    let offset = DayOffset::default();
    let today = offset.day_of(now).expect("today");
    let first_day = offset.start_of(today.add_days(-(READ_DAYS - 1)));
    let span = now.millis() - first_day.millis();
    println!(
        "store_read_1m: building {} events in {} (one-time)",
        READ_DEVICES * READ_EVENTS_PER_DEVICE,
        building.display()
    );
    {
        let store = EmbeddedStore::open(&building.join("store.db"), TimePolicy::default()).expect("open store");
        let mut rng = fastrand::Rng::with_seed(1);
        let mut batch = Vec::with_capacity(100_000);
        let (mut events, mut rows) = (0usize, 0u64);
        for d in 0..READ_DEVICES {
            let cid = cid(d);
            for _ in 0..READ_EVENTS_PER_DEVICE {
                let at = first_day.plus_millis(rng.i64(0..span));
                let (id, e) = started(&cid, KINDS[rng.usize(..KINDS.len())], at);
                batch.push(e);
                // Nine in ten events have ended.
                if rng.u8(..10) != 0 {
                    batch.push(ended(&id, rng.i64(1_000..120_000)));
                }
                events += 1;
            }
            if batch.len() >= 90_000 || d + 1 == READ_DEVICES {
                rows += rt.block_on(store.apply(&batch)).expect("apply");
                batch.clear();
                println!("  {events} events, {rows} rows written, {:.0} s", started_at.elapsed().as_secs_f64());
            }
        }
    }
    std::fs::write(building.join("anchor"), today.number().to_string()).expect("anchor file");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&building, dir).expect("publish fixture");
    println!("store_read_1m: built in {:.0} s", started_at.elapsed().as_secs_f64());
}

fn report_latency(name: &str, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    println!(
        "store_read_1m/{name}: {} calls: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        h.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1e6,
        h.mean() / 1e6,
    );
}

/// One call to time: a random device (and day) each time.
#[derive(Clone, Copy)]
enum Read {
    Calendar,
    DayPageFirst,
    DayPageNext,
}

impl Read {
    fn name(self) -> &'static str {
        match self {
            Self::Calendar => "calendar",
            Self::DayPageFirst => "day_page_first",
            Self::DayPageNext => "day_page_next",
        }
    }
}

/// The arguments of one call, drawn before timing (the cursor for a next page comes from a
/// first page fetched untimed).
struct Call {
    cid: DeviceId,
    day: Day,
    cursor: Option<Vec<u8>>,
}

async fn prepare(f: &ReadFixture, rng: &mut fastrand::Rng, read: Read) -> Call {
    loop {
        let cid = f.devices[rng.usize(..f.devices.len())].clone();
        let day = f.anchor.add_days(-rng.i64(0..READ_DAYS));
        if !matches!(read, Read::DayPageNext) {
            return Call { cid, day, cursor: None };
        }
        let first = f.store.day_page(&cid, day, None, 10, None).await.expect("day page");
        if let Some(cursor) = first.next {
            return Call { cid, day, cursor: Some(cursor) };
        }
    }
}

async fn call(f: &ReadFixture, read: Read, c: &Call) -> usize {
    match read {
        Read::Calendar => {
            let days = f.store.calendar(&c.cid, f.anchor.add_days(-(READ_DAYS - 1)), f.anchor).await.expect("calendar");
            days.len()
        }
        Read::DayPageFirst | Read::DayPageNext => {
            let page = f.store.day_page(&c.cid, c.day, None, 10, c.cursor.as_deref()).await.expect("day page");
            page.events.len()
        }
    }
}

fn latency_percentiles(f: &ReadFixture, read: Read) {
    let mut rng = fastrand::Rng::with_seed(99);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut items = 0usize;
    f.rt.block_on(async {
        for _ in 0..LATENCY_CALLS {
            let c = prepare(f, &mut rng, read).await;
            let started = Instant::now();
            items += call(f, read, &c).await;
            h.record(started.elapsed().as_nanos() as u64).expect("in histogram range");
        }
    });
    report_latency(read.name(), &h);
    println!("  ({:.1} rows returned per call)", items as f64 / LATENCY_CALLS as f64);
}

fn store_read_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_read_1m");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    for read in [Read::Calendar, Read::DayPageFirst, Read::DayPageNext] {
        let mut percentiles_done = false;
        g.bench_function(read.name(), |b| {
            let f = read_fixture();
            if !percentiles_done {
                percentiles_done = true;
                latency_percentiles(f, read);
            }
            let mut rng = fastrand::Rng::with_seed(5);
            b.iter_custom(|iters| {
                f.rt.block_on(async {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let c = prepare(f, &mut rng, read).await;
                        let started = Instant::now();
                        std::hint::black_box(call(f, read, &c).await);
                        elapsed += started.elapsed();
                    }
                    elapsed
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// (d) the calendar at two volumes: it reads 30 counts, whatever the day holds

const VOLUME_DAYS: i64 = 30;
const VOLUME_BUSY: usize = 2000;
const VOLUME_QUIET: usize = 10;
const VOLUME_OTHERS: usize = 100;
const VOLUME_CALLS: usize = 5_000;

struct VolumeFixture {
    rt: Runtime,
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Arc<EmbeddedStore>,
    today: Day,
}

/// `per_day` events a day for `VOLUME_DAYS` days, spread over each day (today: up to now), nine
/// in ten ended.
fn device_days(cid: &DeviceId, per_day: usize, now: Timestamp, rng: &mut fastrand::Rng, out: &mut Vec<Envelope>) {
    let offset = DayOffset::default();
    let today = offset.day_of(now).expect("today");
    for d in 0..VOLUME_DAYS {
        let day_start = offset.start_of(today.add_days(-d));
        let span = (now.millis() - day_start.millis()).clamp(1, DAY_MS);
        for i in 0..per_day as i64 {
            let at = day_start.plus_millis(i * span / per_day as i64);
            let (id, e) = started(cid, KINDS[rng.usize(..KINDS.len())], at);
            out.push(e);
            if rng.u8(..10) != 0 {
                out.push(ended(&id, rng.i64(1_000..120_000)));
            }
        }
    }
}

fn volume_fixture() -> VolumeFixture {
    let rt = runtime();
    let dir = scratch();
    let path = dir.path().join("store.db");
    let store = EmbeddedStore::open(&path, TimePolicy::default()).expect("open store");
    let now = Timestamp::now();
    let started_at = Instant::now();
    let mut rng = fastrand::Rng::with_seed(11);
    let mut reports = Vec::new();
    device_days(&DeviceId::parse("acme-busy").expect("id"), VOLUME_BUSY, now, &mut rng, &mut reports);
    device_days(&DeviceId::parse("acme-quiet").expect("id"), VOLUME_QUIET, now, &mut rng, &mut reports);
    for i in 0..VOLUME_OTHERS {
        device_days(&cid(i), VOLUME_QUIET, now, &mut rng, &mut reports);
    }
    // Interleaved as a projector would see them: devices mixed, days in any order.
    rng.shuffle(&mut reports);
    let mut rows = 0;
    for batch in reports.chunks(16_384) {
        rows += rt.block_on(store.apply(batch)).expect("apply");
    }
    println!(
        "calendar_volume: {} reports ({rows} rows; {} devices) applied in {:.1} s",
        reports.len(),
        VOLUME_OTHERS + 2,
        started_at.elapsed().as_secs_f64()
    );
    VolumeFixture { rt, _dir: dir, path, store, today: DayOffset::default().day_of(now).expect("today") }
}

fn calendar_volume(c: &mut Criterion) {
    let f = volume_fixture();
    let from = f.today.add_days(-(VOLUME_DAYS - 1));
    let mut g = c.benchmark_group("calendar_volume");
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    // The query the calendar ran before it kept counts, on the same file, for comparison.
    let conn = rusqlite::Connection::open(&f.path).expect("open store file");
    let days: Vec<String> = (0..VOLUME_DAYS).map(|i| from.add_days(i).number().to_string()).collect();
    let old_sql = format!(
        "SELECT day, count(*) FROM events WHERE day IN ({}) AND cid = ?1 GROUP BY day ORDER BY day DESC",
        days.join(",")
    );
    for (name, device, per_day) in
        [("per_day_2000", "acme-busy", VOLUME_BUSY), ("per_day_10", "acme-quiet", VOLUME_QUIET)]
    {
        let cid = DeviceId::parse(device).expect("id");
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
        let mut old = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
        let mut total = 0u64;
        f.rt.block_on(async {
            for _ in 0..VOLUME_CALLS {
                let started = Instant::now();
                let days = f.store.calendar(&cid, from, f.today).await.expect("calendar");
                h.record(started.elapsed().as_nanos() as u64).expect("in histogram range");
                total = days.iter().map(|d| d.1).sum();
            }
        });
        let mut old_total = 0i64;
        let mut stmt = conn.prepare_cached(&old_sql).expect("old calendar query");
        for _ in 0..VOLUME_CALLS.min(1000) {
            let started = Instant::now();
            old_total =
                stmt.query_map([device], |r| r.get::<_, i64>(1)).expect("query").map(|n| n.expect("count")).sum();
            old.record(started.elapsed().as_nanos() as u64).expect("in histogram range");
        }
        assert_eq!(total, old_total as u64, "the counts agree with the rows");
        assert!(total as usize >= per_day * (VOLUME_DAYS as usize - 1), "{name}: {total} events");
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1e6;
        println!(
            "calendar_volume/{name}: {total} events over {VOLUME_DAYS} days; calendar {} calls: p50 {:.3} ms, \
             p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; count(*) over the rows (before counts were kept) {} calls: \
             p50 {:.3} ms, p99 {:.3} ms",
            h.len(),
            ms(&h, 0.5),
            ms(&h, 0.99),
            ms(&h, 0.999),
            h.max() as f64 / 1e6,
            old.len(),
            ms(&old, 0.5),
            ms(&old, 0.99),
        );
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                f.rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(f.store.calendar(&cid, from, f.today).await.expect("calendar"));
                    }
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    log_group_commit,
    log_commit_linger,
    log_head_reader,
    store_apply,
    store_read_1m,
    calendar_volume
);
criterion_main!(benches);
