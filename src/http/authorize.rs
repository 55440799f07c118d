//! `GET {issuer}/authorize`: checks the request, then shows the login page, the consent
//! page, or (with a logged-in session and remembered consent) redirects with a code.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::pages::{self, ConsentPage, LoginPage};
use super::session::{self, BrowserSession};
use super::{AppState, extract};
use crate::clock;
use crate::oauth::authorization::{self, AuthorizationRequest, Prompt};
use crate::oauth::client::Client;
use crate::oauth::params::Params;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::secret::{Bearer, constant_time_eq, hash_token};
use crate::store::{AuthorizationRequestRecord, NewAuthorizationRequest, NewCode};
use crate::tenant::Tenant;

pub async fn get_authorize(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let tenant = match extract::tenant(&state, &request).await {
        Ok(tenant) => tenant,
        Err(error) => return failure_page(&error),
    };
    let now = clock::now();

    // Step 1: the client and its redirect URI. Nothing is redirected until both are known.
    let params = match Params::parse(request.query_string().as_bytes()) {
        Ok(params) => params,
        Err(error) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "Invalid request",
                &error.description,
            );
        }
    };
    let client = match client_for(&state, &tenant, &params).await {
        Ok(client) => client,
        Err(response) => return response,
    };
    let redirect_uri = match authorization::resolve_redirect(&params, &client) {
        Ok(uri) => uri,
        Err(message) => {
            return pages::error_page(StatusCode::BAD_REQUEST, "Invalid redirect URI", &message);
        }
    };

    // Step 2: everything else; failures go back to the client with state and iss.
    // An over-long state is an error in itself and is not echoed back.
    let state_param = params
        .get("state")
        .filter(|state| state.len() <= authorization::MAX_STATE_LENGTH);
    let checked = match authorization::validate(&params, &client, redirect_uri.clone(), &tenant) {
        Ok(checked) => checked,
        Err(error) => return redirect_error(&redirect_uri, &error, state_param, &tenant),
    };
    match continue_flow(&state, &tenant, &client, &checked, &request, now).await {
        Ok(response) => response,
        Err(error)
            if error.code == ErrorCode::TemporarilyUnavailable
                || error.code == ErrorCode::ServerError =>
        {
            failure_page(&error)
        }
        Err(error) => redirect_error(&redirect_uri, &error, state_param, &tenant),
    }
}

/// Loads the client named by `client_id`, or renders the page that explains why not.
async fn client_for(
    state: &AppState,
    tenant: &Tenant,
    params: &Params,
) -> Result<Arc<Client>, HttpResponse> {
    if params.is_repeated("client_id") {
        return Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The client_id parameter is repeated.",
        ));
    }
    let Some(client_id) = params.get("client_id") else {
        return Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "The client_id parameter is missing.",
        ));
    };
    let client = state
        .clients
        .find(&tenant.id, client_id)
        .await
        .map_err(|error| failure_page(&error.into()))?;
    client.ok_or_else(|| {
        pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown client",
            "No client with this client_id is registered at this issuer.",
        )
    })
}

