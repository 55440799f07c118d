//! Validation of client metadata offered at dynamic registration (RFC 7591 §2 and §3.2.2)
//! and at update (RFC 7592 §2.2).
//!
//! Unknown fields are ignored, as RFC 7591 §2 requires. Client key material (`jwks`,
//! `jwks_uri`) and software statements are rejected because no supported authentication
//! method uses them. The server fetches no URI a client registers.

use serde_json::{Map, Value};

use super::client::{
    AuthMethod, ClientMetadata, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS,
    SUPPORTED_GRANT_TYPES,
};
use super::redirect::{self, RedirectKind};
use super::scope::Scope;
use super::{ErrorCode, OAuthError};
use crate::secret::Bearer;
use crate::store::{NewClient, Store};

/// Largest registration request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// Longest `client_name` and other short text fields, in characters.
pub const MAX_TEXT_LENGTH: usize = 200;
/// Most `contacts` entries.
pub const MAX_CONTACTS: usize = 10;

/// Checks registration metadata and fills in defaults. Requested scope values the tenant
/// does not offer are dropped, and the response echoes what remains.
pub fn validate_metadata(
    body: &Map<String, Value>,
    tenant_scopes: &Scope,
) -> Result<ClientMetadata, OAuthError> {
    for unsupported in ["jwks", "jwks_uri"] {
        if body.contains_key(unsupported) {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{unsupported} is not supported: clients authenticate with none, \
                 client_secret_basic or client_secret_post"
            )));
        }
    }
    if body.contains_key("software_statement") {
        return Err(OAuthError::new(
            ErrorCode::InvalidSoftwareStatement,
            "software statements are not supported",
        ));
    }

    let auth_method_text =
        optional_text(body, "token_endpoint_auth_method")?.unwrap_or("client_secret_basic");
    let auth_method = AuthMethod::parse(auth_method_text).ok_or_else(|| {
        OAuthError::invalid_client_metadata(format!(
            "token_endpoint_auth_method {auth_method_text:?} is not supported; use one of {}",
            AuthMethod::SUPPORTED.join(", ")
        ))
    })?;

    let grant_types = text_list(body, "grant_types", 8)?
        .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned()]);
    if let Some(unknown) = grant_types
        .iter()
        .find(|grant| !SUPPORTED_GRANT_TYPES.contains(&grant.as_str()))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "grant type {unknown:?} is not supported; use {}",
            SUPPORTED_GRANT_TYPES.join(", ")
        )));
    }
    if grant_types.is_empty() {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must not be empty",
        ));
    }
    let uses_code = grant_types
        .iter()
        .any(|grant| grant == GRANT_AUTHORIZATION_CODE);
    if grant_types
        .iter()
        .any(|grant| grant == GRANT_CLIENT_CREDENTIALS)
        && !auth_method.is_confidential()
    {
        return Err(OAuthError::invalid_client_metadata(
            "client_credentials requires a confidential client (client_secret_basic or client_secret_post)",
        ));
    }

    let response_types = text_list(body, "response_types", 4)?.unwrap_or_else(|| {
        if uses_code {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }
    });
    if let Some(unknown) = response_types
        .iter()
        .find(|response_type| response_type.as_str() != "code")
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "response type {unknown:?} is not supported; use code"
        )));
    }
    if uses_code
        != response_types
            .iter()
            .any(|response_type| response_type == "code")
    {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types and response_types disagree: authorization_code goes with the code response type",
        ));
    }

    let redirect_uris = text_list(body, "redirect_uris", MAX_REDIRECT_URIS)?.unwrap_or_default();
    if uses_code && redirect_uris.is_empty() {
        return Err(OAuthError::invalid_redirect_uri(
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    let mut kinds = Vec::with_capacity(redirect_uris.len());
    for uri in &redirect_uris {
        kinds.push(redirect::classify(uri).map_err(OAuthError::invalid_redirect_uri)?);
    }
    let application_type = match optional_text(body, "application_type")? {
        Some("web") => "web",
        Some("native") => "native",
        Some(other) => {
            return Err(OAuthError::invalid_client_metadata(format!(
                "application_type {other:?} is not supported; use web or native"
            )));
        }
        // A client that registers only loopback or private-use redirect URIs runs on the
        // user's device (RFC 8252 §7), even without `application_type`.
        None if !kinds.is_empty() && kinds.iter().all(|kind| *kind != RedirectKind::Https) => {
            "native"
        }
        None => "web",
    };
    if application_type == "web" && kinds.contains(&RedirectKind::PrivateUse) {
        return Err(OAuthError::invalid_redirect_uri(
            "private-use URI schemes are for native clients; set application_type to native",
        ));
    }

    let scope = match optional_text(body, "scope")? {
        Some(requested) => {
            let requested = Scope::parse(requested).map_err(|_| {
                OAuthError::invalid_client_metadata("scope must be space-separated scope tokens")
            })?;
            Some(requested.intersection(tenant_scopes).to_string())
        }
        None => None,
    };

    let metadata = ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method: auth_method.as_str().to_owned(),
        grant_types,
        response_types,
        application_type: application_type.to_owned(),
        client_name: short_text(body, "client_name")?,
        client_uri: web_uri(body, "client_uri")?,
        logo_uri: web_uri(body, "logo_uri")?,
        tos_uri: web_uri(body, "tos_uri")?,
        policy_uri: web_uri(body, "policy_uri")?,
        scope,
        contacts: contacts(body)?,
        software_id: short_text(body, "software_id")?,
        software_version: short_text(body, "software_version")?,
    };
    Ok(metadata)
}

/// Credentials handed out once at registration.
#[derive(Debug)]
pub struct IssuedCredentials {
    pub client_id: String,
    pub client_secret: Option<Bearer>,
    /// Expiry of the secret in epoch seconds, 0 for never (RFC 7591 §3.2.1).
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token: Option<Bearer>,
    pub client_id_issued_at: i64,
}

/// Stores a client with validated metadata. Confidential clients get a generated secret;
/// clients registered over HTTP also get a registration access token for RFC 7592.
///
/// Client ids are UUIDv7, so each new client goes to the end of the primary-key index
/// rather than rewriting a random page of it. The time they reveal is public anyway.
pub async fn register_client(
    store: &Store,
    tenant_id: &str,
    metadata: &ClientMetadata,
    registered_by: &str,
    with_registration_token: bool,
    now: i64,
) -> Result<IssuedCredentials, OAuthError> {
    let confidential = AuthMethod::parse(&metadata.token_endpoint_auth_method)
        .is_some_and(AuthMethod::is_confidential);
    let client_secret = confidential.then(Bearer::generate);
    let registration_access_token = with_registration_token.then(Bearer::generate);
    let credentials = IssuedCredentials {
        client_id: uuid::Uuid::now_v7().to_string(),
        client_secret_expires_at: confidential.then_some(0),
        client_secret,
        registration_access_token,
        client_id_issued_at: now,
    };
    let metadata_json = serde_json::to_string(metadata).map_err(OAuthError::server_error)?;
    let secret_hash = credentials.client_secret.as_ref().map(Bearer::hash);
    let token_hash = credentials
        .registration_access_token
        .as_ref()
        .map(Bearer::hash);
    let record = NewClient {
        client_id: &credentials.client_id,
        client_secret_hash: secret_hash.as_deref(),
        client_secret_expires_at: credentials.client_secret_expires_at,
        registration_access_token_hash: token_hash.as_deref(),
        token_endpoint_auth_method: &metadata.token_endpoint_auth_method,
        registered_by,
        metadata: &metadata_json,
        issued_at: now,
    };
    store.insert_client(tenant_id, &record).await?;
    Ok(credentials)
}

fn optional_text<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(OAuthError::invalid_client_metadata(format!(
            "{name} must be a string"
        ))),
    }
}

