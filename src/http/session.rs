//! The browser session at a tenant's login page: a random id in an `HttpOnly`,
//! `SameSite=Lax` cookie scoped to the tenant's path, stored as a SHA-256 digest.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};

use super::AppState;
use crate::oauth::OAuthError;
use crate::secret::{Bearer, hash_token};
use crate::tenant::Tenant;

pub const COOKIE_NAME: &str = "portcullis_session";

/// The session behind a request, and the cookie to set when it is new.
pub struct BrowserSession {
    pub id_hash: String,
    pub user_id: Option<String>,
    pub set_cookie: Option<Cookie<'static>>,
}

/// Returns the request's live session, if its cookie names one in this tenant.
pub async fn current(
    state: &AppState,
    tenant: &Tenant,
    request: &HttpRequest,
    now: i64,
) -> Result<Option<BrowserSession>, OAuthError> {
    let Some(cookie) = request.cookie(COOKIE_NAME) else {
        return Ok(None);
    };
    let id_hash = hash_token(cookie.value());
    let session = state.store.session(&tenant.id, &id_hash, now).await?;
    Ok(session.map(|session| BrowserSession {
        id_hash,
        user_id: session.user_id,
        set_cookie: None,
    }))
}

/// Returns the request's live session, or starts an anonymous one.
pub async fn current_or_new(
    state: &AppState,
    tenant: &Tenant,
    request: &HttpRequest,
    now: i64,
) -> Result<BrowserSession, OAuthError> {
    if let Some(session) = current(state, tenant, request, now).await? {
        return Ok(session);
    }
    let id = Bearer::generate();
    let expires_at = now + state.settings.lifetimes.session;
    state
        .store
        .insert_session(&tenant.id, &id.hash(), now, expires_at)
        .await?;
    Ok(BrowserSession {
        id_hash: id.hash(),
        user_id: None,
        set_cookie: Some(cookie(state, tenant, id.expose())),
    })
}

/// Builds the session cookie: `Secure` whenever the public URL is https.
pub fn cookie(state: &AppState, tenant: &Tenant, value: &str) -> Cookie<'static> {
    Cookie::build(COOKIE_NAME, value.to_owned())
        .path(format!("/t/{}", tenant.slug))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.public_url.starts_with("https://"))
        .max_age(time::Duration::seconds(state.settings.lifetimes.session))
        .finish()
}
