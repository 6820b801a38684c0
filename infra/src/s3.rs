//! The blob signer on aws-sdk-s3 presigning, for any S3-protocol endpoint (AWS, MinIO, the
//! embedded s3s server).

use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use aws_sdk_s3::Client;
use schemas::Timestamp;
use seams::blob::check_ttl;
use seams::{BlobError, BlobSigner, ObjectKey, PresignedRequest};

/// Where the bucket is and how to reach it.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Endpoint daybook itself talks to (`None`: AWS's regional endpoint).
    pub endpoint: Option<String>,
    /// Endpoint written into presigned URLs, as devices and viewers reach it (default: `endpoint`).
    pub public_url: Option<String>,
    /// Bucket name.
    pub bucket: String,
    /// Region (`us-east-1` for MinIO and the embedded server).
    pub region: String,
    /// Static credentials; `None` uses the standard AWS chain (env, profile, IMDS).
    pub credentials: Option<(String, String)>,
    /// Path-style URLs (`endpoint/bucket/key`), needed by MinIO and the embedded server.
    pub path_style: bool,
}

/// Signs presigned URLs for one bucket.
#[derive(Debug, Clone)]
pub struct S3Signer {
    /// Signs with the public endpoint (the host is part of the signature).
    public: Client,
    /// Talks to the bucket (health, setup).
    admin: Client,
    bucket: String,
}

async fn client(config: &S3Config, endpoint: Option<&str>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
    if let Some((ak, sk)) = &config.credentials {
        loader = loader.credentials_provider(Credentials::from_keys(ak, sk, None));
    }
    let shared = loader.load().await;
    let mut b = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

/// Longest a presign may take. Signing itself is local computation, but the credentials may
/// have to be fetched first (instance metadata, a container endpoint, STS): when that source
/// is down the device gets a prompt 503 `object_store_unavailable`, not a hung request.
const PRESIGN_TIMEOUT: Duration = Duration::from_secs(2);

async fn bounded<T, E: std::error::Error>(
    presign: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BlobError> {
    match tokio::time::timeout(PRESIGN_TIMEOUT, presign).await {
        Ok(signed) => signed.map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e))),
        Err(_) => {
            Err(unavailable(format!("object store credentials not available within {} s", PRESIGN_TIMEOUT.as_secs())))
        }
    }
}

fn convert(req: aws_sdk_s3::presigning::PresignedRequest, ttl: Duration) -> PresignedRequest {
    PresignedRequest {
        method: req.method().to_owned(),
        url: req.uri().to_owned(),
        headers: req.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        expires_at: Timestamp::now().plus_millis(ttl.as_millis() as i64),
    }
}

impl S3Signer {
    /// Builds the clients (no network traffic).
    pub async fn new(config: &S3Config) -> Self {
        let admin = client(config, config.endpoint.as_deref()).await;
        let public = match &config.public_url {
            Some(p) => client(config, Some(p)).await,
            None => admin.clone(),
        };
        Self { public, admin, bucket: config.bucket.clone() }
    }

    /// Creates the bucket if it is missing and asks the store to expire objects after
    /// `expire_days` (a lifecycle rule). Servers without lifecycle support only get a warning:
    /// daybook's own retention does not depend on it.
    pub async fn ensure_bucket(&self, expire_days: u32) -> Result<(), BlobError> {
        if self.admin.head_bucket().bucket(&self.bucket).send().await.is_err() {
            if let Err(e) = self.admin.create_bucket().bucket(&self.bucket).send().await {
                let e = aws_sdk_s3::error::DisplayErrorContext(e);
                let text = e.to_string();
                if !text.contains("BucketAlreadyOwnedByYou") && !text.contains("BucketAlreadyExists") {
                    return Err(unavailable(format!("cannot create bucket {}: {text}", self.bucket)));
                }
            }
        }
        let rule = LifecycleRule::builder()
            .id("daybook-retention")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("devices/").build())
            .expiration(LifecycleExpiration::builder().days(expire_days as i32).build())
            .build()
            .map_err(unavailable)?;
        let lifecycle = BucketLifecycleConfiguration::builder().rules(rule).build().map_err(unavailable)?;
        if let Err(e) = self
            .admin
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(lifecycle)
            .send()
            .await
        {
            tracing::warn!(bucket = %self.bucket, error = %aws_sdk_s3::error::DisplayErrorContext(e), "object store did not take the lifecycle rule; objects will not expire on their own");
        }
        Ok(())
    }
}

#[async_trait]
impl BlobSigner for S3Signer {
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: Option<u64>,
        ttl: Duration,
    ) -> Result<PresignedRequest, BlobError> {
        check_ttl(ttl)?;
        let cfg = PresigningConfig::expires_in(ttl).map_err(|e| BlobError::Invalid(e.to_string()))?;
        let req = bounded(
            self.public
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_type(content_type)
                .set_content_length(content_length.map(|n| n as i64))
                .presigned(cfg),
        )
        .await?;
        Ok(convert(req, ttl))
    }

    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedRequest, BlobError> {
        check_ttl(ttl)?;
        let cfg = PresigningConfig::expires_in(ttl).map_err(|e| BlobError::Invalid(e.to_string()))?;
        let req = bounded(self.public.get_object().bucket(&self.bucket).key(key.as_str()).presigned(cfg)).await?;
        Ok(convert(req, ttl))
    }

    async fn health(&self) -> Result<(), BlobError> {
        self.admin
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))
    }
}
