//! `POST {issuer}/login`: the login form of a pending authorization request.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::SecretString;
use serde_json::json;

use super::authorize::{self, FormTokens, GrantDraft, failure_page, pending_request};
use super::session;
use super::{AppState, extract, pages};
use crate::audit::AuditEvent;
use crate::clock;
use crate::oauth::OAuthError;
use crate::secret::Bearer;

pub async fn post_login(
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
    let form = FormTokens {
        request_id: params.get("request_id").unwrap_or_default(),
        csrf_token: params.get("csrf_token").unwrap_or_default(),
    };
    let username = params.get("username").unwrap_or_default();
    let password = SecretString::from(params.get("password").unwrap_or_default());

    let throttle_key = format!("{}/{username}", tenant.id);
    if state.login_throttle.is_blocked(&throttle_key) {
        let event = AuditEvent::new(&tenant.id, "login_failed")
            .client(&client.id)
            .detail(json!({"reason": "throttled"}));
        state.audit.record(event);
        return authorize::render_login(
            &tenant,
            &client,
            &form,
            username,
            Some(
                "Too many failed sign-in attempts for this user. Wait a few minutes and try again.",
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }

    let user = match state.store.user_by_username(&tenant.id, username).await {
        Ok(user) => user,
        Err(error) => return failure_page(&error.into()),
    };
    let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
    let Some(user) = user.filter(|_| !username.is_empty()) else {
        state.passwords.verify(password, None).await;
        // The attempted name is not recorded: people sometimes type a password there.
        let event = AuditEvent::new(&tenant.id, "login_failed")
            .client(&client.id)
            .detail(json!({"reason": "unknown_user"}));
        state.audit.record(event);
        state.login_throttle.record_failure(&throttle_key);
        return rejected_login(&tenant, &client, &form, username);
    };
    if !state.passwords.verify(password, stored_hash).await {
        let event = AuditEvent::new(&tenant.id, "login_failed")
            .client(&client.id)
            .subject(&user.username)
            .detail(json!({"reason": "wrong_password"}));
        state.audit.record(event);
        state.login_throttle.record_failure(&throttle_key);
        return rejected_login(&tenant, &client, &form, username);
    }
    state.login_throttle.record_success(&throttle_key);
    tracing::info!(tenant = %tenant.slug, outcome = "success", "login");
    state.audit.record(
        AuditEvent::new(&tenant.id, "login_succeeded")
            .client(&client.id)
            .subject(&user.username),
    );

    // A new session id after login, so an id planted before login is worthless.
    let new_id = Bearer::generate();
    let expires_at = now + state.settings.lifetimes.session;
    if let Err(error) = state
        .store
        .authenticate_session(
            &tenant.id,
            &browser.id_hash,
            &new_id.hash(),
            &user.id,
            now,
            expires_at,
        )
        .await
    {
        return failure_page(&error.into());
    }
    let cookie = session::cookie(&state, &tenant, new_id.expose());

    // prompt=consent requests consent again even when it is on record.
    let remembered = if pending.prompt.as_deref() == Some("consent") {
        Ok(false)
    } else {
        state
            .store
            .has_consent(
                &tenant.id,
                &user.id,
                &client.id,
                &pending.scope,
                &pending.resource,
            )
            .await
    };
    let response = match remembered {
        Ok(true) => complete_with_code(&state, &tenant, &pending, &user.id, &params, now).await,
        Ok(false) => Ok(authorize::render_consent(
            &tenant,
            &client,
            &pending,
            &user.username,
            &form,
        )),
        Err(error) => Err(error.into()),
    };
    match response {
        Ok(mut response) => {
            if let Err(error) = response.add_cookie(&cookie) {
                return failure_page(&OAuthError::server_error(error));
            }
            response
        }
        Err(error) => failure_page(&error),
    }
}

fn rejected_login(
    tenant: &crate::tenant::Tenant,
    client: &crate::oauth::client::Client,
    form: &FormTokens<'_>,
    username: &str,
) -> HttpResponse {
    tracing::info!(tenant = %tenant.slug, outcome = "failure", "login");
    authorize::render_login(
        tenant,
        client,
        form,
        username,
        Some("The username or password is incorrect."),
        StatusCode::UNAUTHORIZED,
    )
}

/// Completes a pending request whose consent is already on record: marks it completed
/// (once) and redirects with a new code.
pub async fn complete_with_code(
    state: &AppState,
    tenant: &crate::tenant::Tenant,
    pending: &crate::store::AuthorizationRequestRecord,
    user_id: &str,
    params: &crate::oauth::params::Params,
    now: i64,
) -> Result<HttpResponse, OAuthError> {
    let request_id = params.get("request_id").unwrap_or_default();
    if !state
        .store
        .complete_authorization_request(&tenant.id, request_id, now)
        .await?
    {
        return Ok(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in request has expired or was already completed.",
        ));
    }
    let location =
        authorize::issue_code(state, tenant, &GrantDraft::from(pending), user_id, now).await?;
    Ok(authorize::redirect(StatusCode::SEE_OTHER, &location, None))
}
