//! The notification benchmarks, briefly (their full runs are `bench/notify.sh`; figures in
//! bench/RESULTS.md): each completes, every expected delivery arrives, and `result.json` has
//! the keys the script reads.

use std::path::PathBuf;
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("daybook-bench-smoke-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bench(args: &[&str], out: &PathBuf) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_daybook-bench"))
        .args(args)
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("daybook-bench runs");
    assert!(status.success(), "daybook-bench {args:?}: {status}");
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json is JSON")
}

#[test]
fn the_delivery_benchmark_delivers_everything_beside_bad_receivers() {
    let out = out_dir("notify");
    let r = bench(
        &[
            "notify",
            "--rate",
            "200",
            "--seconds",
            "3",
            "--warmup-s",
            "1",
            "--devices",
            "50",
            "--subscriptions",
            "2",
            "--bad-receivers",
        ],
        &out,
    );
    assert_eq!(r["starts_accepted"], 600);
    assert_eq!(r["delivered_distinct"], 1200);
    assert_eq!(r["expected_deliveries"], 1200);
    for key in ["delivery_p50_ms", "delivery_p99_ms", "delivery_max_ms", "rss_after_warmup_mib", "rss_end_mib"] {
        assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {}", r[key]);
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_burst_with_a_subscription_notifies_every_person_start() {
    let out = out_dir("burst");
    let r = bench(
        &[
            "burst",
            "--skip-direct",
            "--devices",
            "2000",
            "--window-ms",
            "500",
            "--bare-secs",
            "1",
            "--subscribe-person",
        ],
        &out,
    );
    assert_eq!(r["lost"], 0);
    assert_eq!(r["subscribed_person"], true);
    assert!(r["notify_expected"].as_u64().is_some_and(|n| n > 0), "{}", r["notify_expected"]);
    assert!(r["notify_caught_up_ms"].as_f64().is_some(), "{}", r["notify_caught_up_ms"]);
    let _ = std::fs::remove_dir_all(&out);
}
