//! The blob-signer conformance suite: `infra::s3::S3Signer` (presigning with aws-sigv4)
//! against a real S3-protocol server (s3s-fs, the same one `daybook run` embeds) on loopback.

use std::sync::Arc;

use async_trait::async_trait;
use infra::s3::{S3Config, S3Signer};
use seams::conformance::blob::BlobHarness;
use seams::BlobSigner;

struct Harness {
    _dir: tempfile::TempDir,
    signer: Arc<dyn BlobSigner>,
}

async fn start() -> Harness {
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
    let signer = S3Signer::new(&S3Config {
        endpoint: Some(format!("http://{addr}")),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some(("test-access".into(), "test-secret-key-0123456789".into())),
        path_style: true,
    })
    .await;
    Harness { _dir: dir, signer: Arc::new(signer) }
}

#[async_trait]
impl BlobHarness for Harness {
    async fn signer(&mut self) -> Arc<dyn BlobSigner> {
        self.signer.clone()
    }
}

seams::blob_suite!(start());
