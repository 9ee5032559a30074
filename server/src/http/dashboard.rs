//! The browser dashboard, embedded in the binary and served at `/`.
//!
//! The files live in `web/` (plain HTML, CSS and ES modules, no build step)
//! and are compiled into the binary with `rust-embed`, so `switchyard serve`
//! needs nothing beside itself. The `debug-embed` feature embeds them in debug
//! builds too, so tests exercise exactly what ships; `build.rs` tells cargo to
//! rebuild when a file under `web/` is added, removed or changed.
//!
//! `/` serves `index.html`; `/assets/{path}` serves `web/assets/{path}`.
//! Nothing else under `web/` is reachable. Every response carries
//! `Cache-Control: no-cache` and a strong `ETag` (the file's SHA-256, computed
//! at compile time): browsers revalidate on every load and get a `304` when
//! nothing changed, so an upgraded hub is never hidden behind a stale cache.
//!
//! The pages are locked down with a strict `Content-Security-Policy`: scripts,
//! styles and connections only from the hub itself, no inline code, no
//! framing, no form submissions (the dashboard's forms are handled by script,
//! so a token can never end up in a URL even if a script fails to load).
//! The dashboard needs no other origin: it works on a network that reaches
//! only the hub.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::http::error::ApiError;
use crate::state::AppState;

/// The files of `web/`, embedded at compile time.
#[derive(RustEmbed)]
#[folder = "../web/"]
struct WebFiles;

/// The dashboard's entry page, relative to `web/`.
const INDEX: &str = "index.html";

/// Where the assets are, relative to `web/` and as a URL prefix.
const ASSETS_DIR: &str = "assets";

/// The policy of every dashboard response. `connect-src 'self'` also allows
/// the same-origin WebSocket (`/v1/stream`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes of this area, merged at the root by [`super::router`].
pub fn routes() -> Router<AppState> {
    router()
}

/// The routes, for any state: the handlers need none.
fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(INDEX, &headers).unwrap_or_else(|e| e.into_response())
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let not_found = || {
        ApiError::NotFound(format!(
            "no dashboard file `/{ASSETS_DIR}/{path}`; the dashboard starts at /"
        ))
        .into_response()
    };
    // Embedded names are plain relative paths; refuse anything else outright.
    if path.is_empty() || path.split('/').any(|part| part.is_empty() || part == "..") {
        return not_found();
    }
    serve(&format!("{ASSETS_DIR}/{path}"), &headers).unwrap_or_else(|_| not_found())
}

/// The embedded file at `path` (relative to `web/`), or a 304 when the
/// client's `If-None-Match` names its current ETag.
fn serve(path: &str, request: &HeaderMap) -> Result<Response, ApiError> {
    let file = WebFiles::get(path)
        .ok_or_else(|| ApiError::Internal(format!("dashboard file `{path}` is not embedded")))?;
    let etag = etag_of(&file.metadata.sha256_hash());
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if matches_etag(request, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    Ok((StatusCode::OK, headers, file.data.into_owned()).into_response())
}

/// A strong ETag from the first 16 bytes of the file's SHA-256.
fn etag_of(sha256: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(&sha256[..16]))
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks
/// for this header) or is `*`.
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The content type of a dashboard file, by extension. Every file under
/// `web/` must have one listed here (a unit test checks).
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_text(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header_of(res: &Response, name: HeaderName) -> &str {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[tokio::test]
    async fn index_is_html_with_cache_and_security_headers() {
        let res = get("/", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_eq!(header_of(&res, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&res, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(header_of(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let etag = header_of(&res, header::ETAG).to_owned();
        assert_eq!(etag.len(), 34, "{etag}");
        assert!(body_text(res).await.contains("<title>Switchyard</title>"));
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_without_a_body() {
        let etag = header_of(&get("/assets/app.css", None).await, header::ETAG).to_owned();
        let res = get("/assets/app.css", Some(&etag)).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&res, header::ETAG), etag);
        assert_eq!(body_text(res).await, "");
        let listed = format!("\"other\", W/{etag}");
        assert_eq!(
            get("/assets/app.css", Some(&listed)).await.status(),
            StatusCode::NOT_MODIFIED
        );
        let res = get("/assets/app.css", Some("\"stale\"")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn scripts_are_served_as_javascript() {
        let res = get("/assets/js/main.js", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            header_of(&res, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn unknown_and_escaping_paths_are_json_404s() {
        for path in [
            "/assets/nope.js",
            "/assets/../index.html",
            "/assets/js//main.js",
        ] {
            let res = get(path, None).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(
                header_of(&res, header::CONTENT_TYPE).starts_with("application/json"),
                "{path}"
            );
        }
    }

    #[test]
    fn every_embedded_file_has_a_content_type() {
        let mut count = 0;
        for path in WebFiles::iter() {
            // Licence files of copied-in libraries sit beside them unnamed.
            if path.ends_with("LICENSE") {
                continue;
            }
            count += 1;
            assert_ne!(
                content_type(&path),
                "application/octet-stream",
                "{path} needs a content type in content_type()"
            );
        }
        assert!(count > 5, "only {count} files embedded");
    }

    #[test]
    fn index_references_only_embedded_assets() {
        let index = WebFiles::get(INDEX).expect("index.html is embedded");
        let html = String::from_utf8(index.data.into_owned()).expect("UTF-8");
        let mut refs = 0;
        for part in html.split("\"/assets/").skip(1) {
            let path = part.split('"').next().unwrap_or_default();
            refs += 1;
            assert!(
                WebFiles::get(&format!("{ASSETS_DIR}/{path}")).is_some(),
                "index.html references /assets/{path}, which is not under web/assets/"
            );
        }
        assert!(refs >= 2, "index.html references {refs} assets");
    }
}
