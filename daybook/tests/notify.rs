//! Notifications end to end, against the binary and a receiver written with the official
//! `standardwebhooks` Python package (tests/python/receiver.py), which verifies every
//! signature: a receiver down under load, then back, gets every matching report, in order per
//! device; so does one whose notifier is killed (-9) five times during delivery. The ledger of
//! acknowledged reports (the device API's 201s) equals the receiver's set.
//!
//! Short by default (scripts/test); `DAYBOOK_NOTIFY_DEVICES=200 DAYBOOK_NOTIFY_DOWN_S=60` for
//! the full load.

mod notify_fleet;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use notify_fleet::{env_or, free_port, subscribe, Fleet, Receiver, DAYBOOK, FAST_RETRIES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_under_load_gets_everything_in_order_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &[]);
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let mut fleet = Fleet::new(d, server.http(), env_or("DAYBOOK_NOTIFY_DEVICES", 20));

    let receiver = Receiver::start(&secret, &path, port, "ok");
    for _ in 0..4 {
        fleet.round().await;
    }
    drop(receiver);
    let down = Duration::from_secs(env_or("DAYBOOK_NOTIFY_DOWN_S", 6));
    let until = Instant::now() + down;
    while Instant::now() < until {
        fleet.round().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    for _ in 0..4 {
        fleet.round().await;
    }
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_notifier_five_times_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // The notifier in its own process beside `run` (on the same embedded log and store).
    let server = DAYBOOK.run_in(d, &["--no-notify"]);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &[]);
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    let mut fleet = Fleet::new(d, server.http(), env_or("DAYBOOK_NOTIFY_DEVICES", 20));
    let notify = |d: &str| {
        let mut args = vec!["notify", "--data-dir", d, "--metrics-addr", "127.0.0.1:0"];
        args.extend_from_slice(&FAST_RETRIES);
        DAYBOOK.start(&args, &[])
    };
    for _ in 0..5 {
        let notifier = notify(d);
        for _ in 0..3 {
            fleet.round().await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        notifier.kill();
        fleet.round().await;
    }
    let notifier = notify(d);
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(notifier.stop().success());
    assert!(server.stop().success());
}
