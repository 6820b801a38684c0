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

/// A signer for bucket `daybook` of a fresh S3-protocol endpoint (s3s-fs, as `daybook run`
/// embeds) on loopback, serving until the returned directory is dropped with the runtime.
pub async fn local_signer() -> (tempfile::TempDir, infra::s3::S3Signer) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let root = dir.path().to_owned();
    tokio::spawn(async move {
        infra::s3_server::serve(
            listener,
            &root,
            "daybook",
            "test-access",
            "test-secret-key-0123456789",
            2 * 1024 * 1024,
            std::future::pending(),
        )
        .await
    });
    let signer = infra::s3::S3Signer::new(&infra::s3::S3Config {
        endpoint: Some(format!("http://{addr}")),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some(("test-access".into(), "test-secret-key-0123456789".into())),
        path_style: true,
    })
    .await;
    (dir, signer)
}
