//! The tenant's JSON Web Key Set (RFC 7517): every published public key. Clients may cache
//! it for `jwks_max_age`, which is shorter than the time a new key is published before it
//! signs, and revalidate with `If-None-Match`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, extract};
use crate::keys::jwks_max_age;
use crate::oauth::OAuthError;

pub async fn get_jwks(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    let keys = state.keys.tenant_keys(&tenant.id).await?;
    let cache_control = format!(
        "public, max-age={}",
        jwks_max_age(&state.settings.key_timing)
    );
    let etag = keys.jwks_etag();
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        // If-None-Match compares weakly (RFC 9110 §13.1.2), so W/ prefixes are ignored.
        .is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    if unchanged {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .body(keys.jwks_json()))
}
