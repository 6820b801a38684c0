//! The `daybook` binary as operators run it: SIGTERM stops it cleanly and a restart on the same
//! data directory finds everything acknowledged; after a kill -9 nothing acknowledged is lost
//! either. (Everything else end to end runs in-process: tests/tests/e2e_embedded.rs.)

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::json;
use tests::client::Http;
use tests::flow;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_finds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &[]);

    let cid = "cam-term";
    let dev = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d]));
    let viewer = Http::new(server.http(), &DAYBOOK.token(&["viewer", cid, "--data-dir", d]));
    let expect = flow::act_as_device(&dev, cid).await;
    flow::wait_projected(&viewer, &expect, Duration::from_secs(30)).await;

    let status = server.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let server = DAYBOOK.run_in(d, &[]);
    // Same token (the secret lives in the data directory), new port.
    flow::check_as_viewer(&viewer.at(server.http()), &expect).await;
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Unpaced and with a long linger, so that some reports are acknowledged (in the log) but
    // not yet projected when the process dies.
    let server = DAYBOOK.run_in(d, &["--linger-ms", "2000", "--max-batch", "1000000"]);
    let cid = "cam-kill";
    let dev = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d]));
    let viewer = Http::new(server.http(), &DAYBOOK.token(&["viewer", cid, "--data-dir", d]));

    let start = Utc::now() - chrono::Duration::minutes(20);
    let events = 50;
    for i in 0..events {
        let at = (start + chrono::Duration::seconds(i)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let (status, body) =
            dev.post(&format!("/v1/devices/{cid}/events"), &json!({"type": "motion", "triggered_at": at})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.kill();

    let server = DAYBOOK.run_in(d, &[]);
    let viewer = viewer.at(server.http());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, cal) = viewer.get(&format!("/v1/devices/{cid}/calendar?days=2")).await;
        assert_eq!(status, StatusCode::OK, "{cal}");
        let stored: u64 = cal["days"].as_array().unwrap().iter().filter_map(|d| d["events"].as_u64()).sum();
        assert!(stored <= events as u64, "{cal}");
        if stored == events as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "acknowledged events missing after kill -9 and restart: {cal}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.stop().success());
}

/// An outage drill as an operator runs one: `DAYBOOK_FAULTS` makes the log fail its first
/// append; the device gets 503 `log_unavailable` with a Retry-After, and the next report after
/// the probe interval is accepted. A plan that does not parse stops the process at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daybook_faults_drives_an_outage_drill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = ["run", "--data-dir", d, "--http-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"];
    let server = DAYBOOK.start(&args, &[("DAYBOOK_FAULTS", "append=fail_first:1")]);
    let cid = "cam-drill";
    let dev = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d]));
    let start = || json!({"type": "motion", "triggered_at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)});
    let (status, body) = dev.post(&format!("/v1/devices/{cid}/events"), &start()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("log_unavailable")));
    let began = Instant::now();
    loop {
        let (status, body) = dev.post(&format!("/v1/devices/{cid}/events"), &start()).await;
        if status == StatusCode::CREATED {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(began.elapsed() < Duration::from_secs(10), "no recovery after the injected failure");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.stop().success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_daybook"))
        .args(args)
        .env("DAYBOOK_FAULTS", "append=explode")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DAYBOOK_FAULTS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Keys rotate and devices are revoked while `daybook run` serves, without a restart: a new
/// key signs, the old key's tokens keep working until it is retired, and a revoked device's
/// older tokens are refused within the reload interval (5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_and_revoke_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &[]);
    let cid = "cam-rot";
    let start = || json!({"type": "motion", "triggered_at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)});
    let path = format!("/v1/devices/{cid}/events");
    let old = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d, "--ttl", "2h"]));
    assert_eq!(old.post(&path, &start()).await.0, StatusCode::CREATED);

    let kid = DAYBOOK.output(&["token", "keys", "add", "--data-dir", d], &[]).trim().to_owned();
    let new = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d]));
    // Within the reload interval the server verifies the new key's tokens; the old key's still pass.
    let until_accepted = |http: Http, want: StatusCode| {
        let (path, start) = (path.clone(), start);
        async move {
            let began = Instant::now();
            loop {
                let (status, body) = http.post(&path, &start()).await;
                if status == want {
                    return body;
                }
                assert!(began.elapsed() < Duration::from_secs(15), "still {status} after 15 s: {body}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    until_accepted(new.clone(), StatusCode::CREATED).await;
    assert_eq!(old.post(&path, &start()).await.0, StatusCode::CREATED, "the old key verifies until retired");
    let list = DAYBOOK.output(&["token", "keys", "list", "--data-dir", d], &[]);
    assert!(list.lines().next().unwrap().contains(&kid), "{list}");

    DAYBOOK.output(&["token", "keys", "retire", "default", "--data-dir", d], &[]);
    let body = until_accepted(old.clone(), StatusCode::UNAUTHORIZED).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("retired"), "{body}");
    assert_eq!(new.post(&path, &start()).await.0, StatusCode::CREATED);

    DAYBOOK.output(&["token", "revoke", cid, "--data-dir", d], &[]);
    let body = until_accepted(new.clone(), StatusCode::UNAUTHORIZED).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
    // A token issued after the revocation works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = Http::new(server.http(), &DAYBOOK.token(&["device", cid, "--data-dir", d]));
    until_accepted(fresh, StatusCode::CREATED).await;
    assert!(server.stop().success());
}
