//! Two `daybook projector` processes in one consumer group split the topic's partitions; one
//! is killed (SIGKILL) mid-stream; every acknowledged report still ends up projected.
//!
//! Nothing restarts the killed member: the broker must expire it (session timeout) and the
//! survivor must be assigned its partitions, resuming from its last committed offsets.
//!
//! Why `partition.assignment.strategy=cooperative-sticky`: tansu 0.6's group coordinator
//! expires a dead member inside the survivor's Heartbeat while the group stays "formed"
//! (`coordinator/group/administrator.rs`: `Inner<Formed>::heartbeat` → `missed_heartbeat`,
//! l.2676/1365) and answers REBALANCE_IN_PROGRESS; the survivor's JoinGroup then re-forms the
//! group only if its member metadata changed (`Inner<Formed>::join`, "existing" l.2384 vs
//! "update" l.2430). With the eager `range` assignor the metadata is identical, the group
//! stays formed and SyncGroup ignores the leader's new plan, handing back the stale one
//! (`Inner<Formed>::sync`, `let _ = assignments;` l.2581): the dead member's partitions are
//! never read again. The cooperative-sticky metadata carries the owned partitions and the
//! assignment's generation, so it always changes and the group re-forms without the dead
//! member. (Apache Kafka re-forms the group in either case.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::embedded_store::EmbeddedStore;
use infra::kafka::{KafkaConfig, KafkaLog};
use schemas::{DayOffset, DeviceId, TimePolicy};
use seams::conformance::log::record_of;
use seams::conformance::store::{noon, start};
use seams::{LogRecord, ProjectionStore, ReportLog};
use tests::kafka;
use tests::process::Bin;

const DAYBOOK: Bin = Bin(env!("CARGO_BIN_EXE_daybook"));

const DEVICES: usize = 40;
const PER_DEVICE: usize = 150;

/// The sum of the samples of the series starting with `series` at a `/metrics` endpoint.
async fn metric(metrics: &str, series: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("{metrics}/metrics")).await else { return 0.0 };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn projected(metrics: &str) -> f64 {
    metric(metrics, "daybook_projector_reports_total").await
}

/// Rebalances that (incrementally) assigned partitions to the member.
async fn assignments(metrics: &str) -> f64 {
    metric(metrics, r#"daybook_kafka_rebalances_total{kind="assign"}"#).await
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
    DAYBOOK.output(&["topic", "create", "--log", &url, "--partitions", "4"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let group = format!("{topic}-group");
    let env = [
        // Frequent heartbeats so members join and rebalance quickly.
        ("DAYBOOK_KAFKA_HEARTBEAT_INTERVAL_MS", "500"),
        // The dead member is expired 10 s after its last heartbeat (librdkafka's default is
        // 45 s). Not much less: tansu refreshes a member's last contact only on its heartbeats
        // (not on JoinGroup/SyncGroup) and holds a follower's JoinGroup 3 s, so a joining
        // member must outlive a few such rounds.
        ("DAYBOOK_KAFKA_SESSION_TIMEOUT_MS", "10000"),
        // So that tansu re-forms the group without the dead member: see the module docs.
        ("DAYBOOK_KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky"),
    ];
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
        .map(|i| {
            record_of(&start(&format!("cam-{:03}", i % DEVICES), "motion", noon(0, (i / DEVICES) as i64 * 1000)).1)
        })
        .collect();
    // Reports keep arriving (acknowledged in chunks) for the whole test. The last third is
    // held back until `b` is dead, so its partitions surely get records it never read.
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let appender = {
        let log = log.clone();
        tokio::spawn(async move {
            let held_back = records.len() * 2 / 3;
            let mut killed = Some(killed_rx);
            for (i, chunk) in records.chunks(50).enumerate() {
                if i * 50 >= held_back {
                    if let Some(rx) = killed.take() {
                        rx.await.expect("the test signals the kill");
                    }
                }
                log.append(chunk.to_vec()).await.expect("acknowledged");
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };

    // `a` joins first and leads the group; `b` joins and the group splits the partitions.
    // (tansu 0.6 wedges a group whose *leader* dies — a broker bug Apache Kafka does not
    // have: the re-formed group keeps the dead leader's id as its leader, l.2452, and
    // SyncGroup answers every other member REBALANCE_IN_PROGRESS, l.1972 — so the member
    // killed here is the follower.)
    let a = DAYBOOK.start(&args, &env);
    let ma = a.metrics.clone().unwrap();
    wait_until("a to project", || async { projected(&ma).await > 0.0 }).await;
    let b = DAYBOOK.start(&args, &env);
    let mb = b.metrics.clone().unwrap();
    wait_until("b to get partitions and project", || async { projected(&mb).await > 0.0 }).await;
    let a_assignments = assignments(&ma).await;
    // Kill b mid-stream: appends keep coming while it dies.
    b.kill();
    // (If the appender failed, `appender.await` below says why.)
    let _ = killed_tx.send(());
    // The broker expires b and the group re-forms: a is assigned b's partitions.
    wait_until("a to be assigned b's partitions", || async { assignments(&ma).await > a_assignments }).await;
    appender.await.unwrap();

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
