//! api: the viewer API (README.md, Viewer API). It reads projections only — never the log — and signs
//! GET URLs so video is downloaded straight from object storage.

mod cursor;
mod dto;
mod routes;

use std::sync::Arc;
use std::time::Duration;

pub use dto::*;
pub use routes::{router, ApiDoc};
use schemas::TimePolicy;
use seams::auth::Auth;
use seams::{BlobSigner, ProjectionStore};

mod web;

/// Settings of the viewer API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Day boundary and retention (the calendar never reaches past retention).
    pub policy: TimePolicy,
    /// Default page size of the day page.
    pub default_limit: u32,
    /// Largest page size a viewer may ask for.
    pub max_limit: u32,
    /// Lifetime of presigned GET URLs (at most 15 minutes).
    pub url_ttl: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { policy: TimePolicy::default(), default_limit: 10, max_limit: 100, url_ttl: Duration::from_secs(10 * 60) }
    }
}

/// The viewer API's state.
#[derive(Debug, Clone)]
pub struct Api {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ProjectionStore>,
    signer: Arc<dyn BlobSigner>,
    auth: Auth,
    config: ApiConfig,
}

impl Api {
    /// Builds the service.
    pub fn new(store: Arc<dyn ProjectionStore>, signer: Arc<dyn BlobSigner>, auth: Auth, config: ApiConfig) -> Self {
        Self { inner: Arc::new(Inner { store, signer, auth, config }) }
    }
}
