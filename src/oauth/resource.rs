//! Resource indicators (RFC 8707) and the scope a grant receives.
//!
//! Policy when `resource` is omitted: a tenant with exactly one registered resource uses it
//! as the audience. Otherwise the request fails with `invalid_target`, so no token is ever
//! valid at every resource. One resource per request: a repeated `resource` parameter fails
//! with `invalid_target`.
//!
//! Policy when `scope` is omitted (RFC 6749 §3.3): the grant gets every scope of the
//! resource that the client may request.

use super::client::Client;
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::store::ResourceRecord;

/// A registered resource chosen for a grant, with the scopes it accepts.
#[derive(Clone, Debug)]
pub struct Target {
    pub uri: String,
    pub scopes: Scope,
}

/// Picks the resource a request names, or the tenant's only resource when it names none.
pub fn resolve_target(
    requested: Option<&str>,
    repeated: bool,
    resources: &[ResourceRecord],
) -> Result<Target, OAuthError> {
    if repeated {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "only one resource per request is supported",
        ));
    }
    let chosen = match requested {
        Some(uri) => {
            // Registered resources are valid URIs, so only a miss needs the syntax check that
            // picks the clearer message.
            let registered = resources.iter().find(|resource| resource.uri == uri);
            match registered {
                Some(resource) => resource,
                None if uri.contains('#') || url::Url::parse(uri).is_err() => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidTarget,
                        "resource must be an absolute URI without a fragment",
                    ));
                }
                None => {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidTarget,
                        format!("resource {uri:?} is not registered at this issuer"),
                    ));
                }
            }
        }
        None => match resources {
            [only] => only,
            [] => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "this issuer has no registered resource to issue tokens for",
                ));
            }
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "resource is required because this issuer protects several resources",
                ));
            }
        },
    };
    Ok(Target {
        uri: chosen.uri.clone(),
        scopes: Scope::from_stored(&chosen.scopes),
    })
}

/// Decides the scope of a grant: the requested scope when the client may have all of it at
/// this resource, or every such scope when none was requested.
pub fn grant_scope(
    requested: Option<&str>,
    client: &Client,
    target: &Target,
) -> Result<Scope, OAuthError> {
    let available = match &client.scope {
        Some(client_scope) => target.scopes.intersection(client_scope),
        None => target.scopes.clone(),
    };
    let Some(requested) = requested else {
        return Ok(available);
    };
    let requested = Scope::parse(requested)?;
    if !requested.is_subset(&available) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "scope {:?} is not available to this client at resource {}",
                requested.missing_from(&available),
                target.uri
            ),
        ));
    }
    Ok(requested)
}
