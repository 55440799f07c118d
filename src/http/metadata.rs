//! Authorization server metadata (RFC 8414), served at the path-inserted well-known URLs and
//! at `{issuer}/.well-known/...` for clients that append. The document advertises only what
//! is implemented.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{AppState, extract};
use crate::oauth::OAuthError;
use crate::oauth::client::{AuthMethod, SUPPORTED_GRANT_TYPES};

pub async fn get_metadata(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    let keys = state.keys.tenant_keys(&tenant.id).await?;
    let issuer = &tenant.issuer;
    let secret_methods = ["client_secret_basic", "client_secret_post"];
    let document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "scopes_supported": tenant.scopes.iter().collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": SUPPORTED_GRANT_TYPES,
        "token_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "revocation_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": false,
        "prompt_values_supported": ["none", "login", "consent"],
        "access_token_signing_alg_values_supported": keys.verifiers().algorithms(),
    });
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(document))
}
