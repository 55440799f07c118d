//! Client authentication at the token, revocation and introspection endpoints (RFC 6749
//! §2.3): `client_secret_basic`, `client_secret_post`, or `none` for public clients, each
//! accepted only from a client registered for it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::OAuthError;
use std::sync::Arc;

use super::client::{AuthMethod, Client, ClientDirectory};
use super::params::{Params, decode_component};
use crate::secret::{constant_time_eq, hash_token};

/// Credentials as presented, before they are checked.
#[derive(Debug)]
pub struct PresentedCredentials {
    pub client_id: String,
    secret: Option<String>,
    pub method: AuthMethod,
}

impl PresentedCredentials {
    /// Reads credentials from an `Authorization` header value and the request parameters.
    /// Using two methods at once is an error (RFC 6749 §2.3).
    pub fn from_request(authorization: Option<&str>, params: &Params) -> Result<Self, OAuthError> {
        if let Some(header) = authorization {
            if params.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: Authorization header or client_secret, not both",
                ));
            }
            let (client_id, secret) = parse_basic(header)?;
            if params
                .get("client_id")
                .is_some_and(|body_id| body_id != client_id)
            {
                return Err(OAuthError::invalid_client(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            return Ok(Self {
                client_id,
                secret: Some(secret),
                method: AuthMethod::ClientSecretBasic,
            });
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| {
                OAuthError::invalid_client("client authentication is required: send client_id")
            })?
            .to_owned();
        match params.get("client_secret") {
            Some(secret) => Ok(Self {
                client_id,
                secret: Some(secret.to_owned()),
                method: AuthMethod::ClientSecretPost,
            }),
            None => Ok(Self {
                client_id,
                secret: None,
                method: AuthMethod::None,
            }),
        }
    }

    /// Loads the client and checks the credentials against its registration.
    pub async fn authenticate(
        &self,
        clients: &ClientDirectory,
        tenant_id: &str,
        now: i64,
    ) -> Result<Arc<Client>, OAuthError> {
        let unknown = || OAuthError::invalid_client("client authentication failed");
        let client = clients
            .find(tenant_id, &self.client_id)
            .await?
            .ok_or_else(unknown)?;
        // The secret is checked before the method, so that only a caller holding the
        // secret learns which method the client is registered for.
        if let Some(secret) = &self.secret {
            let stored = client.secret_hash.as_deref().ok_or_else(unknown)?;
            if !constant_time_eq(hash_token(secret).as_bytes(), stored.as_bytes()) {
                return Err(unknown());
            }
        } else if client.auth_method != AuthMethod::None {
            return Err(OAuthError::invalid_client(
                "client authentication failed: this client must send its secret",
            ));
        }
        if client.auth_method != self.method {
            return Err(OAuthError::invalid_client(format!(
                "this client is registered for {} authentication, not {}",
                client.auth_method.as_str(),
                self.method.as_str()
            )));
        }
        if client
            .secret_expires_at
            .is_some_and(|expiry| expiry != 0 && expiry <= now)
        {
            return Err(OAuthError::invalid_client("the client secret has expired"));
        }
        Ok(client)
    }
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1). The scheme
/// name is case-insensitive (RFC 9110 §11.1).
fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let malformed =
        || OAuthError::invalid_client("malformed Authorization header: expected Basic credentials");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(format!(
            "unsupported authorization scheme {scheme:?}; use Basic"
        )));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = decode_component(id.as_bytes()).map_err(|_| malformed())?;
    let secret = decode_component(secret.as_bytes()).map_err(|_| malformed())?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_decodes_form_encoding() {
        let encoded = STANDARD.encode("my%20client:s%3Acret+x");
        let (id, secret) = parse_basic(&format!("bAsIc {encoded}")).unwrap();
        assert_eq!(id, "my client");
        assert_eq!(secret, "s:cret x");
    }

    #[test]
    fn basic_header_rejects_other_schemes_and_garbage() {
        assert!(parse_basic("Bearer abc").is_err());
        assert!(parse_basic("Basic !!!").is_err());
        assert!(parse_basic(&format!("Basic {}", STANDARD.encode("no-colon"))).is_err());
        assert!(parse_basic("Basic").is_err());
    }

    #[test]
    fn two_methods_at_once_are_rejected() {
        let params = Params::parse(b"client_id=a&client_secret=b").unwrap();
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        assert!(PresentedCredentials::from_request(Some(&header), &params).is_err());
    }
}
