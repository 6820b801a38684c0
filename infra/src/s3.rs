//! The blob signer for any S3-protocol endpoint (AWS, MinIO, the embedded s3s server):
//! presigned URLs signed with `aws-sigv4` directly; the aws-sdk-s3 client only for the admin
//! calls (bucket setup, health).
//!
//! Why presigning does not go through `Client::put_object()….presigned(cfg)`: that runs the
//! SDK's whole orchestrator for every URL — runtime plugins merged into fresh runtime
//! components, a config bag, endpoint resolution, a dozen interceptors, identity resolution —
//! to compute one HMAC chain. Under a sustained device load (a presigned PUT per event start,
//! per segment and per digest upload) it was ~13 % of all server CPU. `cargo bench -p infra
//! --bench presign` (a PUT with content-length, static credentials, both in the same run; five
//! runs on a busy 2-core machine): 102–143 µs per URL through the SDK, 15–22 µs here — 6.2× to
//! 8.5× less, ~7× typically.
//!
//! What the orchestrator did per call is done once per signer instead: the bucket's base URL
//! comes from the SDK's own S3 endpoint rules at construction (path-style or virtual-hosted,
//! partitions, FIPS and dual-stack settings), and credentials from the standard chain are kept
//! in a `CredentialCache` until shortly before they expire. The signing settings are the
//! ones the SDK uses for S3 presigning: signature in the query, `UNSIGNED-PAYLOAD`, the path
//! encoded once (no double encoding, no normalisation), `x-id=PutObject|GetObject`, signed
//! headers `host` plus `content-type` and `content-length` when given. The unit test
//! `same_urls_as_the_sdk_presigner` checks that for a fixed time and credentials the URLs are
//! byte for byte the SDK presigner's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};
use aws_sdk_s3::Client;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::service_config::ServiceConfigKey;
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
    /// Talks to the bucket (health, setup).
    admin: Client,
    bucket: String,
    /// The bucket as presigned URLs name it, without a trailing `/`: `http://127.0.0.1:9000/daybook`
    /// (path-style), `https://daybook.s3.eu-west-1.amazonaws.com` (virtual-hosted); or why
    /// there is none (the endpoint rules refused the configuration).
    base: Result<Arc<str>, String>,
    /// The signing region.
    region: Arc<str>,
    credentials: Arc<CredentialCache>,
}

/// The shared AWS configuration: region, and the static credentials if configured (else the
/// standard chain). Reads the environment and profile files; no network traffic.
async fn sdk_config(config: &S3Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(config.region.clone()));
    if let Some((ak, sk)) = &config.credentials {
        loader = loader.credentials_provider(Credentials::from_keys(ak, sk, None));
    }
    loader.load().await
}

fn client(shared: &SdkConfig, config: &S3Config, endpoint: Option<&str>) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(shared).force_path_style(config.path_style);
    if let Some(e) = endpoint {
        b = b.endpoint_url(e);
    }
    Client::from_conf(b.build())
}

/// A client of the bucket's endpoint, as daybook itself talks to it (the export worker writes
/// its archives with it): the same configuration the signer's is built from.
pub async fn bucket_client(config: &S3Config) -> Client {
    client(&sdk_config(config).await, config, config.endpoint.as_deref())
}

/// The endpoint URLs are signed for: `public_url`, else `endpoint`, else what the SDK would
/// take from the shared configuration (as `aws_sdk_s3::config::Builder::from(&SdkConfig)`: an
/// S3-specific `AWS_ENDPOINT_URL_S3` or profile setting over the general `AWS_ENDPOINT_URL`),
/// else `None` (AWS's regional endpoint).
fn public_endpoint(config: &S3Config, shared: &SdkConfig) -> Option<String> {
    if let Some(e) = config.public_url.as_ref().or(config.endpoint.as_ref()) {
        return Some(e.clone());
    }
    if shared.get_origin("endpoint_url").is_client_config() {
        return shared.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder().service_id("S3").env("AWS_ENDPOINT_URL").profile("endpoint_url").build();
    shared
        .service_config()
        .zip(key.ok())
        .and_then(|(service, key)| service.load_config(key))
        .or_else(|| shared.endpoint_url().map(str::to_owned))
}

/// The bucket's base URL by the SDK's S3 endpoint rules (the ones every SDK request goes
/// through), resolved once.
async fn bucket_url(config: &S3Config, shared: &SdkConfig) -> Result<Arc<str>, String> {
    // The rules join an endpoint's path and the bucket without a `/` (`https://host/s3` →
    // `https://host/s3daybook`), as the SDK client does: give the path its trailing slash.
    let endpoint = public_endpoint(config, shared).map(|e| if e.ends_with('/') { e } else { e + "/" });
    let params = Params::builder()
        .bucket(&config.bucket)
        .region(&config.region)
        .set_endpoint(endpoint)
        .force_path_style(config.path_style)
        .set_use_fips(shared.use_fips())
        .set_use_dual_stack(shared.use_dual_stack())
        .build()
        .map_err(|e| format!("S3 endpoint parameters: {e}"))?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| format!("no S3 endpoint for bucket {:?}: {e}", config.bucket))?;
    Ok(endpoint.url().trim_end_matches('/').into())
}

