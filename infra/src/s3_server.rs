//! The embedded S3-protocol endpoint: s3s (SigV4 verification, presigned URLs included)
//! over s3s-fs (objects as files under the data directory). `daybook run` serves it so the
//! URLs daybook signs work with any stock S3 client and no external service. Snapshot
//! uploads above the configured size are refused before their body is read, and
//! [`expire_objects`] deletes objects whose day is past retention (the external store's
//! lifecycle rule does this for AWS and MinIO).
//!
//! It answers CORS for reads, so the viewer page (served by the api, another origin) may fetch
//! byte ranges of segments and snapshots; writes stay as they are (devices send no `Origin`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use schemas::Day;
use tokio::net::TcpListener;

/// Serves `root` (one sub-directory per bucket; `bucket` is created) on `listener` until
/// `shutdown` resolves, then drains open connections for up to 10 s. A snapshot PUT
/// (`…/snapshots/…`) of more than `max_snapshot_bytes`, or without a declared length, is
/// refused (413 / 411) whatever its signature says.
pub async fn serve(
    listener: TcpListener,
    root: &Path,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    max_snapshot_bytes: u64,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join(bucket))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| anyhow::anyhow!("s3 root {}: {e:?}", root.display()))?;
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(access_key, secret_key));
        b.build()
    };
    // Presigned URLs carry their own authority and no cookies are involved, so any origin may
    // read; preflights are answered here and never reach s3s.
    let cors = TowerToHyperService::new(
        tower_http::cors::Cors::new(service)
            .allow_origin(tower_http::cors::Any)
            .allow_methods([http::Method::GET, http::Method::HEAD])
            .allow_headers([http::header::RANGE])
            .expose_headers([
                http::header::CONTENT_RANGE,
                http::header::ACCEPT_RANGES,
                http::header::CONTENT_LENGTH,
                http::header::ETAG,
            ])
            .max_age(Duration::from_secs(3600)),
    );
    let bucket_name = bucket.to_owned();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let refused = refuse_snapshot(&req, &bucket_name, max_snapshot_bytes);
        let s3 = cors.clone();
        async move {
            match refused {
                Some(resp) => Ok(resp),
                None => hyper::service::Service::call(&s3, req).await,
            }
        }
    });
    let server = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "s3 accept failed");
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
        };
        let conn = server.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("s3 connections still open after 10s; closing"),
    }
    Ok(())
}

/// Whether `path` (path-style, as daybook signs for this endpoint) is a snapshot's key:
/// `/{bucket}/devices/{cid}/snapshots/{event_id}.jpg`. Matched by position, not by substring,
/// so a device named `snapshots` uploading a segment is not taken for a snapshot.
fn is_snapshot_key(path: &str, bucket: &str) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(parts.as_slice(), [b, "devices", cid, "snapshots", file] if *b == bucket && !cid.is_empty() && !file.is_empty())
}

/// The refusal of a snapshot PUT larger than `max` (or of unknown length), else `None`.
fn refuse_snapshot<B>(req: &Request<B>, bucket: &str, max: u64) -> Option<Response<s3s::Body>> {
    if req.method() != http::Method::PUT || !is_snapshot_key(req.uri().path(), bucket) {
        return None;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // aws-chunked uploads carry the object's length apart from the framed body's.
    let (status, code, message) = match header("x-amz-decoded-content-length").or_else(|| header("content-length")) {
        None => (
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "a snapshot upload must declare its length".to_owned(),
        ),
        Some(n) if n > max => {
            (StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", format!("snapshots are at most {max} bytes"))
        }
        Some(_) => return None,
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(s3s::Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    // The body was not read: the connection cannot carry another request.
    resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    Some(resp)
}

/// Deletes the objects of `bucket` under `root` (as [`serve`] lays them out) whose day is past
/// retention, with their metadata files, and returns how many went. Blocking (file system).
///
/// The day comes from the key, which starts with it: snapshots are keyed by event id (trigger
/// day, the day the event expires with), segments and digests by segment id (the day the
/// upload URL was issued). Segments and digests are kept one day longer than that day: a
/// segment issued before midnight may hold pre-roll of an event triggered after it. The key
/// rather than the file's age, because it is the rule the store expires rows by, and a copied
/// or restored file keeps its key but not its modification time.
pub fn expire_objects(root: &Path, bucket: &str, oldest_kept: Day) -> std::io::Result<u64> {
    let devices = root.join(bucket).join("devices");
    let mut deleted = 0;
    let dirs = match std::fs::read_dir(&devices) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for device in dirs {
        let device = device?;
        for (kind, grace) in [("snapshots", 0), ("segments", 1), ("digests", 1)] {
            let dir = device.path().join(kind);
            let Ok(files) = std::fs::read_dir(&dir) else { continue };
            for file in files {
                let file = file?;
                let name = file.file_name();
                let Some(day) = name.to_str().and_then(|n| n.get(..8)).and_then(|d| Day::parse_compact(d).ok()) else {
                    continue;
                };
                if day.add_days(grace) >= oldest_kept {
                    continue;
                }
                let key = format!("devices/{}/{kind}/{}", device.file_name().to_string_lossy(), name.to_string_lossy());
                match std::fs::remove_file(file.path()) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
                for sidecar in ["metadata.json", "internal.json"] {
                    let _ = std::fs::remove_file(root.join(format!(
                        ".bucket-{}.object-{}.{sidecar}",
                        encode(bucket),
                        encode(&key)
                    )));
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &str, len: Option<u64>) -> Request<()> {
        let mut b = Request::builder().method(http::Method::PUT).uri(path);
        if let Some(len) = len {
            b = b.header("content-length", len);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_snapshot_keys_are_bounded() {
        let snap = "/media/devices/cam-1/snapshots/20261201.cam-1.1796110200000.motion.jpg";
        assert_eq!(refuse_snapshot(&put(snap, Some(64 << 20)), "media", 1 << 20).unwrap().status(), 413);
        assert_eq!(refuse_snapshot(&put(snap, None), "media", 1 << 20).unwrap().status(), 411);
        assert!(refuse_snapshot(&put(snap, Some(1000)), "media", 1 << 20).is_none());
        // A device named `snapshots` uploads segments and digests of any declared size.
        for key in ["/media/devices/snapshots/segments/seg-1", "/media/devices/snapshots/digests/seg-2"] {
            assert!(refuse_snapshot(&put(key, Some(64 << 20)), "media", 1 << 20).is_none(), "{key}");
        }
        // Another bucket's keys, and reads, are not this rule's business.
        assert!(
            refuse_snapshot(&put("/other/devices/cam-1/snapshots/x.jpg", Some(64 << 20)), "media", 1 << 20).is_none()
        );
        let get = Request::builder().method(http::Method::GET).uri(snap).body(()).unwrap();
        assert!(refuse_snapshot(&get, "media", 1 << 20).is_none());
    }
}
