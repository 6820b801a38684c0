//! `daybook subscriptions` against the binary: every change goes on the log (appended by the
//! command itself when no daybook runs, handed over to the running one otherwise), is projected
//! into the store, and survives a restart; the signing secret is printed once and is never on
//! the log in clear.

use base64::Engine as _;
use serde_json::Value;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

fn subs(d: &str, args: &[&str]) -> String {
    let mut full = vec!["subscriptions"];
    full.extend_from_slice(&args[..1]);
    full.extend_from_slice(&["--data-dir", d, "--notify-allow-http", "--notify-allow-private"]);
    full.extend_from_slice(&args[1..]);
    DAYBOOK.output(&full, &[])
}

fn list(d: &str) -> Vec<Value> {
    subs(d, &["list"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn wait_until(ok: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

#[test]
fn subscriptions_are_managed_through_the_log_with_and_without_a_running_daybook() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // No daybook running: the command appends to the log itself.
    let added: Value = serde_json::from_str(
        subs(
            d,
            &[
                "add",
                "--url",
                "http://127.0.0.1:9/hook",
                "--type",
                "person",
                "--cooldown",
                "60s",
                "--device-prefix",
                "door-",
            ],
        )
        .trim(),
    )
    .unwrap();
    let id = added["subscription_id"].as_str().unwrap().to_owned();
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let raw = base64::engine::general_purpose::STANDARD.decode(&secret["whsec_".len()..]).unwrap();
    assert_eq!(raw.len(), 32);

    // Projected when daybook starts; changes now go through the running process.
    let server = DAYBOOK.run_in(d, &[]);
    wait_until(|| list(d).len() == 1);
    let have = list(d);
    assert_eq!(have[0]["subscription_id"], id.as_str());
    assert_eq!(have[0]["event_types"], serde_json::json!(["person"]));
    assert_eq!(have[0]["device_prefixes"], serde_json::json!(["door-"]));
    assert_eq!(have[0]["cooldown_ms"], 60_000);
    assert_eq!(have[0]["secrets"], 1, "a count, never the secret");
    assert!(!subs(d, &["list"]).contains(&secret["whsec_".len()..]));

    subs(d, &["pause", &id]);
    assert_eq!(list(d)[0]["paused"], true);
    subs(d, &["resume", &id]);
    assert_eq!(list(d)[0]["paused"], false);
    let rotated: Value =
        serde_json::from_str(subs(d, &["update", &id, "--rotate-secret", "--kind", "event_started"]).trim()).unwrap();
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(rotated["secret"], secret.as_str());
    assert_eq!(list(d)[0]["secrets"], 2, "both verify during a rotation");
    assert_eq!(list(d)[0]["kinds"], serde_json::json!(["event_started"]));
    subs(d, &["update", &id, "--retire-old-secret"]);
    assert_eq!(list(d)[0]["secrets"], 1);

    // A second subscription, deleted again.
    let second: Value =
        serde_json::from_str(subs(d, &["add", "--url", "http://127.0.0.1:9/other", "--paused"]).trim()).unwrap();
    assert_eq!(list(d).len(), 2);
    subs(d, &["delete", second["subscription_id"].as_str().unwrap()]);
    assert_eq!(list(d).len(), 1);

    // https is required unless allowed.
    let refused = std::process::Command::new(DAYBOOK.0)
        .args(["subscriptions", "add", "--data-dir", d, "--url", "http://127.0.0.1:9/x"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("https"));
    // Internal addresses are refused unless allowed (SSRF).
    for url in
        ["https://169.254.169.254/latest/meta-data/", "https://127.0.0.1/x", "https://10.0.0.1/", "https://[::1]/"]
    {
        let refused = std::process::Command::new(DAYBOOK.0)
            .args(["subscriptions", "add", "--data-dir", d, "--url", url])
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{url}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--notify-allow-private"), "{url}");
    }

    assert!(server.stop().success());
    // The secrets are on the log only sealed.
    let log = all_bytes(&dir.path().join("log"));
    assert!(!log.windows(raw.len()).any(|w| w == raw.as_slice()), "a secret in clear on the log");
    // A restart (and so a rebuild or a restore, which replay the same log) finds the state.
    let server = DAYBOOK.run_in(d, &[]);
    let have = list(d);
    assert_eq!(have.len(), 1);
    assert_eq!(have[0]["kinds"], serde_json::json!(["event_started"]));
    assert!(server.stop().success());
}
