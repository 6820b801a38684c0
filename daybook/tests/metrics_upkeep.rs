//! Histogram samples are buffered by the Prometheus recorder until something drains them. The
//! application drains them on an interval itself, so memory stays flat when nobody scrapes
//! `/metrics` (alone in its binary: it measures the process's resident memory).

use std::time::Duration;

use tests::app::spawn_app_with;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscraped_histogram_samples_are_drained_by_the_upkeep_task() {
    let app = spawn_app_with(|c| c.metrics_upkeep = Duration::from_millis(20)).await;
    let histogram = metrics::histogram!("daybook_test_upkeep_seconds");
    // Warm up: the first round's allocations are kept by the allocator either way.
    for i in 0..200_000 {
        histogram.record(f64::from(i % 100) / 1000.0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_bytes();
    // 8 M samples of 8 bytes: ≥ 64 MiB if they stay buffered.
    for _ in 0..40 {
        for i in 0..200_000 {
            histogram.record(f64::from(i % 100) / 1000.0);
        }
        // Give the upkeep task its turn between rounds (many of its intervals).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 24 * 1024 * 1024, "resident memory grew by {} MiB while nobody scraped", grown / (1024 * 1024));
    app.stop().await;
}
