//! The HTTP listener: hyper's HTTP/1.1 server with a header-read timeout (also the idle
//! keep-alive limit), a deadline on each request body, and a cap on open connections — so
//! half-sent requests, slow bodies or idle sockets cannot take the file descriptors devices
//! need. (`axum::serve` has no header timeout and no connection cap.)
//!
//! At the cap a new connection evicts the oldest connection that is not inside a request
//! (idle keep-alive, or headers not yet complete): a device that sends a whole request always
//! gets through a flood of half-open sockets. Only when every connection is inside a request
//! is the new one answered 503 (Retry-After) and closed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use seams::metric::{Kind, Metric};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

use crate::config::HttpLimits;

pub(crate) const HTTP_CONNECTIONS: Metric = Metric {
    name: "daybook_http_connections",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "HTTP connections open now on the device and viewer listener (at most --max-connections).",
};

pub(crate) const HTTP_CONNECTIONS_REFUSED_TOTAL: Metric = Metric {
    name: "daybook_http_connections_refused_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help:
        "Connections answered 503 too_many_connections and closed: --max-connections were open, all inside a request.",
};

pub(crate) const HTTP_CONNECTIONS_EVICTED_TOTAL: Metric = Metric {
    name: "daybook_http_connections_evicted_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Idle connections (or ones still sending headers) closed to make room for a new one at --max-connections.",
};

pub(crate) const HTTP_BODY_TIMEOUTS_TOTAL: Metric = Metric {
    name: "daybook_http_body_timeouts_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Request bodies not received within --body-timeout-ms of their headers (answered 400 unreadable_body).",
};

/// Serves `router` until `shutdown` turns true; in-flight requests finish first (for at most
/// 10 s after the signal).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Slots::new(limits.max_connections.max(1)));
    let stopped = async move {
        let _ = shutdown.wait_for(|v| *v).await;
    };
    tokio::pin!(stopped);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    // Out of file descriptors, typically: wait rather than spin.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        let _ = socket.set_nodelay(true);
        let Some((slot, evicted)) = slots.admit() else {
            metrics::counter!(HTTP_CONNECTIONS_REFUSED_TOTAL.name).increment(1);
            tokio::spawn(refuse(socket));
            continue;
        };
        let busy = slot.busy.clone();
        let (router, body_timeout) = (router.clone(), limits.body_timeout);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let in_request = InRequest::enter(&busy);
            let req = req.map(|body| with_deadline(body, body_timeout));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req).await;
                drop(in_request);
                resp
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(socket), service));
        tokio::spawn(async move {
            tokio::select! {
                served = conn => if let Err(e) = served {
                    tracing::debug!(error = %e, "http connection ended");
                },
                Ok(()) = evicted => {
                    metrics::counter!(HTTP_CONNECTIONS_EVICTED_TOTAL.name).increment(1);
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("http connections still open after 10s; closing"),
    }
    Ok(())
}

/// Answers a connection over the cap: 503 in the error contract, then close.
async fn refuse(mut socket: TcpStream) {
    let body = serde_json::to_string(&seams::web::ErrorBody {
        error: seams::web::ErrorDetail {
            code: seams::web::ErrorCode::TooManyConnections,
            message: "the server is at its connection limit; retry".into(),
        },
    })
    .expect("an error body serializes");
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.write_all(resp.as_bytes()).await?;
        socket.shutdown().await
    })
    .await;
}

/// The body, failing once `timeout` has passed since the headers arrived: a client trickling
/// its body cannot hold a connection and a handler for longer (the handler answers 400).
fn with_deadline(body: Incoming, timeout: Duration) -> Body {
    if hyper::body::Body::is_end_stream(&body) {
        return Body::new(body);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = Body::new(body).into_data_stream();
    Body::from_stream(futures::stream::unfold(Some(stream), move |stream| async move {
        let mut stream = stream?;
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(stream))),
            Ok(None) => None,
            Err(_) => {
                metrics::counter!(HTTP_BODY_TIMEOUTS_TOTAL.name).increment(1);
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body not received in time");
                Some((Err(axum::Error::new(e)), None))
            }
        }
    }))
}

/// Marks a connection as inside a request (not evictable) while alive.
struct InRequest(Arc<AtomicUsize>);

impl InRequest {
    fn enter(busy: &Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::Relaxed);
        Self(busy.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The open connections, oldest first.
struct Slots {
    max: usize,
    open: Mutex<(u64, BTreeMap<u64, Open>)>,
}

struct Open {
    busy: Arc<AtomicUsize>,
    evict: oneshot::Sender<()>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    id: u64,
    busy: Arc<AtomicUsize>,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().expect("connection slots");
        open.1.remove(&self.id);
        metrics::gauge!(HTTP_CONNECTIONS.name).set(open.1.len() as f64);
    }
}

impl Slots {
    fn new(max: usize) -> Self {
        Self { max, open: Mutex::new((0, BTreeMap::new())) }
    }

    /// A place for a new connection, evicting the oldest one outside a request if need be;
    /// `None` when every connection is inside a request.
    fn admit(self: &Arc<Self>) -> Option<(Slot, oneshot::Receiver<()>)> {
        let mut guard = self.open.lock().expect("connection slots");
        let (next_id, open) = &mut *guard;
        if open.len() >= self.max {
            let idle = open.iter().find(|(_, o)| o.busy.load(Ordering::Relaxed) == 0).map(|(id, _)| *id)?;
            if let Some(o) = open.remove(&idle) {
                let _ = o.evict.send(());
            }
        }
        let id = *next_id;
        *next_id += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let (evict, evicted) = oneshot::channel();
        open.insert(id, Open { busy: busy.clone(), evict });
        metrics::gauge!(HTTP_CONNECTIONS.name).set(open.len() as f64);
        Some((Slot { id, busy, slots: self.clone() }, evicted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room_and_busy_ones_never_do() {
        let slots = Arc::new(Slots::new(2));
        let (a, mut a_evicted) = slots.admit().unwrap();
        let (b, mut b_evicted) = slots.admit().unwrap();
        let _in_request = InRequest::enter(&a.busy);
        let (_c, _) = slots.admit().expect("b is idle: evicted");
        assert!(a_evicted.try_recv().is_err(), "a is inside a request");
        assert!(b_evicted.try_recv().is_ok(), "b, idle, made room");
        drop(b);
        let _c_busy = InRequest::enter(&slots.open.lock().unwrap().1.values().last().unwrap().busy.clone());
        assert!(slots.admit().is_none(), "every connection inside a request: refused");
        drop(a);
        assert!(slots.admit().is_some(), "a closed: room again");
    }
}
