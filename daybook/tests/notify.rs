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

fn subs_json(d: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = vec!["subscriptions"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--data-dir", d]);
    DAYBOOK.output(&full, &[]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A 404 is permanent (dead-lettered at once), a 500 past the retry window too; a replay
/// delivers them all, in order per device; a 410 pauses the subscription, which keeps its
/// position and delivers the rest once resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_replay_and_a_410_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut args = FAST_RETRIES.to_vec();
    args.extend_from_slice(&["--notify-retry-window-s", "2"]);
    let server = DAYBOOK.run_in(d, &args);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &[]);
    let id = subs_json(d, &["list"])[0]["subscription_id"].as_str().unwrap().to_owned();
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let mut fleet = Fleet::new(d, server.http(), 3);
    let acked = |f: &Fleet| f.acked.values().map(Vec::len).sum::<usize>();
    let letters = |d: &str| subs_json(d, &["dead-letters", "list", &id]);

    // Refused for good: dead-lettered at once.
    let receiver = Receiver::start(&secret, &path, port, "404");
    for _ in 0..3 {
        fleet.round().await;
    }
    wait_until("404s dead-lettered", || letters(d).len() == acked(&fleet));
    assert!(letters(d).iter().all(|l| l["reason"] == "status 404" && l["report"]["type"] == "event_started"));
    drop(receiver);
    // Failing past the retry window.
    let receiver = Receiver::start(&secret, &path, port, "500");
    fleet.round().await;
    fleet.round().await;
    wait_until("500s dead-lettered after the window", || letters(d).len() == acked(&fleet));
    drop(receiver);
    assert!(ledger_lines(&path).is_empty(), "nothing was accepted");

    // Replayed: everything arrives, in order per device, and leaves the dead letters.
    let receiver = Receiver::start(&secret, &path, port, "ok");
    subs_json(d, &["dead-letters", "replay", &id]);
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(letters(d).is_empty());
    drop(receiver);

    // 410 Gone: the subscription is paused, keeping its position.
    let receiver = Receiver::start(&secret, &path, port, "410");
    fleet.round().await;
    wait_until("paused after a 410", || subs_json(d, &["list"])[0]["paused"] == true);
    fleet.round().await;
    drop(receiver);
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    subs_json(d, &["resume", &id]);
    fleet.check_delivered(&path, Duration::from_secs(60));
    assert!(server.stop().success());
}

fn ledger_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    notify_fleet::ledger(path)
}

/// Without --notify-allow-private, a receiver on loopback is never contacted: its reports go to
/// the dead letters as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_receiver_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &["--notify-allow-http", "--notify-retry-base-ms", "200"]);
    let port = free_port();
    // The operator allowed it when adding; the notifier (the deployment) does not.
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &[]);
    let id = subs_json(d, &["list"])[0]["subscription_id"].as_str().unwrap().to_owned();
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    let mut fleet = Fleet::new(d, server.http(), 2);
    fleet.round().await;
    let want = fleet.acked.values().map(Vec::len).sum::<usize>();
    wait_until("refused reports dead-lettered", || subs_json(d, &["dead-letters", "list", &id]).len() == want);
    for l in subs_json(d, &["dead-letters", "list", &id]) {
        assert!(l["reason"].as_str().unwrap().contains("refused"), "{l}");
    }
    assert!(notify_fleet::ledger(&path).is_empty(), "the internal receiver was contacted");
    assert!(server.stop().success());
}

/// A receiver answering 302 is not followed: the report is retried at the same URL and the
/// redirect's target never hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let (port, target_port) = (free_port(), free_port());
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &[]);
    let (path, target) = (dir.path().join("redirecting.jsonl"), dir.path().join("target.jsonl"));
    let location = format!("http://127.0.0.1:{target_port}/hook");
    let _redirecting = Receiver::start_with(&secret, &path, port, "redirect", &["--location", &location]);
    let _target = Receiver::start(&secret, &target, target_port, "ok");
    let mut fleet = Fleet::new(d, server.http(), 2);
    fleet.round().await;
    // Retried at the same URL (the first attempt and at least one retry)…
    wait_until("retries at the redirecting receiver", || notify_fleet::ledger(&path).len() >= 2 * fleet.devices.len());
    // …never at the redirect's target.
    assert!(notify_fleet::ledger(&target).is_empty(), "a redirect was followed");
    assert!(server.stop().success());
}

fn subscription_id(d: &str, url: &str) -> String {
    let all = subs_json(d, &["list"]);
    all.iter().find(|s| s["url"] == url).unwrap()["subscription_id"].as_str().unwrap().to_owned()
}

fn cids(path: &std::path::Path) -> Vec<String> {
    notify_fleet::ledger(path).iter().map(|l| l["cid"].as_str().unwrap().to_owned()).collect()
}

