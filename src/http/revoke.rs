//! `POST {issuer}/revoke` (RFC 7009). Revoking a refresh token revokes its whole family
//! and the access tokens issued from it; revoking an access token records its `jti`.
//!
//! A token that does not exist, belongs to another client or another tenant is left alone
//! and the response is still 200, as RFC 7009 §2.2 prescribes for invalid tokens: a client can
//! neither revoke nor probe another client's tokens.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{AppState, extract};
use crate::audit::AuditEvent;
use crate::clock;
use crate::oauth::OAuthError;
use crate::oauth::client_auth::PresentedCredentials;
use crate::secret::hash_token;

pub async fn post_revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    let params = extract::form(&request, payload).await?;
    params.reject_repeated()?;
    let now = clock::now();
    let credentials =
        PresentedCredentials::from_request(extract::authorization(&request), &params)?;
    let client = credentials
        .authenticate(&state.clients, &tenant.id, now)
        .await?;
    let token = params.require("token")?;

    if let Some(refresh) = state
        .store
        .refresh_token(&tenant.id, &hash_token(token), now)
        .await?
    {
        if refresh.client_id == client.id {
            state
                .store
                .revoke_family(&tenant.id, &refresh.family_id, "revoked_by_client", now)
                .await?;
            let detail = json!({"token_type": "refresh_token", "family_id": refresh.family_id});
            state.audit.record(
                AuditEvent::new(&tenant.id, "token_revoked")
                    .client(&client.id)
                    .detail(detail),
            );
        }
    } else {
        let keys = state.keys.tenant_keys(&tenant.id).await?;
        if let Ok(claims) = keys.verify_access_token(token, &tenant.issuer, now)
            && claims.client_id == client.id
        {
            state
                .store
                .revoke_access_token(&tenant.id, &claims.jwt_id, claims.expires_at, now)
                .await?;
            tracing::info!(tenant = %tenant.slug, client_id = %client.id, "access token revoked");
            let detail = json!({"token_type": "access_token", "jti": claims.jwt_id});
            state.audit.record(
                AuditEvent::new(&tenant.id, "token_revoked")
                    .client(&client.id)
                    .detail(detail),
            );
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .finish())
}
