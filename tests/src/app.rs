//! The daybook application in-process: built from a [`Config`] on port 0 with its state in a
//! temporary directory, served on the test's runtime, stopped cleanly and restarted on the
//! same directory — no binary to build, no process to find.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use daybook::{Application, Backends, Config};
use schemas::DeviceId;
use seams::{ProjectionStore, ReportLog};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running application; dropping it leaves it to the end of the test's runtime.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the device and viewer listener.
    pub http: String,
    /// `http://127.0.0.1:PORT` of the embedded S3 endpoint (without an external one).
    pub s3: Option<String>,
    config: Config,
    dir: TempDir,
    stop: oneshot::Sender<()>,
    running: JoinHandle<anyhow::Result<()>>,
}

/// The all-in-one on the embedded engines in a fresh temporary directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with `configure` applied to the config first (flags of `daybook run`).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().expect("address");
    config.s3_addr = "127.0.0.1:0".parse().expect("address");
    configure(&mut config);
    start(config, dir).await
}

/// Starts the application on `config` (whose state is in `dir`, kept until the app is dropped).
pub async fn start(config: Config, dir: TempDir) -> TestApp {
    let app = Application::build(config.clone()).await.expect("the application builds");
    serve(app, config, dir)
}

/// The all-in-one in `dir` on port 0 with the given engines in place of those it would open
/// (a fault-injecting wrapper around an embedded log, say), and `configure` applied.
pub async fn start_with(
    dir: TempDir,
    log: Option<Arc<dyn ReportLog>>,
    store: Option<Arc<dyn ProjectionStore>>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::new(dir.path());
    config.http_addr = "127.0.0.1:0".parse().expect("address");
    config.s3_addr = "127.0.0.1:0".parse().expect("address");
    configure(&mut config);
    let app = Application::build_with(config.clone(), Backends { log, store }).await.expect("the application builds");
    serve(app, config, dir)
}

fn serve(app: Application, config: Config, dir: TempDir) -> TestApp {
    let http = format!("http://{}", app.http_addr().expect("an http listener"));
    let s3 = app.s3_addr().map(|a| format!("http://{a}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp { http, s3, config, dir, stop, running }
}

impl TestApp {
    /// The data directory (log, store, secrets, objects).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A token with which device `cid` writes its reports (as `daybook token device`).
    pub fn device_token(&self, cid: &str) -> String {
        let cid = DeviceId::parse(cid).expect("valid device id");
        self.auth().device_token(&cid, Duration::from_secs(86_400))
    }

    /// A token for device `cid` in time zone `tz` (as `daybook token device CID --tz TZ`).
    pub fn device_token_in(&self, cid: &str, tz: &str) -> String {
        let cid = DeviceId::parse(cid).expect("valid device id");
        let zone = schemas::DeviceZone::parse(tz).expect("known zone");
        self.auth().device_token_in(&cid, Some(zone), Duration::from_secs(86_400))
    }

    /// A token for device `cid` with a plan of `days` (as `daybook token device CID
    /// --retention-days DAYS`).
    pub fn device_token_planned(&self, cid: &str, days: u32) -> String {
        let cid = DeviceId::parse(cid).expect("valid device id");
        self.auth().device_token_planned(&cid, None, Some(days), Duration::from_secs(86_400))
    }

    /// A token that may read `cids` (as `daybook token viewer`).
    pub fn viewer_token(&self, cids: &[&str]) -> String {
        let cids: Vec<DeviceId> = cids.iter().map(|c| DeviceId::parse(c).expect("valid device id")).collect();
        self.auth().viewer_token(&cids, Duration::from_secs(86_400))
    }

    /// A token that may read and manage `cids` (as `daybook token viewer --manage`).
    pub fn managing_viewer_token(&self, cids: &[&str]) -> String {
        let cids: Vec<DeviceId> = cids.iter().map(|c| DeviceId::parse(c).expect("valid device id")).collect();
        self.auth().managing_viewer_token(&cids, Duration::from_secs(86_400))
    }

    fn auth(&self) -> seams::auth::Auth {
        daybook::secrets::auth(self.dir.path()).expect("token secret")
    }

    /// Whether the application stopped by itself (it must not, short of a fatal error).
    /// The clients of an owner's flows on device `cid` (`crate::flow::Owners`): a read-only
    /// viewer, a managing viewer of another camera, a managing viewer, the device.
    pub fn owner_clients(&self, cid: &str) -> crate::flow::OwnerClients {
        let http = |token: String| crate::client::Http::new(&self.http, &token);
        crate::flow::OwnerClients {
            reader: http(self.viewer_token(&[cid])),
            stranger: http(self.managing_viewer_token(&["cam-other"])),
            manager: http(self.managing_viewer_token(&[cid])),
            device: http(self.device_token(cid)),
        }
    }

    pub fn has_exited(&self) -> bool {
        self.running.is_finished()
    }

    /// Stops it as SIGTERM does (HTTP drains, the projector commits, the log flushes) and
    /// fails the test unless every part stopped cleanly. Returns the data directory.
    pub async fn stop(self) -> (Config, TempDir) {
        let _ = self.stop.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.running)
            .await
            .expect("stopped within 30s")
            .expect("the application task");
        stopped.expect("a clean stop");
        (self.config, self.dir)
    }

    /// Stops it cleanly, rebuilds its store from its log (`daybook rebuild`, in batches of 7:
    /// many batch boundaries), which must quarantine nothing, and starts it again (new ports).
    pub async fn rebuilt(self) -> TestApp {
        let (config, dir) = self.stop().await;
        let rebuilt = rebuild_in_place(&config, &dir).await;
        assert_eq!(rebuilt.quarantined, 0, "{rebuilt:?}");
        start(config, dir).await
    }

    /// Stops it cleanly and starts it again on the same directory and config (new ports).
    pub async fn restart(self) -> TestApp {
        let (config, dir) = self.stop().await;
        start(config, dir).await
    }
}

/// `daybook rebuild` of a stopped application's data directory (small batches, no progress).
pub async fn rebuild_in_place(config: &Config, dir: &TempDir) -> daybook::rebuild::Rebuilt {
    let opts = daybook::rebuild::RebuildOptions {
        data_dir: dir.path().to_owned(),
        group: config.projector.group.clone(),
        policy: config.policy,
        max_batch: 7,
        progress_every: Duration::from_secs(60),
    };
    daybook::rebuild::rebuild(&opts, |_| {}).await.unwrap()
}
