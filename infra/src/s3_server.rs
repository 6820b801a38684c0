//! The embedded S3-protocol endpoint: s3s (SigV4 verification, presigned URLs included)
//! over s3s-fs (objects as files under the data directory). `daybook run` serves it so the
//! URLs daybook signs work with any stock S3 client and no external service.
//!
//! It answers CORS for reads, so the viewer page (served by the api, another origin) may fetch
//! byte ranges of segments and snapshots; writes stay as they are (devices send no `Origin`).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::service::TowerToHyperService;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// Serves `root` (one sub-directory per bucket; `bucket` is created) on `listener` until
/// `shutdown` resolves, then drains open connections for up to 10 s.
pub async fn serve(
    listener: TcpListener,
    root: &Path,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
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
    let service = TowerToHyperService::new(
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
