//! Preparing a server for load: discovery, clients, and codes and refresh tokens minted
//! through the real authorization endpoint, as a browser would with remembered consent.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::{Request, once, split_url};

/// Redirect URI of the bench clients. Nothing listens there: the harness reads the Location
/// header.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The endpoints of one issuer, from its metadata.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub registration: String,
    pub jwks: String,
    pub introspection: String,
}

pub async fn discover(metadata_url: &str) -> Result<Endpoints, String> {
    let metadata = once(metadata_url, Request::get("")).await?.json();
    let field = |name: &str| {
        metadata[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("metadata has no {name}"))
    };
    Ok(Endpoints {
        authorization: field("authorization_endpoint")?,
        token: field("token_endpoint")?,
        registration: field("registration_endpoint")?,
        jwks: field("jwks_uri")?,
        introspection: field("introspection_endpoint")?,
    })
}

/// Registers a client; returns the registration response.
pub async fn register(endpoints: &Endpoints, body: Value) -> Result<Value, String> {
    let reply = once(&endpoints.registration, Request::json("", &body)).await?;
    if reply.status != 201 {
        return Err(format!(
            "registration answered {}: {}",
            reply.status,
            reply.text()
        ));
    }
    Ok(reply.json())
}

pub fn basic(client_id: &str, secret: &str) -> String {
    let encode =
        |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

/// Returns a PKCE verifier and its S256 challenge.
pub fn pkce(seed: u64) -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(Sha256::digest(format!(
        "verifier-{seed}-{:?}",
        std::time::SystemTime::now()
    )));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A browser with a cookie jar that logs in once and then collects codes.
pub struct Browser {
    cookies: BTreeMap<String, String>,
    username: String,
    password: String,
}

impl Browser {
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            cookies: BTreeMap::new(),
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Runs one authorization request to the redirect; returns the code and its verifier.
    /// Login and consent forms are filled the first time; later requests ride the session
    /// and the remembered consent.
    pub async fn code(
        &mut self,
        endpoints: &Endpoints,
        client_id: &str,
        resource: &str,
        scope: &str,
        seed: u64,
    ) -> Result<(String, String), String> {
        let (verifier, challenge) = pkce(seed);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "bench")
            .append_pair("resource", resource)
            .append_pair("scope", scope)
            .finish();
        let mut url = format!("{}?{query}", endpoints.authorization);
        let mut request = Request::get("");
        for _ in 0..12 {
            let reply = once(&url, request.clone().header("cookie", self.cookie_header())).await?;
            self.keep_cookies(reply.header("set-cookie").unwrap_or_default());
            if let Some(location) = reply.header("location") {
                if let Some(query) = location.strip_prefix(REDIRECT_URI) {
                    let params: BTreeMap<String, String> =
                        form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                            .into_owned()
                            .collect();
                    return params
                        .get("code")
                        .map(|code| (code.clone(), verifier.clone()))
                        .ok_or_else(|| format!("the redirect carries no code: {location}"));
                }
                url = absolute(&url, location);
                request = Request::get("");
                continue;
            }
            if reply.status == 200 {
                let page = reply.text();
                let action = attribute(&page, "action").ok_or("a page without a form")?;
                let mut fields: Vec<(String, String)> = hidden_fields(&page);
                if page.contains("name=\"password\"") {
                    fields.push(("username".into(), self.username.clone()));
                    fields.push(("password".into(), self.password.clone()));
                } else {
                    fields.push(("decision".into(), "approve".into()));
                }
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                url = absolute(&url, &action);
                request = Request::form("", &pairs);
                continue;
            }
            return Err(format!(
                "authorization stopped at status {}: {}",
                reply.status,
                reply.text().chars().take(300).collect::<String>()
            ));
        }
        Err("authorization redirected too often".into())
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &str) {
        for header in headers.lines() {
            let pair = header.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

fn absolute(current: &str, location: &str) -> String {
    if location.starts_with("http://") {
        return location.to_owned();
    }
    let (authority, _) = split_url(current);
    format!("http://{authority}{location}")
}

fn attribute(page: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].replace("&amp;", "&"))
}

fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input")
        .skip(1)
        .filter(|tag| tag.contains("type=\"hidden\""))
        .filter_map(|tag| {
            Some((
                attribute(tag, "name")?,
                attribute(tag, "value").unwrap_or_default(),
            ))
        })
        .collect()
}

/// Exchanges a code for tokens; returns the token response.
pub async fn exchange(
    endpoints: &Endpoints,
    client_id: &str,
    code: &str,
    verifier: &str,
    resource: &str,
) -> Result<Value, String> {
    let request = Request::form(
        "",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
            ("client_id", client_id),
            ("resource", resource),
        ],
    );
    let reply = once(&endpoints.token, request).await?;
    if reply.status != 200 {
        return Err(format!(
            "code exchange answered {}: {}",
            reply.status,
            reply.text()
        ));
    }
    Ok(reply.json())
}

/// Returns the registration body of the public client used for codes and refresh tokens.
pub fn public_client_body() -> Value {
    json!({
        "client_name": "bench public client",
        "application_type": "native",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

/// Returns the registration body of the confidential client used for client credentials and
/// introspection.
pub fn confidential_client_body() -> Value {
    json!({
        "client_name": "bench machine client",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}
