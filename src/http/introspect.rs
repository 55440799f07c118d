//! `POST {issuer}/introspect` (RFC 7662), for confidential clients such as resource
//! servers. Access tokens are checked by signature, issuer, expiry and revocation; refresh
//! tokens are reported only to the client they were issued to. Anything else, including a
//! token of another tenant, is `{"active": false}` with no other field.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{AppState, extract};
use crate::clock;
use crate::oauth::OAuthError;
use crate::oauth::client::Client;
use crate::oauth::client_auth::PresentedCredentials;
use crate::secret::hash_token;
use crate::tenant::Tenant;

pub async fn post_introspect(
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
    if !client.auth_method.is_confidential() {
        return Err(OAuthError::invalid_client(
            "introspection requires a confidential client with a client secret",
        ));
    }
    let token = params.require("token")?;

    let answer = match access_token_info(&state, &tenant, token, now).await? {
        Some(info) => info,
        None => refresh_token_info(&state, &tenant, &client, token, now).await?,
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(answer))
}

async fn access_token_info(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
    now: i64,
) -> Result<Option<Value>, OAuthError> {
    if token.split('.').count() != 3 {
        return Ok(None);
    }
    let keys = state.keys.tenant_keys(&tenant.id).await?;
    let Ok(claims) = keys.verify_access_token(token, &tenant.issuer, now) else {
        return Ok(Some(inactive()));
    };
    if claims.expires_at <= now
        || state
            .store
            .access_token_revoked(&tenant.id, &claims.jwt_id)
            .await?
    {
        return Ok(Some(inactive()));
    }
    let grant_live = match claims.family_id() {
        Some(family_id) => state.store.family_is_live(&tenant.id, family_id).await?,
        None => state
            .clients
            .find(&tenant.id, &claims.client_id)
            .await?
            .is_some(),
    };
    if !grant_live {
        return Ok(Some(inactive()));
    }
    let mut info = json!({
        "active": true,
        "token_type": "Bearer",
        "client_id": claims.client_id,
        "sub": claims.subject,
        "aud": claims.audience,
        "iss": claims.issuer,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": claims.jwt_id,
    });
    if !claims.scope.is_empty() {
        info["scope"] = claims.scope.into();
    }
    Ok(Some(info))
}

async fn refresh_token_info(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    token: &str,
    now: i64,
) -> Result<Value, OAuthError> {
    let Some(refresh) = state
        .store
        .refresh_token(&tenant.id, &hash_token(token), now)
        .await?
    else {
        return Ok(inactive());
    };
    if !refresh.active || refresh.client_id != client.id {
        return Ok(inactive());
    }
    let mut info = json!({
        "active": true,
        "client_id": refresh.client_id,
        "sub": refresh.subject,
        "aud": refresh.resource,
        "iss": tenant.issuer,
        "exp": refresh.expires_at,
    });
    if !refresh.scope.is_empty() {
        info["scope"] = refresh.scope.into();
    }
    Ok(info)
}

fn inactive() -> Value {
    json!({"active": false})
}
