//! The embedded S3-protocol endpoint: s3s (SigV4 verification, presigned URLs included)
//! over s3s-fs (objects as files under the data directory). `daybook run` serves it so the
//! URLs daybook signs work with any stock S3 client and no external service. Snapshot
//! uploads are capped at the configured size by the bytes actually received, and
//! [`expire_objects`] deletes objects whose day is past retention (the external store's
//! lifecycle rule does this for AWS and MinIO).
//!
//! It answers CORS for reads, so the viewer page (served by the api, another origin) may fetch
//! byte ranges of segments and snapshots; writes stay as they are (devices send no `Origin`).
//!
//! It has its own connection [`Limits`], so idle, half-open or trickling clients cannot take
//! the file descriptors (or, through snapshots, the disk) the rest of the process needs:
//! HTTP/1.1 only (no S3 client speaks cleartext HTTP/2, and its version sniffing would wait
//! on a silent connection with no timeout), a header timeout, a cap on open connections
//! (evicting idle ones first), a minimum transfer rate inside a request rather than a total
//! body timeout (segment uploads and video downloads are long and legitimate), and a growing
//! pause after a failed accept (out of file descriptors, typically) instead of a spin.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use schemas::Day;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The endpoint's own limits on its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send a request's headers, from the moment its connection opens or
    /// its previous response was sent (so also the limit on idle keep-alive connections).
    pub header_timeout: Duration,
    /// Connections served at once. At the cap a new connection evicts the oldest one that is
    /// not inside a request (idle keep-alive, or headers not yet complete); when every one is
    /// inside a request, the new one is answered 503 `SlowDown` (Retry-After: 1) and closed.
    pub max_connections: usize,
    /// Least a connection inside a request (from its headers until its response is sent:
    /// receiving a body or sending one) must move, in bytes per second, averaged over each
    /// [`Limits::rate_window`]; a connection that moves less in a whole window is closed. 0:
    /// no minimum. A window in which a new request began is not judged.
    pub min_body_rate: u64,
    /// The window [`Limits::min_body_rate`] is measured over.
    pub rate_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            min_body_rate: 1024,
            rate_window: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The bytes a connection inside a request must move in one window (0: no minimum).
    fn min_bytes_per_window(&self) -> u64 {
        (self.min_body_rate as f64 * self.rate_window.as_secs_f64()) as u64
    }
}

/// First pause after a failed accept; it doubles with each failure in a row, up to
/// [`ACCEPT_BACKOFF_MAX`], and starts over after an accept succeeds.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// As [`serve_with_limits`] with the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    root: &Path,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    max_snapshot_bytes: u64,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with_limits(listener, root, bucket, access_key, secret_key, max_snapshot_bytes, Limits::default(), shutdown)
        .await
}

/// The hyper service over s3s with CORS for reads.
type S3Http = TowerToHyperService<tower_http::cors::Cors<S3Service>>;

/// Serves `root` (one sub-directory per bucket; `bucket` is created) on `listener` within
/// `limits` until `shutdown` resolves, then drains open connections for up to 10 s.
///
/// A snapshot PUT (`…/devices/{cid}/snapshots/…`, however its path is percent-encoded) whose
/// body goes past `max_snapshot_bytes` is refused (413 `EntityTooLarge`) and nothing is
/// stored, whatever its signature or headers say: the bytes received are counted. One
/// declaring a larger length (`content-length`, `x-amz-decoded-content-length`), or none, is
/// refused up front (413 / 411) without reading its body.
#[allow(clippy::too_many_arguments)]
pub async fn serve_with_limits(
    listener: TcpListener,
    root: &Path,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    max_snapshot_bytes: u64,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, root, bucket, access_key, secret_key, max_snapshot_bytes, limits, None, shutdown).await
}

/// Told the path (under the endpoint's root: `{bucket}/{key}`) of each object stored, once
/// the write is answered 2xx: continuous backups ship them from there.
pub type OnStored = Arc<dyn Fn(&str) + Send + Sync>;

