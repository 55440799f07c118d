//! Token signing keys per tenant, the JWKS document, and JWT access tokens (RFC 9068).
//!
//! Every tenant has one `current` ES256 key that signs. Keys are loaded from the store into a
//! per-tenant cache that expires after `CACHE_TTL`, so an instance picks up keys written by
//! another instance sharing the database within that time.
//!
//! NOTE: private keys are stored as plain JWK text, and rotation is not implemented yet;
//! each tenant keeps the key created with it.

mod jwt;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::Jwk;
use josekit::jws::{ES256, JwsSigner, JwsVerifier};

use crate::store::{SigningKeyRecord, Store, StoreError};

pub use jwt::{AccessTokenClaims, VerifyError};

/// How long loaded keys are used before they are read from the store again.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// The JWS algorithm of new keys.
pub const DEFAULT_ALGORITHM: &str = "ES256";

/// A tenant's keys, ready to sign and verify.
pub struct TenantKeys {
    signing_kid: String,
    signer: Box<dyn JwsSigner>,
    verifiers: HashMap<String, Box<dyn JwsVerifier>>,
    jwks: String,
    loaded_at: Instant,
}

impl TenantKeys {
    /// Returns the JWKS document with every published public key.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    pub fn signing_algorithms(&self) -> Vec<String> {
        vec![self.signer.algorithm().name().to_owned()]
    }

    fn from_records(records: &[SigningKeyRecord]) -> Result<Self, StoreError> {
        let corrupt = |kid: &str, error: josekit::JoseError| {
            StoreError::Corrupt(format!("signing key {kid} cannot be loaded: {error}"))
        };
        let current = records
            .iter()
            .find(|record| record.state == "current")
            .ok_or_else(|| StoreError::Corrupt("the tenant has no current signing key".into()))?;
        if current.algorithm != DEFAULT_ALGORITHM {
            return Err(StoreError::Corrupt(format!(
                "signing key {} uses unsupported algorithm {}",
                current.kid, current.algorithm
            )));
        }
        let private = Jwk::from_bytes(current.private_jwk.as_bytes())
            .map_err(|error| corrupt(&current.kid, error))?;
        let signer = ES256
            .signer_from_jwk(&private)
            .map_err(|error| corrupt(&current.kid, error))?;

        let mut verifiers: HashMap<String, Box<dyn JwsVerifier>> = HashMap::new();
        let mut public_keys = Vec::with_capacity(records.len());
        for record in records
            .iter()
            .filter(|record| record.algorithm == DEFAULT_ALGORITHM)
        {
            let public = Jwk::from_bytes(record.public_jwk.as_bytes())
                .map_err(|error| corrupt(&record.kid, error))?;
            let verifier = ES256
                .verifier_from_jwk(&public)
                .map_err(|error| corrupt(&record.kid, error))?;
            verifiers.insert(record.kid.clone(), Box::new(verifier));
            public_keys.push(serde_json::Value::Object(public.as_ref().clone()));
        }
        let jwks = serde_json::json!({ "keys": public_keys }).to_string();
        Ok(Self {
            signing_kid: current.kid.clone(),
            signer: Box::new(signer),
            verifiers,
            jwks,
            loaded_at: Instant::now(),
        })
    }
}

/// Per-tenant keys, loaded on first use and cached.
pub struct KeyRing {
    store: Store,
    cache: RwLock<HashMap<String, Arc<TenantKeys>>>,
}

impl KeyRing {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the tenant's keys, from the cache while it is fresh.
    pub async fn tenant_keys(&self, tenant_id: &str) -> Result<Arc<TenantKeys>, StoreError> {
        if let Some(keys) = self.cached(tenant_id) {
            return Ok(keys);
        }
        let records = self.store.published_signing_keys(tenant_id).await?;
        let keys = Arc::new(TenantKeys::from_records(&records)?);
        self.cache
            .write()
            .expect("key cache lock poisoned")
            .insert(tenant_id.to_owned(), Arc::clone(&keys));
        Ok(keys)
    }

    fn cached(&self, tenant_id: &str) -> Option<Arc<TenantKeys>> {
        let cache = self.cache.read().expect("key cache lock poisoned");
        cache
            .get(tenant_id)
            .filter(|keys| keys.loaded_at.elapsed() < CACHE_TTL)
            .map(Arc::clone)
    }
}

/// Generates a new ES256 key pair in the given lifecycle state.
pub fn generate_key(state: &str) -> Result<SigningKeyRecord, josekit::JoseError> {
    let kid = crate::secret::random_id();
    let pair = ES256.generate_key_pair()?;
    let mut private = pair.to_jwk_private_key();
    let mut public = pair.to_jwk_public_key();
    for jwk in [&mut private, &mut public] {
        jwk.set_key_id(&kid);
        jwk.set_algorithm(DEFAULT_ALGORITHM);
        jwk.set_key_use("sig");
    }
    Ok(SigningKeyRecord {
        kid,
        algorithm: DEFAULT_ALGORITHM.to_owned(),
        state: state.to_owned(),
        private_jwk: private.to_string(),
        public_jwk: public.to_string(),
    })
}
