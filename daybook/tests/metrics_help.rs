//! Every metric on `/metrics` has its `# HELP` line: the application is driven in-process as a
//! device and a viewer (reports, uploads, refusals, a burst over the device rate, the
//! projector writing), then scraped. When Debian's `promtool` is on the PATH (`scripts/test`
//! installs it) the scrape must also pass `promtool check metrics` without a remark.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::app::spawn_app;
use tests::client::Http;
use tests::flow;

/// `(names with a # TYPE line, names with a # HELP line)` of an exposition.
fn typed_and_helped(scrape: &str) -> (Vec<&str>, Vec<&str>) {
    fn named<'a>(scrape: &'a str, prefix: &str) -> Vec<&'a str> {
        scrape.lines().filter_map(|l| l.strip_prefix(prefix)?.split_whitespace().next()).collect()
    }
    (named(scrape, "# TYPE "), named(scrape, "# HELP "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_on_the_scrape_has_help_text() {
    let server = spawn_app().await;
    let cid = "cam-metrics";
    let dev = Http::new(&server.http, &server.device_token(cid));
    let viewer = Http::new(&server.http, &server.viewer_token(&[cid]));

    flow::refuse_bad_input(&dev, cid, &server.device_token("cam-other")).await;
    let expect = flow::act_as_device(&dev, cid).await;
    flow::wait_projected(&viewer, &expect, Duration::from_secs(30)).await;
    flow::check_as_viewer(&viewer, &expect).await;
    // Over the device's burst: 429s, counted by reason.
    let burst = Http::new(&server.http, &server.device_token("cam-burst"));
    let mut limited = 0;
    for _ in 0..80 {
        let (s, _) = burst.post("/v1/devices/cam-burst/events", &serde_json::json!({})).await;
        limited += usize::from(s == 429);
    }
    assert!(limited > 0, "80 requests at once stay under the default burst of 60?");
    let (s, _) = viewer.get("/readyz").await;
    assert_eq!(s, 200);

    // The projector reports its lag when it next finds nothing to read: scrape until it has.
    let expected = [
        "daybook_http_requests_total",
        "daybook_http_request_seconds",
        "daybook_http_errors_total",
        "daybook_ingest_reports_accepted_total",
        "daybook_ingest_rejected_total",
        "daybook_log_queue_records",
        "daybook_projector_rows_total",
        "daybook_projector_lag_records",
    ];
    for name in expected {
        assert!(daybook::metric_catalog::all().any(|m| m.name == name), "{name} is not a declared metric");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let scrape = loop {
        let scrape = reqwest::get(format!("{}/metrics", server.http)).await.unwrap().text().await.unwrap();
        let typed = typed_and_helped(&scrape).0;
        let missing: Vec<_> = expected.iter().filter(|e| !typed.contains(e)).collect();
        if missing.is_empty() {
            break scrape;
        }
        assert!(Instant::now() < deadline, "{missing:?} missing from the scrape:\n{scrape}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (typed, helped) = typed_and_helped(&scrape);
    let without: Vec<_> = typed.iter().filter(|t| !helped.contains(t)).collect();
    assert!(
        without.is_empty(),
        "metrics without # HELP (declare them as seams::metric::Metric consts, listed in daybook/src/metric_catalog.rs): \
         {without:?}"
    );

    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            child.stdin.take().expect("stdin").write_all(scrape.as_bytes()).expect("scrape to promtool");
            let out = child.wait_with_output().expect("promtool");
            let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("promtool is not on the PATH: `promtool check metrics` skipped (scripts/test installs it)");
        }
        Err(e) => panic!("promtool: {e}"),
    }
    server.stop().await;
}

#[test]
fn the_check_sees_a_metric_without_help() {
    let scrape = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 2\n";
    let (typed, helped) = typed_and_helped(scrape);
    assert_eq!(typed, ["a_total", "b"]);
    assert_eq!(helped, ["a_total"]);
}
