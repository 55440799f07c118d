//! Registered clients as the protocol rules see them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::redirect;
use super::scope::Scope;
use crate::store::{ClientRecord, Store, StoreError};

/// Client authentication methods at the token, revocation and introspection endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub const SUPPORTED: [&'static str; 3] = ["none", "client_secret_basic", "client_secret_post"];

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const SUPPORTED_GRANT_TYPES: [&str; 3] = [
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
];

/// Registered client metadata (RFC 7591 §2), as stored and as returned to the client.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub application_type: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub logo_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tos_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub contacts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub software_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub software_version: Option<String>,
}

/// A registered client with its metadata parsed.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub metadata: ClientMetadata,
    pub auth_method: AuthMethod,
    /// Scopes the client may request; `None` when it registered none, meaning every scope
    /// of the resource it requests.
    pub scope: Option<Scope>,
    pub native: bool,
    pub secret_hash: Option<String>,
    pub secret_expires_at: Option<i64>,
    pub registration_access_token_hash: Option<String>,
    pub issued_at: i64,
}

impl Client {
    pub fn from_record(record: ClientRecord) -> Result<Self, StoreError> {
        let corrupt =
            |reason: String| StoreError::Corrupt(format!("client {}: {reason}", record.client_id));
        let metadata: ClientMetadata =
            serde_json::from_str(&record.metadata).map_err(|error| corrupt(error.to_string()))?;
        let auth_method =
            AuthMethod::parse(&record.token_endpoint_auth_method).ok_or_else(|| {
                corrupt(format!(
                    "unknown auth method {:?}",
                    record.token_endpoint_auth_method
                ))
            })?;
        let scope = metadata.scope.as_deref().map(Scope::from_stored);
        Ok(Self {
            id: record.client_id,
            native: metadata.application_type == "native",
            metadata,
            auth_method,
            scope,
            secret_hash: record.client_secret_hash,
            secret_expires_at: record.client_secret_expires_at,
            registration_access_token_hash: record.registration_access_token_hash,
            issued_at: record.client_id_issued_at,
        })
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.metadata
            .grant_types
            .iter()
            .any(|granted| granted == grant_type)
    }

    /// Returns the registered redirect URI that `requested` selects. Without `requested`,
    /// a client with exactly one registered URI uses it (RFC 6749 §3.1.2.3).
    pub fn redirect_uri_for(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            Some(requested) => self
                .metadata
                .redirect_uris
                .iter()
                .any(|registered| redirect::matches(registered, requested, self.native))
                .then(|| requested.to_owned()),
            None => match self.metadata.redirect_uris.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        }
    }

    /// Returns the name shown on the consent page: the registered `client_name`, else the id.
    pub fn display_name(&self) -> &str {
        self.metadata.client_name.as_deref().unwrap_or(&self.id)
    }
}

/// How long a loaded client is used before it is read again. Another instance picks up a
/// client's update or deletion within this time; this instance forgets it at once.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries kept before the cache starts over, bounding its memory.
const CACHE_CAPACITY: usize = 10_000;

/// A tenant's cached clients by client id, each with the time it was loaded.
type TenantClients = HashMap<String, (Arc<Client>, Instant)>;

/// Looks clients up by tenant and id, caching them briefly: every token request names one.
pub struct ClientDirectory {
    store: Store,
    /// Clients by tenant id, then client id, so that a lookup allocates no key.
    cache: RwLock<HashMap<String, TenantClients>>,
}

impl ClientDirectory {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the client, or `None` when the tenant has no such client.
    pub async fn find(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some((client, loaded_at)) = self
            .cache
            .read()
            .expect("client cache lock poisoned")
            .get(tenant_id)
            .and_then(|clients| clients.get(client_id))
            && loaded_at.elapsed() < CACHE_TTL
        {
            return Ok(Some(Arc::clone(client)));
        }
        let Some(record) = self.store.client_by_id(tenant_id, client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(Client::from_record(record)?);
        let mut cache = self.cache.write().expect("client cache lock poisoned");
        if cache.values().map(HashMap::len).sum::<usize>() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache
            .entry(tenant_id.to_owned())
            .or_default()
            .insert(client_id.to_owned(), (Arc::clone(&client), Instant::now()));
        Ok(Some(client))
    }

    /// Drops a cached client after it was changed or deleted through this instance.
    pub fn forget(&self, tenant_id: &str, client_id: &str) {
        if let Some(clients) = self
            .cache
            .write()
            .expect("client cache lock poisoned")
            .get_mut(tenant_id)
        {
            clients.remove(client_id);
        }
    }
}
