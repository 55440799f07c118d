//! The client credentials grant (RFC 6749 §4.4), for confidential clients acting on their
//! own behalf. No refresh token is issued (RFC 6749 §4.4.3).

use super::{GrantContext, TokenResponse, require_grant};
use crate::oauth::OAuthError;
use crate::oauth::client::{Client, GRANT_CLIENT_CREDENTIALS};
use crate::oauth::params::Params;
use crate::oauth::resource::{grant_scope, resolve_target};

pub fn issue_client_credentials(
    context: &GrantContext<'_>,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    require_grant(client, GRANT_CLIENT_CREDENTIALS)?;
    let target = resolve_target(
        params.get("resource"),
        params.is_repeated("resource"),
        &context.tenant.resources,
    )?;
    let scope = grant_scope(params.get("scope"), client, &target)?;
    context.audit.count_client_credentials(
        &context.tenant.id,
        &client.id,
        &target.uri,
        &scope.to_string(),
    );
    context.respond(
        &client.id,
        client,
        &target.uri,
        &scope,
        crate::secret::random_id(),
        None,
    )
}
