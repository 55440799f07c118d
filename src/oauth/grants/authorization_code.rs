//! The authorization code grant's token request (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6).

use serde_json::json;

use super::{
    GrantContext, TokenResponse, check_same_resource, family_jwt_id, requested_resource,
    require_grant,
};
use crate::oauth::OAuthError;
use crate::oauth::client::{Client, GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use crate::oauth::params::Params;
use crate::oauth::pkce::{CodeChallenge, CodeVerifier};
use crate::oauth::scope::Scope;
use crate::secret::{Bearer, hash_token};
use crate::store::RedeemedCode;

/// Exchanges a code for tokens. A code is consumed by its first presentation whatever the
/// outcome; a second presentation revokes the refresh-token family the first one started.
pub async fn exchange_code(
    context: &GrantContext<'_>,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    require_grant(client, GRANT_AUTHORIZATION_CODE)?;
    let code = params.require("code")?;
    let verifier = params.get("code_verifier").ok_or_else(|| {
        OAuthError::invalid_grant(
            "code_verifier is required: every code is bound to a PKCE challenge",
        )
    })?;
    let verifier = CodeVerifier::parse(verifier)?;
    let redirect_uri = params.get("redirect_uri").map(str::to_owned);
    let resource = requested_resource(params)?;
    // The check runs in the batch that redeems the code, so it owns what it compares.
    let client_id = client.id.clone();

    let refresh_token = client
        .allows_grant(GRANT_REFRESH_TOKEN)
        .then(Bearer::generate);
    let refresh_hash = refresh_token.as_ref().map(Bearer::hash);
    let outcome = context
        .store
        .redeem_code(
            &context.tenant.id,
            &hash_token(code),
            refresh_hash.as_deref(),
            context.now + context.lifetimes.refresh_token,
            context.now,
            move |granted| {
                if granted.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the code was issued to another client",
                    ));
                }
                match redirect_uri {
                    Some(uri) if uri != granted.redirect_uri => {
                        return Err(OAuthError::invalid_grant(
                            "redirect_uri differs from the one in the authorization request",
                        ));
                    }
                    None if granted.redirect_uri_sent => {
                        return Err(OAuthError::invalid_grant(
                            "redirect_uri is required because the authorization request included it",
                        ));
                    }
                    _ => {}
                }
                let challenge = CodeChallenge::from_stored(granted.code_challenge.clone());
                if !challenge.is_satisfied_by(&verifier) {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier does not match the code_challenge",
                    ));
                }
                check_same_resource(resource.as_deref(), &granted.resource)
            },
        )
        .await?;

    match outcome {
        RedeemedCode::Issued { code, family_id } => {
            tracing::info!(client_id = %client.id, "authorization code redeemed");
            context.audit(
                "token_issued",
                client,
                Some(&code.subject),
                json!({"grant_type": "authorization_code", "family_id": family_id, "resource": code.resource, "scope": code.scope}),
            );
            context.respond(
                &code.subject,
                client,
                &code.resource,
                &Scope::from_stored(&code.scope),
                family_jwt_id(&family_id),
                refresh_token.map(|token| token.expose().to_owned()),
            )
        }
        RedeemedCode::Rejected(error) => Err(error),
        RedeemedCode::Reused { family_id } => {
            match &family_id {
                Some(family_id) => tracing::warn!(
                    client_id = %client.id,
                    family_id,
                    "authorization code reused; the tokens issued from it are revoked"
                ),
                // The first presentation failed a check, so nothing was issued to revoke.
                None => tracing::warn!(
                    client_id = %client.id,
                    "authorization code reused after a rejected presentation; no tokens were issued from it"
                ),
            }
            context.audit(
                "code_reuse_detected",
                client,
                None,
                json!({"revoked_family_id": family_id}),
            );
            Err(OAuthError::invalid_grant("the code has already been used"))
        }
        RedeemedCode::Unknown => Err(OAuthError::invalid_grant(
            "the code is invalid or has expired",
        )),
    }
}