async fn continue_flow(
    state: &AppState,
    tenant: &Tenant,
    client: &Client,
    checked: &AuthorizationRequest,
    request: &HttpRequest,
    now: i64,
) -> Result<HttpResponse, OAuthError> {
    let mut browser = session::current_or_new(state, tenant, request, now).await?;
    let user_id = browser
        .user_id
        .clone()
        .filter(|_| checked.prompt != Prompt::Login);
    let scope = checked.scope.to_string();

    if let Some(user_id) = &user_id {
        let remembered = checked.prompt != Prompt::Consent
            && state
                .store
                .has_consent(&tenant.id, user_id, &client.id, &scope, &checked.resource)
                .await?;
        if remembered {
            let draft = GrantDraft::from(checked);
            let location = issue_code(state, tenant, &draft, user_id, now).await?;
            return Ok(redirect(
                StatusCode::FOUND,
                &location,
                browser.set_cookie.take(),
            ));
        }
        if checked.prompt == Prompt::None {
            return Err(OAuthError::new(
                ErrorCode::ConsentRequired,
                "the user has not approved this client for this scope",
            ));
        }
    } else if checked.prompt == Prompt::None {
        return Err(OAuthError::new(
            ErrorCode::LoginRequired,
            "the user is not logged in",
        ));
    }

    let request_id = crate::secret::random_token();
    let csrf_token = Bearer::generate();
    let pending = NewAuthorizationRequest {
        id: &request_id,
        client_id: &client.id,
        redirect_uri: &checked.redirect_uri,
        redirect_uri_sent: checked.redirect_uri_sent,
        prompt: checked.prompt.stored(),
        scope: &scope,
        resource: &checked.resource,
        code_challenge: checked.code_challenge.as_str(),
        state: checked.state.as_deref(),
        session_hash: &browser.id_hash,
        csrf_token_hash: &csrf_token.hash(),
        expires_at: now + state.settings.lifetimes.authorization_request,
    };
    state
        .store
        .insert_authorization_request(&tenant.id, &pending, now)
        .await?;
    let form = FormTokens {
        request_id: &request_id,
        csrf_token: csrf_token.expose(),
    };
    let mut response = match &user_id {
        Some(user_id) => {
            let username = state
                .store
                .username_by_id(&tenant.id, user_id)
                .await?
                .unwrap_or_default();
            let record = AuthorizationRequestRecord::from_new(&pending);
            render_consent(tenant, client, &record, &username, &form)
        }
        None => render_login(tenant, client, &form, "", None, StatusCode::OK),
    };
    if let Some(cookie) = browser.set_cookie.take() {
        response
            .add_cookie(&cookie)
            .map_err(OAuthError::server_error)?;
    }
    Ok(response)
}

/// The hidden fields that tie a login or consent form to its pending request.
pub struct FormTokens<'a> {
    pub request_id: &'a str,
    pub csrf_token: &'a str,
}

pub fn render_login(
    tenant: &Tenant,
    client: &Client,
    form: &FormTokens<'_>,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let action = format!("{}/login", tenant.issuer);
    pages::render(
        status,
        &LoginPage {
            tenant: tenant.slug.as_str(),
            client_name: client.display_name(),
            action: &action,
            request_id: form.request_id,
            csrf_token: form.csrf_token,
            username,
            error,
        },
    )
}

pub fn render_consent(
    tenant: &Tenant,
    client: &Client,
    pending: &AuthorizationRequestRecord,
    username: &str,
    form: &FormTokens<'_>,
) -> HttpResponse {
    let action = format!("{}/consent", tenant.issuer);
    let scope = Scope::from_stored(&pending.scope);
    pages::render(
        StatusCode::OK,
        &ConsentPage {
            tenant: tenant.slug.as_str(),
            client_name: client.display_name(),
            client_uri: client.metadata.client_uri.as_deref(),
            username,
            resource: &pending.resource,
            scopes: scope.iter().collect(),
            redirect_uri: &pending.redirect_uri,
            action: &action,
            request_id: form.request_id,
            csrf_token: form.csrf_token,
        },
    )
}

/// The parts of an approved request that a code carries.
pub struct GrantDraft<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub redirect_uri_sent: bool,
    pub scope: String,
    pub resource: &'a str,
    pub code_challenge: &'a str,
    pub state: Option<&'a str>,
}

impl<'a> From<&'a AuthorizationRequest> for GrantDraft<'a> {
    fn from(request: &'a AuthorizationRequest) -> Self {
        Self {
            client_id: &request.client_id,
            redirect_uri: &request.redirect_uri,
            redirect_uri_sent: request.redirect_uri_sent,
            scope: request.scope.to_string(),
            resource: &request.resource,
            code_challenge: request.code_challenge.as_str(),
            state: request.state.as_deref(),
        }
    }
}

impl<'a> From<&'a AuthorizationRequestRecord> for GrantDraft<'a> {
    fn from(record: &'a AuthorizationRequestRecord) -> Self {
        Self {
            client_id: &record.client_id,
            redirect_uri: &record.redirect_uri,
            redirect_uri_sent: record.redirect_uri_sent,
            scope: record.scope.clone(),
            resource: &record.resource,
            code_challenge: &record.code_challenge,
            state: record.state.as_deref(),
        }
    }
}