fn unavailable(e: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

/// Longest a presign may take. Signing itself is local computation, but the credentials may
/// have to be fetched first (instance metadata, a container endpoint, STS): when that source
/// is down the device gets a prompt 503 `object_store_unavailable`, not a hung request.
const PRESIGN_TIMEOUT: Duration = Duration::from_secs(2);

/// Cached credentials are replaced this long before they expire (in the background; they are
/// signed with meanwhile).
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// Credentials that expire within this long are not signed with: the caller waits for new ones.
const MIN_VALIDITY: Duration = Duration::from_secs(10);
/// Earliest next attempt after a background refresh that failed or brought no fresher
/// credentials.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Longest a background refresh may take.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials from a provider (static keys, or the standard chain: env, profile, web
/// identity, container endpoint, IMDS), fetched on first use and kept until shortly before
/// they expire: a presign normally only clones an `Arc`. One fetch at a time; while
/// credentials are still valid for a while their replacement is fetched in the background.
#[derive(Debug)]
struct CredentialCache {
    provider: Option<SharedCredentialsProvider>,
    current: RwLock<Option<Cached>>,
    /// Held while fetching.
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is under way.
    background: AtomicBool,
}

#[derive(Debug, Clone)]
struct Cached {
    identity: Identity,
    /// When the credentials stop working (`None`: never, as static keys).
    expiry: Option<SystemTime>,
    /// When to replace them (`None`: never).
    refresh_at: Option<SystemTime>,
}

impl Cached {
    fn new(credentials: Credentials, now: SystemTime) -> Self {
        let expiry = credentials.expiry();
        let refresh_at = expiry.map(|e| e.checked_sub(REFRESH_AHEAD).unwrap_or(UNIX_EPOCH).max(now + RETRY_AFTER));
        Self { identity: credentials.into(), expiry, refresh_at }
    }

    /// Valid for a while yet.
    fn usable(&self, now: SystemTime) -> bool {
        self.expiry.is_none_or(|e| now + MIN_VALIDITY < e)
    }

    /// Not yet due for replacement.
    fn fresh(&self, now: SystemTime) -> bool {
        self.usable(now) && self.refresh_at.is_none_or(|t| now < t)
    }
}

impl CredentialCache {
    fn new(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
        }
    }

    fn current(&self) -> Option<Cached> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Credentials to sign with now.
    async fn identity(self: &Arc<Self>) -> Result<Identity, BlobError> {
        let now = SystemTime::now();
        if let Some(c) = self.current() {
            if c.fresh(now) {
                return Ok(c.identity);
            }
            if c.usable(now) {
                self.refresh_in_background();
                return Ok(c.identity);
            }
        }
        self.fetch(false).await
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let failed = match tokio::time::timeout(BACKGROUND_TIMEOUT, this.fetch(true)).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} s", BACKGROUND_TIMEOUT.as_secs())),
            };
            if let Some(error) = failed {
                tracing::warn!(%error, "object store credentials refresh failed; signing with the current ones until they expire");
                let mut current = this.current.write().unwrap_or_else(PoisonError::into_inner);
                if let Some(c) = current.as_mut() {
                    c.refresh_at = Some(SystemTime::now() + RETRY_AFTER);
                }
            }
            this.background.store(false, Ordering::Release);
        });
    }

    /// Fetches credentials from the provider, unless another caller did while this one waited
    /// (`ahead`: the current ones are still usable, only due for replacement).
    async fn fetch(&self, ahead: bool) -> Result<Identity, BlobError> {
        let _one_at_a_time = self.fetching.lock().await;
        let now = SystemTime::now();
        if let Some(c) = self.current() {
            if c.fresh(now) || (!ahead && c.usable(now)) {
                return Ok(c.identity);
            }
        }
        let provider = self.provider.as_ref().ok_or_else(|| unavailable("no AWS credentials provider configured"))?;
        let credentials =
            provider.provide_credentials().await.map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        let fetched = Cached::new(credentials, SystemTime::now());
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(fetched.clone());
        Ok(fetched.identity)
    }
}

