//! The data directory fills up under load while `daybook ingest`, `daybook projector` and
//! `daybook api` run as three processes on it — the embedded log appended by ingest alone and
//! read by the projector from its files — and then gets its space back. The data directory is
//! in a 24 MiB tmpfs of the test's own; a filler file takes every free byte while 40 devices
//! report, so ingest's log commits fail (ENOSPC) and devices are answered 503. The devices
//! stop while the disk is still full (the reports then in their hands are never acknowledged),
//! the filler goes, and the same devices report again until acceptance has resumed a while.
//!
//! The regression it guards: the embedded log could hand out an offset twice. A group commit
//! that failed (ENOSPC on the write) was cut back but did not advance the next offset, so the
//! next commit gave those offsets to other records; a reader in another process read every
//! frame that checks, including the failed commit's frames in the moment before the cut. The
//! projector could project reports that were answered 503 (never acknowledged), commit past
//! them, and then skip the acknowledged reports later written at the same offsets. Fixed:
//! a failed commit burns its offsets, and readers in other processes never pass the durable
//! head the writer publishes in `DATA_DIR/log/HEAD`.
//!
//! What is checked, from outside the processes (the devices' ledger, the viewer API, the files):
//! * every report answered 201 is listed exactly once by `daybook api`;
//! * no report that was never acknowledged is listed (save those whose answer leaves it open:
//!   a deadline 503, no answer at all), nor is such a report in the log at all;
//! * while it all runs, the projector's committed position never passes the published durable
//!   head, and no record ends up at an offset a failed commit burned (HEAD sampled every few ms);
//! * every failed commit burned offsets: the log has at least as many missing offsets as ingest
//!   counted failed commits (an old build, which reused them, leaves none).
//!
//! Mounting the tmpfs needs root: the test prints why it skips otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::embedded_log::{files, head, segment};
use schemas::{DayOffset, DeviceId, Envelope, EventId, EventType, Report, Timestamp};
use tests::outage::{assert_listed_exactly_once, listed, Attempt, Load};
use tests::process::Bin;
use tests::tmpfs::{fill, Tmpfs};

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));
const DEVICES: usize = 40;
/// How long the disk stays full once ingest has refused a report.
const FULL_FOR: Duration = Duration::from_secs(5);
/// The projector's consumer group (`daybook projector`'s default).
const GROUP: &str = "daybook-projector";
const S3_KEYS: (&str, &str) = ("disk-full-test", "disk-full-test-secret-0123456789");

/// The sum of the samples of the series starting with `series` at `base`/metrics.
async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(series) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What a watcher thread saw of `log/HEAD` and the projector's committed position while the
/// processes ran.
#[derive(Debug, Default)]
struct Watched {
    samples: u64,
    /// `[durable, reserved)` of every head seen with burned offsets.
    burned: BTreeSet<(i64, i64)>,
    /// (committed position, durable head) whenever the position was past the head.
    passed_head: Vec<(i64, i64)>,
}