fn text_list(
    body: &Map<String, Value>,
    name: &str,
    max_items: usize,
) -> Result<Option<Vec<String>>, OAuthError> {
    let items = match body.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{name} must be an array of strings"
            )));
        }
    };
    if items.len() > max_items {
        let error = format!(
            "{name} has {} entries; at most {max_items} are allowed",
            items.len()
        );
        return Err(if name == "redirect_uris" {
            OAuthError::invalid_redirect_uri(error)
        } else {
            OAuthError::invalid_client_metadata(error)
        });
    }
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(text) = item else {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{name} must be an array of strings"
            )));
        };
        if !values.contains(text) {
            values.push(text.clone());
        }
    }
    Ok(Some(values))
}

/// Reads a display string: at most `MAX_TEXT_LENGTH` characters and no control characters,
/// which could disguise what the consent page shows.
fn short_text(body: &Map<String, Value>, name: &str) -> Result<Option<String>, OAuthError> {
    let Some(text) = optional_text(body, name)? else {
        return Ok(None);
    };
    if text.chars().count() > MAX_TEXT_LENGTH {
        return Err(OAuthError::invalid_client_metadata(format!(
            "{name} is longer than {MAX_TEXT_LENGTH} characters"
        )));
    }
    if text.chars().any(is_disguising) {
        return Err(OAuthError::invalid_client_metadata(format!(
            "{name} contains control, bidirectional or invisible formatting characters"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// Returns whether `character` could make displayed text read other than it is: control
/// characters, bidirectional overrides and isolates, and zero-width characters.
fn is_disguising(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        )
}

/// Reads a URI meant for people to open: `https`, or `http` on a loopback host.
fn web_uri(body: &Map<String, Value>, name: &str) -> Result<Option<String>, OAuthError> {
    let Some(text) = optional_text(body, name)? else {
        return Ok(None);
    };
    match redirect::classify(text) {
        Ok(RedirectKind::Https | RedirectKind::Loopback) => Ok(Some(text.to_owned())),
        _ => Err(OAuthError::invalid_client_metadata(format!(
            "{name} must be an https URL without a fragment or user information"
        ))),
    }
}

fn contacts(body: &Map<String, Value>) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(contacts) = text_list(body, "contacts", MAX_CONTACTS)? else {
        return Ok(None);
    };
    for contact in &contacts {
        if contact.chars().count() > MAX_TEXT_LENGTH || contact.chars().any(is_disguising) {
            return Err(OAuthError::invalid_client_metadata(
                "contacts entries must be short strings without control characters",
            ));
        }
    }
    Ok(Some(contacts))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validate(body: Value) -> Result<ClientMetadata, OAuthError> {
        let tenant_scopes = Scope::parse("mcp:tools mcp:resources").unwrap();
        validate_metadata(body.as_object().unwrap(), &tenant_scopes)
    }

    #[test]
    fn loopback_only_client_becomes_native() {
        let metadata = validate(json!({
            "redirect_uris": ["http://localhost:53682/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .unwrap();
        assert_eq!(metadata.application_type, "native");
    }

    #[test]
    fn scope_is_trimmed_to_tenant_scopes() {
        let metadata = validate(json!({
            "redirect_uris": ["https://client.example/cb"],
            "scope": "admin mcp:tools tenant:manage",
        }))
        .unwrap();
        assert_eq!(metadata.scope.as_deref(), Some("mcp:tools"));
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let metadata = validate(json!({"redirect_uris": ["https://client.example/cb"]})).unwrap();
        assert_eq!(metadata.token_endpoint_auth_method, "client_secret_basic");
        assert_eq!(metadata.grant_types, ["authorization_code"]);
        assert_eq!(metadata.response_types, ["code"]);
        assert_eq!(metadata.application_type, "web");
    }

    #[test]
    fn invalid_metadata_is_rejected() {
        let cases = [
            (
                json!({"redirect_uris": "https://client.example/cb"}),
                "redirect_uris not a list",
            ),
            (
                json!({"redirect_uris": []}),
                "no redirect URI for the code grant",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                "unsupported auth method",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "grant_types": ["implicit"]}),
                "implicit grant",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "response_types": ["token"]}),
                "token response type",
            ),
            (
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
                "public client_credentials",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "jwks_uri": "http://169.254.169.254/"}),
                "jwks_uri",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "client_name": "x".repeat(201)}),
                "long client_name",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "logo_uri": "javascript:alert(1)"}),
                "script logo_uri",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "application_type": "desktop"}),
                "unknown application_type",
            ),
            (
                json!({"redirect_uris": ["com.example.app:/cb"], "application_type": "web"}),
                "private-use scheme for web",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "client_name": "Good\u{202e}evil"}),
                "right-to-left override",
            ),
            (
                json!({"redirect_uris": ["https://client.example/cb"], "client_name": "Goo\u{200b}gle"}),
                "zero-width space",
            ),
        ];
        for (body, case) in cases {
            assert!(validate(body).is_err(), "{case} should be rejected");
        }
    }

    #[test]
    fn too_many_redirect_uris_are_rejected() {
        let uris: Vec<String> = (0..21)
            .map(|index| format!("https://client.example/cb{index}"))
            .collect();
        let error = validate(json!({"redirect_uris": uris})).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidRedirectUri);
    }
}