/// Percent-encodes `s` into `out` as S3 and SigV4 expect: everything but the RFC 3986
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`), and `/` when `keep_slash` (an object key in
/// a path), as `%XX` of its UTF-8 bytes. The same set as the SDK's (smithy `httpLabel`,
/// greedy, for keys; `httpQuery` for query values).
fn percent_encode(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Runs of kept characters are copied whole: they are ASCII, so a non-empty run starts
    // and ends on character boundaries.
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            continue;
        }
        if run < i {
            out.push_str(&s[run..i]);
        }
        out.push('%');
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
        run = i + 1;
    }
    if run < s.len() {
        out.push_str(&s[run..]);
    }
}

/// How presigned S3 requests are signed (the SDK's S3 settings with
/// `SigV4PresigningInterceptor`'s on top).
fn presign_settings(ttl: Duration) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(ttl);
    // The path is sent, and signed, encoded once; S3 does not normalise it either.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

impl S3Signer {
    /// Builds the admin client and resolves the bucket's URL (no network traffic).
    pub async fn new(config: &S3Config) -> Self {
        Self::with_sdk_config(config, &sdk_config(config).await).await
    }

    async fn with_sdk_config(config: &S3Config, shared: &SdkConfig) -> Self {
        Self {
            admin: client(shared, config, config.endpoint.as_deref()),
            bucket: config.bucket.clone(),
            base: bucket_url(config, shared).await,
            region: config.region.as_str().into(),
            credentials: Arc::new(CredentialCache::new(shared.credentials_provider())),
        }
    }

    /// Credentials to sign with, within [`PRESIGN_TIMEOUT`].
    async fn identity(&self) -> Result<Identity, BlobError> {
        match tokio::time::timeout(PRESIGN_TIMEOUT, self.credentials.identity()).await {
            Ok(identity) => identity,
            Err(_) => Err(unavailable(format!(
                "object store credentials not available within {} s",
                PRESIGN_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Signs `method` on `key` at `now` for `ttl`; `headers` are the ones the request must
    /// carry (signed along with `host`).
    fn sign(
        &self,
        identity: &Identity,
        method: &'static str,
        key: &str,
        headers: Vec<(String, String)>,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<PresignedRequest, BlobError> {
        let base = self.base.as_deref().map_err(unavailable)?;
        let x_id = if method == "PUT" { "PutObject" } else { "GetObject" };
        let mut url = String::with_capacity(base.len() + key.len() * 3 / 2 + 1024);
        url.push_str(base);
        url.push('/');
        percent_encode(&mut url, key, true);
        url.push_str("?x-id=");
        url.push_str(x_id);
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(presign_settings(ttl))
            .build()
            .map_err(unavailable)?
            .into();
        let request = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| BlobError::Invalid(e.to_string()))?;
        let (instructions, _signature) =
            sign(request, &params).map_err(|e| BlobError::Invalid(e.to_string()))?.into_parts();
        let (_, query) = instructions.into_parts();
        for (name, value) in query {
            url.push('&');
            url.push_str(name);
            url.push('=');
            percent_encode(&mut url, &value, false);
        }
        // X-Amz-Date and X-Amz-Expires are whole seconds.
        let signed_at = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let expires_at = Timestamp(((signed_at + ttl.as_secs()) * 1000) as i64);
        Ok(PresignedRequest { method: method.to_owned(), url, headers, expires_at })
    }

    fn put_headers(content_type: &str, content_length: Option<u64>) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
        if let Some(n) = content_length {
            headers.push(("content-length".to_owned(), n.to_string()));
        }
        headers
    }

    /// Creates the bucket if it is missing and asks the store to expire objects under
    /// `devices/` after `expire_days` (the lifecycle rule `daybook-retention`). The bucket's
    /// other rules are kept (an operator's rule on `exports/`, or on incomplete uploads), and
    /// daybook's own rule is never lowered: an operator who raised it to the longest plan sold
    /// keeps that age across restarts ([`lifecycle_rules`]). Servers without lifecycle support
    /// only get a warning: daybook's own retention does not depend on it.
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
        // No configuration yet (NoSuchLifecycleConfiguration) or none readable: daybook's rule
        // alone.
        let existing = match self.admin.get_bucket_lifecycle_configuration().bucket(&self.bucket).send().await {
            Ok(found) => found.rules.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let lifecycle = BucketLifecycleConfiguration::builder()
            .set_rules(Some(lifecycle_rules(existing, expire_days)?))
            .build()
            .map_err(unavailable)?;
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

/// The id of daybook's lifecycle rule (`devices/`, by age).
pub const RETENTION_RULE: &str = "daybook-retention";

/// The bucket's lifecycle rules with daybook's own set: `existing` less any earlier
/// [`RETENTION_RULE`], plus that rule expiring `devices/` after `expire_days`, or after the
/// earlier rule's age when that was longer (an operator raised it for plans longer than the
/// deployment's retention; daybook never lowers it).
pub fn lifecycle_rules(existing: Vec<LifecycleRule>, expire_days: u32) -> Result<Vec<LifecycleRule>, BlobError> {
    let ours = |r: &LifecycleRule| r.id() == Some(RETENTION_RULE);
    let before = existing.iter().filter(|r| ours(r)).filter_map(|r| r.expiration()?.days()).max();
    let days = before.unwrap_or(0).max(i32::try_from(expire_days).unwrap_or(i32::MAX));
    let rule = LifecycleRule::builder()
        .id(RETENTION_RULE)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("devices/").build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .map_err(unavailable)?;
    let mut rules: Vec<LifecycleRule> = existing.into_iter().filter(|r| !ours(r)).collect();
    rules.push(rule);
    Ok(rules)
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
        let identity = self.identity().await?;
        let headers = Self::put_headers(content_type, content_length);
        self.sign(&identity, "PUT", key.as_str(), headers, ttl, SystemTime::now())
    }

    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<PresignedRequest, BlobError> {
        check_ttl(ttl)?;
        let identity = self.identity().await?;
        self.sign(&identity, "GET", key.as_str(), Vec::new(), ttl, SystemTime::now())
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

mod kept;
pub use kept::KeptCopies;

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, prefix: &str, days: i32) -> LifecycleRule {
        LifecycleRule::builder()
            .id(id)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
            .expiration(LifecycleExpiration::builder().days(days).build())
            .build()
            .unwrap()
    }

    fn ages(rules: &[LifecycleRule]) -> Vec<(String, i32)> {
        let mut out: Vec<_> =
            rules.iter().map(|r| (r.id().unwrap().to_owned(), r.expiration().unwrap().days().unwrap())).collect();
        out.sort();
        out
    }

    #[test]
    fn daybooks_lifecycle_rule_keeps_the_others_and_is_never_lowered() {
        let exports = rule("exports", "exports/", 8);
        // A fresh bucket: daybook's rule alone.
        assert_eq!(ages(&lifecycle_rules(vec![], 30).unwrap()), [("daybook-retention".to_owned(), 30)]);
        // An operator's rule on exports/ stays; a raised daybook rule (the longest plan sold)
        // stays raised; a retention longer than it raises it.
        let raised = vec![exports.clone(), rule(RETENTION_RULE, "devices/", 365)];
        assert_eq!(
            ages(&lifecycle_rules(raised.clone(), 30).unwrap()),
            [("daybook-retention".to_owned(), 365), ("exports".to_owned(), 8)]
        );
        let low = vec![exports, rule(RETENTION_RULE, "devices/", 7)];
        assert_eq!(
            ages(&lifecycle_rules(low, 30).unwrap()),
            [("daybook-retention".to_owned(), 30), ("exports".to_owned(), 8)]
        );
        let once = lifecycle_rules(raised, 30).unwrap();
        assert_eq!(ages(&lifecycle_rules(once.clone(), 30).unwrap()), ages(&once), "the same again: unchanged");
    }
    use aws_sdk_s3::presigning::PresigningConfig;
    use schemas::{DayOffset, DeviceId, EventId, EventType};

    const AK: &str = "AKIDEXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2026-01-02T03:04:05Z
    const AT: u64 = 1_767_323_045;

    fn config(endpoint: Option<&str>, region: &str, path_style: bool) -> S3Config {
        S3Config {
            endpoint: endpoint.map(str::to_owned),
            public_url: None,
            bucket: "daybook".into(),
            region: region.into(),
            credentials: Some((AK.into(), SK.into())),
            path_style,
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(AT)
    }

    async fn signer(config: &S3Config, credentials: Credentials) -> S3Signer {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .load()
            .await;
        S3Signer::with_sdk_config(config, &shared).await
    }

    async fn put(s: &S3Signer, key: &str, length: Option<u64>) -> PresignedRequest {
        let identity = s.identity().await.unwrap();
        s.sign(&identity, "PUT", key, S3Signer::put_headers("video/mp4", length), Duration::from_secs(600), at())
            .unwrap()
    }

    fn snapshot_key() -> ObjectKey {
        let cid = DeviceId::parse("cam-1").unwrap();
        let offset = DayOffset::parse("+01:00").unwrap();
        ObjectKey::snapshot(
            &EventId::new(&cid, &EventType::parse("motion").unwrap(), Timestamp(AT as i64 * 1000), offset).unwrap(),
        )
    }

    #[test]
    fn keys_are_percent_encoded_as_s3_expects() {
        let mut out = String::new();
        percent_encode(&mut out, "devices/cam 1/été+ü~x_y-z.jpg", true);
        assert_eq!(out, "devices/cam%201/%C3%A9t%C3%A9%2B%C3%BC~x_y-z.jpg");
        out.clear();
        percent_encode(&mut out, "a/b=c&d", false);
        assert_eq!(out, "a%2Fb%3Dc%26d");
        for (raw, encoded) in [("", ""), ("é", "%C3%A9"), (" x ", "%20x%20"), ("日本/", "%E6%97%A5%E6%9C%AC/")] {
            out.clear();
            percent_encode(&mut out, raw, true);
            assert_eq!(out, encoded);
        }
    }

    #[tokio::test]
    async fn url_shapes() {
        let creds = || Credentials::from_keys(AK, SK, None);
        let key = "devices/cam-1/segments/20260102-abc";
        let query = "?x-id=PutObject&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260102%2F";

        let path = signer(&config(Some("http://127.0.0.1:9000"), "us-east-1", true), creds()).await;
        let url = put(&path, key, Some(10)).await.url;
        assert!(
            url.starts_with(&format!("http://127.0.0.1:9000/daybook/{key}{query}us-east-1%2Fs3%2Faws4_request")),
            "{url}"
        );

        let aws = signer(&config(None, "eu-west-1", false), creds()).await;
        let url = put(&aws, key, Some(10)).await.url;
        let host = "https://daybook.s3.eu-west-1.amazonaws.com";
        assert!(url.starts_with(&format!("{host}/{key}{query}eu-west-1%2Fs3%2Faws4_request")), "{url}");
        assert!(url.contains("&X-Amz-Date=20260102T030405Z&X-Amz-Expires=600&"), "{url}");
        assert!(url.contains("&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost&"), "{url}");
        assert!(!url.contains("X-Amz-Security-Token"), "{url}");

        let aws_path = signer(&config(None, "eu-west-1", true), creds()).await;
        let url = put(&aws_path, key, None).await.url;
        assert!(url.starts_with(&format!("https://s3.eu-west-1.amazonaws.com/daybook/{key}?")), "{url}");
        assert!(url.contains("&X-Amz-SignedHeaders=content-type%3Bhost&"), "{url}");

        let custom = signer(&config(Some("https://objects.example.com"), "auto", false), creds()).await;
        let url = put(&custom, key, None).await.url;
        assert!(url.starts_with(&format!("https://daybook.objects.example.com/{key}?")), "{url}");

        let mut public = config(Some("http://minio:9000"), "us-east-1", true);
        public.public_url = Some("https://cdn.example.com/s3".into());
        let public = signer(&public, creds()).await;
        let url = put(&public, key, None).await.url;
        assert!(url.starts_with(&format!("https://cdn.example.com/s3/daybook/{key}?")), "{url}");

        // Event ids carry the camera's UTC offset: `+` is encoded in the path.
        let snapshot = snapshot_key();
        assert!(snapshot.as_str().contains('+'));
        let got = path.presign_get(&snapshot, Duration::from_secs(60)).await.unwrap();
        let encoded = snapshot.as_str().replace('+', "%2B");
        assert!(
            got.url.starts_with(&format!("http://127.0.0.1:9000/daybook/{encoded}?x-id=GetObject&")),
            "{}",
            got.url
        );
        assert!(got.headers.is_empty());
    }

    #[tokio::test]
    async fn a_session_token_is_sent_in_the_query() {
        let token = "FwoGZXIvYXdzE+/token==";
        let expiry = SystemTime::now() + Duration::from_secs(3600);
        let creds = Credentials::new(AK, SK, Some(token.into()), Some(expiry), "test");
        let s = signer(&config(Some("http://127.0.0.1:9000"), "us-east-1", true), creds).await;
        let req = s.presign_put(&snapshot_key(), "image/jpeg", Some(1000), Duration::from_secs(60)).await.unwrap();
        assert!(req.url.ends_with("&X-Amz-Security-Token=FwoGZXIvYXdzE%2B%2Ftoken%3D%3D"), "{}", req.url);
        assert_eq!(
            req.headers,
            [("content-type".to_owned(), "image/jpeg".to_owned()), ("content-length".to_owned(), "1000".to_owned())]
        );
    }

    /// The same request through the SDK's presigner, at the same time, with the same
    /// credentials, gives the same URL and headers: the two sign the same canonical request.
    #[tokio::test]
    async fn same_urls_as_the_sdk_presigner() {
        let configs = [
            config(Some("http://127.0.0.1:9000"), "us-east-1", true),
            config(None, "eu-west-1", false),
            config(None, "eu-west-1", true),
            config(Some("https://objects.example.com"), "auto", false),
        ];
        let keys = [snapshot_key().as_str().to_owned(), "devices/cam 1/été (1).mp4".to_owned()];
        let ttl = Duration::from_secs(900);
        for token in [None, Some("FwoGZXIvYXdzE+/token==")] {
            for c in &configs {
                let creds = Credentials::new(AK, SK, token.map(str::to_owned), None, "test");
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(c.region.clone()))
                    .credentials_provider(creds)
                    .load()
                    .await;
                let ours = S3Signer::with_sdk_config(c, &shared).await;
                let sdk = client(&shared, c, c.endpoint.as_deref());
                let identity = ours.identity().await.unwrap();
                let presigning = || PresigningConfig::builder().start_time(at()).expires_in(ttl).build().unwrap();
                for key in &keys {
                    for length in [Some(4096), None] {
                        let want = sdk
                            .put_object()
                            .bucket("daybook")
                            .key(key)
                            .content_type("video/mp4")
                            .set_content_length(length.map(|n| n as i64))
                            .presigned(presigning())
                            .await
                            .unwrap();
                        let got = ours
                            .sign(&identity, "PUT", key, S3Signer::put_headers("video/mp4", length), ttl, at())
                            .unwrap();
                        assert_eq!(got.url, want.uri(), "{c:?}");
                        assert_eq!(got.method, want.method());
                        let mut want_headers: Vec<_> =
                            want.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                        let mut got_headers = got.headers.clone();
                        want_headers.sort();
                        got_headers.sort();
                        assert_eq!(got_headers, want_headers);
                    }
                    let want = sdk.get_object().bucket("daybook").key(key).presigned(presigning()).await.unwrap();
                    let got = ours.sign(&identity, "GET", key, Vec::new(), ttl, at()).unwrap();
                    assert_eq!(got.url, want.uri(), "{c:?}");
                    assert_eq!(want.headers().count(), 0);
                }
            }
        }
    }

    /// Keys with spaces, non-ASCII and `+` round-trip through a real S3-protocol server
    /// (s3s, which checks the signature over the path as received).
    #[tokio::test]
    async fn encoded_keys_round_trip_through_s3s() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let root = dir.path().to_owned();
        tokio::spawn(async move {
            crate::s3_server::serve(listener, &root, "daybook", AK, SK, 1 << 20, std::future::pending()).await
        });
        let endpoint = format!("http://{addr}");
        let s = S3Signer::new(&config(Some(&endpoint), "us-east-1", true)).await;
        // A bare HTTP/1.1 exchange: the URL goes on the wire exactly as signed.
        let send = |req: PresignedRequest, body: Vec<u8>| {
            let target = req.url.strip_prefix(&endpoint).unwrap().to_owned();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut head = format!("{} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n", req.method);
                for (k, v) in &req.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                tcp.write_all(head.as_bytes()).await.unwrap();
                tcp.write_all(&body).await.unwrap();
                let mut response = Vec::new();
                tcp.read_to_end(&mut response).await.unwrap();
                let text = String::from_utf8_lossy(&response).into_owned();
                let status: u16 = text[9..12].parse().unwrap();
                let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
                (status, body)
            }
        };
        for key in ["devices/cam 1/été (1)+x.mp4", snapshot_key().as_str()] {
            let body = format!("body of {key}");
            let identity = s.identity().await.unwrap();
            let now = SystemTime::now();
            let ttl = Duration::from_secs(60);
            let put =
                s.sign(&identity, "PUT", key, S3Signer::put_headers("video/mp4", Some(body.len() as u64)), ttl, now);
            let put = put.unwrap();
            let url = put.url.clone();
            let (status, answer) = send(put, body.clone().into_bytes()).await;
            assert_eq!(status, 200, "PUT {url}: {answer}");
            let get = s.sign(&identity, "GET", key, Vec::new(), ttl, now).unwrap();
            let url = get.url.clone();
            let (status, got) = send(get, Vec::new()).await;
            assert_eq!(status, 200, "GET {url}: {got}");
            assert_eq!(got, body);
        }
    }

    #[tokio::test]
    async fn credentials_are_fetched_once_and_refreshed_before_they_expire() {
        #[derive(Debug)]
        struct Counting(Arc<std::sync::atomic::AtomicU32>, Duration);
        impl ProvideCredentials for Counting {
            fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                let n = self.0.fetch_add(1, Ordering::SeqCst);
                let expiry = SystemTime::now() + self.1;
                aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                    format!("AK{n}"),
                    SK,
                    Some(format!("token{n}")),
                    Some(expiry),
                    "counting",
                )))
            }
        }
        let access_key = |i: &Identity| i.data::<Credentials>().unwrap().access_key_id().to_owned();
        let cache_of = |valid: Duration| {
            let fetches = Arc::new(std::sync::atomic::AtomicU32::new(0));
            let provider = SharedCredentialsProvider::new(Counting(fetches.clone(), valid));
            (fetches, Arc::new(CredentialCache::new(Some(provider))))
        };

        // Valid for an hour: fetched once.
        let (fetches, cache) = cache_of(Duration::from_secs(3600));
        for _ in 0..100 {
            assert_eq!(access_key(&cache.identity().await.unwrap()), "AK0");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // Within REFRESH_AHEAD of expiry: still signed with, replaced in the background.
        let (fetches, cache) = cache_of(REFRESH_AHEAD - Duration::from_secs(60));
        assert_eq!(access_key(&cache.identity().await.unwrap()), "AK0");
        {
            // Pretend the first fetch was RETRY_AFTER ago.
            let mut current = cache.current.write().unwrap();
            current.as_mut().unwrap().refresh_at = Some(SystemTime::now() - Duration::from_secs(1));
        }
        assert_eq!(access_key(&cache.identity().await.unwrap()), "AK0");
        for _ in 0..500 {
            if cache.current().is_some_and(|c| access_key(&c.identity) == "AK1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(access_key(&cache.identity().await.unwrap()), "AK1");
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // Expired (or about to): the caller waits for new ones.
        let (_, cache) = cache_of(MIN_VALIDITY / 2);
        assert_eq!(access_key(&cache.identity().await.unwrap()), "AK0");
        assert_eq!(access_key(&cache.identity().await.unwrap()), "AK1");

        // No provider at all.
        let cache = Arc::new(CredentialCache::new(None));
        assert!(matches!(cache.identity().await, Err(BlobError::Unavailable(_))));
    }
}
