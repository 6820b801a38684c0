//! The measured recovery point of `run --replicate-to`: devices report and upload video under
//! load; at a random moment the process is killed and its data directory deleted (the disk is
//! gone); the repositories alone are restored and served. An outside ledger decides: every
//! report acknowledged more than `--replicate-every` + 1 s before the loss is listed, and every
//! segment uploaded as long before is back byte for byte — from a directory repository and
//! from an `s3://` one (the embedded S3 endpoint of a second daybook, sealed with a key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::client::Http;
use tests::outage::{self, Load};
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let out = Command::new(DAYBOOK.0).args(args).env("RUST_LOG", "warn").envs(envs.iter().copied()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "daybook {args:?}: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("JSON")
}

/// Every file under `dir` whose name holds `id`: its bytes.
fn find(dir: &Path, id: &str) -> Option<Vec<u8>> {
    for entry in std::fs::read_dir(dir).ok()? {
        let p = entry.ok()?.path();
        if p.is_dir() {
            if let Some(found) = find(&p, id) {
                return Some(found);
            }
        } else if p.file_name()?.to_str()?.contains(id) {
            return std::fs::read(&p).ok();
        }
    }
    None
}

/// An uploaded segment: its id, its bytes, and when its PUT was answered.
type Upload = (String, Vec<u8>, Instant);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_disk_costs_at_most_the_shipping_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, dir_repo, s3_dir) = (tmp.path().join("a"), tmp.path().join("repo"), tmp.path().join("s3"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&s3_dir).unwrap();
    // The second repository: another daybook's S3 endpoint, over 127.0.0.1.
    let target = DAYBOOK.run_in(s(&s3_dir), &[]);
    let endpoint = target.s3.clone().expect("an embedded S3 endpoint");
    let creds = std::fs::read_to_string(s3_dir.join("s3-credentials")).unwrap();
    let (ak, sk) = creds.trim().split_once(':').unwrap();
    let envs =
        [("AWS_ACCESS_KEY_ID", ak), ("AWS_SECRET_ACCESS_KEY", sk), ("DAYBOOK_BACKUP_S3_ENDPOINT", endpoint.as_str())];
    let key = tmp.path().join("key");
    std::fs::write(&key, "0f".repeat(32)).unwrap();
    let s3_repo = "s3://daybook/replica/site-1";

    let every = Duration::from_secs(1);
    let server = DAYBOOK.start(
        &[
            "run",
            "--data-dir",
            s(&a),
            "--replicate-to",
            s(&dir_repo),
            "--replicate-to",
            s3_repo,
            "--replicate-every",
            "1s",
            "--backup-encryption-key-file",
            s(&key),
        ],
        &envs,
    );
    let devices: Vec<(String, String)> = (0..20)
        .map(|i| {
            let cid = format!("cam-{i:02}");
            let token = DAYBOOK.token(&["device", &cid, "--data-dir", s(&a)]);
            (cid, token)
        })
        .collect();
    let load = Load::start(server.http(), devices.clone(), Duration::from_millis(40));
    // Video, uploaded as devices do: (segment id, bytes, when its PUT was answered).
    let uploads: Arc<Mutex<Vec<Upload>>> = Arc::default();
    let uploader = {
        // A device of its own: the reporting devices use up their rate.
        let token = DAYBOOK.token(&["device", "cam-video", "--data-dir", s(&a)]);
        let (dev, uploads) = (Http::new(server.http(), &token), uploads.clone());
        tokio::spawn(async move {
            for n in 0u32.. {
                let bytes: Vec<u8> = (0..20_000u32).map(|i| ((i * 7 + n) % 251) as u8).collect();
                let id = tests::flow::upload_segment(&dev, "cam-video", &bytes).await;
                uploads.lock().unwrap().push((id, bytes, Instant::now()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // A moment between 5 and 9 s into the load, from the clock's low bits.
    let wait = Duration::from_millis(5000 + u64::from(chrono::Utc::now().timestamp_subsec_millis() % 4000));
    tokio::time::sleep(wait).await;
    let loss = Instant::now();
    server.kill();
    std::fs::remove_dir_all(&a).unwrap();
    uploader.abort();
    let ledger = load.stop().await;
    let window = every + Duration::from_secs(1);

    // Everything acknowledged before the window must come back.
    let mut due: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut in_window, mut acknowledged) = (0, 0);
    for at in ledger.attempts.iter().filter(|at| at.status == Some(201)) {
        acknowledged += 1;
        let answered = at.answered.expect("an answer");
        if answered + window <= loss {
            due.entry(at.cid.clone()).or_default().insert(at.event_id.clone().unwrap());
        } else if answered <= loss {
            in_window += 1;
        }
    }
    let uploads = uploads.lock().unwrap().clone();
    let due_uploads: Vec<_> = uploads.iter().filter(|u| u.2 + window <= loss).collect();
    assert!(due.values().map(BTreeSet::len).sum::<usize>() > 200, "load too light: {acknowledged}");
    assert!(due_uploads.len() > 10, "too few uploads: {}", uploads.len());

    let viewer_args: Vec<&str> = std::iter::once("viewer").chain(devices.iter().map(|d| d.0.as_str())).collect();
    for (name, repo) in [("directory", s(&dir_repo)), ("s3", s3_repo)] {
        let b = tmp.path().join(format!("restored-{name}"));
        let t = Instant::now();
        let r = run(&["restore", "--from", repo, "--data-dir", s(&b), "--encryption-key-file", s(&key)], &envs);
        let restored = &r["restored"];
        assert!(restored["generation"].is_string(), "{name}: the shipped log continued the backup: {r}");
        let copy = DAYBOOK.run_in(s(&b), &[]);
        let mut args = viewer_args.clone();
        args.extend(["--data-dir", s(&b)]);
        let viewer = DAYBOOK.token(&args);
        outage::assert_listed_exactly_once(copy.http(), &viewer, &due, Duration::from_secs(60)).await;
        // The measured recovery point: the oldest acknowledged report that did not come back.
        let http = reqwest::Client::new();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        let days: BTreeSet<(String, String)> = ledger
            .attempts
            .iter()
            .filter_map(|at| {
                at.event_id.as_ref().map(|id| (at.cid.clone(), format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8])))
            })
            .collect();
        for (cid, day) in &days {
            listed.extend(outage::listed(&http, copy.http(), &viewer, cid, day).await);
        }
        let lost: Vec<Duration> = ledger
            .attempts
            .iter()
            .filter(|at| at.event_id.as_ref().is_some_and(|id| !listed.contains(id)))
            .map(|at| loss.saturating_duration_since(at.answered.expect("answered")))
            .collect();
        let rpo = lost.iter().max().copied().unwrap_or_default();
        assert!(rpo <= window, "{name}: a report acknowledged {rpo:?} before the loss did not come back");
        for (id, bytes, _) in &due_uploads {
            assert_eq!(
                find(&b.join("objects"), id).as_ref(),
                Some(bytes),
                "{name}: segment {id} uploaded before the window"
            );
        }
        println!(
            "{name}: loss {:.1} s into the load; {acknowledged} acknowledged, {} due and all back, {in_window} in the last {window:?}, of which {} lost; the oldest lost was acknowledged {:.2} s before the loss; {} of {} uploads due and back; restore {:.1} s (backup {}, {} shipped records)",
            wait.as_secs_f64(),
            due.values().map(BTreeSet::len).sum::<usize>(),
            lost.len(),
            rpo.as_secs_f64(),
            due_uploads.len(),
            uploads.len(),
            t.elapsed().as_secs_f64(),
            restored["id"],
            restored["shipped_records"],
        );
        assert!(copy.stop().success());
    }
    assert!(target.stop().success());
}

/// A camera revoked after the last backup stays revoked in a copy restored from the
/// repository: the revocation was shipped within the interval, and a restore installs the
/// newest secrets it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_camera_stays_revoked_after_a_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, repo, b) = (tmp.path().join("a"), tmp.path().join("repo"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let server = DAYBOOK.run_in(s(&a), &["--replicate-to", s(&repo), "--replicate-every", "200ms"]);
    let stolen = DAYBOOK.token(&["device", "cam-stolen", "--data-dir", s(&a)]);
    let kept = DAYBOOK.token(&["device", "cam-kept", "--data-dir", s(&a)]);
    let post = |token: &str, base: &str| {
        let (token, url) = (
            token.to_owned(),
            format!("{base}/v1/devices/{}/events", if token == stolen { "cam-stolen" } else { "cam-kept" }),
        );
        async move {
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"type": "motion", "triggered_at": at}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(&stolen, server.http()).await, 201);
    // Wait for the scheduled backup at start, so the revocation comes after it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_dir(&repo).is_ok_and(|d| d.flatten().any(|e| e.path().join("manifest.json").exists())) {
        assert!(Instant::now() < deadline, "no backup at start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new(DAYBOOK.0).args(["token", "revoke", "cam-stolen", "--data-dir", s(&a)]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(&stolen, server.http()).await != 401 {
        assert!(Instant::now() < deadline, "the revocation was not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two shipping rounds, then the disk is lost.
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();
    std::fs::remove_dir_all(&a).unwrap();
    run(&["restore", "--from", s(&repo), "--data-dir", s(&b)], &[]);
    let copy = DAYBOOK.run_in(s(&b), &[]);
    assert_eq!(post(&stolen, copy.http()).await, 401, "the revoked camera's token works again after the restore");
    assert_eq!(post(&kept, copy.http()).await, 201, "the other camera's token works");
    assert!(copy.stop().success());
}
