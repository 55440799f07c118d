//! Tenants. Every tenant is its own issuer at `{public_url}/t/{slug}`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::oauth::scope::Scope;
use crate::store::{ResourceRecord, Store, StoreError};

/// A validated tenant name: 1 to 63 characters of lowercase ASCII letters, digits and
/// hyphens, starting with a letter or digit, so it is safe in a URL path and a cookie path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(value: &str) -> Result<Self, String> {
        let valid_length = (1..=63).contains(&value.len());
        let valid_first = value
            .bytes()
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
        let valid_rest = value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if valid_length && valid_first && valid_rest {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!(
                "invalid tenant name {value:?}: use 1 to 63 lowercase letters, digits and \
                 hyphens, starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A tenant as loaded from the store: its database id, its name, its issuer string, and
/// the protected resources it issues tokens for.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub slug: TenantSlug,
    pub issuer: String,
    pub resources: Vec<ResourceRecord>,
    /// Every scope of every resource.
    pub scopes: Scope,
    loaded_at: Instant,
}

/// Returns every scope of every resource.
pub fn scopes_of(resources: &[ResourceRecord]) -> Scope {
    resources.iter().fold(Scope::default(), |all, resource| {
        all.union(&Scope::from_stored(&resource.scopes))
    })
}

/// How long a loaded tenant is used before it is read from the store again, so that
/// resources added by the admin commands take effect without a restart.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Looks tenants up by name, caching them briefly: every request names its tenant.
pub struct TenantDirectory {
    store: Store,
    public_url: String,
    cache: RwLock<HashMap<String, Arc<Tenant>>>,
}

impl TenantDirectory {
    pub fn new(store: Store, public_url: String) -> Self {
        Self {
            store,
            public_url,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Returns the issuer string of the tenant named `slug`.
    pub fn issuer_of(&self, slug: &TenantSlug) -> String {
        format!("{}/t/{}", self.public_url, slug)
    }

    /// Returns the tenant named `slug`, or `None` when no such tenant exists.
    pub async fn find(&self, slug: &TenantSlug) -> Result<Option<Arc<Tenant>>, StoreError> {
        if let Some(tenant) = self.cached(slug) {
            return Ok(Some(tenant));
        }
        let Some(id) = self.store.tenant_id_by_slug(slug.as_str()).await? else {
            return Ok(None);
        };
        let resources = self.store.list_resources(&id).await?;
        let scopes = scopes_of(&resources);
        let tenant = Arc::new(Tenant {
            id,
            slug: slug.clone(),
            issuer: self.issuer_of(slug),
            resources,
            scopes,
            loaded_at: Instant::now(),
        });
        self.cache
            .write()
            .expect("tenant cache lock poisoned")
            .insert(slug.as_str().to_owned(), Arc::clone(&tenant));
        Ok(Some(tenant))
    }

    fn cached(&self, slug: &TenantSlug) -> Option<Arc<Tenant>> {
        let cache = self.cache.read().expect("tenant cache lock poisoned");
        cache
            .get(slug.as_str())
            .filter(|tenant| tenant.loaded_at.elapsed() < CACHE_TTL)
            .map(Arc::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_accepts_simple_names() {
        for name in ["default", "acme", "a", "team-42", "0abc"] {
            assert!(TenantSlug::parse(name).is_ok(), "{name} should be accepted");
        }
    }

    #[test]
    fn slug_rejects_unsafe_names() {
        let long = "a".repeat(64);
        for name in [
            "",
            "-acme",
            "Acme",
            "a/b",
            "a b",
            "a.b",
            "..",
            "é",
            long.as_str(),
        ] {
            assert!(
                TenantSlug::parse(name).is_err(),
                "{name:?} should be rejected"
            );
        }
    }
}
