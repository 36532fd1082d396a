//! The operations dashboard: the built files of `dashboard/` (committed in
//! `dashboard/dist`), embedded in the binary and served at `/`.
//!
//! Client routes (`/services/web`, `/rollouts/<id>`, ...) get `index.html`, so a
//! reload or a shared link opens the right view. Hashed assets are cached for good;
//! `index.html` is revalidated every time, so a new binary's dashboard is picked up
//! at the next load. The Content-Security-Policy allows only the dashboard's own
//! scripts, styles and API: no inline script, no other origin.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

/// `debug-embed`: debug builds embed the files too, so a test binary serves what a
/// release serves, wherever it runs from.
#[derive(Embed)]
#[folder = "../../dashboard/dist/"]
struct Assets;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = "index.html";
/// Vite puts content-hashed files here: their name changes with their content.
const HASHED_DIR: &str = "assets/";

/// Paths the dashboard never answers: the API's own 404 applies to them.
pub fn is_api_path(path: &str) -> bool {
    ["/api/", "/health", "/metrics"]
        .iter()
        .any(|prefix| path == prefix.trim_end_matches('/') || path.starts_with(prefix))
}

/// The dashboard file for `uri`, `index.html` for a client route, or `None` when
/// nothing of the dashboard answers this request.
pub fn respond(method: &Method, uri: &Uri, request_headers: &HeaderMap) -> Option<Response> {
    if !matches!(*method, Method::GET | Method::HEAD) || is_api_path(uri.path()) {
        return None;
    }
    let wanted = uri.path().trim_start_matches('/');
    let (name, file) = match Assets::get(wanted).filter(|_| !wanted.is_empty()) {
        Some(file) => (wanted, file),
        // A missing asset is a 404, not the app: a stale page must not get HTML for
        // its script.
        None if wanted.starts_with(HASHED_DIR) || last_segment_has_extension(wanted) => {
            return None;
        }
        None => (INDEX, Assets::get(INDEX)?),
    };
    let etag = format!("\"{}\"", hex::encode(file.metadata.sha256_hash()));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type(name));
    let cache = if name.starts_with(HASHED_DIR) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
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
    let not_modified = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if not_modified {
        return Some((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    if *method == Method::HEAD {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.data.len()));
        return Some((StatusCode::OK, headers).into_response());
    }
    Some((StatusCode::OK, headers, file.data.into_owned()).into_response())
}

fn last_segment_has_extension(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|s| s.contains('.'))
}

fn content_type(name: &str) -> HeaderValue {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let text_like = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "svg");
    let value = if text_like {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// Names of every embedded file (for tests and the bundle-size check).
pub fn files() -> impl Iterator<Item = String> {
    Assets::iter().map(|name| name.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Option<Response> {
        respond(&Method::GET, &path.parse().expect("uri"), &HeaderMap::new())
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn index_and_client_routes_get_the_app_uncached_with_the_policy() {
        for path in ["/", "/services/web", "/rollouts/abc-123", "/audit"] {
            let response = get(path).unwrap_or_else(|| panic!("{path} not served"));
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
            assert!(
                header_of(&response, header::CONTENT_SECURITY_POLICY)
                    .contains("script-src 'self';")
            );
        }
    }

    #[test]
    fn hashed_assets_are_immutable_and_typed() {
        let script = files()
            .find(|f| f.starts_with(HASHED_DIR) && f.ends_with(".js"))
            .expect("a built script in dashboard/dist/assets");
        let response = get(&format!("/{script}")).expect("served");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert!(header_of(&response, header::CACHE_CONTROL).contains("immutable"));
        let etag = header_of(&response, header::ETAG).to_string();
        let mut conditional = HeaderMap::new();
        conditional.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&etag).expect("etag"),
        );
        let again = respond(
            &Method::GET,
            &format!("/{script}").parse().expect("uri"),
            &conditional,
        )
        .expect("served");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn api_paths_missing_assets_and_writes_are_not_the_dashboard_s() {
        for path in [
            "/api/v1/nothing",
            "/api",
            "/health/whatever",
            "/metrics",
            "/assets/gone-1234.js",
            "/favicon-missing.png",
        ] {
            assert!(get(path).is_none(), "{path}");
        }
        assert!(respond(&Method::POST, &"/".parse().expect("uri"), &HeaderMap::new()).is_none());
    }

    #[test]
    fn the_built_page_has_no_inline_script() {
        let index = Assets::get(INDEX).expect("index.html");
        let html = String::from_utf8_lossy(&index.data);
        for script in html.split("<script").skip(1) {
            let open_tag = script.split('>').next().unwrap_or_default();
            assert!(
                open_tag.contains("src="),
                "inline script in index.html: {open_tag}"
            );
        }
        assert!(!html.contains(" style="), "inline style in index.html");
    }
}
