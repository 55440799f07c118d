//! Administrative operations shared by the command line and the first-run bootstrap.

use secrecy::{ExposeSecret, SecretString};

use crate::audit::AuditEvent;
use crate::clock;
use crate::keys::sealing::MasterKeys;
use crate::keys::{self, SigningAlgorithm};
use crate::oauth::OAuthError;
use crate::oauth::client::ClientMetadata;
use crate::oauth::registration::{self, IssuedCredentials};
use crate::oauth::scope::Scope;
use crate::password::{self, MIN_PASSWORD_LENGTH};
use crate::store::{Store, StoreError};
use crate::tenant::TenantSlug;

/// Failures of an admin operation, worded for the operator at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("tenant {0:?} does not exist; list tenants with `portcullis tenant list`")]
    UnknownTenant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<OAuthError> for AdminError {
    fn from(error: OAuthError) -> Self {
        match error.cause {
            Some(cause) => Self::Invalid(format!("{}: {cause:#}", error.description)),
            None => Self::Invalid(error.description.into_owned()),
        }
    }
}

/// Creates a tenant whose keys use `algorithm`, with its first signing key sealed under
/// the current master key; returns its id.
pub async fn create_tenant(
    store: &Store,
    master_keys: &MasterKeys,
    slug: &TenantSlug,
    algorithm: SigningAlgorithm,
) -> Result<String, AdminError> {
    let now = clock::now();
    let key = keys::new_key_record(algorithm, "current", master_keys, now).map_err(|error| {
        AdminError::Invalid(format!("generating the signing key failed: {error}"))
    })?;
    let tenant_id = match store
        .insert_tenant(slug.as_str(), algorithm.name(), &key, now)
        .await
    {
        Err(StoreError::Duplicate) => {
            return Err(AdminError::Invalid(format!("tenant {slug} already exists")));
        }
        other => other?,
    };
    let detail =
        serde_json::json!({"kid": key.kid, "algorithm": key.algorithm, "state": key.state});
    store
        .insert_audit_events(&[AuditEvent::new(&tenant_id, "key_created").detail(detail)])
        .await?;
    Ok(tenant_id)
}

/// Returns the id of an existing tenant.
pub async fn tenant_id(store: &Store, slug: &str) -> Result<String, AdminError> {
    let slug = TenantSlug::parse(slug).map_err(AdminError::Invalid)?;
    store
        .tenant_id_by_slug(slug.as_str())
        .await?
        .ok_or_else(|| AdminError::UnknownTenant(slug.to_string()))
}

/// Checks a username: 1 to 64 characters, no control characters or surrounding spaces.
pub fn validate_username(username: &str) -> Result<(), AdminError> {
    let valid = (1..=64).contains(&username.chars().count())
        && !username.chars().any(char::is_control)
        && username.trim() == username;
    if valid {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "invalid username {username:?}: use 1 to 64 characters without control characters \
             or leading and trailing spaces"
        )))
    }
}

/// Maximum password length: the login form's body is limited to 64 KiB, and no person
/// types more.
const MAX_PASSWORD_LENGTH: usize = 1024;

fn validate_password(password: &SecretString) -> Result<String, AdminError> {
    let text = password.expose_secret();
    if text.trim().is_empty() {
        return Err(AdminError::Invalid(
            "the password is empty or only spaces".into(),
        ));
    }
    if text.chars().count() > MAX_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is longer than {MAX_PASSWORD_LENGTH} characters"
        )));
    }
    if text.chars().count() < MIN_PASSWORD_LENGTH {
        return Err(AdminError::Invalid(format!(
            "the password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )));
    }
    password::hash_password(password)
        .map_err(|error| AdminError::Invalid(format!("hashing the password failed: {error}")))
}

pub async fn add_user(
    store: &Store,
    tenant_id: &str,
    username: &str,
    password: &SecretString,
) -> Result<(), AdminError> {
    validate_username(username)?;
    let hash = validate_password(password)?;
    match store
        .insert_user(tenant_id, username, &hash, clock::now())
        .await
    {
        Err(StoreError::Duplicate) => Err(AdminError::Invalid(format!(
            "user {username:?} already exists; change the password with `portcullis user set-password`"
        ))),
        other => Ok(other.map(drop)?),
    }
}

pub async fn set_password(
    store: &Store,
    tenant_id: &str,
    username: &str,
    password: &SecretString,
) -> Result<(), AdminError> {
    let hash = validate_password(password)?;
    if store
        .set_user_password(tenant_id, username, &hash, clock::now())
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "user {username:?} does not exist"
        )))
    }
}

/// Registers a protected resource (or replaces its scopes). The URI must be an absolute
/// `http` or `https` URI without a fragment, written as clients will send it.
pub async fn add_resource(
    store: &Store,
    tenant_id: &str,
    uri: &str,
    scopes: &str,
) -> Result<(), AdminError> {
    let parsed = url::Url::parse(uri)
        .map_err(|error| AdminError::Invalid(format!("invalid resource URI {uri:?}: {error}")))?;
    let origin: String = uri.split('/').take(3).collect::<Vec<_>>().join("/");
    if origin != origin.to_ascii_lowercase() {
        return Err(AdminError::Invalid(format!(
            "invalid resource URI {uri:?}: write the scheme and host in lowercase, as clients send them ({})",
            origin.to_ascii_lowercase()
        )));
    }
    if !matches!(parsed.scheme(), "http" | "https")
        || uri.contains('#')
        || parsed.host_str().is_none()
    {
        return Err(AdminError::Invalid(format!(
            "invalid resource URI {uri:?}: use an absolute http or https URI without a fragment"
        )));
    }
    let scopes = if scopes.trim().is_empty() {
        Scope::default()
    } else {
        Scope::parse(scopes.trim()).map_err(|error| {
            AdminError::Invalid(format!("invalid scopes: {}", error.description))
        })?
    };
    store
        .upsert_resource(tenant_id, uri, &scopes.to_string(), clock::now())
        .await?;
    Ok(())
}

/// Pre-registers a client with metadata checked by the same rules as dynamic registration.
pub async fn add_client(
    store: &Store,
    tenant_id: &str,
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<(ClientMetadata, IssuedCredentials), AdminError> {
    let resources = store.list_resources(tenant_id).await?;
    let scopes = crate::tenant::scopes_of(&resources);
    let metadata = registration::validate_metadata(body, &scopes)?;
    let credentials =
        registration::register_client(store, tenant_id, &metadata, "admin", false, clock::now())
            .await?;
    Ok((metadata, credentials))
}