/// Filters (device ids and prefixes, kinds, types), the cooldown (the first start per device
/// and type within it is sent, the rest counted), max age on a paused subscription's backlog,
/// and a secret rotation (the new secret verifies from then on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_cooldown_max_age_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let url = |p: u16| format!("http://127.0.0.1:{p}/hook");
    let (p_cool, p_filter, p_age, p_rot) = (free_port(), free_port(), free_port(), free_port());
    let s_cool = subscribe(d, &url(p_cool), &["--cooldown", "60s"]);
    let s_filter = subscribe(d, &url(p_filter), &["--device", "cam-001", "--device-prefix", "cam-003"]);
    let s_age = subscribe(d, &url(p_age), &["--paused", "--max-age", "2s"]);
    let s_rot = subscribe(d, &url(p_rot), &[]);
    let path = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let _r_cool = Receiver::start(&s_cool, &path("cool"), p_cool, "ok");
    let _r_filter = Receiver::start(&s_filter, &path("filter"), p_filter, "ok");
    let _r_age = Receiver::start(&s_age, &path("age"), p_age, "ok");
    let r_rot = Receiver::start(&s_rot, &path("rot"), p_rot, "ok");
    let mut fleet = Fleet::new(d, server.http(), 4);
    for _ in 0..4 {
        fleet.round().await; // three person starts and a motion start per device
    }
    wait_until("the filtered subscription's reports", || cids(&path("filter")).len() == 6);
    let mut got = cids(&path("filter"));
    got.sort();
    assert_eq!(got, ["cam-001", "cam-001", "cam-001", "cam-003", "cam-003", "cam-003"]);
    wait_until("one start per device within the cooldown", || cids(&path("cool")).len() == 4);
    wait_until("the rotating subscription's reports", || cids(&path("rot")).len() == 12);

    // The paused subscription's backlog is older than its max age by the time it resumes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    subs_json(d, &["resume", &subscription_id(d, &url(p_age))]);
    // Rotation: a new secret signs from now on (the old one still verifies during the change).
    drop(r_rot);
    let rotated = subs_json(d, &["update", &subscription_id(d, &url(p_rot)), "--rotate-secret"]);
    let new_secret = rotated[0]["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, s_rot);
    let _r_rot = Receiver::start(&new_secret, &path("rot"), p_rot, "ok");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cids(&path("age")).is_empty(), "reports past the max age were sent");
    fleet.round().await;
    wait_until("new reports after the resume", || cids(&path("age")).len() == 4);
    wait_until("reports signed with the new secret", || cids(&path("rot")).len() == 16);
    assert!(notify_fleet::ledger(&path("rot")).iter().all(|l| l.get("bad_signature").is_none()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cids(&path("cool")).len(), 4, "still within the cooldown");
    assert_eq!(cids(&path("filter")).len(), 8);
    assert!(server.stop().success());
}

/// p99 of (arrival at the receiver − received_at) over a ledger, in milliseconds.
fn p99_ms(path: &std::path::Path) -> i64 {
    let mut lat: Vec<i64> = notify_fleet::ledger(path)
        .iter()
        .map(|l| {
            let received = chrono::DateTime::parse_from_rfc3339(l["received_at"].as_str().unwrap()).unwrap();
            l["arrived_ms"].as_i64().unwrap() - received.timestamp_millis()
        })
        .collect();
    lat.sort_unstable();
    lat[(lat.len() * 99 / 100).min(lat.len() - 1)]
}

