//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4 and §6), one file each.

mod authorization_code;
mod client_credentials;
mod refresh_token;

use serde::Serialize;

pub use authorization_code::exchange_code;
pub use client_credentials::issue_client_credentials;
pub use refresh_token::refresh;

use super::ErrorCode;
use super::OAuthError;
use super::client::Client;
use super::params::Params;
use super::resource::Target;
use super::scope::Scope;
use crate::audit::{AuditEvent, AuditLog};
use crate::config::Lifetimes;
use crate::keys::{AccessTokenClaims, TenantKeys};
use crate::store::Store;
use crate::tenant::Tenant;

/// Inputs every grant needs: the tenant, its keys, the store and the clock.
pub struct GrantContext<'a> {
    pub store: &'a Store,
    pub tenant: &'a Tenant,
    pub keys: &'a TenantKeys,
    pub lifetimes: Lifetimes,
    pub now: i64,
    pub audit: &'a AuditLog,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl GrantContext<'_> {
    /// Records a security event of this tenant for `client`.
    fn audit(
        &self,
        event: &'static str,
        client: &Client,
        subject: Option<&str>,
        detail: serde_json::Value,
    ) {
        let mut record = AuditEvent::new(&self.tenant.id, event)
            .client(&client.id)
            .detail(detail);
        if let Some(subject) = subject {
            record = record.subject(subject);
        }
        self.audit.record(record);
    }

    /// Signs an access token for `subject` and builds the response around it.
    fn respond(
        &self,
        subject: &str,
        client: &Client,
        audience: &str,
        scope: &Scope,
        jwt_id: String,
        refresh_token: Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let claims = AccessTokenClaims {
            issuer: self.tenant.issuer.clone(),
            subject: subject.to_owned(),
            audience: audience.to_owned(),
            client_id: client.id.clone(),
            scope: scope.to_string(),
            issued_at: self.now,
            expires_at: self.now + self.lifetimes.access_token,
            jwt_id,
        };
        let access_token = self.keys.sign_access_token(&claims).map_err(|reason| {
            OAuthError::server_error(anyhow::anyhow!("signing an access token failed: {reason}"))
        })?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.lifetimes.access_token,
            refresh_token,
            scope: (!scope.is_empty()).then(|| scope.to_string()),
        })
    }
}

/// Fails with `unauthorized_client` unless the client registered `grant_type`.
fn require_grant(client: &Client, grant_type: &str) -> Result<(), OAuthError> {
    if client.allows_grant(grant_type) {
        Ok(())
    } else {
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ))
    }
}

/// Checks a token request's optional `resource` against the resource already granted:
/// one grant has one audience (RFC 8707 §2.2).
fn check_same_resource(requested: Option<&str>, granted: &str) -> Result<(), OAuthError> {
    match requested {
        Some(requested) if requested != granted => Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!(
                "resource {requested:?} differs from the resource {granted:?} this grant is for"
            ),
        )),
        _ => Ok(()),
    }
}

/// Returns the token request's `resource`, if any; a repeated one is `invalid_target`.
fn requested_resource(params: &Params) -> Result<Option<String>, OAuthError> {
    if params.is_repeated("resource") {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "only one resource per request is supported",
        ));
    }
    Ok(params.get("resource").map(str::to_owned))
}

/// Returns a jti for a token of family `family_id`.
fn family_jwt_id(family_id: &str) -> String {
    format!("{family_id}.{}", crate::secret::random_id())
}

/// Returns the grant's resource as a `Target` for tokens narrowed from a stored grant.
fn stored_target(uri: &str, scope: &str) -> Target {
    Target {
        uri: uri.to_owned(),
        scopes: Scope::from_stored(scope),
    }
}
