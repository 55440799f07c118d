//! `POST {issuer}/token` (RFC 6749 §3.2): authenticates the client and runs its grant.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, extract};
use crate::clock;
use crate::oauth::client_auth::PresentedCredentials;
use crate::oauth::grants::{self, GrantContext};
use crate::oauth::{ErrorCode, OAuthError};

pub async fn post_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    let params = extract::form(&request, payload).await?;
    // A repeated resource is left to the grant, which rejects it with invalid_target.
    params.reject_repeated_except("resource")?;
    let grant_type = params.require("grant_type")?;
    if !grants_supported(grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {grant_type:?} is not supported; use authorization_code, refresh_token or client_credentials"
            ),
        ));
    }

    let now = clock::now();
    let credentials =
        PresentedCredentials::from_request(extract::authorization(&request), &params)?;
    let client = credentials
        .authenticate(&state.clients, &tenant.id, now)
        .await?;
    let keys = state.keys.tenant_keys(&tenant.id).await?;
    let context = GrantContext {
        store: &state.store,
        tenant: &tenant,
        keys: &keys,
        lifetimes: state.settings.lifetimes,
        now,
        audit: &state.audit,
    };
    let response = match grant_type {
        "authorization_code" => grants::exchange_code(&context, &client, &params).await?,
        "refresh_token" => grants::refresh(&context, &client, &params).await?,
        _ => grants::issue_client_credentials(&context, &client, &params)?,
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .json(response))
}

fn grants_supported(grant_type: &str) -> bool {
    crate::oauth::client::SUPPORTED_GRANT_TYPES.contains(&grant_type)
}