/// Receivers that hang, answer 500 forever or 410 hold back only their own subscriptions: a
/// good receiver's p99 latency stays within twice (plus 200 ms of slack on a shared machine)
/// that of the same load without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_receivers_do_not_delay_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let url = |p: u16| format!("http://127.0.0.1:{p}/hook");
    let path = |n: &str| dir.path().join(format!("{n}.jsonl"));
    let (p_alone, p_good) = (free_port(), free_port());
    let s_alone = subscribe(d, &url(p_alone), &[]);
    let _r_alone = Receiver::start(&s_alone, &path("alone"), p_alone, "ok");
    let devices = env_or("DAYBOOK_NOTIFY_DEVICES", 20);
    let rounds = 12;
    let mut fleet = Fleet::new(d, server.http(), devices);
    for _ in 0..rounds {
        fleet.round().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.check_delivered(&path("alone"), Duration::from_secs(60));
    let baseline = p99_ms(&path("alone"));

    // The same load with a hanging, a failing and a gone receiver beside a good one.
    let s_good = subscribe(d, &url(p_good), &[]);
    let _r_good = Receiver::start(&s_good, &path("good"), p_good, "ok");
    let mut bad = Vec::new();
    for mode in ["hang", "500", "410"] {
        let p = free_port();
        let secret = subscribe(d, &url(p), &[]);
        bad.push(Receiver::start(&secret, &path(mode), p, mode));
    }
    let mut fleet = Fleet::new(d, server.http(), devices);
    for _ in 0..rounds {
        fleet.round().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.check_delivered(&path("good"), Duration::from_secs(60));
    let with_bad = p99_ms(&path("good"));
    eprintln!(
        "p99 from received_at to the receiver: {baseline} ms alone, {with_bad} ms beside hanging/500/410 receivers"
    );
    assert!(with_bad <= 2 * baseline + 200, "p99 {with_bad} ms with bad receivers, {baseline} ms without");
    assert!(server.stop().success());
}

/// The gauge `series{subscription="id"}` on `/metrics` (None before it is first set).
async fn gauge(base: &str, series: &str, id: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
    let prefix = format!("{series}{{subscription=\"{id}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Memory whatever the receiver does: a subscription whose receiver hangs holds at most
/// `--notify-window` records (then stops reading, its lag growing), while a good receiver's
/// subscription beside it gets everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_at_most_the_window() {
    const WINDOW: f64 = 30.0;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut args = FAST_RETRIES.to_vec();
    args.extend_from_slice(&["--notify-window", "30", "--notify-timeout-ms", "60000"]);
    let server = DAYBOOK.run_in(d, &args);
    let (p_hang, p_good) = (free_port(), free_port());
    let url = |p: u16| format!("http://127.0.0.1:{p}/hook");
    let s_hang = subscribe(d, &url(p_hang), &[]);
    let _hang = Receiver::start(&s_hang, &dir.path().join("hang.jsonl"), p_hang, "hang");
    let hang_id = subscription_id(d, &url(p_hang));
    let good = dir.path().join("good.jsonl");
    let s_good = subscribe(d, &url(p_good), &[]);
    let _good = Receiver::start(&s_good, &good, p_good, "ok");
    let mut fleet = Fleet::new(d, server.http(), 10);
    let mut most_held: f64 = 0.0;
    for _ in 0..12 {
        fleet.round().await;
        most_held = most_held.max(gauge(server.http(), "daybook_notify_held_records", &hang_id).await.unwrap_or(0.0));
    }
    // 120 starts, 90 of them person: far more than the window.
    fleet.check_delivered(&good, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = gauge(server.http(), "daybook_notify_held_records", &hang_id).await.unwrap_or(0.0);
        let lag = gauge(server.http(), "daybook_notify_lag_records", &hang_id).await.unwrap_or(0.0);
        most_held = most_held.max(held);
        if held == WINDOW && lag > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "held {held}, lag {lag}: the window never filled");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(most_held <= WINDOW, "held {most_held} records, window {WINDOW}");
    assert!(server.stop().success());
}

/// An erasure drops the erased device's dead letters (another device's stay) when it is
/// projected, and is delivered to a subscription to `device_erased` like any report; so is an
/// owner's deletion to one to `event_deleted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_drops_the_devices_dead_letters_and_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let server = DAYBOOK.run_in(d, &FAST_RETRIES);
    let port = free_port();
    let kinds = ["--kind", "device_erased", "--kind", "event_deleted"];
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &kinds);
    let id = subs_json(d, &["list"])[0]["subscription_id"].as_str().unwrap().to_owned();
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let mut fleet = Fleet::new(d, server.http(), 2);
    let acked = |f: &Fleet| f.acked.values().map(Vec::len).sum::<usize>();
    let letters = |d: &str| subs_json(d, &["dead-letters", "list", &id]);
    let receiver = Receiver::start(&secret, &path, port, "404");
    for _ in 0..3 {
        fleet.round().await;
    }
    wait_until("404s dead-lettered", || letters(d).len() == acked(&fleet));
    drop(receiver);
    let (erased, kept) = (fleet.devices[0].0.clone(), fleet.devices[1].0.clone());
    let of = |cid: &str| letters(d).iter().filter(|l| l["report"]["cid"] == cid).count();
    assert!(of(&erased) > 0 && of(&kept) > 0);

    DAYBOOK.output(&["erase", "device", &erased, "--data-dir", d], &[]);
    wait_until("the erased device's dead letters dropped", || of(&erased) == 0);
    assert_eq!(of(&kept), fleet.acked[&kept].len(), "another device's dead letters stay");
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    wait_until("the erasure delivered", || {
        ledger_lines(&path).iter().any(|l| l["type"] == "device_erased" && l["cid"] == erased.as_str())
    });
    // The owner deletes an event of the other device: delivered too.
    let victim = fleet.acked[&kept][0].clone();
    let manager = DAYBOOK.token(&["viewer", &kept, "--manage", "--data-dir", d]);
    let (status, body) =
        tests::client::Http::new(server.http(), &manager).delete(&format!("/v1/events/{victim}")).await;
    assert_eq!(status, 202, "{body}");
    wait_until("the deletion delivered", || {
        ledger_lines(&path).iter().any(|l| l["type"] == "event_deleted" && l["event_id"] == victim.as_str())
    });
    assert!(server.stop().success());
}
