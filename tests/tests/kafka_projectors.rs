//! Two `daybook projector` processes in one consumer group split the topic's partitions; one
//! is killed (SIGKILL) mid-stream; every acknowledged report still ends up projected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::embedded_store::EmbeddedStore;
use infra::kafka::{KafkaConfig, KafkaLog};
use schemas::{DayOffset, DeviceId, Envelope, TimePolicy, SCHEMA_VERSION};
use seams::conformance::store::{noon, start};
use seams::{LogRecord, ProjectionStore, ReportLog};
use tests::daybook::{output, Daybook};
use tests::kafka;

const DEVICES: usize = 40;
const PER_DEVICE: usize = 150;

fn record(e: &Envelope) -> LogRecord {
    LogRecord {
        key: e.report.cid().to_string(),
        kind: e.report.kind().as_str().into(),
        schema: SCHEMA_VERSION,
        value: e.encode(),
    }
}

async fn projected(metrics: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("{metrics}/metrics")).await else { return 0.0 };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("daybook_projector_reports_total"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stored(store: &Arc<EmbeddedStore>) -> u64 {
    let day = DayOffset::default().today();
    let mut total = 0;
    for d in 0..DEVICES {
        let cid = DeviceId::parse(&format!("cam-{d:03}")).unwrap();
        total += store.calendar(&cid, day, day).await.unwrap().iter().map(|c| c.1).sum::<u64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_projector_loses_nothing() {
    let topic = kafka::unique_topic("proj");
    let url = kafka::url(&topic);
    output(&["topic", "create", "--log", &url, "--partitions", "4"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let group = format!("{topic}-group");
    // Frequent heartbeats so members join and rebalance quickly.
    let env = [("DAYBOOK_KAFKA_HEARTBEAT_INTERVAL_MS", "500")];
    let args = [
        "projector",
        "--log",
        &url,
        "--data-dir",
        d,
        "--group",
        &group,
        "--max-batch",
        "200",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let log = KafkaLog::connect(KafkaConfig::from_url(&url).unwrap()).unwrap();
    let records: Vec<LogRecord> = (0..DEVICES * PER_DEVICE)
        .map(|i| record(&start(&format!("cam-{:03}", i % DEVICES), "motion", noon(0, (i / DEVICES) as i64 * 1000)).1))
        .collect();
    // Reports keep arriving (acknowledged in chunks) for the whole test.
    let appender = {
        let log = log.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(50) {
                log.append(chunk.to_vec()).await.expect("acknowledged");
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };

    // `a` joins first and leads the group; `b` joins and the group splits the partitions.
    // (tansu 0.6 wedges a group whose *leader* dies — a broker bug Apache Kafka does not
    // have — so the member killed here is the follower.)
    let a = Daybook::start(&args, &env);
    let ma = a.metrics.clone().unwrap();
    wait_until("a to project", || async { projected(&ma).await > 0.0 }).await;
    let b = Daybook::start(&args, &env);
    let mb = b.metrics.clone().unwrap();
    wait_until("b to get partitions and project", || async { projected(&mb).await > 0.0 }).await;
    let before_kill = projected(&ma).await;
    // Kill b mid-stream: appends keep coming while it dies.
    b.kill();
    appender.await.unwrap();
    wait_until("a to take over", || async { projected(&ma).await > before_kill }).await;

    let store = EmbeddedStore::open(&dir.path().join("store.db"), TimePolicy::default()).unwrap();
    let want = (DEVICES * PER_DEVICE) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = stored(&store).await;
        if got == want {
            break;
        }
        assert!(got <= want, "more events than reported: {got}");
        assert!(Instant::now() < deadline, "{got} of {want} acknowledged reports projected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(a.stop().success());
}
