//! Request parsing shared by the endpoints. actix's `web::Form` accepts repeated
//! parameters and responds to errors in plain text, so forms are read here instead.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use super::AppState;
use crate::oauth::params::Params;
use crate::oauth::{ErrorCode, OAuthError};
use crate::tenant::{Tenant, TenantSlug};

/// Largest form body accepted, in bytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Returns the tenant named in the request path, or a 404 error.
pub async fn tenant(state: &AppState, request: &HttpRequest) -> Result<Arc<Tenant>, OAuthError> {
    let raw = request.match_info().get("tenant").unwrap_or_default();
    let unknown = || {
        OAuthError::new(
            ErrorCode::UnknownIssuer,
            format!("no issuer exists at tenant {raw:?}"),
        )
    };
    let slug = TenantSlug::parse(raw).map_err(|_| unknown())?;
    state.tenants.find(&slug).await?.ok_or_else(unknown)
}

/// Maximum time a request body may take to arrive, so a client dripping bytes cannot hold
/// a connection and its worker slot for long.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the body, failing once it grows past `limit` bytes or takes longer than
/// `BODY_TIMEOUT`.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, OAuthError> {
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                OAuthError::invalid_request(format!("reading the request body failed: {error}"))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(OAuthError::invalid_request(format!(
                    "the request body is larger than {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(OAuthError::invalid_request(format!(
                "the request body did not arrive within {} seconds",
                BODY_TIMEOUT.as_secs()
            )))
        })
}

/// Returns whether the request's media type is `expected`, ignoring parameters such as
/// `charset`.
pub fn has_media_type(request: &HttpRequest, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected))
}

/// Reads an `application/x-www-form-urlencoded` body into parameters.
pub async fn form(request: &HttpRequest, payload: web::Payload) -> Result<Params, OAuthError> {
    if !has_media_type(request, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request body must be application/x-www-form-urlencoded",
        ));
    }
    let body = read_body(payload, MAX_FORM_BYTES).await?;
    Params::parse(&body)
}

/// Returns the `Authorization` header, if present and readable.
pub fn authorization(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// Returns the address of the connected peer.
///
/// NOTE: behind a reverse proxy this is the proxy's address, so per-address limits apply
/// to all clients together; forwarded headers are not trusted.
pub fn peer_ip(request: &HttpRequest) -> IpAddr {
    request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip())
}
