//! The refresh token grant (RFC 6749 §6) with rotation on every use (RFC 9700 §4.14.2).

use serde_json::json;

use super::{
    GrantContext, TokenResponse, check_same_resource, family_jwt_id, requested_resource,
    require_grant, stored_target,
};
use crate::oauth::client::{Client, GRANT_REFRESH_TOKEN};
use crate::oauth::params::Params;
use crate::oauth::scope::Scope;
use crate::oauth::{ErrorCode, OAuthError};
use crate::secret::{Bearer, hash_token};
use crate::store::RotatedToken;

/// Rotates a refresh token into a new one and a new access token. The access token may be
/// narrowed with `scope`; the new refresh token keeps the original scope (RFC 6749 §6).
pub async fn refresh(
    context: &GrantContext<'_>,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    require_grant(client, GRANT_REFRESH_TOKEN)?;
    let presented = params.require("refresh_token")?;
    let requested_scope = params.get("scope").map(Scope::parse).transpose()?;
    let requested_resource = requested_resource(params)?;

    // The check runs in the batch that rotates the token, so it owns what it compares.
    let client_id = client.id.clone();
    let scope_to_check = requested_scope.clone();
    let successor = Bearer::generate();
    let outcome = context
        .store
        .rotate_refresh_token(
            &context.tenant.id,
            &hash_token(presented),
            &successor.hash(),
            context.now + context.lifetimes.refresh_token,
            context.now,
            move |family| {
                if family.client_id != client_id {
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was issued to another client",
                    ));
                }
                if let Some(requested) = &scope_to_check {
                    let granted = Scope::from_stored(&family.scope);
                    if !requested.is_subset(&granted) {
                        return Err(OAuthError::new(
                            ErrorCode::InvalidScope,
                            format!(
                                "scope {:?} exceeds the original grant",
                                requested.missing_from(&granted)
                            ),
                        ));
                    }
                }
                check_same_resource(requested_resource.as_deref(), &family.resource)
            },
        )
        .await?;

    match outcome {
        RotatedToken::Rotated(family) => {
            context.audit(
                "token_issued",
                client,
                Some(&family.subject),
                json!({"grant_type": "refresh_token", "family_id": family.family_id, "resource": family.resource}),
            );
            let target = stored_target(&family.resource, &family.scope);
            let scope = requested_scope.unwrap_or(target.scopes);
            context.respond(
                &family.subject,
                client,
                &target.uri,
                &scope,
                family_jwt_id(&family.family_id),
                Some(successor.expose().to_owned()),
            )
        }
        RotatedToken::Rejected(error) => Err(error),
        RotatedToken::Reused { family_id } => {
            tracing::warn!(client_id = %client.id, "rotated refresh token presented again; its family is revoked");
            context.audit(
                "refresh_token_reuse_detected",
                client,
                None,
                json!({"revoked_family_id": family_id}),
            );
            Err(OAuthError::invalid_grant(
                "the refresh token has already been used",
            ))
        }
        RotatedToken::Unknown => Err(OAuthError::invalid_grant(
            "the refresh token is invalid, expired or revoked",
        )),
    }
}