/// Stores a new code for the logged-in user and returns the redirect that delivers it.
pub async fn issue_code(
    state: &AppState,
    tenant: &Tenant,
    draft: &GrantDraft<'_>,
    user_id: &str,
    now: i64,
) -> Result<String, OAuthError> {
    let subject = state
        .store
        .username_by_id(&tenant.id, user_id)
        .await?
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::LoginRequired,
                "the logged-in user no longer exists",
            )
        })?;
    let code = Bearer::generate();
    let record = NewCode {
        code_hash: &code.hash(),
        client_id: draft.client_id,
        subject: &subject,
        redirect_uri: draft.redirect_uri,
        redirect_uri_sent: draft.redirect_uri_sent,
        scope: &draft.scope,
        resource: draft.resource,
        code_challenge: draft.code_challenge,
        expires_at: now + state.settings.lifetimes.code,
    };
    state.store.insert_code(&tenant.id, &record, now).await?;
    tracing::info!(tenant = %tenant.slug, client_id = %draft.client_id, "authorization code issued");
    Ok(authorization::code_redirect(
        draft.redirect_uri,
        code.expose(),
        draft.state,
        &tenant.issuer,
    ))
}

/// Loads the pending request a login or consent form names, checking that this browser
/// started it and that the form carries its CSRF token. Anything else gets a page.
pub async fn pending_request(
    state: &AppState,
    tenant: &Tenant,
    request: &HttpRequest,
    params: &Params,
    now: i64,
) -> Result<(AuthorizationRequestRecord, BrowserSession, Arc<Client>), HttpResponse> {
    let forbidden = || {
        pages::error_page(
            StatusCode::FORBIDDEN,
            "Request not accepted",
            "This form was not issued to this browser session, or it has already been used.",
        )
    };
    if params.reject_repeated().is_err() {
        return Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid request",
            "A form field is repeated.",
        ));
    }
    let (Some(request_id), Some(csrf_token)) = (params.get("request_id"), params.get("csrf_token"))
    else {
        return Err(forbidden());
    };
    let pending = state
        .store
        .pending_authorization_request(&tenant.id, request_id, now)
        .await
        .map_err(|error| failure_page(&error.into()))?;
    let Some(pending) = pending else {
        return Err(pages::error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in request has expired or was already completed.",
        ));
    };
    let browser = session::current(state, tenant, request, now)
        .await
        .map_err(|error| failure_page(&error))?
        .ok_or_else(forbidden)?;
    let bound = constant_time_eq(browser.id_hash.as_bytes(), pending.session_hash.as_bytes())
        && constant_time_eq(
            hash_token(csrf_token).as_bytes(),
            pending.csrf_token_hash.as_bytes(),
        );
    if !bound {
        return Err(forbidden());
    }
    let client = state
        .clients
        .find(&tenant.id, &pending.client_id)
        .await
        .map_err(|error| failure_page(&error.into()))?
        .ok_or_else(|| {
            pages::error_page(
                StatusCode::BAD_REQUEST,
                "Unknown client",
                "The client has been deleted.",
            )
        })?;
    Ok((pending, browser, client))
}

/// Redirects to the client with an error, `state` and `iss`.
pub fn redirect_error(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    tenant: &Tenant,
) -> HttpResponse {
    redirect(
        StatusCode::FOUND,
        &authorization::error_redirect(redirect_uri, error, state, &tenant.issuer),
        None,
    )
}

pub fn redirect(
    status: StatusCode,
    location: &str,
    cookie: Option<actix_web::cookie::Cookie<'static>>,
) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"));
    if let Some(cookie) = cookie {
        response.cookie(cookie);
    }
    response.finish()
}

/// Renders the page for failures that cannot go back to the client: unknown tenant, database down.
pub fn failure_page(error: &OAuthError) -> HttpResponse {
    super::error::log_cause(error);
    match error.code {
        ErrorCode::UnknownIssuer => {
            pages::error_page(StatusCode::NOT_FOUND, "Unknown issuer", &error.description)
        }
        ErrorCode::TemporarilyUnavailable => {
            let mut response = pages::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The sign-in service is temporarily unavailable. Try again in a few seconds.",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(super::error::RETRY_AFTER_UNAVAILABLE_SECS),
            );
            response
        }
        _ => pages::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The request could not be processed.",
        ),
    }
}
