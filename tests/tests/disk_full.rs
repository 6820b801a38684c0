//! The data directory fills up under load and then gets its space back. The all-in-one runs on
//! the embedded engines in a small tmpfs (mounting one needs root: the test prints why it
//! skips otherwise); a filler file takes every free byte while devices keep reporting.
//! Every answer arrives within the request deadline (503 with a Retry-After while the log cannot
//! write), `/readyz` names the log, the projector's store writes fail and are retried (nothing
//! quarantined), nothing exits; once the filler is deleted acceptance resumes by itself and every
//! report answered 201 is projected and listed exactly once.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::app::start_with;
use tests::outage::{assert_listed_exactly_once, Load};
use tests::tmpfs::{fill, Tmpfs};

const DEVICES: usize = 40;
const DEADLINE: Duration = Duration::from_secs(5);
/// How long the disk stays full once the log has refused a report.
const FULL_FOR: Duration = Duration::from_secs(8);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_is_answered_503_and_recovers_losing_nothing() {
    let mount = match Tmpfs::mount("24m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED a_full_data_directory_is_answered_503_and_recovers_losing_nothing: {why} (needs root)");
            return;
        }
    };
    let dir = tempfile::tempdir_in(mount.path()).unwrap();
    let app = start_with(dir, None, None, |c| {
        c.ingest.request_timeout = DEADLINE;
        c.ingest.device_rate_per_s = 1000;
        c.ingest.device_burst = 1000;
        // A long linger: a batch of acknowledged reports is in the projector's hands when the
        // disk fills, so its store write meets the full disk too.
        c.projector.linger = Duration::from_secs(2);
    })
    .await;
    let devices: Vec<(String, String)> = (0..DEVICES)
        .map(|i| {
            let cid = format!("cam-f{i}");
            let token = app.device_token(&cid);
            (cid, token)
        })
        .collect();
    let cids: Vec<&str> = devices.iter().map(|d| d.0.as_str()).collect();
    let viewer = app.viewer_token(&cids);
    let http = reqwest::Client::new();

    let load = Load::start(&app.http, devices.clone(), Duration::from_millis(200));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.acknowledged();
    assert!(before > 0, "reports accepted before the disk fills");

    let filler = mount.path().join("filler");
    let filled = Instant::now();
    let bytes = fill(&filler);
    // SQLite reuses WAL space it already has: the first refusal may take a few commits.
    let refused_at = loop {
        if let Some(t) = load.first_refused_after(filled) {
            break t;
        }
        assert!(filled.elapsed() < Duration::from_secs(30), "no report refused 30 s into a full disk");
        // Keep the disk full: SQLite may have freed pages back to the file system.
        fill(&mount.path().join(format!("filler-{}", filled.elapsed().as_millis())));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(FULL_FOR / 2).await;
    let ready = http.get(format!("{}/readyz", app.http)).send().await.unwrap();
    let ready_status = ready.status().as_u16();
    let ready: Value = ready.json().await.unwrap();
    // Viewers still read: the store's readers need no space.
    let read = Instant::now();
    let calendar =
        http.get(format!("{}/v1/devices/cam-f0/calendar?days=2", app.http)).bearer_auth(&viewer).send().await.unwrap();
    let (calendar_status, calendar_in) = (calendar.status().as_u16(), read.elapsed());
    tokio::time::sleep(FULL_FOR / 2).await;
    let metrics_full = http.get(format!("{}/metrics", app.http)).send().await.unwrap().text().await.unwrap();
    assert!(!app.has_exited(), "the all-in-one kept running on a full disk");

    for entry in std::fs::read_dir(mount.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("filler") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let freed = Instant::now();
    let resumed = load.wait_acknowledged_after(freed, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let l = load.stop().await;

    let during = l.sent_between(refused_at, freed);
    let longest = l.answers.iter().map(|a| a.took).max().unwrap();
    let longest_during = during.iter().map(|a| a.took).max().unwrap_or_default();
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for a in &during {
        *codes.entry(format!("{} {}", a.status, a.code.as_deref().unwrap_or(""))).or_default() += 1;
    }
    let p99_during = {
        let mut t: Vec<Duration> = during.iter().map(|a| a.took).collect();
        t.sort();
        t.get(t.len() * 99 / 100).copied().unwrap_or_default()
    };
    let projected_in = assert_listed_exactly_once(&app.http, &viewer, &l.accepted, Duration::from_secs(60)).await;
    let metrics_after = http.get(format!("{}/metrics", app.http)).send().await.unwrap().text().await.unwrap();
    eprintln!(
        "disk-full figures: filler {bytes} bytes; first refusal {:?} after filling; {} answers while full \
         ({codes:?}), p99 {p99_during:?}, longest {longest_during:?}; longest answer overall {longest:?}; \
         /readyz while full {ready_status} {ready}; a viewer's calendar while full {calendar_status} in \
         {calendar_in:?}; projector store write errors while full {}; acceptance \
         resumed {resumed:?} after space returned; {} events acknowledged ({} on a retry), all listed \
         exactly once {projected_in:?} after the load stopped; {} requests unanswered",
        refused_at.duration_since(filled),
        during.len(),
        metric(&metrics_full, "daybook_projector_write_errors_total"),
        l.total(),
        l.acknowledged_on_retry,
        l.unanswered.len(),
    );
    assert!(l.unanswered.is_empty(), "every request got an HTTP answer: {:?}", l.unanswered);
    assert!(longest <= DEADLINE + Duration::from_secs(1), "an answer took {longest:?}");
    assert!(during.iter().any(|a| a.status == 503), "the full disk was seen");
    for a in &l.answers {
        assert!(matches!(a.status, 201 | 503 | 507), "unexpected status {} {:?}", a.status, a.code);
        assert!(a.status == 201 || a.retry_after, "every refusal carries a Retry-After");
    }
    assert_eq!(ready_status, 503, "/readyz while the log cannot write: {ready}");
    assert_ne!(ready["checks"]["log"], "ok", "{ready}");
    assert_eq!(calendar_status, 200, "viewers read on a full disk");
    assert!(metric(&metrics_full, "daybook_projector_write_errors_total") > 0.0, "the projector met the full disk");
    assert_eq!(metric(&metrics_after, "daybook_projector_quarantined_total"), 0.0, "nothing set aside");
    assert!(!app.has_exited(), "the all-in-one kept running");
    app.stop().await;
    drop(mount);
}
