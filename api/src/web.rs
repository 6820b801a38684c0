//! The viewer's web page (docs/viewer-page.md): plain HTML, CSS and JavaScript from
//! `web/`, built into the binary so the product works offline. `/` serves the page;
//! `/assets/{name}?v={version}` serves its files, and `/assets/js/{name}` the JavaScript
//! modules `app.js` imports (`web/js/`). The page talks only to the viewer API on
//! this origin and loads snapshots and video from presigned object-store URLs.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const ICON_SVG: &str = include_str!("../../web/icon.svg");

/// The modules `app.js` imports, served as `/assets/js/{name}`: every file in `web/js/` (a test
/// checks that each is here and that every import names one).
const MODULES: &[(&str, &str)] = &[
    ("api.js", include_str!("../../web/js/api.js")),
    ("calendar.js", include_str!("../../web/js/calendar.js")),
    ("clip.js", include_str!("../../web/js/clip.js")),
    ("day.js", include_str!("../../web/js/day.js")),
    ("days.js", include_str!("../../web/js/days.js")),
    ("dom.js", include_str!("../../web/js/dom.js")),
    ("erase.js", include_str!("../../web/js/erase.js")),
    ("exports.js", include_str!("../../web/js/exports.js")),
    ("format.js", include_str!("../../web/js/format.js")),
    ("notice.js", include_str!("../../web/js/notice.js")),
    ("player.js", include_str!("../../web/js/player.js")),
    ("session.js", include_str!("../../web/js/session.js")),
    ("signin.js", include_str!("../../web/js/signin.js")),
    ("state.js", include_str!("../../web/js/state.js")),
];

/// Changes whenever any asset changes, so asset URLs carry it and can be cached forever.
const VERSION: u64 = {
    let mut hash = fnv1a(FNV_BASIS, &[INDEX.as_bytes(), APP_JS.as_bytes(), STYLE_CSS.as_bytes(), ICON_SVG.as_bytes()]);
    let mut m = 0;
    while m < MODULES.len() {
        hash = fnv1a(hash, &[MODULES[m].0.as_bytes(), MODULES[m].1.as_bytes()]);
        m += 1;
    }
    hash
};

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

const fn fnv1a(mut hash: u64, parts: &[&[u8]]) -> u64 {
    let mut p = 0;
    while p < parts.len() {
        let bytes = parts[p];
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        p += 1;
    }
    hash
}

/// The page with its asset URLs versioned.
static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("__VERSION__", &format!("{VERSION:016x}")));

/// Scripts and styles only from this origin, no inline code, no framing. Snapshots and video
/// come from presigned URLs on the object store, whose origin the page cannot know in advance
/// (the embedded endpoint, MinIO, S3 or a CDN), so images, media and the page's availability
/// probe of a segment may use any http(s) origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: http: https:; \
                   media-src 'self' blob: http: https:; connect-src 'self' http: https:; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// Serves the page at `/` and its files under `/assets/` (its modules under `/assets/js/`).
pub(crate) fn router() -> Router {
    Router::new().route("/", get(page)).route("/assets/{name}", get(asset)).route("/assets/js/{name}", get(module))
}

fn headers(content_type: &'static str, cache: &'static str) -> [(HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        // Presigned URLs must not leak to other sites through Referer.
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
    ]
}

async fn page() -> Response {
    // Revalidated on every load, so a new binary's page (and its new asset versions) shows at once.
    (headers("text/html; charset=utf-8", "no-cache"), PAGE.as_str()).into_response()
}

async fn asset(Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    let (content_type, body) = match name.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "icon.svg" => ("image/svg+xml", ICON_SVG),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    versioned(content_type, body, query)
}

async fn module(Path(name): Path<String>, RawQuery(query): RawQuery) -> Response {
    match MODULES.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => versioned("text/javascript; charset=utf-8", body, query),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn versioned(content_type: &'static str, body: &'static str, query: Option<String>) -> Response {
    // Only the URL the current page names is immutable; any other (an old page's, or none)
    // may change under the same URL.
    let current = query.as_deref() == Some(format!("v={VERSION:016x}").as_str());
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    (headers(content_type, cache), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_versioned_assets_that_exist() {
        let v = format!("?v={VERSION:016x}");
        for name in ["app.js", "style.css", "icon.svg"] {
            assert!(PAGE.contains(&format!("/assets/{name}{v}")), "{name} is not linked with its version");
        }
        assert!(!PAGE.contains("__VERSION__"));
    }

    /// Every relative import in the served scripts names a served module (`app.js` imports
    /// `./js/{name}`, the modules `./{name}`), so a new file in `web/js/` cannot be left out.
    #[test]
    fn every_module_imported_is_served() {
        let scripts = std::iter::once(("app.js", APP_JS, "./js/")).chain(MODULES.iter().map(|(n, s)| (*n, *s, "./")));
        let mut imported = std::collections::BTreeSet::new();
        for (file, source, prefix) in scripts {
            for rest in source.split(" from '").skip(1) {
                let spec = &rest[..rest.find('\'').expect("a closed import specifier")];
                let name =
                    spec.strip_prefix(prefix).unwrap_or_else(|| panic!("{file} imports {spec}, not {prefix}{{name}}"));
                assert!(MODULES.iter().any(|(n, _)| *n == name), "{file} imports {spec}, which is not served");
                imported.insert(name);
            }
        }
        for (name, _) in MODULES {
            assert!(imported.contains(name), "{name} is served but nothing imports it");
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/js");
        for entry in std::fs::read_dir(dir).expect("web/js") {
            let name = entry.expect("web/js entry").file_name().into_string().expect("a UTF-8 name");
            assert!(MODULES.iter().any(|(n, _)| *n == name), "web/js/{name} is not embedded in MODULES");
        }
    }
}
