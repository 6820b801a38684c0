//! Operational routes — `/healthz`, `/readyz`, `/metrics`, `/openapi.json` — and the
//! request-metrics middleware.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use seams::metric::{Kind, Metric, Unit};
use seams::{BlobSigner, ProjectionStore, ReportLog};
use tokio::sync::watch;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

pub(crate) const HTTP_REQUESTS_TOTAL: Metric = Metric {
    name: "daybook_http_requests_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["method", "route", "status"],
    help: "HTTP requests answered, by method, route (the route template, e.g. /v1/devices/{cid}/events; \
           `unmatched` when no route matched) and status (the code for common ones, else 2xx/4xx/5xx).",
};

pub(crate) const HTTP_REQUEST_SECONDS: Metric = Metric {
    name: "daybook_http_request_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    labels: &["route"],
    help: "Time to answer an HTTP request, from routing to the response head, by route template.",
};

pub(crate) const API_DEADLINE_EXCEEDED_TOTAL: Metric = Metric {
    name: "daybook_api_deadline_exceeded_total",
    kind: Kind::Counter,
    unit: None,
    labels: &[],
    help: "Viewer requests the store did not answer within the request deadline (answered 503 store_unavailable).",
};

/// What `/readyz` checks: the engines this process uses.
#[derive(Clone, Default)]
pub(crate) struct Readiness {
    pub(crate) log: Option<Arc<dyn ReportLog>>,
    /// Ingest's own view of the log: not ready while its appends fail (and it refuses reports).
    pub(crate) ingest: Option<ingest::Ingest>,
    pub(crate) store: Option<Arc<dyn ProjectionStore>>,
    pub(crate) signer: Option<Arc<dyn BlobSigner>>,
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Folds buffered histogram samples into the registry every `interval` until `shutdown`.
/// The recorder buffers every sample until then; a scrape of `/metrics` does it too, but
/// memory must not depend on someone scraping.
pub(crate) async fn upkeep(interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let handle = install_metrics();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => handle.run_upkeep(),
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}

/// Installs the Prometheus recorder (once per process; later calls return the same handle,
/// so applications built in-process by tests share it).
pub(crate) fn install_metrics() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let latency = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let counts = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_records".into()), &counts))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_requests".into()), &counts))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_reports".into()), &counts))
                .expect("valid buckets")
                .install_recorder()
                .inspect(|_| crate::metric_catalog::describe())
                .expect("one metrics recorder per process")
        })
        .clone()
}

pub(crate) fn router(ready: Readiness, docs: utoipa::openapi::OpenApi) -> Router {
    let docs = Arc::new(docs);
    Router::new()
        .route("/healthz", get(|| async { Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz).with_state(ready))
        .route("/metrics", get(|| async { install_metrics().render() }))
        .route("/openapi.json", get(move || async move { Json((*docs).clone()) }))
}

async fn readyz(State(r): State<Readiness>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let mut note = |name: &str, result: Result<(), String>| {
        ok &= result.is_ok();
        checks.insert(name.into(), result.err().map_or("ok".into(), serde_json::Value::String));
    };
    if let Some(log) = &r.log {
        let appends = r.ingest.as_ref().map_or(Ok(()), ingest::Ingest::log_health);
        let health = match appends {
            Ok(()) => deadline(log.health()).await.map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        note("log", health);
    }
    if let Some(store) = &r.store {
        note("store", deadline(store.health()).await.map_err(|e| e.to_string()));
    }
    if let Some(signer) = &r.signer {
        note("object_store", deadline(signer.health()).await.map_err(|e| e.to_string()));
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({"ready": ok, "checks": checks}))).into_response()
}

/// A readiness check that does not answer in 2 s is a failed one (`/readyz` itself must answer).
async fn deadline<E: std::fmt::Display>(check: impl std::future::Future<Output = Result<(), E>>) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

/// Bounds a viewer request by `deadline`: past it, 503 `store_unavailable` with a Retry-After
/// (a read changes nothing, so the viewer's retry is always safe).
pub(crate) async fn store_deadline(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!(API_DEADLINE_EXCEEDED_TOTAL.name).increment(1);
            seams::web::ApiError::unavailable(
                seams::web::ErrorCode::StoreUnavailable,
                format!("the store did not answer within {} ms", deadline.as_millis()),
                Duration::from_secs(2),
            )
            .into_response()
        }
    }
}

/// Counts and times every request by route template and status.
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let handles = RouteMetrics::of(req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()));
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = status_label(resp.status());
    handles.histogram.record(started.elapsed().as_secs_f64());
    handles.counter(method, status).increment(1);
    resp
}

/// The metric handles of one route, registered once: looking a labelled metric up in the
/// registry on every request (building its key, allocating its labels, hashing them) was a
/// visible share of a report's CPU in the burst profile.
struct RouteMetrics {
    route: Arc<str>,
    histogram: metrics::Histogram,
    counters: std::sync::RwLock<std::collections::HashMap<(&'static str, &'static str), metrics::Counter>>,
}

