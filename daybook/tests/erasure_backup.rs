//! Erasure survives the backups: back up, erase a device, restore the older backup (and a point
//! in time before the erasure), run: the device's data is not served, its objects are gone, and
//! another device's data is as it was. The repository learns of the erasure through its
//! journal (`journal/`), written by the backup taken after it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tests::client::Http;
use tests::flow;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `daybook args`, which must succeed; its last stdout line as JSON.
fn ok(args: &[&str]) -> Value {
    let out = Command::new(DAYBOOK.0).args(args).env("RUST_LOG", "warn").output().expect("run daybook");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "daybook {args:?} failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON line")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The paths of the files under `dir/objects` that belong to device `cid`.
fn objects_of(dir: &Path, cid: &str) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut all = Vec::new();
    walk(&dir.join("objects"), &mut all);
    all.retain(|p| p.contains(&format!("/devices/{cid}/")));
    all
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not after {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Nothing of `e`'s device is served by `viewer`: no calendar count, no event, no digest.
async fn nothing_served(viewer: &Http, e: &flow::Expect) {
    let (s, cal) = viewer.get(&format!("/v1/devices/{}/calendar?days=30", e.cid)).await;
    assert_eq!(s, StatusCode::OK, "{cal}");
    assert!(cal["days"].as_array().unwrap().iter().all(|d| d["events"] == 0), "{cal}");
    for id in e.today.iter().chain([&e.late, &e.c]) {
        assert_eq!(viewer.get(&format!("/v1/events/{id}")).await.0, StatusCode::NOT_FOUND, "{id}");
    }
    let digest = format!("/v1/devices/{}/digests/{}", e.cid, e.digest.0);
    assert_eq!(viewer.get(&digest).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_survives_restoring_a_backup_taken_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, dest) = (tmp.path().join("a"), tmp.path().join("backups"));
    std::fs::create_dir_all(&a).unwrap();
    let server = DAYBOOK.run_in(s(&a), &[]);
    let token = |cid: &str| DAYBOOK.token(&["device", cid, "--data-dir", s(&a)]);
    let viewer_token = DAYBOOK.token(&["viewer", "cam-gone", "cam-kept", "--data-dir", s(&a)]);
    let viewer = Http::new(server.http(), &viewer_token);
    let gone = flow::act_as_device(&Http::new(server.http(), &token("cam-gone")), "cam-gone").await;
    let kept = flow::act_as_device(&Http::new(server.http(), &token("cam-kept")), "cam-kept").await;
    flow::wait_projected(&viewer, &gone, TIMEOUT).await;
    flow::wait_projected(&viewer, &kept, TIMEOUT).await;
    let kept_answers = flow::answers(&viewer, &kept).await;
    assert!(!objects_of(&a, "cam-gone").is_empty());

    // A backup, then the erasure (the operator's command, handed to the running process).
    let older = tokio::task::block_in_place(|| ok(&["backup", "--data-dir", s(&a), "--to", s(&dest)]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before_erasure = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let erased = tokio::task::block_in_place(|| ok(&["erase", "device", "cam-gone", "--data-dir", s(&a)]));
    assert_eq!(erased["erased"], "cam-gone", "{erased}");
    until("the erasure projected", async || {
        viewer.get(&format!("/v1/events/{}", gone.a)).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    nothing_served(&viewer, &gone).await;
    until("the erased device's objects deleted", async || objects_of(&a, "cam-gone").is_empty()).await;
    // The next backup writes the erasure into the repository's journal.
    tokio::task::block_in_place(|| ok(&["backup", "--data-dir", s(&a), "--to", s(&dest)]));
    assert_eq!(std::fs::read_dir(dest.join("journal")).unwrap().count(), 1, "one journal entry");
    assert!(server.stop().success());

    // The older backup, exactly (no shipped pieces), and a point in time before the erasure.
    let (b, c) = (tmp.path().join("b"), tmp.path().join("c"));
    let id = older["id"].as_str().unwrap();
    let restored = ok(&["restore", "--from", s(&dest), "--at", id, "--data-dir", s(&b)]);
    assert_eq!((restored["restored"]["id"].as_str(), restored["restored"]["erasures"].as_u64()), (Some(id), Some(1)));
    let restored = ok(&["restore", "--from", s(&dest), "--until", &before_erasure, "--data-dir", s(&c)]);
    assert_eq!(restored["event"], "rebuilt", "{restored}");
    for dir in [&b, &c] {
        let copy = DAYBOOK.run_in(s(dir), &[]);
        let viewer = viewer.at(copy.http());
        flow::wait_projected(&viewer, &kept, TIMEOUT).await;
        nothing_served(&viewer, &gone).await;
        assert_eq!(flow::answers(&viewer, &kept).await, kept_answers, "{}: the other device as it was", dir.display());
        let deadline = Instant::now() + TIMEOUT;
        while !objects_of(dir, "cam-gone").is_empty() {
            let left = objects_of(dir, "cam-gone");
            assert!(Instant::now() < deadline, "{}: the erased device's objects are left: {left:?}", dir.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!objects_of(dir, "cam-kept").is_empty());
        assert!(copy.stop().success());
    }
}
