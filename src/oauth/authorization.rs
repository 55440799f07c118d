//! The authorization endpoint's request checks and responses (RFC 6749 §4.1.1-4.1.2,
//! RFC 7636 §4.3, RFC 8707 §2.1, RFC 9207 §2).
//!
//! Order matters: the client and its redirect URI are checked first, by `resolve_redirect`,
//! and any failure there is shown to the user, never redirected. Only once the redirect URI
//! is known to be registered do `validate` failures go back to the client as error
//! redirects, each with `state` and `iss`.
//!
//! Not implemented: request objects (RFC 9101) and response modes other than `query`.

use super::client::{Client, GRANT_AUTHORIZATION_CODE};
use super::params::Params;
use super::pkce::CodeChallenge;
use super::resource::{grant_scope, resolve_target};
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::tenant::Tenant;

/// Longest `state` accepted, in bytes; clients use far less, but some encode JSON in it.
pub const MAX_STATE_LENGTH: usize = 4096;

/// User interaction requested by the `prompt` parameter (OpenID Connect Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prompt {
    #[default]
    Default,
    /// Fail with `login_required` or `consent_required` rather than show a page.
    None,
    /// Ask for credentials even with a logged-in session.
    Login,
    /// Ask for consent even when it was given before.
    Consent,
}

/// A fully checked authorization request.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri`; the token request must then name it too.
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub scope: Scope,
    pub resource: String,
    pub code_challenge: CodeChallenge,
    pub prompt: Prompt,
}

/// Returns the registered redirect URI the request names, or the reason it cannot be used.
/// The caller has already loaded the client named by `client_id`.
pub fn resolve_redirect(params: &Params, client: &Client) -> Result<String, String> {
    if params.is_repeated("redirect_uri") {
        return Err("The redirect_uri parameter is repeated.".into());
    }
    client
        .redirect_uri_for(params.get("redirect_uri"))
        .ok_or_else(|| match params.get("redirect_uri") {
            Some(_) => "The redirect_uri is not registered for this client.".to_owned(),
            None => "The redirect_uri parameter is missing, and the client has several registered."
                .to_owned(),
        })
}

/// Checks everything but the client and redirect URI. `state` is returned either way so
/// that error redirects carry it.
pub fn validate(
    params: &Params,
    client: &Client,
    redirect_uri: String,
    tenant: &Tenant,
) -> Result<AuthorizationRequest, OAuthError> {
    if params
        .get("state")
        .is_some_and(|state| state.len() > MAX_STATE_LENGTH)
    {
        return Err(OAuthError::invalid_request(format!(
            "state is longer than {MAX_STATE_LENGTH} bytes"
        )));
    }
    if params.is_repeated("resource") {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "only one resource per request is supported",
        ));
    }
    params.reject_repeated()?;
    match params.get("response_type") {
        Some("code") => {}
        None => {
            return Err(OAuthError::invalid_request(
                "the response_type parameter is missing",
            ));
        }
        Some(other) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use code"),
            ));
        }
    }
    if params
        .get("response_mode")
        .is_some_and(|mode| mode != "query")
    {
        return Err(OAuthError::invalid_request(
            "only response_mode=query is supported",
        ));
    }
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request objects are not supported",
        ));
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization_code grant",
        ));
    }
    let code_challenge = CodeChallenge::parse(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )?;
    let target = resolve_target(params.get("resource"), false, &tenant.resources)?;
    let scope = grant_scope(params.get("scope"), client, &target)?;
    let prompt = parse_prompt(params.get("prompt"))?;
    Ok(AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        redirect_uri_sent: params.get("redirect_uri").is_some(),
        state: params.get("state").map(str::to_owned),
        scope,
        resource: target.uri,
        code_challenge,
        prompt,
    })
}

impl Prompt {
    /// Returns the value to remember with a pending request, if it changes the flow there.
    pub fn stored(self) -> Option<&'static str> {
        match self {
            Self::Login => Some("login"),
            Self::Consent => Some("consent"),
            Self::Default | Self::None => None,
        }
    }
}

fn parse_prompt(value: Option<&str>) -> Result<Prompt, OAuthError> {
    let Some(value) = value else {
        return Ok(Prompt::Default);
    };
    let values: Vec<&str> = value.split(' ').collect();
    if values.contains(&"none") && values.len() > 1 {
        return Err(OAuthError::invalid_request(
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(if values.contains(&"none") {
        Prompt::None
    } else if values.contains(&"login") {
        Prompt::Login
    } else if values.contains(&"consent") {
        Prompt::Consent
    } else {
        Prompt::Default
    })
}

/// Builds the redirect that delivers a code (RFC 6749 §4.1.2, RFC 9207 §2).
pub fn code_redirect(redirect_uri: &str, code: &str, state: Option<&str>, issuer: &str) -> String {
    let mut pairs = vec![("code", code)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    append_query(redirect_uri, &pairs)
}

/// Builds the redirect that reports an error to the client (RFC 6749 §4.1.2.1).
pub fn error_redirect(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut pairs = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_ref()),
    ];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    append_query(redirect_uri, &pairs)
}

/// Appends parameters to a URI's query, keeping any query it already has (RFC 6749 §3.1.2).
fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    let separator = match uri.split_once('?') {
        Some((_, "")) => "",
        Some(_) => "&",
        None => "?",
    };
    format!("{uri}{separator}{}", serializer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_redirect_keeps_existing_query() {
        let location = code_redirect(
            "https://c.example/cb?x=1",
            "abc",
            Some("s 1"),
            "http://i/t/a",
        );
        assert_eq!(
            location,
            "https://c.example/cb?x=1&code=abc&state=s+1&iss=http%3A%2F%2Fi%2Ft%2Fa"
        );
    }

    #[test]
    fn error_redirect_carries_state_and_issuer() {
        let error = OAuthError::new(ErrorCode::AccessDenied, "denied");
        let location = error_redirect("http://127.0.0.1:1/cb", &error, None, "http://i/t/a");
        assert_eq!(
            location,
            "http://127.0.0.1:1/cb?error=access_denied&error_description=denied&iss=http%3A%2F%2Fi%2Ft%2Fa"
        );
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert_eq!(parse_prompt(Some("none")).unwrap(), Prompt::None);
        assert_eq!(parse_prompt(Some("login consent")).unwrap(), Prompt::Login);
        assert!(parse_prompt(Some("none login")).is_err());
    }
}
