//! An S3 endpoint of a test's own (daybook's embedded one, on loopback), for processes started
//! with `--s3-endpoint` to sign against.

/// The endpoint, serving until [`stop`](Self::stop) (or its drop, with the runtime).
#[derive(Debug)]
pub struct TestS3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The credentials as the processes' environment (`AWS_…`).
    pub env: [(&'static str, &'static str); 3],
    _objects: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestS3 {
    /// Serves bucket `daybook` from a fresh directory with these credentials.
    pub async fn start(access_key: &'static str, secret_key: &'static str) -> Self {
        let objects = tempfile::tempdir().expect("a temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let root = objects.path().to_owned();
        let task = tokio::spawn(async move {
            infra::s3_server::serve(listener, &root, "daybook", access_key, secret_key, 1 << 20, async move {
                let _ = stopped.await;
            })
            .await
        });
        let env = [
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", secret_key),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        Self { endpoint, env, _objects: objects, stop, task }
    }

    /// Stops serving and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.expect("the S3 endpoint's task")
    }
}
