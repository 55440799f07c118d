//! Token signing keys per tenant, the JWKS document, and JWT access tokens (RFC 9068).
//!
//! Keys move `upcoming -> current -> retired -> removed` (see `rotation`). The `current` key
//! signs; every key but a removed one is published. Private keys are sealed at rest under a
//! master key (see `sealing` and `master`) and opened once per cache load, never per request.
//! Loaded keys are cached per tenant for a short time, so an instance picks up rotations made by
//! another instance on the same database within that time.

mod algorithm;
mod jwt;
pub mod master;
pub mod rotation;
pub mod sealing;
mod signer;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use josekit::jwk::Jwk;

use crate::config::KeyTiming;
use crate::store::{SigningKeyRecord, Store, StoreError};

pub use algorithm::SigningAlgorithm;
pub use jwt::{AccessTokenClaims, VerifierSet, VerifyError};
use sealing::MasterKeys;
use signer::TokenSigner;

use base64::Engine;

/// The algorithm of a new tenant's keys.
pub const DEFAULT_ALGORITHM: SigningAlgorithm = SigningAlgorithm::Es256;

/// Returns how long loaded keys are used before they are read again: a quarter of the publish lead
/// time, between 1 and 30 seconds, so a new key reaches every instance's JWKS well before it
/// may sign.
pub fn cache_ttl(timing: &KeyTiming) -> Duration {
    Duration::from_secs((timing.publish_lead / 4).clamp(1, 30) as u64)
}

/// Returns how long clients may cache a JWKS response, in seconds: the publish lead time less the
/// cache time, so a client that fetched just before a key appeared refetches before the key
/// signs.
pub fn jwks_max_age(timing: &KeyTiming) -> i64 {
    (timing.publish_lead - cache_ttl(timing).as_secs() as i64).max(1)
}

/// A tenant's keys, ready to sign and verify.
pub struct TenantKeys {
    signer: TokenSigner,
    /// The base64url JWS header of every token the current key signs.
    encoded_header: String,
    verifiers: VerifierSet,
    /// The JWKS document, shared with each response without a copy.
    jwks: actix_web::web::Bytes,
    etag: String,
    loaded_at: Instant,
}

impl TenantKeys {
    /// Returns the JWKS document with every published public key.
    pub fn jwks_json(&self) -> actix_web::web::Bytes {
        self.jwks.clone()
    }

    /// Returns a strong entity tag of the JWKS document.
    pub fn jwks_etag(&self) -> &str {
        &self.etag
    }

    pub fn verifiers(&self) -> &VerifierSet {
        &self.verifiers
    }

    fn from_records(
        records: &[SigningKeyRecord],
        master_keys: &MasterKeys,
        clock_skew: i64,
    ) -> Result<Self, StoreError> {
        let corrupt =
            |kid: &str, reason: String| StoreError::Corrupt(format!("signing key {kid}: {reason}"));
        let current = records
            .iter()
            .find(|record| record.state == "current")
            .ok_or_else(|| StoreError::Corrupt("the tenant has no current signing key".into()))?;
        let algorithm = SigningAlgorithm::parse(&current.algorithm)
            .map_err(|reason| corrupt(&current.kid, reason))?;
        let private = master::open_private_key(master_keys, current)
            .map_err(|reason| corrupt(&current.kid, reason))?;
        let current_public = Jwk::from_bytes(current.public_jwk.as_bytes())
            .map_err(|error| corrupt(&current.kid, error.to_string()))?;
        let signer = TokenSigner::from_jwk(algorithm, &private, &current_public)
            .map_err(|reason| corrupt(&current.kid, reason))?;
        let header =
            serde_json::json!({"alg": algorithm.name(), "typ": "at+jwt", "kid": current.kid});
        let encoded_header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());

        let mut public_keys = Vec::with_capacity(records.len());
        for record in records {
            let public = Jwk::from_bytes(record.public_jwk.as_bytes())
                .map_err(|error| corrupt(&record.kid, error.to_string()))?;
            public_keys.push(public);
        }
        let verifiers = VerifierSet::new(&public_keys, clock_skew).map_err(StoreError::Corrupt)?;
        let documents: Vec<serde_json::Value> = public_keys
            .iter()
            .map(|key| serde_json::Value::Object(key.as_ref().clone()))
            .collect();
        let jwks = serde_json::json!({ "keys": documents }).to_string();
        let digest = ring::digest::digest(&ring::digest::SHA256, jwks.as_bytes());
        let etag = format!("\"{}\"", crate::secret::hex(&digest.as_ref()[..12]));
        Ok(Self {
            signer,
            encoded_header,
            verifiers,
            jwks: jwks.into(),
            etag,
            loaded_at: Instant::now(),
        })
    }
}

/// Per-tenant keys, loaded on first use and cached.
pub struct KeyRing {
    store: Store,
    master_keys: Arc<MasterKeys>,
    timing: KeyTiming,
    cache: RwLock<HashMap<String, Arc<TenantKeys>>>,
}

impl KeyRing {
    pub fn new(store: Store, master_keys: Arc<MasterKeys>, timing: KeyTiming) -> Self {
        Self {
            store,
            master_keys,
            timing,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the tenant's keys, from the cache while it is fresh.
    pub async fn tenant_keys(&self, tenant_id: &str) -> Result<Arc<TenantKeys>, StoreError> {
        if let Some(keys) = self.cached(tenant_id) {
            return Ok(keys);
        }
        let records = self.store.published_signing_keys(tenant_id).await?;
        let keys = Arc::new(TenantKeys::from_records(
            &records,
            &self.master_keys,
            self.timing.clock_skew,
        )?);
        self.cache
            .write()
            .expect("key cache lock poisoned")
            .insert(tenant_id.to_owned(), Arc::clone(&keys));
        Ok(keys)
    }

    fn cached(&self, tenant_id: &str) -> Option<Arc<TenantKeys>> {
        let cache = self.cache.read().expect("key cache lock poisoned");
        let ttl = cache_ttl(&self.timing);
        cache
            .get(tenant_id)
            .filter(|keys| keys.loaded_at.elapsed() < ttl)
            .map(Arc::clone)
    }
}

/// Generates a key pair and seals its private part; returns the record to store.
pub fn new_key_record(
    algorithm: SigningAlgorithm,
    state: &str,
    master_keys: &MasterKeys,
    now: i64,
) -> Result<SigningKeyRecord, josekit::JoseError> {
    let kid = crate::secret::random_id();
    let (private, public) = algorithm.generate(&kid)?;
    let (sealed, master_key_id) = master_keys.seal(&kid, private.to_string().as_bytes());
    Ok(SigningKeyRecord {
        kid,
        algorithm: algorithm.name().to_owned(),
        state: state.to_owned(),
        sealed_private_key: sealed,
        master_key_id: Some(master_key_id),
        public_jwk: public.to_string(),
        created_at: now,
        activated_at: (state == "current").then_some(now),
        retired_at: None,
    })
}
