//! Dynamic client registration (RFC 7591) and client configuration (RFC 7592).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::{AppState, extract};
use crate::audit::AuditEvent;
use crate::clock;
use crate::oauth::client::{AuthMethod, Client, ClientMetadata};
use crate::oauth::registration::{self, IssuedCredentials, MAX_BODY_BYTES};
use crate::oauth::{ErrorCode, OAuthError};
use crate::secret::{constant_time_eq, hash_token};
use crate::tenant::Tenant;

pub async fn post_register(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let tenant = extract::tenant(&state, &request).await?;
    if let Some(limiter) = &state.registration_limiter
        && limiter.check_key(&extract::peer_ip(&request)).is_err()
    {
        return Err(OAuthError::new(
            ErrorCode::RateLimited,
            "too many registrations from this address; retry after the Retry-After delay",
        ));
    }
    let body = json_object(&request, payload).await?;
    let metadata = registration::validate_metadata(&body, &tenant.scopes)?;
    let now = clock::now();
    let credentials =
        registration::register_client(&state.store, &tenant.id, &metadata, "dcr", true, now)
            .await?;
    tracing::info!(tenant = %tenant.slug, client_id = %credentials.client_id, "client registered");
    let detail = json!({"registered_by": "dcr", "token_endpoint_auth_method": metadata.token_endpoint_auth_method});
    state.audit.record(
        AuditEvent::new(&tenant.id, "client_registered")
            .client(&credentials.client_id)
            .detail(detail),
    );
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(registration_response(&tenant, &metadata, &credentials)))
}

pub async fn get_client(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let (tenant, client) = authorized_client(&state, &request).await?;
    Ok(configuration_response(&tenant, &client, &client.metadata))
}

pub async fn put_client(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let (tenant, client) = authorized_client(&state, &request).await?;
    let body = json_object(&request, payload).await?;
    // RFC 7592 §2.2: the body names the client and must not carry server-issued fields.
    if body.get("client_id").and_then(Value::as_str) != Some(client.id.as_str()) {
        return Err(OAuthError::invalid_client_metadata(
            "client_id in the body must equal this client's id",
        ));
    }
    for issued in [
        "registration_access_token",
        "registration_client_uri",
        "client_id_issued_at",
        "client_secret_expires_at",
    ] {
        if body.contains_key(issued) {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{issued} is set by the server and must not be sent"
            )));
        }
    }
    if let Some(secret) = body.get("client_secret") {
        let matches = secret
            .as_str()
            .zip(client.secret_hash.as_deref())
            .is_some_and(|(secret, stored)| {
                constant_time_eq(hash_token(secret).as_bytes(), stored.as_bytes())
            });
        if !matches {
            return Err(OAuthError::invalid_client_metadata(
                "client_secret does not match this client's secret",
            ));
        }
    }
    let metadata = registration::validate_metadata(&body, &tenant.scopes)?;
    let confidential_now = AuthMethod::parse(&metadata.token_endpoint_auth_method)
        .is_some_and(AuthMethod::is_confidential);
    if confidential_now != client.auth_method.is_confidential() {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot switch between public and confidential; register a new client instead",
        ));
    }
    let metadata_json = serde_json::to_string(&metadata).map_err(OAuthError::server_error)?;
    let updated = state
        .store
        .update_client(
            &tenant.id,
            &client.id,
            &metadata.token_endpoint_auth_method,
            &metadata_json,
            clock::now(),
        )
        .await?;
    if !updated {
        return Err(invalid_registration_token());
    }
    state.clients.forget(&tenant.id, &client.id);
    tracing::info!(tenant = %tenant.slug, client_id = %client.id, "client updated");
    state
        .audit
        .record(AuditEvent::new(&tenant.id, "client_updated").client(&client.id));
    Ok(configuration_response(&tenant, &client, &metadata))
}