/// As [`serve_with_limits`], calling `on_stored` for every object stored.
#[allow(clippy::too_many_arguments)]
pub async fn serve_with(
    listener: TcpListener,
    root: &Path,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
    max_snapshot_bytes: u64,
    limits: Limits,
    on_stored: Option<OnStored>,
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
    let s3: S3Http = TowerToHyperService::new(
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
    let bucket: Arc<str> = bucket.into();
    let mut server = ConnBuilder::new(TokioExecutor::new()).http1_only();
    server.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Slots::new(limits.max_connections.max(1)));
    let (window, min_bytes) = (limits.rate_window, limits.min_bytes_per_window());
    let mut backoff = Backoff::new(ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => {
                    backoff.succeeded();
                    socket
                }
                Err(e) => {
                    // Out of file descriptors, typically: pause rather than spin.
                    let pause = backoff.failed();
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "s3 accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = shutdown.as_mut() => break,
                    }
                }
            },
            () = shutdown.as_mut() => break,
        };
        let Some((slot, activity, evicted)) = slots.admit() else {
            tracing::debug!("s3 connection refused: every connection is inside a request");
            tokio::spawn(refuse(socket));
            continue;
        };
        let service = {
            let (s3, bucket, activity, on_stored) = (s3.clone(), bucket.clone(), activity.clone(), on_stored.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let in_request = InRequest::enter(&activity);
                handle(req, s3.clone(), bucket.clone(), max_snapshot_bytes, in_request, on_stored.clone())
            })
        };
        let io = TokioIo::new(Metered { inner: socket, activity: activity.clone() });
        let conn = graceful.watch(server.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            tokio::select! {
                served = conn => if let Err(e) = served {
                    tracing::debug!(error = %e, "s3 connection ended");
                },
                why = watchdog(&activity, evicted, window, min_bytes) => {
                    tracing::debug!(reason = why, "s3 connection closed");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("s3 connections still open after 10s; closing"),
    }
    Ok(())
}

/// One request: a snapshot upload refused from its declared length, or passed to s3s with its
/// body counted (and answered 413 if it went past the cap).
async fn handle(
    req: Request<Incoming>,
    s3: S3Http,
    bucket: Arc<str>,
    max_snapshot_bytes: u64,
    in_request: InRequest,
    on_stored: Option<OnStored>,
) -> Result<Response<Tracked>, s3s::HttpError> {
    let writes = matches!(*req.method(), http::Method::PUT | http::Method::POST);
    let stored = on_stored.filter(|_| writes).and_then(|f| Some((f, stored_object(req.uri().path(), &bucket)?)));
    let limit = match snapshot_limit(&req, &bucket, max_snapshot_bytes) {
        Err(r) => return Ok(Tracked::new(error_response(r.status, r.code, &r.message), in_request)),
        Ok(limit) => limit.unwrap_or(u64::MAX),
    };
    let exceeded = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| Capped { inner, limit, received: 0, exceeded: exceeded.clone() });
    let resp = hyper::service::Service::call(&s3, req).await?;
    if exceeded.load(Ordering::Acquire) {
        // s3s-fs wrote to a temporary file, removed when the failed body ended the upload.
        let message = format!("snapshots are at most {max_snapshot_bytes} bytes");
        return Ok(Tracked::new(error_response(StatusCode::PAYLOAD_TOO_LARGE, "EntityTooLarge", &message), in_request));
    }
    if let Some((f, path)) = stored.filter(|_| resp.status().is_success()) {
        f(&path);
    }
    Ok(Tracked::new(resp, in_request))
}

/// Resolves when the connection must go: evicted to make room for a new one, or inside a
/// request for a whole window without moving `min_bytes`.
async fn watchdog(
    activity: &Activity,
    evicted: oneshot::Receiver<()>,
    window: Duration,
    min_bytes: u64,
) -> &'static str {
    let too_slow = async {
        if min_bytes == 0 || window.is_zero() {
            return std::future::pending().await;
        }
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + window, window);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut moved, mut requests) = (activity.moved.load(Ordering::Relaxed), activity.requests());
        loop {
            ticks.tick().await;
            let (now_moved, now_requests) = (activity.moved.load(Ordering::Relaxed), activity.requests());
            // Inside one same request for the whole window (a request that began during it is
            // judged from the next tick on).
            let judged = activity.in_request.load(Ordering::Relaxed) > 0 && now_requests == requests;
            if judged && now_moved - moved < min_bytes {
                return "slower than the minimum transfer rate";
            }
            (moved, requests) = (now_moved, now_requests);
        }
    };
    tokio::select! {
        Ok(()) = evicted => "evicted at the connection cap",
        why = too_slow => why,
    }
}