impl RouteMetrics {
    /// The handles of `route` (routes are the router's patterns: a bounded set).
    fn of(route: &str) -> Arc<Self> {
        static ROUTES: OnceLock<std::sync::RwLock<std::collections::HashMap<Arc<str>, Arc<RouteMetrics>>>> =
            OnceLock::new();
        let routes = ROUTES.get_or_init(Default::default);
        if let Some(found) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return found.clone();
        }
        let mut all = routes.write().unwrap_or_else(|e| e.into_inner());
        let route: Arc<str> = Arc::from(route);
        all.entry(route.clone())
            .or_insert_with(|| {
                Arc::new(Self {
                    histogram: metrics::histogram!(HTTP_REQUEST_SECONDS.name, "route" => route.to_string()),
                    route,
                    counters: Default::default(),
                })
            })
            .clone()
    }

    fn counter(&self, method: &'static str, status: &'static str) -> metrics::Counter {
        if let Some(c) = self.counters.read().unwrap_or_else(|e| e.into_inner()).get(&(method, status)) {
            return c.clone();
        }
        let mut all = self.counters.write().unwrap_or_else(|e| e.into_inner());
        all.entry((method, status))
            .or_insert_with(|| {
                metrics::counter!(HTTP_REQUESTS_TOTAL.name, "method" => method, "route" => self.route.to_string(), "status" => status)
            })
            .clone()
    }
}

/// Static labels keep the per-request metrics free of allocations.
fn method_label(m: &axum::http::Method) -> &'static str {
    match *m {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn status_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        c if c < 300 => "2xx",
        c if c < 500 => "4xx",
        _ => "5xx",
    }
}

/// The limits of this deployment that the OpenAPI document states (the annotations carry the
/// defaults; the served document carries the configured values).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocLimits {
    /// `--retention-days`: the calendar's largest `days`.
    pub(crate) retention_days: u32,
    /// `--max-snapshot-bytes`: the largest `snapshot_size`.
    pub(crate) max_snapshot_bytes: u64,
}

/// The OpenAPI document of the services this process serves.
pub(crate) fn openapi(device: bool, viewer: bool, limits: DocLimits) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("daybook")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Device reports in, viewer queries out. Errors are {\"error\": {\"code\", \"message\"}}.",
                ))
                .build(),
        )
        .build();
    if device {
        doc.merge(ingest::ApiDoc::openapi());
    }
    if viewer {
        doc.merge(api::ApiDoc::openapi());
    }
    let components = doc.components.get_or_insert_with(Default::default);
    for name in ["device_token", "viewer_token"] {
        components.add_security_scheme(
            name,
            SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
    with_limits(doc, limits)
}

/// `doc` with the configured limits in place of the annotations' defaults.
fn with_limits(doc: utoipa::openapi::OpenApi, limits: DocLimits) -> utoipa::openapi::OpenApi {
    let mut value = serde_json::to_value(&doc).expect("the document serializes");
    let snapshot = value.pointer_mut("/components/schemas/EventStartRequest/properties/snapshot_size/maximum");
    if let Some(max) = snapshot {
        *max = limits.max_snapshot_bytes.into();
    }
    for path in
        ["/paths/~1v1~1devices~1{cid}~1calendar/get/parameters", "/paths/~1v1~1devices~1{cid}~1usage/get/parameters"]
    {
        for param in value.pointer_mut(path).and_then(|p| p.as_array_mut()).into_iter().flatten() {
            if param["name"] == "days" {
                // A device's plan may reach past the deployment's retention.
                param["schema"]["maximum"] = limits.retention_days.max(schemas::owner::MAX_PLAN_DAYS).into();
            }
        }
    }
    // The batch's item bounds are not configurable: `ingest::ApiDoc` states them itself.
    serde_json::from_value(value).expect("the document deserializes")
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    /// The cached handles count each (method, route, status) apart, as the registry did.
    #[tokio::test]
    async fn request_metrics_are_counted_per_route_method_and_status() {
        let metrics = install_metrics();
        let router = Router::new()
            .route("/t/{id}", get(|| async { StatusCode::OK }).put(|| async { StatusCode::CONFLICT }))
            .route("/u", post(|| async { StatusCode::ACCEPTED }))
            .layer(axum::middleware::from_fn(track));
        let call = |method: &str, uri: &str| {
            let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
            router.clone().oneshot(req)
        };
        for _ in 0..3 {
            call("GET", "/t/1").await.unwrap();
        }
        call("GET", "/t/2").await.unwrap();
        call("PUT", "/t/1").await.unwrap();
        call("POST", "/u").await.unwrap();
        call("GET", "/nowhere").await.unwrap();
        let text = metrics.render();
        for (line, n) in [
            (r#"daybook_http_requests_total{method="GET",route="/t/{id}",status="200"}"#, 4),
            (r#"daybook_http_requests_total{method="PUT",route="/t/{id}",status="4xx"}"#, 1),
            (r#"daybook_http_requests_total{method="POST",route="/u",status="202"}"#, 1),
            (r#"daybook_http_requests_total{method="GET",route="unmatched",status="404"}"#, 1),
            (r#"daybook_http_request_seconds_count{route="/t/{id}"}"#, 5),
        ] {
            let found = text.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("{line} missing:\n{text}"));
            assert_eq!(found.rsplit(' ').next(), Some(n.to_string().as_str()), "{found}");
        }
    }
}
