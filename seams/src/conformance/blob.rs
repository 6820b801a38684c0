//! The blob-signer suite, run against a real S3-protocol server: every URL is exercised with
//! a plain HTTP client, as a device or viewer would.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemas::{DeviceId, SegmentId};

use super::wait_for;
use crate::blob::{BlobSigner, ObjectKey, PresignedRequest};

/// Gives the signer under test, pointed at a live bucket.
#[async_trait]
pub trait BlobHarness: Send {
    /// The signer.
    async fn signer(&mut self) -> Arc<dyn BlobSigner>;
}

fn key(seg: &str) -> ObjectKey {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    ObjectKey::segment(&DeviceId::parse("cam-blob").unwrap(), &SegmentId::parse(&format!("{seg}-{n}")).unwrap())
}

async fn send(req: &PresignedRequest, url: &str, body: Vec<u8>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut b = client.request(req.method.parse().unwrap(), url);
    for (k, v) in &req.headers {
        b = b.header(k, v);
    }
    if req.method == "PUT" {
        b = b.body(body);
    }
    b.send().await.expect("request reaches the server")
}

async fn put(s: &Arc<dyn BlobSigner>, key: &ObjectKey, body: &[u8]) -> PresignedRequest {
    let req = s.presign_put(key, "video/mp4", Some(body.len() as u64), Duration::from_secs(60)).await.unwrap();
    assert_eq!(req.method, "PUT");
    let resp = send(&req, &req.url, body.to_vec()).await;
    assert!(resp.status().is_success(), "presigned PUT: {} {:?}", resp.status(), resp.text().await);
    req
}

/// A presigned PUT stores the object, a presigned GET returns it, both expire within 15 min.
pub async fn put_then_get(mut h: impl BlobHarness) {
    let s = h.signer().await;
    let k = key("pg");
    let body = b"\x00\x00\x00\x18ftypmp42 some video bytes".to_vec();
    let put_req = put(&s, &k, &body).await;
    let now = schemas::Timestamp::now();
    assert!(put_req.expires_at.millis() <= now.millis() + 15 * 60 * 1000 + 1000);
    let get = s.presign_get(&k, Duration::from_secs(60)).await.unwrap();
    assert_eq!(get.method, "GET");
    let resp = send(&get, &get.url, Vec::new()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), body);
}

fn tamper_signature(url: &str) -> String {
    let i = url.find("X-Amz-Signature=").expect("a SigV4 presigned url") + "X-Amz-Signature=".len();
    let mut bytes = url.as_bytes().to_vec();
    bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap()
}

/// A flipped signature character is refused.
pub async fn tampered_signature_is_refused(mut h: impl BlobHarness) {
    let s = h.signer().await;
    let k = key("ts");
    put(&s, &k, b"data").await;
    let get = s.presign_get(&k, Duration::from_secs(60)).await.unwrap();
    assert_eq!(send(&get, &tamper_signature(&get.url), Vec::new()).await.status(), 403);
    let put_req = s.presign_put(&k, "video/mp4", Some(4), Duration::from_secs(60)).await.unwrap();
    assert_eq!(send(&put_req, &tamper_signature(&put_req.url), b"evil".to_vec()).await.status(), 403);
}

/// A URL signed for one key does not open another.
pub async fn swapped_key_is_refused(mut h: impl BlobHarness) {
    let s = h.signer().await;
    let (a, b) = (key("sa"), key("sb"));
    put(&s, &a, b"aaaa").await;
    put(&s, &b, b"bbbb").await;
    let get = s.presign_get(&a, Duration::from_secs(60)).await.unwrap();
    let swapped = get.url.replacen(a.as_str(), b.as_str(), 1);
    assert_ne!(swapped, get.url);
    assert_eq!(send(&get, &swapped, Vec::new()).await.status(), 403);
}

/// Once the ttl has passed the URL is refused.
pub async fn expired_url_is_refused(mut h: impl BlobHarness) {
    let s = h.signer().await;
    let k = key("ex");
    put(&s, &k, b"data").await;
    let get = s.presign_get(&k, Duration::from_secs(1)).await.unwrap();
    wait_for("the url to expire", Duration::from_secs(30), || async {
        (send(&get, &get.url, Vec::new()).await.status() == 403).then_some(())
    })
    .await;
}

/// Nobody gets a URL that lives longer than 15 minutes.
pub async fn long_ttl_is_refused(mut h: impl BlobHarness) {
    let s = h.signer().await;
    assert!(s.presign_get(&key("lt"), Duration::from_secs(16 * 60)).await.is_err());
    assert!(s.presign_put(&key("lt"), "video/mp4", Some(1), Duration::from_secs(3600)).await.is_err());
}

/// The signed content length binds the upload: a different body size is refused.
pub async fn wrong_length_is_refused(mut h: impl BlobHarness) {
    let s = h.signer().await;
    let k = key("wl");
    let req = s.presign_put(&k, "video/mp4", Some(4), Duration::from_secs(60)).await.unwrap();
    let client = reqwest::Client::new();
    let mut b = client.put(&req.url);
    for (name, v) in &req.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            b = b.header(name, v);
        }
    }
    let resp = b.body(b"much longer than four bytes".to_vec()).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}
