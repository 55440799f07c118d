//! The tenant's JSON Web Key Set (RFC 7517): every published public key.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, extract};
use crate::oauth::OAuthError;

pub async fn get_jwks(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    let keys = state.keys.tenant_keys(&tenant.id).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header(("Cache-Control", "public, max-age=60"))
        .body(keys.jwks_json().to_owned()))
}