/// Samples the projector's committed position, then `HEAD`, every 2 ms until `stop`. The
/// position is read first: the head only grows, so a position committed from records below
/// the head read then is still at or below the head read after it.
fn watch(log: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Watched> {
    std::thread::spawn(move || {
        let mut w = Watched::default();
        while !stop.load(Ordering::Relaxed) {
            let committed = files::groups(&log).ok().and_then(|g| g.get(GROUP).copied());
            if let Ok(Some(h)) = head::read(&log) {
                w.samples += 1;
                if h.reserved > h.durable {
                    w.burned.insert((h.durable, h.reserved));
                }
                if let Some(next) = committed.filter(|&n| n > h.durable) {
                    w.passed_head.push((next, h.durable));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        w
    })
}

/// One record of the log, read back from its files.
struct Stored {
    offset: i64,
    /// The event id of an event start.
    event_id: Option<String>,
}

/// Every durable record of the log in `log`, oldest first (read once nothing appends).
fn read_log(log: &Path) -> Vec<Stored> {
    let durable = files::durable_head(log).expect("the durable head");
    let mut out = Vec::new();
    for base in files::segments(log).expect("the segments") {
        let mut r = segment::Reader::open(&files::segment_path(log, base), 0).expect("a segment");
        loop {
            match r.next_frame().expect("read a segment") {
                Ok(frame) => {
                    let c = frame.consumed;
                    if c.position.offset >= durable {
                        break;
                    }
                    let env = Envelope::decode(&c.value).expect("a daybook envelope");
                    let event_id = match env.report {
                        Report::EventStarted(s) => Some(s.event_id.as_str().to_owned()),
                        _ => None,
                    };
                    out.push(Stored { offset: c.position.offset, event_id });
                }
                Err(segment::Stop::Incomplete) => break,
                Err(segment::Stop::Corrupt(why)) => panic!("segment {base}: {why}"),
            }
        }
    }
    out
}

/// The id the server gives `cid`'s `motion` start at `triggered_at` (sent as `Z`, by a device
/// whose token names no zone, to a server at `--day-offset +00:00`): the version 1 form.
fn event_id(cid: &str, triggered_at: &str) -> String {
    let at = chrono::DateTime::parse_from_rfc3339(triggered_at).expect("an RFC 3339 time").timestamp_millis();
    let (cid, motion) = (DeviceId::parse(cid).unwrap(), EventType::parse("motion").unwrap());
    EventId::new_v1(&cid, &motion, Timestamp(at), DayOffset::default()).unwrap().as_str().to_owned()
}

/// What came of one report (one event id) over all its attempts.
#[derive(Debug, Default)]
struct Outcome {
    cid: String,
    date: String,
    acknowledged: bool,
    /// An answer that leaves open whether it was stored: 503 past the deadline (the commit may
    /// still land), or no answer at all.
    open: bool,
    /// Answered 503 because a log commit failed (the full disk).
    failed_commit: bool,
}

fn outcomes(attempts: &[Attempt]) -> BTreeMap<String, Outcome> {
    let mut out: BTreeMap<String, Outcome> = BTreeMap::new();
    for a in attempts {
        let id = event_id(&a.cid, &a.triggered_at);
        if let Some(got) = &a.event_id {
            assert_eq!(got, &id, "the test derives event ids as the server does");
        }
        let o = out.entry(id.clone()).or_insert_with(|| Outcome {
            cid: a.cid.clone(),
            date: format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8]),
            ..Outcome::default()
        });
        let message = a.message.as_deref().unwrap_or("");
        match a.status {
            Some(201) => o.acknowledged = true,
            None => o.open = true,
            Some(503) if message.contains("did not confirm in time") => o.open = true,
            Some(503) if message.contains("os error 28") || message.contains("No space left") => o.failed_commit = true,
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_on_a_full_disk_never_list_an_unacknowledged_report() {
    let mount = match Tmpfs::mount("24m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED separate_processes_on_a_full_disk_never_list_an_unacknowledged_report: {why} (needs root)"
            );
            return;
        }
    };
    let began = Instant::now();
    let dir = tempfile::tempdir_in(mount.path()).unwrap();
    let d = dir.path().to_str().unwrap();
    let log_dir = dir.path().join("log");

    // An S3 endpoint of the test's own for ingest and api to sign against (off the tmpfs, and
    // never used for an event start).
    let s3_server = tests::s3::TestS3::start(S3_KEYS.0, S3_KEYS.1).await;
    let (s3, env) = (s3_server.endpoint.clone(), s3_server.env);

    // The token keys are generated in the data directory first; every process reads them there.
    let auth = daybook::secrets::auth(dir.path()).unwrap();
    let devices: Vec<(String, String)> = (0..DEVICES)
        .map(|i| {
            let cid = format!("cam-p{i}");
            let token = auth.device_token(&DeviceId::parse(&cid).unwrap(), Duration::from_secs(3600));
            (cid, token)
        })
        .collect();
    let cids: Vec<DeviceId> = devices.iter().map(|d| DeviceId::parse(&d.0).unwrap()).collect();
    let viewer = auth.viewer_token(&cids, Duration::from_secs(3600));

    let http_flags = ["--data-dir", d, "--http-addr", "127.0.0.1:0", "--s3-endpoint", &s3];
    let mut ingest_args = vec!["ingest"];
    ingest_args.extend(http_flags);
    ingest_args.extend(["--device-rate", "1000", "--device-burst", "1000", "--request-timeout-ms", "5000"]);
    let ingest = DAYBOOK.start(&ingest_args, &env);
    let projector = DAYBOOK.start(&["projector", "--data-dir", d, "--metrics-addr", "127.0.0.1:0"], &[]);
    let mut api_args = vec!["api"];
    api_args.extend(http_flags);
    let api = DAYBOOK.start(&api_args, &env);
    let (ingest_url, api_url) = (ingest.http().to_owned(), api.http().to_owned());
    let projector_url = projector.metrics.clone().expect("the projector's metrics listener");
    let http = reqwest::Client::new();

    let stop_watch = Arc::new(AtomicBool::new(false));
    let watcher = watch(log_dir.clone(), stop_watch.clone());

    // Two rounds of the same devices. The first runs until the disk has been full a while and
    // stops there: the reports then in the devices' hands were refused (some after a commit
    // that failed) and are never acknowledged — cameras that gave up on them. The second
    // starts once the space is back.
    let pause = Duration::from_millis(200);
    let load = Load::start(&ingest_url, devices.clone(), pause);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(load.acknowledged() > 0, "reports accepted before the disk fills");

    let filled = Instant::now();
    let mut fillers = 0;
    let mut refill = || {
        fillers += 1;
        fill(&mount.path().join(format!("filler-{fillers}")))
    };
    let bytes = refill();
    let refused_at = loop {
        if let Some(t) = load.first_refused_after(filled) {
            break t;
        }
        assert!(filled.elapsed() < Duration::from_secs(30), "no report refused 30 s into a full disk");
        // Keep the disk full: SQLite and the group files may have given pages back.
        refill();
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Full for a while, so that ingest's probes keep meeting it.
    let until = Instant::now() + FULL_FOR;
    while Instant::now() < until {
        refill();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Viewers still read while the disk is full.
    let calendar = http
        .get(format!("{api_url}/v1/devices/cam-p0/calendar?days=2"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let first = load.stop().await;

    for entry in std::fs::read_dir(mount.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("filler") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let freed = Instant::now();
    let load = Load::start(&ingest_url, devices, pause);
    let resumed = load.wait_acknowledged_after(freed, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut ledger = load.stop().await;
    // One ledger of both rounds (their reports differ: each has its own trigger times).
    for (cid, ids) in first.accepted {
        ledger.accepted.entry(cid).or_default().extend(ids);
    }
    ledger.answers.extend(first.answers);
    ledger.attempts.extend(first.attempts);
    ledger.unanswered.extend(first.unanswered);
    ledger.acknowledged_on_retry += first.acknowledged_on_retry;

    // Every acknowledged report is listed exactly once (waiting for the projector)…
    let projected_in = assert_listed_exactly_once(&api_url, &viewer, &ledger.accepted, Duration::from_secs(60)).await;
    // …and the projector has read and committed everything durable, so whatever else the log
    // holds is projected too by now.
    let caught_up = Instant::now();
    loop {
        let durable = files::durable_head(&log_dir).unwrap();
        let committed = files::groups(&log_dir).unwrap().get(GROUP).copied().unwrap_or(0);
        if committed >= durable {
            break;
        }
        assert!(caught_up.elapsed() < Duration::from_secs(60), "the projector stopped at {committed} of {durable}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let commit_errors = metric(&ingest_url, "daybook_log_commit_errors_total").await;
    let projector_write_errors = metric(&projector_url, "daybook_projector_write_errors_total").await;
    // (+ 0.0: an empty sum is -0.)
    let quarantined = metric(&projector_url, "daybook_projector_quarantined_total").await + 0.0;

    let reports = outcomes(&ledger.attempts);
    let unacknowledged: BTreeSet<&String> =
        reports.iter().filter(|(_, o)| !o.acknowledged && !o.open).map(|(id, _)| id).collect();
    let open = reports.values().filter(|o| !o.acknowledged && o.open).count();
    let refused_after_failed_commit = reports.values().filter(|o| !o.acknowledged && o.failed_commit).count();
    // Everything listed, on every day a report was sent for: each id once, and each one
    // acknowledged (or left open by its answer).
    let mut days: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for o in reports.values() {
        days.entry(o.cid.as_str()).or_default().insert(o.date.as_str());
    }
    let mut listed_ids = BTreeSet::new();
    let mut listed_unacknowledged = Vec::new();
    let mut listed_unknown = Vec::new();
    for (cid, dates) in &days {
        for date in dates {
            let ids = listed(&http, &api_url, &viewer, cid, date).await;
            let unique: BTreeSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{cid} on {date}: an event listed twice");
            for id in ids {
                match reports.get(&id) {
                    None => listed_unknown.push(id.clone()),
                    Some(o) if !o.acknowledged && !o.open => listed_unacknowledged.push(id.clone()),
                    Some(_) => {}
                }
                listed_ids.insert(id);
            }
        }
    }

    let ingest_exit = ingest.stop();
    let projector_exit = projector.stop();
    let api_exit = api.stop();
    stop_watch.store(true, Ordering::Relaxed);
    let watched = watcher.join().expect("the watcher");
    let _ = s3_server.stop().await;

    // The log itself, read back from its files with nothing running.
    let records = read_log(&log_dir);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "the log's offsets rise: no offset held twice");
    let missing: i64 = offsets.first().map_or(0, |&f| f - 1) + offsets.windows(2).map(|w| w[1] - w[0] - 1).sum::<i64>();
    let in_log: BTreeSet<&str> = records.iter().filter_map(|r| r.event_id.as_deref()).collect();
    let lost: Vec<&String> = ledger.accepted.values().flatten().filter(|id| !in_log.contains(id.as_str())).collect();
    let stored_unacknowledged: Vec<&&String> =
        unacknowledged.iter().filter(|id| in_log.contains(id.as_str())).collect();
    let at_burned: Vec<i64> =
        offsets.iter().copied().filter(|o| watched.burned.iter().any(|&(from, to)| (from..to).contains(o))).collect();

    let mut codes = BTreeMap::<String, usize>::new();
    for a in &ledger.answers {
        *codes.entry(format!("{} {}", a.status, a.code.as_deref().unwrap_or(""))).or_default() += 1;
    }
    eprintln!(
        "disk-full processes figures: filler {bytes} bytes, first refusal {:?} after filling, full {:?}; answers \
         {codes:?}; acceptance resumed {resumed:?} after space returned; {} reports: {} acknowledged ({} on a \
         retry), {} never acknowledged ({refused_after_failed_commit} of them last refused after a failed commit), \
         {open} left open (deadline 503 or no answer); {} requests unanswered; ingest's failed log commits \
         {commit_errors}, offsets missing from the log {missing} ({} records, up to offset {}); HEAD sampled {} \
         times, burned ranges seen {:?}; projector store write errors {projector_write_errors}, quarantined \
         {quarantined}; a viewer's calendar while full {calendar}; all acknowledged listed {projected_in:?} after \
         the load stopped, {} ids listed in all; exits {ingest_exit} / {projector_exit} / {api_exit}; {:?} in all",
        refused_at.duration_since(filled),
        freed.duration_since(filled),
        reports.len(),
        ledger.total(),
        ledger.acknowledged_on_retry,
        unacknowledged.len(),
        ledger.unanswered.len(),
        records.len(),
        offsets.last().copied().unwrap_or(0),
        watched.samples,
        watched.burned.iter().take(10).collect::<Vec<_>>(),
        listed_ids.len(),
        began.elapsed(),
    );

    assert!(
        listed_unacknowledged.is_empty(),
        "{} reports never acknowledged (refused, not left open) are listed, e.g. {:?}",
        listed_unacknowledged.len(),
        &listed_unacknowledged[..listed_unacknowledged.len().min(5)]
    );
    assert!(listed_unknown.is_empty(), "events no device reported are listed: {listed_unknown:?}");
    assert!(lost.is_empty(), "acknowledged reports missing from the log: {lost:?}");
    assert!(
        stored_unacknowledged.is_empty(),
        "reports refused (never acknowledged) are in the log: {stored_unacknowledged:?}"
    );
    assert!(
        watched.passed_head.is_empty(),
        "the projector committed past the durable head (position, head): {:?}",
        &watched.passed_head[..watched.passed_head.len().min(5)]
    );
    assert!(watched.samples > 0, "ingest publishes the log's durable head in log/HEAD");
    assert!(at_burned.is_empty(), "records at offsets a failed commit burned: {at_burned:?}");
    assert!(!unacknowledged.is_empty(), "reports left unacknowledged on the full disk, to look for");
    assert!(commit_errors > 0.0, "the log's writer met the full disk (no failed commit counted)");
    assert!(
        missing as f64 >= commit_errors,
        "every failed commit burns its offsets: {commit_errors} failed commits, {missing} offsets missing"
    );
    assert!(ledger.answers.iter().any(|a| a.status == 503 && a.sent >= refused_at), "the full disk was seen");
    for a in &ledger.answers {
        assert!(matches!(a.status, 201 | 503), "unexpected status {} {:?}", a.status, a.code);
        assert!(a.status == 201 || a.retry_after, "every refusal carries a Retry-After");
    }
    assert_eq!(calendar, 200, "viewers read on a full disk");
    assert_eq!(quarantined, 0.0, "nothing set aside");
    assert!(ingest_exit.success() && projector_exit.success() && api_exit.success(), "clean exits");
    drop(mount);
}
