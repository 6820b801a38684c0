//! Notifications over Kafka: the all-in-one on a fresh topic, a subscription (its own consumer
//! group on the topic), a receiver verifying with the official `standardwebhooks` package
//! going down under load and coming back: every matching report arrives, in order per device.
//! Needs `DAYBOOK_TEST_KAFKA`.

mod notify_fleet;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use notify_fleet::{env_or, free_port, subscribe, Fleet, Receiver, DAYBOOK, FAST_RETRIES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_kafka_a_receiver_down_gets_everything_in_order_once_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let topic = tests::kafka::unique_topic("notify");
    let url = tests::kafka::url(&topic);
    DAYBOOK.output(&["topic", "create", "--log", &url, "--partitions", "3"], &[]);
    let mut args = vec!["--log", url.as_str()];
    args.extend_from_slice(&FAST_RETRIES);
    let server = DAYBOOK.run_in(d, &args);
    let port = free_port();
    let secret = subscribe(d, &format!("http://127.0.0.1:{port}/hook"), &["--log", &url]);
    let path: PathBuf = dir.path().join("ledger.jsonl");
    let mut fleet = Fleet::new(d, server.http(), env_or("DAYBOOK_NOTIFY_DEVICES", 20));

    let receiver = Receiver::start(&secret, &path, port, "ok");
    // A Kafka group starts at the end once the notifier has joined: from the first delivery on.
    fleet.probe(&path, Duration::from_secs(60)).await;
    for _ in 0..3 {
        fleet.round().await;
    }
    drop(receiver);
    let until = Instant::now() + Duration::from_secs(env_or("DAYBOOK_NOTIFY_DOWN_S", 6));
    while Instant::now() < until {
        fleet.round().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _receiver = Receiver::start(&secret, &path, port, "ok");
    for _ in 0..3 {
        fleet.round().await;
    }
    fleet.check_delivered(&path, Duration::from_secs(90));
    assert!(server.stop().success());
}
