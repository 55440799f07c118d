//! `POST {issuer}/consent`: the user's decision on a pending authorization request.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::authorize::{self, failure_page, pending_request};
use super::login::complete_with_code;
use super::{AppState, extract, pages};
use crate::audit::AuditEvent;
use crate::clock;
use crate::oauth::{ErrorCode, OAuthError, authorization};

pub async fn post_consent(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let tenant = match extract::tenant(&state, &request).await {
        Ok(tenant) => tenant,
        Err(error) => return failure_page(&error),
    };
    let params = match extract::form(&request, payload).await {
        Ok(params) => params,
        Err(error) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &error.description,
            );
        }
    };
    let now = clock::now();
    let (pending, browser, client) =
        match pending_request(&state, &tenant, &request, &params, now).await {
            Ok(found) => found,
            Err(page) => return page,
        };
    let Some(user_id) = browser.user_id else {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Not signed in",
            "Sign in before approving access.",
        );
    };

    let result = match params.get("decision") {
        Some("approve") => {
            approve(
                &state, &tenant, &pending, &client.id, &user_id, &params, now,
            )
            .await
        }
        Some("deny") => deny(&state, &tenant, &pending, &params, now).await,
        _ => Ok(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The form must send decision=approve or decision=deny.",
        )),
    };
    result.unwrap_or_else(|error| failure_page(&error))
}

async fn approve(
    state: &AppState,
    tenant: &crate::tenant::Tenant,
    pending: &crate::store::AuthorizationRequestRecord,
    client_id: &str,
    user_id: &str,
    params: &crate::oauth::params::Params,
    now: i64,
) -> Result<HttpResponse, OAuthError> {
    state
        .store
        .record_consent(
            &tenant.id,
            user_id,
            client_id,
            &pending.scope,
            &pending.resource,
            now,
        )
        .await?;
    tracing::info!(tenant = %tenant.slug, client_id, "consent granted");
    let detail = json!({"scope": pending.scope, "resource": pending.resource});
    state.audit.record(
        AuditEvent::new(&tenant.id, "consent_granted")
            .client(client_id)
            .detail(detail),
    );
    complete_with_code(state, tenant, pending, user_id, params, now).await
}

async fn deny(
    state: &AppState,
    tenant: &crate::tenant::Tenant,
    pending: &crate::store::AuthorizationRequestRecord,
    params: &crate::oauth::params::Params,
    now: i64,
) -> Result<HttpResponse, OAuthError> {
    let request_id = params.get("request_id").unwrap_or_default();
    state
        .store
        .complete_authorization_request(&tenant.id, request_id, now)
        .await?;
    tracing::info!(tenant = %tenant.slug, client_id = %pending.client_id, "consent denied");
    state
        .audit
        .record(AuditEvent::new(&tenant.id, "consent_denied").client(&pending.client_id));
    let error = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
    let location = authorization::error_redirect(
        &pending.redirect_uri,
        &error,
        pending.state.as_deref(),
        &tenant.issuer,
    );
    Ok(authorize::redirect(StatusCode::SEE_OTHER, &location, None))
}
