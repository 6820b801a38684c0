//! The restore drill, as an operator runs it with the binary: a live all-in-one takes writes
//! while full and incremental backups are taken next to it; it is killed -9; the backups are
//! restored into a new directory and served from there — every report acknowledged before the
//! last backup is there, objects byte for byte, answers equal to the original's; then the store
//! is rebuilt from the log and compared again. And the ways a backup set goes bad: a flipped
//! byte, a truncated file, a wrong key, a missing parent, a non-empty target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tests::client::Http;
use tests::flow;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

fn daybook(args: &[&str]) -> Output {
    daybook_env(args, &[])
}

fn daybook_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(DAYBOOK.0).args(args).env("RUST_LOG", "warn").envs(envs.iter().copied()).output().expect("run daybook")
}

/// Runs `daybook args` and returns its last stdout line as JSON; fails the test unless it
/// succeeded.
fn ok(args: &[&str]) -> Value {
    ok_env(args, &[])
}

fn ok_env(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let out = daybook_env(args, envs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "daybook {args:?} failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON line")
}

/// Runs `daybook args`, which must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = daybook(args);
    assert!(!out.status.success(), "daybook {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files under `dir/objects`, by path, with their bytes.
fn objects(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&dir.join("objects"), &dir.join("objects"), &mut out);
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A device that keeps reporting while backups run; counts its acknowledged reports and the
/// slowest answer.
fn keep_writing(
    http: &str,
    token: String,
    stop: Arc<AtomicBool>,
    slowest_ms: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    let dev = Http::new(http, &token);
    tokio::spawn(async move {
        let start = Utc::now() - chrono::Duration::hours(2);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let at =
                (start + chrono::Duration::milliseconds(n as i64 * 10)).to_rfc3339_opts(SecondsFormat::Millis, true);
            let t = Instant::now();
            let (status, body) =
                dev.post("/v1/devices/cam-live/events", &json!({"type": "motion", "triggered_at": at})).await;
            assert_eq!(status, StatusCode::CREATED, "a report during a backup: {body}");
            slowest_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, dest, enc_dest, b) =
        (tmp.path().join("a"), tmp.path().join("backups"), tmp.path().join("sealed"), tmp.path().join("b"));
    let key = tmp.path().join("key");
    std::fs::write(&key, format!("{}\n", "5a".repeat(32))).unwrap();
    let wrong_key = tmp.path().join("wrong-key");
    std::fs::write(&wrong_key, "a5".repeat(32)).unwrap();
    std::fs::create_dir_all(&a).unwrap();
    let server = DAYBOOK.run_in(s(&a), &["--device-rate", "1000", "--device-burst", "1000"]);
    let token = |cid: &str| DAYBOOK.token(&["device", cid, "--data-dir", s(&a)]);
    let viewer_token = DAYBOOK.token(&["viewer", "cam-1", "cam-2", "cam-3", "--data-dir", s(&a)]);
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "--data-dir", s(&a), "--to", s(&dest)];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let sealed = || ok(&["backup", "--data-dir", s(&a), "--to", s(&enc_dest), "--encryption-key-file", s(&key)]);

    // Phase 1, then a full backup while a device keeps reporting.
    let e1 = flow::act_as_device(&Http::new(server.http(), &token("cam-1")), "cam-1").await;
    let (stop, slowest) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let live = keep_writing(server.http(), token("cam-live"), stop.clone(), slowest.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let full = tokio::task::block_in_place(|| backup(&[]));
    assert_eq!(full["kind"], "full", "{full}");
    let sealed_full = tokio::task::block_in_place(sealed);
    assert_eq!((sealed_full["kind"].as_str(), sealed_full["encrypted"].as_bool()), (Some("full"), Some(true)));

    // Phase 2, then an incremental.
    let e2 = flow::act_as_device(&Http::new(server.http(), &token("cam-2")), "cam-2").await;
    let backup = |extra: &[&str]| {
        let mut args = vec!["backup", "--data-dir", s(&a), "--to", s(&dest)];
        args.extend_from_slice(extra);
        ok(&args)
    };
    let inc = tokio::task::block_in_place(|| backup(&[]));
    assert_eq!((inc["kind"].as_str(), inc["parent"].as_str()), (Some("incremental"), full["id"].as_str()), "{inc}");
    assert_eq!(inc["log"]["first"], full["log"]["next"], "the incremental continues the full's log");
    let sealed_inc = tokio::task::block_in_place(sealed);
    assert_eq!(sealed_inc["kind"], "incremental");
    stop.store(true, Ordering::Relaxed);
    let live_reports = live.await.unwrap();
    assert!(live_reports > 10, "the device kept reporting during the backups ({live_reports} reports)");
    let slowest_ms = slowest.load(Ordering::Relaxed);
    assert!(slowest_ms < 2000, "a report waited {slowest_ms} ms during a backup");

    // Phase 3 (after the last backup), then a crash.
    let e3 = flow::act_as_device(&Http::new(server.http(), &token("cam-3")), "cam-3").await;
    server.kill();

    let listed = String::from_utf8(daybook(&["backup", "list", s(&dest)]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // Restore into a new directory and serve from it.
    let restored = ok(&["restore", "--from", s(&dest), "--data-dir", s(&b)]);
    assert_eq!(restored["restored"]["id"], inc["id"], "{restored}");
    let original = DAYBOOK.run_in(s(&a), &[]);
    let copy = DAYBOOK.run_in(s(&b), &[]);
    let viewer_a = Http::new(original.http(), &viewer_token);
    let viewer_b = Http::new(copy.http(), &viewer_token);
    for e in [&e1, &e2] {
        flow::wait_projected(&viewer_a, e, Duration::from_secs(30)).await;
        flow::wait_projected(&viewer_b, e, Duration::from_secs(30)).await;
        // The whole viewer contract, presigned downloads included, against the restored copy.
        flow::check_as_viewer(&viewer_b, e).await;
        assert_eq!(
            flow::answers(&viewer_b, e).await,
            flow::answers(&viewer_a, e).await,
            "{} differs after restore",
            e.cid
        );
    }
    // Reports after the last backup are not in it (and the original still has them).
    flow::wait_projected(&viewer_a, &e3, Duration::from_secs(30)).await;
    let (_, cal3) = viewer_b.get("/v1/devices/cam-3/calendar?days=30").await;
    assert_eq!(cal3["days"].as_array().unwrap().iter().filter_map(|d| d["events"].as_u64()).sum::<u64>(), 0, "{cal3}");
    // Objects byte for byte: every object of the restored copy is the original's, and every
    // object the original had when the incremental was taken is restored.
    let (objects_a, objects_b) = (objects(&a), objects(&b));
    for (path, bytes) in &objects_b {
        assert_eq!(objects_a.get(path), Some(bytes), "{path} differs");
    }
    for (path, _) in objects_a.iter().filter(|(p, _)| p.contains("/cam-1/") || p.contains("/cam-2/")) {
        assert!(objects_b.contains_key(path), "{path} was not restored");
    }
    assert!(objects_b.len() >= 6, "{:?}", objects_b.keys());

    // The owner deletes an event of cam-1 on both (a token with scope `manage`): once
    // projected, both answer the same again, and the rebuild below replays the deletion.
    let manager = DAYBOOK.token(&["viewer", "cam-1", "--manage", "--data-dir", s(&a)]);
    for server in [original.http(), copy.http()] {
        let manager = Http::new(server, &manager);
        let (status, body) = manager.delete(&format!("/v1/events/{}", e1.a)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while manager.get(&format!("/v1/events/{}", e1.a)).await.0 != StatusCode::NOT_FOUND {
            assert!(Instant::now() < deadline, "the deletion is not projected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let deleted = flow::answers(&viewer_a, &e1).await;
    assert!(deleted["events"].get(&e1.a).is_none(), "{deleted}");
    assert_eq!(flow::answers(&viewer_b, &e1).await, deleted, "cam-1 differs after the deletion");

    // Rebuild the restored store from its log and compare again (refused while it serves).
    let err = fails(&["rebuild", "--data-dir", s(&b)]);
    assert!(err.contains("stop `daybook run`"), "{err}");
    assert!(copy.stop().success());
    let rebuilt = ok(&["rebuild", "--data-dir", s(&b)]);
    assert!(rebuilt["rebuilt"]["rows"].as_u64().unwrap() > 0, "{rebuilt}");
    // Built without fsyncs as a scratch file, swapped in as a normal store: WAL, sound.
    {
        let db = rusqlite::Connection::open(b.join("store.db")).unwrap();
        let mode: String = db.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), check.as_str()), ("wal", "ok"));
    }
    assert!(!b.join("store.db.rebuild").exists());
    let copy = DAYBOOK.run_in(s(&b), &[]);
    let viewer_b = viewer_b.at(copy.http());
    for e in [&e1, &e2] {
        assert_eq!(
            flow::answers(&viewer_b, e).await,
            flow::answers(&viewer_a, e).await,
            "{} differs after rebuild",
            e.cid
        );
    }
    assert!(copy.stop().success());
    assert!(original.stop().success());

    // A restore refuses a directory that is not empty.
    assert!(fails(&["restore", "--from", s(&dest), "--data-dir", s(&b)]).contains("not empty"));

    // Verify: the set is sound; then damage copies of it.
    ok(&["backup", "verify", s(&dest)]);
    let (full_id, inc_id) = (full["id"].as_str().unwrap(), inc["id"].as_str().unwrap());
    let damaged = |name: &str, damage: &dyn Fn(&Path)| -> PathBuf {
        let copy = tmp.path().join(name);
        copy_dir(&dest, &copy);
        damage(&copy);
        copy
    };
    let flipped = damaged("flipped", &|d| {
        let f = d.join(full_id).join("store.db.zst");
        let mut bytes = std::fs::read(&f).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x10;
        std::fs::write(&f, bytes).unwrap();
    });
    let err = fails(&["backup", "verify", s(&flipped)]);
    assert!(err.contains(&format!("{full_id}/store.db.zst")), "{err}");
    let piece = std::fs::read_dir(dest.join(inc_id))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("log-"))
        .expect("the incremental holds log records");
    let truncated = damaged("truncated", &|d| {
        let f = d.join(inc_id).join(&piece);
        let len = std::fs::metadata(&f).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(len - 7).unwrap();
    });
    let err = fails(&["backup", "verify", s(&truncated)]);
    assert!(err.contains(&format!("{inc_id}/{piece}")), "{err}");
    let err = fails(&["restore", "--from", s(&truncated), "--data-dir", s(&tmp.path().join("r-truncated"))]);
    assert!(err.contains(&piece), "{err}");
    let orphan = damaged("orphan", &|d| std::fs::remove_dir_all(d.join(full_id)).unwrap());
    let err = fails(&["backup", "verify", s(&orphan)]);
    assert!(err.contains("parent") && err.contains(full_id) && err.contains("missing"), "{err}");
    let err = fails(&["restore", "--from", s(&orphan), "--data-dir", s(&tmp.path().join("r-orphan"))]);
    assert!(err.contains("missing"), "{err}");

    // The encrypted set: sound with its key, refused without or with another one.
    ok(&["backup", "verify", s(&enc_dest), "--encryption-key-file", s(&key)]);
    let err = fails(&["backup", "verify", s(&enc_dest), "--encryption-key-file", s(&wrong_key)]);
    assert!(err.contains("wrong key or tampered") && err.contains("manifest.json"), "{err}");
    let err = fails(&["backup", "verify", s(&enc_dest)]);
    assert!(err.contains("encrypted"), "{err}");
    let err = fails(&[
        "restore",
        "--from",
        s(&enc_dest),
        "--data-dir",
        s(&tmp.path().join("r-wrong")),
        "--encryption-key-file",
        s(&wrong_key),
    ]);
    assert!(err.contains("wrong key or tampered"), "{err}");
    // Nothing of the plain text is in the sealed files.
    let sealed_inc_dir = enc_dest.join(sealed_inc["id"].as_str().unwrap());
    for f in std::fs::read_dir(&sealed_inc_dir).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"cam-2"), "a sealed file shows a device id");
    }
    let r = ok(&[
        "restore",
        "--from",
        s(&enc_dest),
        "--data-dir",
        s(&tmp.path().join("r-sealed")),
        "--encryption-key-file",
        s(&key),
    ]);
    assert_eq!(r["restored"]["id"], sealed_inc["id"]);

    // A data directory restored at the full that went on with other reports is not what the
    // incremental continued: its next backup into the same destination is a full one.
    let c = tmp.path().join("c");
    let at_full = ok(&["restore", "--from", s(&dest), "--at", full_id, "--data-dir", s(&c)]);
    assert_eq!(at_full["restored"]["log"]["next"], full["log"]["next"], "{at_full}");
    let other = DAYBOOK.run_in(s(&c), &[]);
    let dev = Http::new(other.http(), &DAYBOOK.token(&["device", "cam-x", "--data-dir", s(&c)]));
    for i in 0..3 {
        let at = (Utc::now() - chrono::Duration::minutes(5 + i)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let (status, body) = dev.post("/v1/devices/cam-x/events", &json!({"type": "motion", "triggered_at": at})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert!(other.stop().success());
    let diverged = ok(&["backup", "--data-dir", s(&c), "--to", s(&dest)]);
    assert_eq!(diverged["kind"], "full", "{diverged}");

    // Retention: a new full with --keep-full 1 deletes the older chain.
    let kept = ok(&["backup", "--data-dir", s(&a), "--to", s(&dest), "--full", "--keep-full", "1"]);
    let listed = String::from_utf8(daybook(&["backup", "list", s(&dest)]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains(kept["id"].as_str().unwrap()), "{listed}");
}

/// `run --backup-to`: a backup at start, then one per interval — differentials among the
/// incrementals — and scheduled verifies, the metrics the alert rules watch, and the audit
/// trail of all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_takes_scheduled_backups_and_exports_their_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let (a, dest) = (tmp.path().join("a"), tmp.path().join("backups"));
    std::fs::create_dir_all(&a).unwrap();
    let server = DAYBOOK.run_in(
        s(&a),
        &[
            "--backup-to",
            s(&dest),
            "--backup-every",
            "1s",
            "--backup-keep-full",
            "2",
            "--backup-differential-every",
            "2s",
            "--backup-verify-every",
            "1s",
            // Another filesystem, so that how full this machine's disk is plays no part.
            "--backup-verify-scratch",
            s(shm.path()),
        ],
    );
    let token = DAYBOOK.token(&["device", "cam-s", "--data-dir", s(&a)]);
    let e = flow::act_as_device(&Http::new(server.http(), &token), "cam-s").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    loop {
        let metrics = client.get(format!("{}/metrics", server.http())).send().await.unwrap().text().await.unwrap();
        let listed = String::from_utf8(daybook(&["backup", "list", s(&dest)]).stdout).unwrap();
        let lines: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let incremental_with_records =
            lines.iter().any(|l| l["kind"] == "incremental" && l["records"].as_u64() > Some(0));
        let repo = format!("repo=\"{}\"", s(&dest));
        if has_metric(&metrics, "daybook_backup_last_success_timestamp_seconds", &[&repo])
            && has_metric(&metrics, "daybook_backup_bytes", &[&repo, "kind=\"incremental\""])
            && has_metric(&metrics, "daybook_backup_duration_seconds", &[&repo, "kind=\"full\""])
            && has_metric(&metrics, "daybook_backup_verify_last_success_timestamp_seconds", &[&repo])
            && lines.first().is_some_and(|l| l["kind"] == "full")
            && incremental_with_records
            && lines.iter().any(|l| l["kind"] == "differential" && l["needs"] == json!([lines[0]["id"]]))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no scheduled backups with metrics within 30 s: {listed}\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.stop().success());
    let audit: Vec<Value> = std::fs::read_to_string(a.join("audit.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(audit.iter().any(|l| l["action"] == "backup" && l["kind"] == "differential" && l["outcome"] == "ok"));
    assert!(audit.iter().any(|l| l["action"] == "verify" && l["scheduled"] == true && l["outcome"] == "ok"));
    let trail = tmp.path().join("verify-audit.log");
    ok(&["backup", "verify", s(&dest), "--audit-log", s(&trail)]);
    let line: Value = serde_json::from_str(std::fs::read_to_string(&trail).unwrap().trim()).unwrap();
    assert_eq!((line["action"].as_str(), line["outcome"].as_str()), (Some("verify"), Some("ok")), "{line}");
    let b = tmp.path().join("b");
    ok(&["restore", "--from", s(&dest), "--data-dir", s(&b)]);
    let copy = DAYBOOK.run_in(s(&b), &[]);
    let viewer = Http::new(copy.http(), &DAYBOOK.token(&["viewer", "cam-s", "--data-dir", s(&b)]));
    flow::wait_projected(&viewer, &e, Duration::from_secs(30)).await;
    flow::check_as_viewer(&viewer, &e).await;
    assert!(copy.stop().success());
}

/// Whether the Prometheus text `metrics` has a sample of `name` with every label of `labels`
/// (`key="value"`), in any order.
fn has_metric(metrics: &str, name: &str, labels: &[&str]) -> bool {
    metrics.lines().any(|l| {
        l.strip_prefix(name).and_then(|rest| rest.strip_prefix('{')).is_some_and(|rest| {
            let labels_part = rest.split('}').next().unwrap_or("");
            labels.iter().all(|want| labels_part.split(',').any(|have| have == *want))
        })
    })
}

/// Three repositories for one `run`: a directory, one under a file (unwritable), and an S3
/// endpoint that takes connections and never answers. The directory gets its backups at its
/// interval, the service keeps accepting reports, the unwritable repository's failures are
/// counted under its name, the silent one never succeeds, and `run` still stops cleanly while
/// a backup hangs on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_down_or_silent_stops_neither_the_others_nor_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, good) = (tmp.path().join("a"), tmp.path().join("good"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(tmp.path().join("file"), b"").unwrap();
    let bad = tmp.path().join("file/backups");
    // Never accepted: connections wait in the backlog, requests are never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let repos = format!("{},{}", s(&good), s(&bad));
    let args = [
        "run",
        "--data-dir",
        s(&a),
        "--http-addr",
        "127.0.0.1:0",
        "--s3-addr",
        "127.0.0.1:0",
        "--backup-to",
        &repos,
        "--backup-to",
        "s3://silent/site",
        "--backup-every",
        "1s",
    ];
    let envs = [
        ("DAYBOOK_BACKUP_S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let server = DAYBOOK.start(&args, &envs);
    let token = DAYBOOK.token(&["device", "cam-r", "--data-dir", s(&a)]);
    let e = flow::act_as_device(&Http::new(server.http(), &token), "cam-r").await;
    let client = reqwest::Client::new();
    let (good_repo, bad_repo) = (format!("repo=\"{}\"", s(&good)), format!("repo=\"{}\"", s(&bad)));
    let started = Instant::now();
    loop {
        let metrics = client.get(format!("{}/metrics", server.http())).send().await.unwrap().text().await.unwrap();
        let backups = std::fs::read_dir(&good).map_or(0, |d| {
            d.filter(|e| e.as_ref().is_ok_and(|e| !e.file_name().to_string_lossy().ends_with(".partial"))).count()
        });
        if backups >= 3
            && has_metric(&metrics, "daybook_backup_last_success_timestamp_seconds", &[&good_repo])
            && has_metric(&metrics, "daybook_backup_failures_total", &[&bad_repo])
        {
            assert!(
                !has_metric(&metrics, "daybook_backup_last_success_timestamp_seconds", &["repo=\"s3://silent/site\""]),
                "{metrics}"
            );
            assert!(!has_metric(&metrics, "daybook_backup_failures_total", &[&good_repo]), "{metrics}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{backups} backups in the good repository:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The service still takes reports.
    let token2 = DAYBOOK.token(&["device", "cam-r2", "--data-dir", s(&a)]);
    let e2 = flow::act_as_device(&Http::new(server.http(), &token2), "cam-r2").await;
    let viewer = Http::new(server.http(), &DAYBOOK.token(&["viewer", "cam-r", "cam-r2", "--data-dir", s(&a)]));
    for e in [&e, &e2] {
        flow::wait_projected(&viewer, e, Duration::from_secs(30)).await;
    }
    assert!(server.stop().success(), "stops though a backup hangs on the silent repository");
    drop(silent);
    let audit = std::fs::read_to_string(a.join("audit.log")).unwrap();
    assert!(
        audit.lines().any(|l| l.contains("\"outcome\":\"failed\"") && l.contains(s(&bad))),
        "the failure names the repository: {audit}"
    );
}

/// An `s3://` destination: the embedded S3 endpoint of another daybook over 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_to_s3_and_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, store_dir, b) = (tmp.path().join("a"), tmp.path().join("s3"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&store_dir).unwrap();
    let target = DAYBOOK.run_in(s(&store_dir), &[]);
    let endpoint = target.s3.clone().expect("an embedded S3 endpoint");
    let creds = std::fs::read_to_string(store_dir.join("s3-credentials")).unwrap();
    let (ak, sk) = creds.trim().split_once(':').unwrap();
    let envs =
        [("AWS_ACCESS_KEY_ID", ak), ("AWS_SECRET_ACCESS_KEY", sk), ("DAYBOOK_BACKUP_S3_ENDPOINT", endpoint.as_str())];
    let key = tmp.path().join("key");
    std::fs::write(&key, "0f".repeat(32)).unwrap();

    let server = DAYBOOK.run_in(s(&a), &[]);
    let token = DAYBOOK.token(&["device", "cam-1", "--data-dir", s(&a)]);
    let e1 = flow::act_as_device(&Http::new(server.http(), &token), "cam-1").await;
    let to = "s3://daybook/backups/site-1";
    let full = ok_env(&["backup", "--data-dir", s(&a), "--to", to, "--encryption-key-file", s(&key)], &envs);
    assert_eq!(full["kind"], "full", "{full}");
    let token2 = DAYBOOK.token(&["device", "cam-2", "--data-dir", s(&a)]);
    let e2 = flow::act_as_device(&Http::new(server.http(), &token2), "cam-2").await;
    let inc = ok_env(&["backup", "--data-dir", s(&a), "--to", to, "--encryption-key-file", s(&key)], &envs);
    assert_eq!(inc["kind"], "incremental", "{inc}");
    server.kill();

    let listed = daybook_env(&["backup", "list", to, "--encryption-key-file", s(&key)], &envs);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 2, "{listed:?}");
    ok_env(&["backup", "verify", to, "--encryption-key-file", s(&key)], &envs);
    ok_env(&["restore", "--from", to, "--data-dir", s(&b), "--encryption-key-file", s(&key)], &envs);
    let copy = DAYBOOK.run_in(s(&b), &[]);
    let viewer = Http::new(copy.http(), &DAYBOOK.token(&["viewer", "cam-1", "cam-2", "--data-dir", s(&b)]));
    for e in [&e1, &e2] {
        flow::wait_projected(&viewer, e, Duration::from_secs(30)).await;
        flow::check_as_viewer(&viewer, e).await;
    }
    assert!(copy.stop().success());
    assert!(target.stop().success());
}

/// The backup figures in bench/RESULTS.md: `DAYBOOK_FIGURES_EVENTS=1000000 cargo test
/// --release -p daybook --test backup -- --nocapture figures` (DAYBOOK_FIGURES_EVENTS, default
/// 20 000 so the test command runs it briefly;
/// DAYBOOK_FIGURES_DIR, default a temporary directory). Event starts of 1 000 cameras over
/// 20 days, written straight into the embedded log, projected by `rebuild`; 2 000 objects of
/// 32 KiB; then a full backup, 10 % more events and objects, an incremental, verify, restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures() {
    use daybook::{backup, rebuild};
    use schemas::{DayOffset, DeviceId, Envelope, EventId, EventStarted, EventType, Report, Timestamp, SCHEMA_VERSION};
    use seams::{LogRecord, ReportLog};

    let n: u64 = std::env::var("DAYBOOK_FIGURES_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let keep = tempfile::tempdir().unwrap();
    let root = std::env::var("DAYBOOK_FIGURES_DIR").map(PathBuf::from).unwrap_or_else(|_| keep.path().to_owned());
    let data = root.join("data");
    let _ = std::fs::remove_dir_all(root.join("data"));
    let _ = std::fs::remove_dir_all(root.join("backups"));
    let _ = std::fs::remove_dir_all(root.join("restored"));
    std::fs::create_dir_all(&data).unwrap();
    let now = Utc::now().timestamp_millis();
    let day_ms = 86_400_000i64;
    let types: Vec<EventType> = ["motion", "person", "sound"].iter().map(|t| EventType::parse(t).unwrap()).collect();
    let cids: Vec<DeviceId> = (0..1000).map(|i| DeviceId::parse(&format!("cam-{i}")).unwrap()).collect();
    let append = |from: u64, to: u64| {
        let data = data.clone();
        let (types, cids) = (types.clone(), cids.clone());
        async move {
            let log = infra::embedded_log::EmbeddedLog::open(&data.join("log"), Default::default()).unwrap();
            let mut i = from;
            while i < to {
                let batch: Vec<LogRecord> = (i..(i + 16_384).min(to))
                    .map(|k| {
                        let cid = &cids[(k % 1000) as usize];
                        let t = Timestamp(now - 60_000 - (k as i64 * 1_727) % (20 * day_ms));
                        let ty = &types[(k % 3) as usize];
                        let event_id = EventId::new(cid, ty, t, DayOffset::default()).unwrap();
                        let report = Report::EventStarted(EventStarted {
                            cid: cid.clone(),
                            event_id,
                            event_type: ty.clone(),
                            triggered_at: t,
                            utc_offset: DayOffset::default(),
                            clock_skew_ms: None,
                            snapshot_size: None,
                        });
                        LogRecord {
                            key: cid.to_string(),
                            report_kind: report.kind().as_str().to_owned(),
                            schema: SCHEMA_VERSION,
                            value: Envelope::new(report, Timestamp(now)).encode(),
                        }
                    })
                    .collect();
                i += batch.len() as u64;
                log.append(batch).await.unwrap();
            }
            log.shutdown().await.unwrap();
        }
    };
    let objects = |from: u64, to: u64| {
        for k in from..to {
            let dir = data.join("objects/daybook/devices").join(format!("cam-{}", k % 1000)).join("segments");
            std::fs::create_dir_all(&dir).unwrap();
            // Video does not compress: pseudo-random bytes.
            let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let bytes: Vec<u8> = (0..32 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(dir.join(format!("{}-seg-{k}", Utc::now().format("%Y%m%d"))), bytes).unwrap();
        }
    };
    let du = |p: &Path| -> u64 {
        let out = Command::new("du").args(["-sb", s(p)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().parse().unwrap()
    };

    let t = Instant::now();
    append(0, n).await;
    // 2 000 objects for 1M events; fewer in the brief run.
    let m = (n / 500).clamp(10, 2000);
    objects(0, m);
    println!("wrote {n} events into the log in {:.1} s", t.elapsed().as_secs_f64());
    let policy = schemas::TimePolicy::default();
    let opts = rebuild::RebuildOptions {
        data_dir: data.clone(),
        group: "daybook-projector".into(),
        policy,
        max_batch: 16_384,
        progress_every: Duration::from_secs(10),
    };
    let r = rebuild::rebuild(&opts, |l| println!("  {l}")).await.unwrap();
    println!(
        "rebuild: {} records, {} rows in {:.1} s = {:.0} rows/s ({:.0} records/s)",
        r.records,
        r.rows,
        r.seconds,
        r.rows_per_s,
        r.records as f64 / r.seconds
    );
    println!(
        "data dir: log {} B, store {} B, objects {} B",
        du(&data.join("log")),
        du(&data.join("store.db")),
        du(&data.join("objects"))
    );

    let dest = root.join("backups");
    let bopts = backup::BackupOptions {
        data_dir: data.clone(),
        to: s(&dest).to_owned(),
        full: false,
        differential: false,
        key: Some(backup::KeyRing::parse(&"3c".repeat(32)).unwrap()),
        keep_full: None,
        s3: Default::default(),
    };
    let full = tokio::task::block_in_place(|| backup::backup(&bopts)).unwrap().manifest;
    println!(
        "full backup (encrypted): {:.1} s, {} records, {} objects, {} B plain -> {} B stored",
        full.seconds,
        full.counts.records,
        full.counts.objects,
        full.files.iter().map(|f| f.size).sum::<u64>(),
        full.stored_bytes()
    );
    // Shipping, as `run --replicate-to` does, while 10 % more events arrive in two halves.
    let key_file = root.join("backup.key");
    std::fs::write(&key_file, "3c".repeat(32)).unwrap();
    let replica = backup::ship::Replica {
        to: s(&dest).to_owned(),
        every: Duration::from_millis(200),
        key_file: Some(key_file),
        s3: Default::default(),
    };
    let shipper = backup::ship::Shipper::start(replica, data.clone(), None).unwrap();
    append(n, n + n / 20).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let instant = Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_millis(20)).await;
    append(n + n / 20, n + n / 10).await;
    objects(m, m + m / 10);
    tokio::task::spawn_blocking(move || shipper.stop()).await.unwrap();
    // Point-in-time: the full backup and the shipped log up to the instant, the store rebuilt
    // from it, then a daybook serving it.
    let t = Instant::now();
    let pitr = root.join("pitr");
    let _ = std::fs::remove_dir_all(&pitr);
    let until = chrono::DateTime::from_timestamp_millis(instant).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true);
    let out = ok(&[
        "restore",
        "--from",
        s(&dest),
        "--until",
        &until,
        "--data-dir",
        s(&pitr),
        "--encryption-key-file",
        s(&root.join("backup.key")),
    ]);
    assert_eq!(out["event"], "rebuilt", "{out}");
    let restored_pit = out["rebuilt"]["records"].as_i64().unwrap() as u64;
    let serving = DAYBOOK.run_in(s(&pitr), &[]);
    let pit_s = t.elapsed().as_secs_f64();
    assert!(serving.stop().success());
    println!("point-in-time restore (full backup + shipped log, cut at an instant; store rebuilt; serving): {pit_s:.1} s, {restored_pit} records");
    assert_eq!(restored_pit, n + n / 20, "every record before the instant, none after");
    let inc = tokio::task::block_in_place(|| backup::backup(&bopts)).unwrap().manifest;
    println!(
        "incremental backup (encrypted, +{} events, +200 objects): {:.1} s, {} records, {} objects, {} B stored",
        n / 10,
        inc.seconds,
        inc.counts.records,
        inc.counts.objects,
        inc.stored_bytes()
    );
    let t = Instant::now();
    let v = tokio::task::block_in_place(|| {
        backup::verify(s(&dest), None, bopts.key.as_ref(), &Default::default(), Some(&root))
    })
    .unwrap();
    println!("verify (every file + trial restore): {:.1} s, {} files", t.elapsed().as_secs_f64(), v.files);
    let t = Instant::now();
    let ropts = backup::RestoreOptions {
        from: s(&dest).to_owned(),
        at: None,
        data_dir: root.join("restored"),
        force: false,
        key: bopts.key.clone(),
        s3: Default::default(),
        until: None,
    };
    let restored = tokio::task::block_in_place(|| backup::restore(&ropts)).unwrap();
    println!("restore: {:.1} s, {} records, {} objects", t.elapsed().as_secs_f64(), restored.records, restored.objects);
    let total = n + n / 10;
    assert_eq!(r.records as u64, n, "rebuild replayed every record");
    assert_eq!(full.counts.records as u64, n, "the full backup holds every record");
    assert_eq!(inc.counts.records as u64, n / 10, "the incremental holds only the new records");
    assert_eq!(
        (restored.records as u64, restored.objects as u64),
        (total, m + m / 10),
        "restore brings everything back"
    );
}

/// `restore --force` replaces a data directory only when nothing uses it: beside a running
/// daybook it refuses, naming what holds it, and the running one goes on losing nothing;
/// stopped, the same restore goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_force_refuses_a_data_directory_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, dest) = (tmp.path().join("a"), tmp.path().join("backups"));
    std::fs::create_dir_all(&a).unwrap();
    let server = DAYBOOK.run_in(s(&a), &["--device-rate", "1000", "--device-burst", "1000"]);
    let device = |cid: &str| Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", s(&a)]));
    let cams = ["viewer", "cam-f1", "cam-f2", "cam-f3", "--data-dir", s(&a)];
    let viewer = Http::new(server.http(), &DAYBOOK.token(&cams));
    let before = flow::act_as_device(&device("cam-f1"), "cam-f1").await;
    flow::wait_projected(&viewer, &before, Duration::from_secs(30)).await;
    ok(&["backup", "--data-dir", s(&a), "--to", s(&dest)]);
    let after = flow::act_as_device(&device("cam-f2"), "cam-f2").await;
    let err = fails(&["restore", "--from", s(&dest), "--data-dir", s(&a), "--force"]);
    assert!(err.contains("another process") || err.contains("is open in process"), "{err}");
    // Untouched: what was acknowledged after the backup is still served, and more is taken.
    let later = flow::act_as_device(&device("cam-f3"), "cam-f3").await;
    for e in [&before, &after, &later] {
        flow::wait_projected(&viewer, e, Duration::from_secs(30)).await;
        flow::check_as_viewer(&viewer, e).await;
    }
    assert!(server.stop().success());
    ok(&["restore", "--from", s(&dest), "--data-dir", s(&a), "--force"]);
    let copy = DAYBOOK.run_in(s(&a), &[]);
    let viewer = Http::new(copy.http(), &DAYBOOK.token(&cams));
    flow::wait_projected(&viewer, &before, Duration::from_secs(30)).await;
    flow::check_as_viewer(&viewer, &before).await;
    assert!(copy.stop().success());
}
