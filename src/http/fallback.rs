//! Responses to requests no endpoint takes: unknown paths, methods an endpoint does not
//! support, and CORS preflight requests.
//!
//! Browser-based MCP clients (the MCP Inspector among them) call the metadata, JWKS,
//! registration, token, revocation and introspection endpoints from another origin. Those
//! endpoints use no cookies, so every origin may call them; the login and consent pages get
//! no CORS headers. `cors_headers` adds the response headers, and a preflight `OPTIONS`
//! request to any such endpoint gets 204.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

/// How long browsers may cache a preflight response, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// Returns a handler for a path whose endpoint supports only `allowed` methods.
pub fn method_not_allowed(
    allowed: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<HttpResponse> + Clone {
    move |request: HttpRequest| {
        let response = if request.method() == Method::OPTIONS && !is_page(request.path()) {
            HttpResponse::NoContent()
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    format!("{allowed}, OPTIONS"),
                ))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Authorization, Content-Type, If-None-Match, MCP-Protocol-Version",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE))
                .finish()
        } else {
            HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
                .insert_header((header::ALLOW, allowed))
                .json(json!({
                    "error": "invalid_request",
                    "error_description": format!("this endpoint accepts {allowed}, not {}", request.method()),
                }))
        };
        std::future::ready(response)
    }
}

/// Responds to a path that no endpoint serves.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": "invalid_request",
        "error_description": format!("no endpoint at {}", request.path()),
    }))
}

/// Returns whether `path` is a login, consent or authorization page, which browsers open
/// directly and other origins have no business reading.
pub fn is_page(path: &str) -> bool {
    ["/authorize", "/login", "/consent"]
        .iter()
        .any(|page| path.ends_with(page))
}

/// Adds the CORS headers of a non-page response.
pub fn cors_headers(path: &str, headers: &mut HeaderMap) {
    if is_page(path) {
        return;
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("WWW-Authenticate, Retry-After, ETag"),
    );
}