pub async fn delete_client(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let (tenant, client) = authorized_client(&state, &request).await?;
    state.store.delete_client(&tenant.id, &client.id).await?;
    state.clients.forget(&tenant.id, &client.id);
    tracing::info!(tenant = %tenant.slug, client_id = %client.id, "client deleted");
    state
        .audit
        .record(AuditEvent::new(&tenant.id, "client_deleted").client(&client.id));
    Ok(HttpResponse::NoContent().finish())
}

/// Loads the client named in the path after checking the registration access token. An
/// unknown client and a wrong token get the same 401, as RFC 7592 §3 requires, so the
/// endpoint reveals nothing about which clients exist.
async fn authorized_client(
    state: &AppState,
    request: &HttpRequest,
) -> Result<(std::sync::Arc<Tenant>, Client), OAuthError> {
    let tenant = extract::tenant(state, request).await?;
    let client_id = request.match_info().get("client_id").unwrap_or_default();
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        return Err(invalid_registration_token());
    }
    let token = extract::authorization(request)
        .and_then(|header| header.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(invalid_registration_token)?;
    let record = state
        .store
        .client_by_id(&tenant.id, client_id)
        .await?
        .ok_or_else(invalid_registration_token)?;
    let client = Client::from_record(record)?;
    let stored = client
        .registration_access_token_hash
        .as_deref()
        .ok_or_else(invalid_registration_token)?;
    if !constant_time_eq(hash_token(token).as_bytes(), stored.as_bytes()) {
        return Err(invalid_registration_token());
    }
    Ok((tenant, client))
}

fn invalid_registration_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is missing or invalid",
    )
}

async fn json_object(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<Map<String, Value>, OAuthError> {
    if !extract::has_media_type(request, "application/json") {
        return Err(OAuthError::invalid_client_metadata(
            "the request body must be application/json",
        ));
    }
    let body = extract::read_body(payload, MAX_BODY_BYTES)
        .await
        .map_err(|error| OAuthError::invalid_client_metadata(error.description))?;
    match serde_json::from_slice(&body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(OAuthError::invalid_client_metadata(
            "the request body must be a JSON object",
        )),
        Err(error) => Err(OAuthError::invalid_client_metadata(format!(
            "the request body is not valid JSON: {error}"
        ))),
    }
}

fn registration_response(
    tenant: &Tenant,
    metadata: &ClientMetadata,
    credentials: &IssuedCredentials,
) -> Value {
    let mut response = metadata_object(metadata);
    response.insert("client_id".into(), credentials.client_id.clone().into());
    response.insert(
        "client_id_issued_at".into(),
        credentials.client_id_issued_at.into(),
    );
    if let Some(secret) = &credentials.client_secret {
        response.insert("client_secret".into(), secret.expose().into());
    }
    if let Some(expires_at) = credentials.client_secret_expires_at {
        response.insert("client_secret_expires_at".into(), expires_at.into());
    }
    if let Some(token) = &credentials.registration_access_token {
        response.insert("registration_access_token".into(), token.expose().into());
        response.insert(
            "registration_client_uri".into(),
            format!("{}/register/{}", tenant.issuer, credentials.client_id).into(),
        );
    }
    Value::Object(response)
}

/// Builds the client's configuration response (RFC 7592 §3). The secret itself is stored only as a digest,
/// so it is never returned after registration.
fn configuration_response(
    tenant: &Tenant,
    client: &Client,
    metadata: &ClientMetadata,
) -> HttpResponse {
    let mut response = metadata_object(metadata);
    response.insert("client_id".into(), client.id.clone().into());
    response.insert("client_id_issued_at".into(), client.issued_at.into());
    if let Some(expires_at) = client.secret_expires_at {
        response.insert("client_secret_expires_at".into(), expires_at.into());
    }
    response.insert(
        "registration_client_uri".into(),
        format!("{}/register/{}", tenant.issuer, client.id).into(),
    );
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Value::Object(response))
}

fn metadata_object(metadata: &ClientMetadata) -> Map<String, Value> {
    match serde_json::to_value(metadata) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}
