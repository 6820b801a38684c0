//! Presigning cost, in the same run: a PUT with content-type and content-length, static
//! credentials, path-style endpoint (as the all-in-one signs every device upload).
//!
//! * `presign_put/sdk`: `aws_sdk_s3::Client::put_object()….presigned(cfg)`, the SDK's whole
//!   orchestrator per URL (how `infra::s3` presigned before);
//! * `presign_put/sigv4`: [`S3Signer::presign_put`], `aws-sigv4` directly.
//!
//! Both are driven through the same `block_on` of a current-thread runtime.
//!
//! `cargo bench -p infra --bench presign`

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use criterion::{criterion_group, criterion_main, Criterion};
use infra::s3::{S3Config, S3Signer};
use schemas::{DeviceId, SegmentId};
use seams::{BlobSigner, ObjectKey};

const ENDPOINT: &str = "http://127.0.0.1:9000";
const AK: &str = "bench-access";
const SK: &str = "bench-secret-key-0123456789";
const TTL: Duration = Duration::from_secs(600);
const LENGTH: u64 = 4 * 1024 * 1024;

fn presign(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let key = ObjectKey::segment(
        &DeviceId::parse("cam-bench").unwrap(),
        &SegmentId::parse("20260102-0123456789abcdef0123456789abcdef").unwrap(),
    );
    let sdk = rt.block_on(sdk_client());
    let signer = rt.block_on(S3Signer::new(&S3Config {
        endpoint: Some(ENDPOINT.into()),
        public_url: None,
        bucket: "daybook".into(),
        region: "us-east-1".into(),
        credentials: Some((AK.into(), SK.into())),
        path_style: true,
    }));
    // Both sign the same request.
    let old = rt.block_on(sdk_put(&sdk, &key));
    let new = rt.block_on(signer.presign_put(&key, "video/mp4", Some(LENGTH), TTL)).unwrap();
    let without_signature = |u: &str| u[..u.find("X-Amz-Date=").unwrap()].to_owned();
    assert_eq!(without_signature(old.uri()), without_signature(&new.url));

    let mut g = c.benchmark_group("presign_put");
    g.bench_function("sdk", |b| b.iter(|| rt.block_on(sdk_put(&sdk, &key))));
    g.bench_function("sigv4", |b| {
        b.iter(|| rt.block_on(signer.presign_put(&key, "video/mp4", Some(LENGTH), TTL)).unwrap())
    });
    g.finish();
}

async fn sdk_client() -> aws_sdk_s3::Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::from_keys(AK, SK, None))
        .load()
        .await;
    let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).endpoint_url(ENDPOINT).build();
    aws_sdk_s3::Client::from_conf(config)
}

async fn sdk_put(client: &aws_sdk_s3::Client, key: &ObjectKey) -> aws_sdk_s3::presigning::PresignedRequest {
    client
        .put_object()
        .bucket("daybook")
        .key(key.as_str())
        .content_type("video/mp4")
        .content_length(LENGTH as i64)
        .presigned(PresigningConfig::expires_in(TTL).unwrap())
        .await
        .unwrap()
}

criterion_group!(benches, presign);
criterion_main!(benches);