/// The pause after each accept that failed in a row: `first`, doubling up to `max`.
#[derive(Debug)]
struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// The pause after one more failure.
    fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    fn succeeded(&mut self) {
        self.next = self.first;
    }
}

/// What is known of one connection.
#[derive(Debug, Default)]
struct Activity {
    /// Requests in flight: from their headers until their response is sent.
    in_request: AtomicUsize,
    /// Requests begun on the connection.
    started: AtomicU64,
    /// Bytes read and written on the socket.
    moved: AtomicU64,
}

impl Activity {
    fn requests(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// Marks its connection as inside a request while alive.
#[derive(Debug)]
struct InRequest(Arc<Activity>);

impl InRequest {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.in_request.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.in_request.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection inside the request until it is sent (a long
/// video download is neither idle nor evictable).
struct Tracked {
    inner: s3s::Body,
    in_request: Option<InRequest>,
}

impl Tracked {
    fn new(resp: Response<s3s::Body>, in_request: InRequest) -> Response<Self> {
        resp.map(|inner| Self { inner, in_request: Some(in_request) })
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = <s3s::Body as Body>::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.in_request = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why a request body failed.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("request body longer than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A request body that fails once more than `limit` bytes have arrived, whatever the headers
/// declared, and says so in `exceeded`.
struct Capped {
    inner: Incoming,
    limit: u64,
    received: u64,
    exceeded: Arc<AtomicBool>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit))));
        }
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            this.received = this.received.saturating_add(data.len() as u64);
            if this.received > this.limit {
                this.exceeded.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(BodyError::TooLarge(this.limit))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket, counting the bytes that cross it.
struct Metered {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl Metered {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled {
            self.activity.moved.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl AsyncRead for Metered {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.activity.moved.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        polled
    }
}

impl AsyncWrite for Metered {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The open connections, oldest first.
struct Slots {
    max: usize,
    open: Mutex<(u64, BTreeMap<u64, Open>)>,
}

struct Open {
    activity: Arc<Activity>,
    evict: oneshot::Sender<()>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    id: u64,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.open.lock().unwrap_or_else(PoisonError::into_inner).1.remove(&self.id);
    }
}

impl Slots {
    fn new(max: usize) -> Self {
        Self { max, open: Mutex::new((0, BTreeMap::new())) }
    }

    /// A place for a new connection, evicting the oldest one outside a request if need be
    /// (its receiver resolves); `None` when every connection is inside a request.
    fn admit(self: &Arc<Self>) -> Option<(Slot, Arc<Activity>, oneshot::Receiver<()>)> {
        let mut guard = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (next_id, open) = &mut *guard;
        if open.len() >= self.max {
            let idle =
                open.iter().find(|(_, o)| o.activity.in_request.load(Ordering::Relaxed) == 0).map(|(id, _)| *id)?;
            if let Some(o) = open.remove(&idle) {
                let _ = o.evict.send(());
            }
        }
        let id = *next_id;
        *next_id += 1;
        let activity = Arc::new(Activity::default());
        let (evict, evicted) = oneshot::channel();
        open.insert(id, Open { activity: activity.clone(), evict });
        Some((Slot { id, slots: self.clone() }, activity, evicted))
    }
}

/// Answers a connection over the cap: 503 `SlowDown`, then close — after reading (and
/// dropping) what the client sent meanwhile, for at most a second, so that the answer is not
/// lost to a reset.
async fn refuse(mut socket: TcpStream) {
    let body = error_body("SlowDown", "the server is at its connection limit; retry");
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(resp.as_bytes()).await?;
        socket.shutdown().await?;
        let (mut sink, mut drained) = ([0u8; 4096], 0);
        while drained < 64 * 1024 {
            match socket.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

fn error_body(code: &str, message: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>")
}

/// An S3 error answer that closes the connection (the request's body was not read whole).
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let mut resp = Response::new(s3s::Body::from(error_body(code, message)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}

/// `s` with its `%XX` escapes decoded, as s3s decodes a request's path (invalid UTF-8 replaced).
fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `path` (path-style, as daybook signs for this endpoint) names a snapshot:
/// `/{bucket}/devices/{cid}/snapshots/{event_id}.jpg`. Matched on the path as s3s reads it —
/// percent-decoded (`%73napshots`, `%2F`) — and normalised (empty and `.` segments dropped,
/// `..` applied), so that no other spelling of a snapshot's key escapes; anything under the
/// `snapshots` folder counts. By position, not by substring, so a device named `snapshots`
/// uploading a segment is not taken for a snapshot.
fn is_snapshot_key(path: &str, bucket: &str) -> bool {
    let parts = normalised(path);
    matches!(parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice(), [b, "devices", _, "snapshots", _, ..] if *b == bucket)
}

/// The segments of a request path as s3s reads it: percent-decoded, empty and `.` segments
/// dropped, `..` applied.
fn normalised(path: &str) -> Vec<String> {
    let decoded = percent_decode(path);
    let mut parts: Vec<String> = Vec::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part.to_owned()),
        }
    }
    parts
}

/// The file (relative to the endpoint's root) a successful write request to `path` stored:
/// `{bucket}/{key}` for an object of `bucket` (a part of a multipart upload names the object
/// too; it is there once the upload completes).
fn stored_object(path: &str, bucket: &str) -> Option<String> {
    let parts = normalised(path);
    (parts.len() >= 2 && parts[0] == bucket).then(|| parts.join("/"))
}

/// The body a request may send: `Ok(None)` unbounded (not a snapshot upload), `Ok(Some(n))`
/// at most `n` bytes on the wire (a snapshot upload), or `Err(answer)`: a snapshot upload
/// refused up front, declaring a length above `max` (413) or none (411). The declared lengths
/// only serve to refuse early; the bytes received are what is capped.
fn snapshot_limit<B>(req: &Request<B>, bucket: &str, max: u64) -> Result<Option<u64>, Refusal> {
    if req.method() != http::Method::PUT || !is_snapshot_key(req.uri().path(), bucket) {
        return Ok(None);
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // aws-chunked uploads (signed in the header, by holders of the secret key) carry the
    // object's length apart from the framed body's: chunk headers and signatures (chunks of at
    // least 8 KiB but the last) come on top of the object's bytes.
    let aws_chunked = req
        .headers()
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    let on_the_wire = if aws_chunked { max.saturating_add((max / 8192 + 1) * 128 + 1024) } else { max };
    let (decoded, length) = (header("x-amz-decoded-content-length"), header("content-length"));
    if decoded.is_none() && length.is_none() {
        let message = "a snapshot upload must declare its length".to_owned();
        return Err(Refusal { status: StatusCode::LENGTH_REQUIRED, code: "MissingContentLength", message });
    }
    if decoded.is_some_and(|n| n > max) || length.is_some_and(|n| n > on_the_wire) {
        let message = format!("snapshots are at most {max} bytes");
        return Err(Refusal { status: StatusCode::PAYLOAD_TOO_LARGE, code: "EntityTooLarge", message });
    }
    Ok(Some(on_the_wire))
}

/// A snapshot upload refused from its headers: the S3 error to answer.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Deletes the object `key` (and its metadata) from the embedded endpoint's directory, as
/// [`expire_objects`] does; `false` if it was not there.
pub fn delete_object(root: &Path, bucket: &str, key: &str) -> std::io::Result<bool> {
    if !(key.starts_with("devices/") || key.starts_with("exports/"))
        || key.split('/').any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not an object key: {key}")));
    }
    let removed = match std::fs::remove_file(root.join(bucket).join(key)) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for sidecar in ["metadata.json", "internal.json"] {
        let _ = std::fs::remove_file(root.join(format!(".bucket-{}.object-{}.{sidecar}", encode(bucket), encode(key))));
    }
    Ok(removed)
}

/// The export archives of `bucket` under `root` (`exports/{cid}/{export_id}.tar`) last written
/// more than `older_than` ago, as (cid, export id, key): what the janitor asks the store about
/// (an archive whose export expired, or was never completed, is deleted with
/// [`delete_object`]). Blocking (file system).
pub fn export_archives(
    root: &Path,
    bucket: &str,
    older_than: Duration,
) -> std::io::Result<Vec<(String, String, String)>> {
    let cutoff = std::time::SystemTime::now().checked_sub(older_than).unwrap_or(std::time::UNIX_EPOCH);
    let exports = root.join(bucket).join("exports");
    let devices = match std::fs::read_dir(&exports) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for device in devices {
        let device = device?;
        let cid = device.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(device.path()) else { continue };
        for file in files {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".tar") else { continue };
            if file.metadata()?.modified()? > cutoff {
                continue;
            }
            out.push((cid.clone(), id.to_owned(), format!("exports/{cid}/{name}")));
        }
    }
    Ok(out)
}

/// Deletes what multipart uploads started more than `older_than` ago and never completed or
/// aborted left in the endpoint's directory `root` (their parts and bookkeeping files: a worker
/// stopped mid-upload leaves them; this endpoint does not list uploads), and returns how many
/// files went. Blocking (file system).
pub fn expire_stale_uploads(root: &Path, older_than: Duration) -> std::io::Result<u64> {
    let cutoff = std::time::SystemTime::now().checked_sub(older_than).unwrap_or(std::time::UNIX_EPOCH);
    let entries = match std::fs::read_dir(root) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let of_upload = name.starts_with(".upload_id-")
            || name.starts_with(".upload-")
            || (name.starts_with(".bucket-") && name.contains(".upload-") && name.ends_with(".metadata.json"));
        if !of_upload || entry.metadata()?.modified()? > cutoff {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => deleted += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Deletes the objects of `bucket` under `root` (as [`serve`] lays them out) whose day is past
/// retention, with their metadata files, and returns how many went. Blocking (file system).
///
/// The day comes from the key, which starts with it: snapshots are keyed by event id (trigger
/// day, the day the event expires with), segments and digests by segment id (the day the
/// upload URL was issued). Segments and digests are kept one day longer than that day: a
/// segment issued before midnight may hold pre-roll of an event triggered after it. The key
/// rather than the file's age, because it is the rule the store expires rows by, and a copied
/// or restored file keeps its key but not its modification time. `oldest_kept` names, per
/// device (the directory under `devices/`), the oldest day kept — the deployment's retention,
/// or the device's plan when longer (`seams::oldest_object_day`) — or `None` to leave the
/// device alone this round (its plan could not be read). The keys in `spared` (the objects of
/// kept events, `seams::ProjectionStore::kept_reports`) stay whatever their day.
pub fn expire_objects(
    root: &Path,
    bucket: &str,
    oldest_kept: &dyn Fn(&str) -> Option<Day>,
    spared: &std::collections::HashSet<String>,
) -> std::io::Result<u64> {
    let devices = root.join(bucket).join("devices");
    let mut deleted = 0;
    let dirs = match std::fs::read_dir(&devices) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for device in dirs {
        let device = device?;
        let Some(oldest_kept) = oldest_kept(&device.file_name().to_string_lossy()) else { continue };
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
                if spared.contains(&key) {
                    continue;
                }
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

    const MIB: u64 = 1 << 20;

    fn put(path: &str, len: Option<u64>) -> Request<()> {
        put_with(path, len, &[])
    }

    fn put_with(path: &str, len: Option<u64>, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(http::Method::PUT).uri(path);
        if let Some(len) = len {
            b = b.header("content-length", len);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    /// The status of an up-front refusal, or the cap on the body.
    fn limit(req: &Request<()>, max: u64) -> Result<Option<u64>, u16> {
        snapshot_limit(req, "media", max).map_err(|r| r.status.as_u16())
    }

    #[test]
    fn only_snapshot_keys_are_bounded() {
        let snap = "/media/devices/cam-1/snapshots/20261201.cam-1.1796110200000.motion.jpg";
        assert_eq!(limit(&put(snap, Some(64 << 20)), MIB), Err(413));
        assert_eq!(limit(&put(snap, None), MIB), Err(411));
        assert_eq!(limit(&put(snap, Some(1000)), MIB), Ok(Some(MIB)));
        // A device named `snapshots` uploads segments and digests of any declared size.
        for key in ["/media/devices/snapshots/segments/seg-1", "/media/devices/snapshots/digests/seg-2"] {
            assert_eq!(limit(&put(key, Some(64 << 20)), MIB), Ok(None), "{key}");
        }
        // Another bucket's keys, and reads, are not this rule's business.
        assert_eq!(limit(&put("/other/devices/cam-1/snapshots/x.jpg", Some(64 << 20)), MIB), Ok(None));
        let get = Request::builder().method(http::Method::GET).uri(snap).body(()).unwrap();
        assert_eq!(limit(&get, MIB), Ok(None));
    }

    #[test]
    fn declared_lengths_refuse_early_but_the_body_is_capped_anyway() {
        let snap = "/media/devices/cam-1/snapshots/x.jpg";
        // A small decoded length does not lift the cap on what arrives.
        let lie = put_with(snap, Some(64 << 20), &[("x-amz-decoded-content-length", "10")]);
        assert_eq!(limit(&lie, MIB), Err(413));
        let chunked = put_with(snap, None, &[("x-amz-decoded-content-length", "10")]);
        assert_eq!(limit(&chunked, MIB), Ok(Some(MIB)));
        let big = put_with(snap, None, &[("x-amz-decoded-content-length", "2000000")]);
        assert_eq!(limit(&big, MIB), Err(413));
        // aws-chunked framing comes on top of the object's bytes, within bounds.
        let framed = [
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ("x-amz-decoded-content-length", "1048576"),
        ];
        // (At most 8 KiB chunks of 1 MiB, each with its ~90-byte header: about 12 KiB.)
        let Ok(Some(on_the_wire)) = limit(&put_with(snap, Some(MIB + 12 * 1024), &framed), MIB) else { panic!() };
        assert!((MIB + 12 * 1024..MIB + MIB / 32).contains(&on_the_wire), "{on_the_wire}");
        assert_eq!(limit(&put_with(snap, Some(MIB + MIB / 32), &framed), MIB), Err(413));
    }

    #[test]
    fn snapshot_keys_are_matched_on_the_decoded_normalised_path() {
        for path in [
            "/media/devices/cam-1/snapshots/x.jpg",
            "/media/devices/cam-1/%73napshots/x.jpg",
            "/media/devices/cam-1/%73%6e%61%70%73%68%6f%74%73/x.jpg",
            "/%6Dedia/devices/cam-1/snapshots/x.jpg",
            "/media/devices%2Fcam-1%2Fsnapshots%2Fx.jpg",
            "/media//devices/cam-1//snapshots/x.jpg",
            "/media/./devices/cam-1/./snapshots/x.jpg",
            "/media/devices/cam-1/segments/../snapshots/x.jpg",
            "/media/devices/cam-1/segments/%2E%2E/snapshots/x.jpg",
            "/other/../media/devices/cam-1/snapshots/x.jpg",
            "/media/devices/cam-1/snapshots/a/b.jpg",
        ] {
            assert!(is_snapshot_key(path, "media"), "{path}");
        }
        for path in [
            "/media/devices/snapshots/segments/seg-1",
            "/media/devices/cam-1/segments/x",
            "/media/devices/cam-1/snapshots",
            "/media/devices/cam-1/snapshots/x/..",
            "/media/devices/cam-1/%2573napshots/x.jpg",
            "/other/devices/cam-1/snapshots/x.jpg",
            "/media/devices/cam-1/snapshots/../segments/x",
        ] {
            assert!(!is_snapshot_key(path, "media"), "{path}");
        }
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9%2B"), "été+");
    }

    #[test]
    fn accept_failures_back_off_from_10_ms_doubling_to_1_s() {
        let mut b = Backoff::new(ACCEPT_BACKOFF_FIRST, ACCEPT_BACKOFF_MAX);
        let pauses: Vec<u128> = (0..10).map(|_| b.failed().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
        assert_eq!(b.failed(), Duration::from_millis(20));
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
        let slots = Arc::new(Slots::new(2));
        let (a, a_activity, mut a_evicted) = slots.admit().unwrap();
        let (b, _, mut b_evicted) = slots.admit().unwrap();
        let _in_request = InRequest::enter(&a_activity);
        let (_c, c_activity, _) = slots.admit().expect("b is idle: evicted");
        assert!(a_evicted.try_recv().is_err(), "a is inside a request");
        assert!(b_evicted.try_recv().is_ok(), "b, idle, made room");
        drop(b);
        let _c_busy = InRequest::enter(&c_activity);
        assert!(slots.admit().is_none(), "every connection inside a request: refused");
        drop(a);
        assert!(slots.admit().is_some(), "a closed: room again");
    }

    #[test]
    fn default_limits() {
        let l = Limits::default();
        assert_eq!(
            (l.header_timeout, l.max_connections, l.min_body_rate, l.rate_window),
            (Duration::from_secs(10), 1024, 1024, Duration::from_secs(30))
        );
        assert_eq!(l.min_bytes_per_window(), 30 * 1024);
        assert_eq!(Limits { min_body_rate: 0, ..l }.min_bytes_per_window(), 0);
    }
}
