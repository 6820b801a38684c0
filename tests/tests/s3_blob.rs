//! The blob-signer conformance suite: `infra::s3::S3Signer` (presigning with aws-sigv4)
//! against a real S3-protocol server (s3s-fs, the same one `daybook run` embeds) on loopback.

use std::sync::Arc;

use async_trait::async_trait;
use seams::conformance::blob::BlobHarness;
use seams::BlobSigner;

struct Harness {
    _dir: tempfile::TempDir,
    signer: Arc<dyn BlobSigner>,
}

async fn start() -> Harness {
    let (dir, signer) = tests::s3::local_signer().await;
    Harness { _dir: dir, signer: Arc::new(signer) }
}

#[async_trait]
impl BlobHarness for Harness {
    async fn signer(&mut self) -> Arc<dyn BlobSigner> {
        self.signer.clone()
    }
}

seams::blob_suite!(start());
